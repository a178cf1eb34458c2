"""Recording every timing, cheaply, and getting it back as pandas DataFrames.

:class:`Recorder` keeps events in typed arrays, one per column (no object per event): a
request number, the event's index in its request, its arrival (``perf_counter_ns``), its size,
its kind, the characters of text it carried and the server's send stamp when there is one;
about 34 bytes and a fraction of a microsecond per event (``benchmarks/recorder.py``). Requests
(chats, runs, benchmark requests) are rows of their own, with their timings. All stamps are on
one monotonic clock; ``anchor_ns`` pairs it with the wall clock
(``wall = anchor_wall_ns + (stamp - anchor_ns)``).

:meth:`Recorder.events_frame` has one row per event, :meth:`Recorder.requests_frame` one row
per request with time-to-first-token variants (first byte, first event, first reasoning, first
content, first tool call), inter-token time (TPOT), end-to-end time, token counts from
``usage`` (prompt, completion, reasoning, and ``cached_tokens``: prompt tokens the provider
served from its cache, from ``prompt_tokens_details``), and the queueing delay before the
request went out when a schedule was given.
"""

from __future__ import annotations

import contextlib
import threading
import time
from array import array
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..wire.chat import Chunk, Completion, Timings

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["KINDS", "Listener", "Recorder"]

#: Event kinds, by code.
KINDS = ("role", "reasoning", "content", "tool", "usage", "other", "agui", "hub")
_KIND_CODE = {name: code for code, name in enumerate(KINDS)}

#: Called as ``listener("end", request_number)`` after :meth:`Recorder.end` and
#: ``listener("sample", name)`` after :meth:`Recorder.sample`, on the thread that called them.
Listener = Callable[[str, "int | str"], None]


