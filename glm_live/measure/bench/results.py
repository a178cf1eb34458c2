"""A benchmark's result: per-request and per-event DataFrames, summaries, calibration, and
lossless save/load (Parquet, JSON; CSV too, lossy on types)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from html import escape as html_escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..recorder import Recorder
from .stats import describe, dialects
from .telemetry import telemetry_frame

if TYPE_CHECKING:
    from .slo import Goodput, SLOLike

__all__ = ["WRITERS", "BenchResult"]

#: What :meth:`BenchResult.report` and :meth:`BenchResult.export` call: ``"report"`` and
#: ``"export:<format>"``, filled in by :mod:`.report` and :mod:`.interop` as the package loads.
#: They import this module, so this one does not import them (sibling modules stay acyclic).
WRITERS: dict[str, Callable[..., Any]] = {}

_LATENCIES = ("ttft_ms", "ttft_content_ms", "tpot_ms", "e2e_ms", "queue_ms")
_WARN_LAG_MS = 5.0  # event-loop lag p99 above this: the client may be the bottleneck


class BenchResult:
    """What a run measured.

    Attributes:
        requests: One row per request: ``phase`` (warmup/measure), ``status``, errors,
            ``scheduled_ns``/``sent_ns`` (``perf_counter_ns``), ``queue_ms``, TTFT variants,
            ``tpot_ms``, ``e2e_ms`` (from the scheduled send), tokens from ``usage``, and
            ``input_tokens``/``output_tokens`` counted client-side (``config["token_counter"]``
            says how: words, or the tokenizer given); multi-turn runs add ``session``,
            ``turn`` and ``think_s``.
        events: One row per SSE event: ``request``, ``index``, ``arrival_ns``,
            ``arrival_wall_ns``, ``sent_ns`` (the server's ``x_sent_ns``, when stamped),
            ``bytes``, ``kind``, ``chars``.
        config: How it was run.
        calibration: The harness's own timing error and event-loop lag (and, when the
            server's metrics were scraped, ``telemetry``: scrapes, errors, their cost).
        telemetry: The server's Prometheus samples scraped during the run
            (``metrics_url=...``), one row each: ``scrape``, ``time_ns`` (on the clock of
            ``requests.sent_ns``), ``t`` (s after the run's first scheduled send),
            ``wall``, ``metric``, ``family``, ``type``, ``labels`` (sorted JSON), ``value``.
            Empty when nothing was scraped.
    """

    def __init__(
        self,
        requests: pd.DataFrame,
        events: pd.DataFrame,
        config: dict[str, Any],
        calibration: dict[str, Any],
        telemetry: pd.DataFrame | None = None,
    ) -> None:
        self.requests = requests
        self.events = events
        self.config = config
        self.calibration = calibration
        self.telemetry = telemetry_frame() if telemetry is None else telemetry
        #: The progress widget that showed the run, when one was displayed.
        self.view: Any = None

    @classmethod
    def from_recorder(
        cls,
        recorder: Recorder,
        *,
        config: dict[str, Any],
        lag_s: Sequence[float],
        cancelled: bool,
        started_wall: float,
    ) -> BenchResult:
        events = recorder.events_frame()
        requests = recorder.requests_frame()
        if not requests.empty:
            # Latencies count from the scheduled send: queueing is part of what users wait.
            shift = (requests["sent_ns"] - requests["scheduled_ns"]) / 1e6
            for column in (
                "ttft_ms",
                "ttft_content_ms",
                "ttft_reasoning_ms",
                "ttft_tool_ms",
                "ttft_first_byte_ms",
                "ttft_first_event_ms",
                "e2e_ms",
            ):
                requests[column] = requests[column] + shift
            requests["queue_ms"] = shift
            deltas = events[events["tokens"] > 0].groupby("request").size()
            requests["tokens_per_chunk"] = requests["completion_tokens"] / requests["request"].map(
                deltas
            )
        config = {**config, "cancelled": cancelled, "started_wall": started_wall}
        return cls(requests, events, config, _calibrate(events, lag_s))

    @classmethod
    def combine(
        cls,
        results: Sequence[BenchResult],
        by: str = "concurrency",
        values: Sequence[Any] | None = None,
    ) -> BenchResult:
        """One result from several (a sweep): frames concatenated, with a column ``by`` (each
        result's ``values`` entry; default: its config's ``by``) and request numbers
        renumbered so they stay unique."""
        requests, events, telemetry, offset = [], [], [], 0
        if values is not None and len(values) != len(results):
            msg = f"{len(values)} values for {len(results)} results"
            raise ValueError(msg)
        for k, result in enumerate(results):
            value = result.config.get(by) if values is None else values[k]
            r = result.requests.copy()
            e = result.events.copy()
            r[by], e[by] = value, value
            if not result.telemetry.empty:
                t = result.telemetry.copy()
                t[by] = value
                telemetry.append(t)
            r["request"] += offset
            e["request"] += offset
            offset += len(result.requests)
            requests.append(r)
            events.append(e)
        config = {"runs": [result.config for result in results], "by": by}
        calibration = {"runs": [result.calibration for result in results]}
        return cls(
            pd.concat(requests, ignore_index=True),
            pd.concat(events, ignore_index=True),
            config,
            calibration,
            pd.concat(telemetry, ignore_index=True) if telemetry else None,
        )

    def with_telemetry(self, telemetry: pd.DataFrame, info: dict[str, Any]) -> BenchResult:
        """Attach scraped server samples (:class:`~.telemetry.Scraper`): ``t`` counts from
        the run's first scheduled send (the first scrape's time when nothing was sent).
        Returns ``self``."""
        telemetry = telemetry.copy()
        if not self.requests.empty:
            origin = int(self.requests["scheduled_ns"].min())
        elif not telemetry.empty:
            origin = int(telemetry["time_ns"].min())
        else:
            origin = 0
        telemetry.insert(2, "t", (telemetry["time_ns"] - origin) / 1e9)
        self.telemetry = telemetry
        self.calibration = {**self.calibration, "telemetry": info}
        return self

    # -- summaries -----------------------------------------------------------------------------

    @property
    def measured(self) -> pd.DataFrame:
        """The requests that count: finished, outside the warm-up."""
        r = self.requests
        return r[(r["status"] == "ok") & (r["phase"] == "measure")]

    def summary(self, ci: bool = True) -> pd.DataFrame:
        """Per latency metric: count, mean, p50/p90/p95/p99/p99.9, with 95% bootstrap CIs."""
        measured = self.measured
        rows = {
            m: describe(measured[m].to_numpy(dtype=float), ci=ci)
            for m in _LATENCIES
            if m in measured
        }
        return pd.DataFrame(rows).T

    def dialects(self) -> pd.DataFrame:
        """TTFT/ITL/TPOT as vLLM, GuideLLM, genai-perf and glm_live define them, side by side."""
        return dialects(self.requests, self.events)

    def throughput(self) -> dict[str, float]:
        """Requests/s and output tokens/s over the measured window (tokens by the server's
        usage; ``counted_output_tokens_per_s``: by the run's own token counter)."""
        measured = self.measured
        if measured.empty:
            return {"requests_per_s": 0.0, "output_tokens_per_s": 0.0}
        start = measured["scheduled_ns"].min()
        end = (measured["sent_ns"] + measured["e2e_ms"] * 1e6 - measured["queue_ms"] * 1e6).max()
        seconds = max((end - start) / 1e9, 1e-9)
        tokens = measured["completion_tokens"].fillna(0).sum()
        out = {
            "requests_per_s": len(measured) / seconds,
            "output_tokens_per_s": tokens / seconds,
            "seconds": seconds,
        }
        if "output_tokens" in measured:  # counted client-side (config["token_counter"])
            out["counted_output_tokens_per_s"] = measured["output_tokens"].fillna(0).sum() / seconds
        return out

    @property
    def send_error_ms(self) -> dict[str, float | None]:
        """How late requests were sent after their scheduled send (ms; ``sent_ns`` minus
        ``scheduled_ns``, every request sent): p50, p99 and max.

        With no concurrency cap (a trace replay, an open loop without ``concurrency``) this
        is the harness's own send-time error against its schedule; with a cap it includes
        the wait for a free slot (``queue_ms``).
        """
        r = self.requests
        if r.empty:
            return {"p50": None, "p99": None, "max": None}
        late = ((r["sent_ns"] - r["scheduled_ns"]) / 1e6).dropna().to_numpy(dtype=float)
        if not len(late):
            return {"p50": None, "p99": None, "max": None}
        return {
            "p50": float(np.percentile(late, 50)),
            "p99": float(np.percentile(late, 99)),
            "max": float(late.max()),
        }

    def goodput(self, slo: SLOLike, *, percentile: float | None = None) -> Goodput:
        """The run against a service-level objective: goodput (requests/s meeting every
        target, with a bootstrap interval), the fraction meeting each, and whether the run
        passes at the SLO's percentile. See :mod:`.slo` for the definitions.

        Args:
            slo: An :class:`~.slo.SLO`, or a dict such as ``{"ttft_ms": 500, "itl_ms": 50}``.
            percentile: The percentile the run is judged at (default: the SLO's, 99).
        """
        from .slo import goodput

        return goodput(self, slo, percentile=percentile)

    def __repr__(self) -> str:
        done = int((self.requests["status"] == "ok").sum()) if not self.requests.empty else 0
        clock = self.calibration.get("clock")
        workers = ""
        if clock:
            n = len(clock["workers"])
            workers = f" on {n} worker{'s' if n != 1 else ''}"
            if n > 1:
                workers += f" (clocks within {clock['spread_ms']:.2f} ms)"
        counter = self.config.get("token_counter")
        tokens = f", tokens counted as {counter}" if counter else ""
        return (
            f"<BenchResult {self.config.get('url')} concurrency={self.config.get('concurrency')}"
            f" rate={self.config.get('rate')} {done}/{len(self.requests)} ok{workers}{tokens}>"
        )

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        summary = self.summary(ci=False)
        text = repr(self) + "\n" + summary.to_string()
        html = f"<p>{html_escape(repr(self)[1:-1])}</p>" + summary.to_html(
            float_format="{:.1f}".format
        )
        clock = self.calibration.get("clock")
        if clock:
            text += f"\nclock agreement: {clock['agreement']}"
            html += f"<p><b>Clock agreement:</b> {html_escape(clock['agreement'])}</p>"
        if self.calibration.get("warning"):
            html += f"<p><b>Warning:</b> {html_escape(str(self.calibration['warning']))}</p>"
        return {"text/plain": text, "text/html": html}

    @property
    def source(self) -> str:
        """Which tool measured this: ``"glm_live"``, or the tool a loaded file came from
        (``"vLLM bench serve"``, ``"GuideLLM"``; see :mod:`.interop`)."""
        return str(self.config.get("source", "glm_live"))

    # -- reports and other tools' formats --------------------------------------------------------

    def report(
        self, path: str | Path, *, label: str | None = None, title: str | None = None
    ) -> Path:
        """Write one self-contained HTML report (figures, definitions, intervals, calibration,
        config, environment) to ``path``; see :func:`glm_live.bench.report.write_report`."""
        written: Path = WRITERS["report"](
            self, path, labels=[label] if label else None, title=title
        )
        return written

    def export(self, path: str | Path, format: str = "vllm") -> Path:
        """Write this run as another tool writes its results: ``"vllm"`` (``vllm bench serve
        --save-result --save-detailed`` JSON) or ``"guidellm"`` (GuideLLM's JSON report),
        each number by that tool's rule. See :mod:`.interop`."""
        if f"export:{format}" not in WRITERS:
            msg = f"export format is 'vllm' or 'guidellm', not {format!r}"
            raise ValueError(msg)
        path = Path(path)
        path.write_text(json.dumps(WRITERS[f"export:{format}"](self), allow_nan=False))
        return path

    # -- files -----------------------------------------------------------------------------------

    def save(self, path: str | Path) -> list[Path]:
        """Write ``path`` (requests; ``.parquet``, ``.json`` or ``.csv``) and, beside it,
        ``<stem>.events<suffix>``, ``<stem>.meta.json`` and, when the server's metrics were
        scraped, ``<stem>.telemetry<suffix>``. Parquet and JSON reload exactly."""
        path = Path(path)
        suffix = path.suffix.lower()
        events_path = path.with_name(f"{path.stem}.events{path.suffix}")
        meta_path = path.with_name(f"{path.stem}.meta.json")
        telemetry_path = path.with_name(f"{path.stem}.telemetry{path.suffix}")
        times: dict[str, list[str]] = {}
        frames = [("requests", self.requests, path), ("events", self.events, events_path)]
        if not self.telemetry.empty:
            frames.append(("telemetry", self.telemetry, telemetry_path))
        for name, frame, target in frames:
            if suffix == ".parquet":
                frame.to_parquet(target, index=False)
                continue
            # JSON and CSV keep timestamps to the microsecond at best: write them as integer
            # nanoseconds, and turn them back into timestamps on load.
            # Nullable integers (a server stamp that may be missing) would become floats:
            # they travel as text.
            stamps = [c for c in frame.columns if isinstance(frame[c].dtype, pd.DatetimeTZDtype)]
            nullable = [c for c in frame.columns if isinstance(frame[c].dtype, pd.Int64Dtype)]
            times[name] = stamps
            times[f"{name}:int64"] = nullable
            plain = frame.copy()
            for column in stamps:
                plain[column] = plain[column].astype("int64")
            for column in nullable:
                plain[column] = plain[column].astype("string")
            if suffix == ".json":
                plain.to_json(target, orient="table", index=False)
            elif suffix == ".csv":
                plain.to_csv(target, index=False)
            else:
                msg = f"save to .parquet, .json or .csv, not {suffix or 'no extension'}"
                raise ValueError(msg)
        meta_path.write_text(
            json.dumps(
                {"config": self.config, "calibration": self.calibration, "timestamps": times},
                default=str,
            )
        )
        return [path, events_path, meta_path, *(target for _, _, target in frames[2:])]

    @classmethod
    def load(cls, path: str | Path) -> BenchResult:
        """Read what :meth:`save` wrote."""
        path = Path(path)
        events_path = path.with_name(f"{path.stem}.events{path.suffix}")
        meta = json.loads(path.with_name(f"{path.stem}.meta.json").read_text())
        suffix = path.suffix.lower()
        if suffix == ".parquet":
            requests, events = pd.read_parquet(path), pd.read_parquet(events_path)
        elif suffix == ".json":
            requests = pd.read_json(path, orient="table")
            events = pd.read_json(events_path, orient="table")
        else:
            requests, events = pd.read_csv(path), pd.read_csv(events_path)
        telemetry_path = path.with_name(f"{path.stem}.telemetry{path.suffix}")
        telemetry = None
        if telemetry_path.exists():
            if suffix == ".parquet":
                telemetry = pd.read_parquet(telemetry_path)
            elif suffix == ".json":
                telemetry = pd.read_json(telemetry_path, orient="table")
            else:
                telemetry = pd.read_csv(telemetry_path)
        stamps = meta.get("timestamps", {})
        loaded = [("requests", requests), ("events", events)]
        if telemetry is not None:
            loaded.append(("telemetry", telemetry))
        for name, frame in loaded:
            for column in stamps.get(name, []):
                frame[column] = pd.to_datetime(frame[column], unit="ns", utc=True)
            for column in stamps.get(f"{name}:int64", []):
                frame[column] = pd.array(
                    [None if pd.isna(v) else int(v) for v in frame[column]], dtype="Int64"
                )
        return cls(requests, events, meta["config"], meta["calibration"], telemetry)


def _calibrate(events: pd.DataFrame, lag_s: Sequence[float]) -> dict[str, Any]:
    lag = np.asarray(lag_s, dtype=float) * 1000
    out: dict[str, Any] = {
        "loop_lag_p50_ms": float(np.percentile(lag, 50)) if len(lag) else None,
        "loop_lag_p99_ms": float(np.percentile(lag, 99)) if len(lag) else None,
        "timing_error_p50_ms": None,
        "timing_error_p99_ms": None,
        "warning": None,
    }
    stamped = events.dropna(subset=["sent_ns"])
    if not stamped.empty:
        error = (stamped["arrival_wall_ns"] - stamped["sent_ns"].astype("int64")) / 1e6
        out["timing_error_p50_ms"] = float(np.percentile(error, 50))
        out["timing_error_p99_ms"] = float(np.percentile(error, 99))
    if out["loop_lag_p99_ms"] is not None and out["loop_lag_p99_ms"] > _WARN_LAG_MS:
        out["warning"] = (
            f"the client's event loop lagged {out['loop_lag_p99_ms']:.1f} ms at p99: at this "
            "load the client, not the server, may limit what you measure; lower the concurrency "
            "per process"
        )
    return out
