"""Count what widgets send: a comm that records every message, for tests and benchmarks.

Outside a kernel, ipywidgets opens comms through the ``comm`` package, whose default comm
drops everything. :func:`record_comms` swaps in one that records each message's type, data and
size in bytes (the JSON a kernel would put on the wire), so message counts and bytes can be
measured without a kernel or a browser.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import comm
from comm.base_comm import BaseComm

__all__ = ["CommLog", "record_comms"]


@dataclass
class CommLog:
    """Messages sent through recorded comms: ``(comm_id, msg_type, data, nbytes)``."""

    messages: list[tuple[str, str, Any, int]] = field(default_factory=list)

    def updates(self, comm_id: str | None = None) -> list[Any]:
        """The ``update`` payloads (state changes), optionally of one comm."""
        return [
            data["state"]
            for cid, kind, data, _ in self.messages
            if kind == "comm_msg"
            and data.get("method") == "update"
            and (comm_id is None or cid == comm_id)
        ]

    def count(self, comm_id: str | None = None) -> int:
        """``comm_msg`` messages sent (opening a comm is not counted)."""
        return sum(
            1
            for cid, kind, _, _ in self.messages
            if kind == "comm_msg" and (comm_id is None or cid == comm_id)
        )

    def nbytes(self, comm_id: str | None = None) -> int:
        """Bytes of the ``comm_msg`` messages sent."""
        return sum(
            n
            for cid, kind, _, n in self.messages
            if kind == "comm_msg" and (comm_id is None or cid == comm_id)
        )


class _RecordingComm(BaseComm):
    log: CommLog  # set on a subclass per recording, since opening already sends

    def publish_msg(
        self,
        msg_type: str,
        data: Any = None,
        metadata: Any = None,
        buffers: Any = None,
        **keys: Any,
    ) -> None:
        size = len(json.dumps(data, default=str)) + sum(len(b) for b in buffers or ())
        self.log.messages.append((self.comm_id, msg_type, data, size))


@contextlib.contextmanager
def record_comms() -> Iterator[CommLog]:
    """Within the block, widgets opened record what they send into the yielded log."""
    log = CommLog()
    original = comm.create_comm

    recording = type("RecordingComm", (_RecordingComm,), {"log": log})

    def create(*args: Any, **kwargs: Any) -> BaseComm:
        return recording(*args, **kwargs)  # type: ignore[no-any-return]

    comm.create_comm = create
    try:
        yield log
    finally:
        comm.create_comm = original
