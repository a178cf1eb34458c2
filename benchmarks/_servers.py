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


def start(
    command: list[str], port: int, timeout: float = 30.0, stderr: IO[bytes] | None = None
) -> subprocess.Popen[bytes]:
    """Run ``command`` (from the repository root) and wait until ``port`` accepts; its
    standard error goes to ``stderr`` (default: this process's)."""
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=stderr)
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
