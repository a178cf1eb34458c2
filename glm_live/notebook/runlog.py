"""``RunLog``: the AG-UI events of a run as they arrived, for :func:`glm_live.replay`.

A :class:`~glm_live.notebook.session.RunHandle` notes when each event arrived;
``run.log()`` is this record of it and ``run.save(path)`` writes it as JSON::

    {
      "format": "glm_live.runlog/1",
      "name": "account-review",          # the workflow
      "thread_id": "...", "run_ids": ["...", ...],   # a resumed thread has several runs
      "at": 1767000000.0,                # when the handle started (seconds since the epoch)
      "inputs": {...},                   # the run's inputs (keys naming secrets left out)
      "sim": {...} | null,               # the simulator knobs it was given
      "tools": ["name", ...],            # the frontend tools offered (how its calls fold)
      "events": [[t_s, {AG-UI event, wire JSON}], ...],
      "results": [[t_s, tool_call_id, content, error], ...],  # frontend tools run here
      "ends": [[t_s, status, error], ...]  # how each of the handle's streams ended
    }

``t_s`` is seconds since the handle started (monotonic), so a run resumed after it waited
for a person goes on in the same log, its events after the wait. ``results`` are what the
handle's frontend tools returned (they reach the state outside the event stream), and
``ends`` the state the run was left in whenever the handle's stream stopped (``waiting``,
``finished``, or an end the client decided: ``cancelled``, ``interrupted``).

This module is data and file I/O only: no widgets, no network.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SavedFileError

__all__ = [
    "FORMAT",
    "ReplayFormatError",
    "RunLog",
    "public_inputs",
    "read_saved",
    "wrong_format",
]

#: The ``format`` tag of a saved run log.
FORMAT = "glm_live.runlog/1"

#: Input names that may hold a secret: left out of a saved log.
_SECRET = re.compile(r"key|token|secret|passw|credential|auth|cookie", re.IGNORECASE)


class ReplayFormatError(SavedFileError):
    """A file or mapping is not something :func:`glm_live.replay` can play: not JSON, not a
    saved conversation or run log, a damaged one, or one from a newer glm_live."""


def public_inputs(inputs: Mapping[str, Any]) -> dict[str, Any]:
    """``inputs`` without the keys whose names suggest a secret (``api_key``, ``token``...)."""
    return {k: v for k, v in inputs.items() if not _SECRET.search(str(k))}


@dataclass
class RunLog:
    """A run's events with their arrival times (see the module docstring).

    Attributes:
        name: The workflow's name.
        events: ``[t_s, event]`` pairs: seconds since the handle started, the AG-UI event as
            its wire JSON object (camelCase), in the order they arrived.
        results: ``[t_s, tool_call_id, content, error]`` for each frontend tool run here.
        ends: ``[t_s, status, error]`` for each time the handle's stream stopped.
    """

    name: str
    thread_id: str | None = None
    run_ids: list[str] = field(default_factory=list)
    at: float = 0.0
    inputs: dict[str, Any] = field(default_factory=dict)
    sim: dict[str, Any] | None = None
    tools: list[str] = field(default_factory=list)
    events: list[list[Any]] = field(default_factory=list)
    results: list[list[Any]] = field(default_factory=list)
    ends: list[list[Any]] = field(default_factory=list)

    @property
    def duration(self) -> float:
        """Seconds from the handle's start to the last thing it logged."""
        times = [row[0] for rows in (self.events, self.results, self.ends) for row in rows]
        return max(times, default=0.0)

    def __repr__(self) -> str:
        runs = len(self.run_ids)
        return (
            f"<glm_live.RunLog {self.name!r}: {len(self.events)} events, {runs} "
            f"run{'s' * (runs != 1)}, {self.duration:.1f} s>"
        )

    # -- export --------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """Everything, as plain data (with the ``format`` tag)."""
        return {
            "format": FORMAT,
            "name": self.name,
            "thread_id": self.thread_id,
            "run_ids": list(self.run_ids),
            "at": self.at,
            "inputs": self.inputs,
            "sim": self.sim,
            "tools": list(self.tools),
            "events": self.events,
            "results": self.results,
            "ends": self.ends,
        }

    def to_json(self, indent: int | None = None) -> str:
        """:meth:`to_dict` as JSON (a value JSON cannot hold is written as its ``repr``)."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False, default=repr)

    def save(self, path: str | Path) -> Path:
        """Write :meth:`to_json` to ``path`` (UTF-8), one event a line; returns the path."""
        data = self.to_dict()
        events = data.pop("events")
        head = json.dumps(data, ensure_ascii=False, default=repr)[:-1]
        lines = [json.dumps(e, ensure_ascii=False, default=repr) for e in events]
        body = ",\n  ".join(lines)
        text = f'{head}, "events": [\n  {body}\n]}}\n' if lines else f'{head}, "events": []}}\n'
        target = Path(path)
        target.write_text(text, encoding="utf-8")
        return target

    # -- import --------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunLog:
        """A run log from :meth:`to_dict`'s mapping.

        Raises:
            ReplayFormatError: It is not a saved run log (a conversation, a newer format, a
                damaged file).
        """
        kind = data.get("format") if isinstance(data, Mapping) else None
        if kind != FORMAT:
            raise ReplayFormatError(wrong_format(kind, (FORMAT,), "a run log"))
        for key in ("events", "results", "ends"):
            if not isinstance(data.get(key, []), list):
                msg = f"a damaged run log: its {key!r} must be a list: save it again"
                raise ReplayFormatError(msg)
        try:
            log = cls(
                name=str(data["name"]),
                thread_id=data.get("thread_id"),
                run_ids=[str(r) for r in data.get("run_ids") or []],
                at=float(data.get("at") or 0.0),
                inputs=dict(data.get("inputs") or {}),
                sim=dict(data["sim"]) if data.get("sim") else None,
                tools=[str(t) for t in data.get("tools") or []],
                events=[_row(r, 2, "events") for r in data["events"]],
                results=[_row(r, 4, "results") for r in data.get("results") or []],
                ends=[_row(r, 3, "ends") for r in data.get("ends") or []],
            )
        except (KeyError, TypeError, ValueError) as exc:
            what = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
            msg = f"a damaged run log ({what}): save it again with run.save(path)"
            raise ReplayFormatError(msg) from None
        for _, event in log.events:
            if not isinstance(event, dict) or not isinstance(event.get("type"), str):
                msg = f"a damaged run log: an event is not an AG-UI event object: {event!r:.80}"
                raise ReplayFormatError(msg)
        return log

    @classmethod
    def from_json(cls, text: str) -> RunLog:
        """A run log from :meth:`to_json`'s text.

        Raises:
            ReplayFormatError: The text is not JSON, or not a saved run log.
        """
        return cls.from_dict(_parse(text, "a saved run log"))

    @classmethod
    def load(cls, path: str | Path) -> RunLog:
        """Read a run log :meth:`save` (or ``run.save``) wrote.

        Raises:
            FileNotFoundError: No such file.
            ReplayFormatError: The file is not a saved run log.
        """
        return cls.from_dict(read_saved(path))


def _row(row: Any, width: int, what: str) -> list[Any]:
    if not isinstance(row, list) or len(row) != width:
        msg = f"each of '{what}' must be a list of {width} values, got {row!r:.80}"
        raise ValueError(msg)
    t = row[0]
    if isinstance(t, bool) or not isinstance(t, int | float) or t < 0:
        msg = f"'{what}' times are seconds since the run started, got {t!r}"
        raise ValueError(msg)
    return [float(t), *row[1:]]


def _parse(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        msg = f"{what} must be JSON; this is not ({exc})"
        raise ReplayFormatError(msg) from None


def wrong_format(kind: Any, expected: tuple[str, ...], what: str) -> str:
    """Why a mapping tagged ``kind`` is not ``what`` (one of the ``expected`` formats)."""
    found = f"format {kind!r}" if kind else "no format tag"
    newer = ""
    if isinstance(kind, str) and any(
        kind.split("/")[0] == e.split("/")[0] and kind != e for e in expected
    ):
        newer = " (written by a newer glm_live? upgrade glm_live to read it)"
    wanted = " or ".join(repr(e) for e in expected)
    return (
        f"not {what} glm_live can read ({found}; expected {wanted}){newer}: "
        "glm_live.replay plays what Conversation.save or RunHandle.save wrote"
    )


def read_saved(path: str | Path) -> Any:
    """The JSON of a file :func:`glm_live.replay` may play.

    Raises:
        FileNotFoundError: No such file.
        ReplayFormatError: It is not JSON (or not text).
    """
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError:
        msg = (
            f"no such file: {str(source)!r} (glm_live.replay plays a file Conversation.save "
            "or RunHandle.save wrote)"
        )
        raise FileNotFoundError(msg) from None
    except UnicodeDecodeError:
        msg = f"{str(source)!r} is not a text file: not a saved conversation or run log"
        raise ReplayFormatError(msg) from None
    return _parse(text, f"a file to replay ({source.name})")