@dataclass
class _Request:
    label: str
    kind: str
    model: str | None
    scheduled_ns: int | None
    started_ns: int
    status: str = "running"
    error: str | None = None
    error_type: str | None = None
    stamps: dict[str, int | None] = field(default_factory=dict)
    usage: Mapping[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Recorder:
    """Columnar storage of request and event timings.

    Events are written by one thread at a time (the event loop that receives them) and may be
    read from any other while they arrive: :meth:`event` appends to its columns in a fixed
    order, ``_sent`` last, so a reader that cuts every column to ``_sent``'s length sees only
    whole rows (:meth:`_columns`), with no lock on the hot path. :meth:`begin` may be called
    from any thread.

    Listeners (:meth:`add_listener`) hear of every request that ends and every sample, for
    views that follow a recorder live (the notebook's metrics dashboard).
    """

    # Every event column, in the order event() appends to them: the last is the row count.
    _COLUMNS = ("_request", "_index", "_arrival", "_bytes", "_kind", "_chars", "_sent")

    def __init__(self) -> None:
        self.anchor_ns = time.perf_counter_ns()
        self.anchor_wall_ns = time.time_ns()
        self._request = array("i")
        self._index = array("i")
        self._arrival = array("q")
        self._bytes = array("i")
        self._kind = array("b")
        self._chars = array("i")
        self._sent = array("q")  # the server's send stamp (x_sent_ns, wall clock), or -1
        self._requests: list[_Request] = []
        self._samples: list[tuple[str, int, float]] = []
        self._lock = threading.Lock()
        self._listeners: tuple[Listener, ...] = ()

    def __len__(self) -> int:
        """Events recorded."""
        return len(self._sent)

    def _columns(self) -> dict[str, array[int]]:
        """A copy of every event column, cut to the rows that are complete in all of them."""
        rows = len(self._sent)
        return {name: getattr(self, name)[:rows] for name in self._COLUMNS}

    def __repr__(self) -> str:
        return f"<Recorder {len(self._requests)} requests, {len(self)} events>"

    def __getstate__(self) -> dict[str, Any]:
        # A benchmark shard's recorder travels back from its worker process: everything but
        # the lock, which cannot be pickled and is per process anyway.
        # Listeners are this process's views and stay behind too.
        state = self.__dict__.copy()
        del state["_lock"]
        state.pop("_listeners", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()
        self._listeners = ()

    # -- listeners -----------------------------------------------------------------------------

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener("end", request)`` after every :meth:`end` and
        ``listener("sample", name)`` after every :meth:`sample`, from the calling thread
        (often the background event loop's). A listener must be quick; what it raises is
        ignored, so a broken view cannot break a request. Adding one twice adds it once."""
        with self._lock:
            if listener not in self._listeners:
                self._listeners = (*self._listeners, listener)

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener`` (nothing happens if it was not added)."""
        with self._lock:
            self._listeners = tuple(x for x in self._listeners if x != listener)

    def _notify(self, what: str, key: int | str) -> None:
        # The tuple is replaced, never mutated, so reading it needs no lock.
        for listener in self._listeners:
            # A view's bug must not fail the request that ended.
            with contextlib.suppress(Exception):
                listener(what, key)

    @classmethod
    def merged(
        cls,
        parts: Sequence[tuple[Recorder, int]],
        order: Sequence[tuple[int, int]],
        *,
        anchor_ns: int,
        anchor_wall_ns: int,
    ) -> Recorder:
        """One recorder from several, e.g. recorded in other processes.

        Args:
            parts: Each recorder with the shift (ns) that puts its monotonic stamps on this
                recorder's clock. The events' ``sent_ns`` are the server's wall-clock stamps
                and are not shifted.
            order: ``(part, request)`` pairs: the merged recorder's requests, in order. Events
                of requests left out are dropped.
            anchor_ns: The merged recorder's monotonic anchor...
            anchor_wall_ns: ...and the wall-clock time it stands for.
        """
        import numpy as np

        out = cls()
        out.anchor_ns, out.anchor_wall_ns = anchor_ns, anchor_wall_ns
        numbers = [np.full(len(recorder._requests), -1, dtype=np.int64) for recorder, _ in parts]
        for new, (part, request) in enumerate(order):
            recorder, shift = parts[part]
            row = recorder._requests[request]
            numbers[part][request] = new
            out._requests.append(
                replace(
                    row,
                    scheduled_ns=None if row.scheduled_ns is None else row.scheduled_ns + shift,
                    started_ns=row.started_ns + shift,
                    stamps={k: None if v is None else v + shift for k, v in row.stamps.items()},
                    extra=dict(row.extra),
                )
            )
        names = cls._COLUMNS
        pieces: dict[str, list[Any]] = {name: [] for name in names}
        for part, (recorder, shift) in enumerate(parts):
            columns = {
                name: np.frombuffer(column, dtype=f"i{column.itemsize}")
                for name, column in recorder._columns().items()
            }
            new_numbers = numbers[part][columns["_request"]]
            keep = new_numbers >= 0
            for name in names:
                pieces[name].append(columns[name][keep])
            pieces["_request"][-1] = new_numbers[keep]
            pieces["_arrival"][-1] = pieces["_arrival"][-1] + shift
            out._samples.extend((n, t + shift, v) for n, t, v in recorder._samples)
        if not pieces["_request"]:
            return out
        # Events grouped by request, in request order, as one process would have fed them.
        by_request = np.argsort(np.concatenate(pieces["_request"]), kind="stable")
        for name in names:
            target = getattr(out, name)
            merged = np.concatenate(pieces[name])[by_request]
            target.frombytes(merged.astype(f"i{target.itemsize}").tobytes())
        return out

    # -- writing -------------------------------------------------------------------------------

    def begin(
        self,
        label: str = "",
        *,
        kind: str = "chat",
        model: str | None = None,
        scheduled_ns: int | None = None,
    ) -> int:
        """Start a request row; returns its number for :meth:`event` and :meth:`end`."""
        with self._lock:
            self._requests.append(
                _Request(label, kind, model, scheduled_ns, time.perf_counter_ns())
            )
            return len(self._requests) - 1

    def event(
        self,
        request: int,
        index: int,
        arrival_ns: int,
        size: int,
        kind: str,
        chars: int = 0,
        sent_ns: int = -1,
    ) -> None:
        """Record one event (the hot path: seven array appends, ``_sent`` last). ``sent_ns`` is
        the server's send stamp (``x_sent_ns``, wall clock) when it gives one."""
        self._request.append(request)
        self._index.append(index)
        self._arrival.append(arrival_ns)
        self._bytes.append(size)
        self._kind.append(_KIND_CODE.get(kind, 5))
        self._chars.append(chars)
        self._sent.append(sent_ns)

    def end(
        self,
        request: int,
        *,
        status: str = "ok",
        error: BaseException | None = None,
        completion: Completion | None = None,
        timings: Timings | None = None,
        usage: Mapping[str, Any] | None = None,
        model: str | None = None,
        **extra: Any,
    ) -> None:
        """Close a request row, with the completion's timings and usage when there is one
        (or ``timings`` and ``usage`` given directly, as the benchmark harness does);
        ``model``, when given, is the model that answered (it replaces the one asked for)."""
        row = self._requests[request]
        if model:
            row.model = model
        row.status = status
        if error is not None:
            row.error_type = type(error).__name__
            row.error = str(error)[:500]
        if completion is not None:
            row.stamps = completion.timings.stamps()
            row.usage = completion.usage
            row.model = completion.model or row.model
        elif timings is not None:
            row.stamps = timings.stamps()
            row.usage = usage
        else:
            row.stamps.setdefault("end_ns", time.perf_counter_ns())
        row.extra.update(extra)
        self._notify("end", request)

    def record_chunk(self, request: int, chunk: Chunk) -> None:
        """Record a :class:`~glm_live.wire.chat.Chunk`."""
        self.event(
            request,
            chunk.index,
            chunk.arrival_ns,
            chunk.size,
            chunk.kind,
            len(chunk.content) + len(chunk.reasoning),
        )

    def sample(self, name: str, value: float) -> None:
        """A named measurement at this moment (hub round trips, reconnects...)."""
        self._samples.append((name, time.perf_counter_ns(), float(value)))
        self._notify("sample", name)

    @property
    def nbytes(self) -> int:
        """Memory held by the event columns (allocated, not just used)."""
        columns = (getattr(self, name) for name in self._COLUMNS)
        return sum(c.buffer_info()[1] * c.itemsize for c in columns)

    # -- reading -------------------------------------------------------------------------------

    @property
    def request_count(self) -> int:
        """Requests begun so far (running ones included)."""
        return len(self._requests)

    def request_summary(self, request: int) -> dict[str, Any]:
        """One request's outcome, cheaply (no pandas): ``kind``, ``status`` (``running``
        until it ends), ``ended_s`` (seconds since the anchor, or ``None``), ``ttft_ms``,
        ``e2e_ms`` and ``completion_tokens`` (``None`` when unknown)."""
        row = self._requests[request]
        timings = Timings.from_stamps(row.stamps)
        ttft, e2e = timings.ttft, timings.e2e
        end = row.stamps.get("end_ns")
        usage = row.usage or {}
        return {
            "kind": row.kind,
            "status": row.status,
            "ended_s": None if end is None else (end - self.anchor_ns) / 1e9,
            "ttft_ms": None if ttft is None else ttft * 1000,
            "e2e_ms": None if e2e is None else e2e * 1000,
            "completion_tokens": usage.get("completion_tokens"),
        }

    def events_since(self, start: int) -> tuple[int, list[int], list[int], list[int]]:
        """Events from row ``start`` on, as whole rows: ``(end, requests, arrivals_ns,
        kind_codes)``; pass ``end`` as the next ``start`` to read on incrementally."""
        end = len(self._sent)
        return (
            end,
            self._request[start:end].tolist(),
            self._arrival[start:end].tolist(),
            self._kind[start:end].tolist(),
        )

    def last_sample(self, name: str) -> float | None:
        """The latest value of the named sample, or ``None``."""
        for sample, _, value in reversed(self._samples):
            if sample == name:
                return value
        return None

    def _wall(self, stamps: Any) -> Any:
        import pandas as pd

        return pd.to_datetime(self.anchor_wall_ns + (stamps - self.anchor_ns), unit="ns", utc=True)

    def events_frame(self) -> pd.DataFrame:
        """One row per event: request, index, arrival_ns, t (s since the anchor), arrival
        (wall clock), arrival_wall_ns, sent_ns (the server's stamp, when it sends one),
        bytes, kind, chars, tokens (1 for a token-bearing delta)."""
        import numpy as np
        import pandas as pd

        columns = self._columns()  # copies: the frame owns its arrays
        arrival = np.frombuffer(columns["_arrival"], dtype=np.int64)
        frame = pd.DataFrame(
            {
                "request": np.frombuffer(columns["_request"], dtype=np.int32),
                "index": np.frombuffer(columns["_index"], dtype=np.int32),
                "arrival_ns": arrival,
                "t": (arrival - self.anchor_ns) / 1e9,
                "arrival": self._wall(arrival),
                "arrival_wall_ns": self.anchor_wall_ns + (arrival - self.anchor_ns),
                "sent_ns": pd.array(np.frombuffer(columns["_sent"], dtype=np.int64), dtype="Int64"),
                "bytes": np.frombuffer(columns["_bytes"], dtype=np.int32),
                "kind": pd.Categorical.from_codes(
                    np.frombuffer(columns["_kind"], dtype=np.int8), KINDS
                ),
                "chars": np.frombuffer(columns["_chars"], dtype=np.int32),
            }
        )
        frame.loc[frame["sent_ns"] < 0, "sent_ns"] = pd.NA
        # GLM streams one token per delta; a chunk carrying text or a tool fragment counts
        # one. requests_frame's tokens_per_chunk checks that against usage per request.
        frame["tokens"] = frame["kind"].isin(["reasoning", "content", "tool"]).astype("int8")
        return frame

    def requests_frame(self) -> pd.DataFrame:
        """One row per request, with timings in milliseconds and token counts."""
        import numpy as np
        import pandas as pd

        rows = []
        for number, row in enumerate(list(self._requests)):
            timings = Timings.from_stamps(row.stamps)
            if timings.request_start_ns is None:  # a row that never got its stamps
                timings.request_start_ns = row.started_ns
            start = timings.request_start_ns
            usage = row.usage or {}
            completion_tokens = usage.get("completion_tokens")
            details = usage.get("completion_tokens_details") or {}
            prompt_details = usage.get("prompt_tokens_details") or {}
            latencies = {
                column: np.nan if value is None else value
                for column, value in timings.latencies_ms(completion_tokens).items()
            }
            rows.append(
                {
                    "request": number,
                    "scheduled_ns": row.scheduled_ns,
                    "sent_ns": start,
                    "label": row.label,
                    "kind": row.kind,
                    "model": row.model,
                    "status": row.status,
                    "error_type": row.error_type,
                    "error": row.error,
                    "queue_ms": (start - row.scheduled_ns) / 1e6
                    if row.scheduled_ns is not None
                    else np.nan,
                    **latencies,
                    "prompt_tokens": usage.get("prompt_tokens"),
                    "completion_tokens": completion_tokens,
                    "reasoning_tokens": details.get("reasoning_tokens"),
                    "cached_tokens": prompt_details.get("cached_tokens"),
                    **row.extra,
                }
            )
        frame = pd.DataFrame(rows)
        if not frame.empty:
            frame.insert(9, "start", self._wall(frame["sent_ns"].to_numpy(dtype="int64")))
        for column in ("label", "kind", "model", "status", "error_type", "error"):
            if column in frame:
                frame[column] = frame[column].astype("string")  # missing is NA, not None/NaN
        return frame

    def samples_frame(self) -> pd.DataFrame:
        """Named measurements: name, t (s since the anchor), value."""
        import pandas as pd

        return pd.DataFrame(
            [(n, (t - self.anchor_ns) / 1e9, v) for n, t, v in self._samples],
            columns=["name", "t", "value"],
        )

    def to_pandas(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """``(events, requests)`` frames."""
        return self.events_frame(), self.requests_frame()
