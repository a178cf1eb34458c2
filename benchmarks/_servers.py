"""Shared by the benchmarks: a free loopback port, a server started in its own process, and
the token the glm_live runtimes they start require."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]


def runtime_token() -> str:
    """The token of the runtimes the benchmarks start: ``GLM_LIVE_TOKEN``, set here (to a new
    token) when unset, so that ``glm-live serve`` and every child process inherit it."""
    token = os.environ.get("GLM_LIVE_TOKEN")
    if not token:
        token = os.environ["GLM_LIVE_TOKEN"] = secrets.token_urlsafe(32)
    return token


def auth_line() -> bytes:
    """The ``Authorization`` header line for a raw HTTP request, CRLF included."""
    return b"Authorization: Bearer %s\r\n" % runtime_token().encode()


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def split_cpus() -> tuple[set[int], set[int]] | None:
    """The CPUs this process may use, split in two: the server's (the last one) and the
    harness's (the others); ``None`` with fewer than two, or where affinity cannot be set.

    On one machine, the scheduler wakes a server that a request has just reached on the
    sender's core when that core has been busy (a socket's wake-up is a "sync" one), and the
    sender waits while the server parses: measured on a 2-core machine, a 10 KB request's
    ``send()`` took 0.04 ms after the sender slept and 0.3-0.8 ms after it had been busy
    for 2 ms, and 0.04 ms either way with the two processes on cores of their own. A
    benchmark of the harness's own timing pins them apart, as a server on its own machine is.
    """
    getter = getattr(os, "sched_getaffinity", None)
    if getter is None:
        return None
    cpus = sorted(getter(0))
    if len(cpus) < 2:
        return None
    return {cpus[-1]}, set(cpus[:-1])


def start(
    command: list[str],
    port: int,
    timeout: float = 30.0,
    stderr: IO[bytes] | None = None,
    cpus: set[int] | None = None,
) -> subprocess.Popen[bytes]:
    """Run ``command`` (from the repository root), on ``cpus`` if given, and wait until
    ``port`` accepts; its standard error goes to ``stderr`` (default: this process's)."""
    pin = None if cpus is None else (lambda: os.sched_setaffinity(0, cpus))
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr, preexec_fn=pin
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    msg = f"server did not start: {command}"
    raise RuntimeError(msg)
