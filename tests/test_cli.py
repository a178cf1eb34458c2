"""``glm-live serve`` as a user runs it: a real process, a real port, Ctrl-C."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

CHAT = {"model": "glm-4.6", "messages": [{"role": "user", "content": "x"}]}


def _popen(*args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "GLM_LIVE_TOKEN"}
    # Runtime files go to a directory of their own, not the user's.
    env["GLM_LIVE_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="glm-live-runtime-")
    return subprocess.Popen(
        [sys.executable, "-m", "glm_live", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@contextlib.contextmanager
def running(*args: str) -> Iterator[tuple[subprocess.Popen[str], str, dict[str, str]]]:
    """The command running, the URL it printed, and the header carrying the token it printed;
    killed (if still alive) afterwards."""
    with _popen(*args) as process:
        try:
            url, token = _url_and_token(process)
            yield process, url, {"Authorization": f"Bearer {token}"}
        finally:
            if process.poll() is None:
                process.kill()


def _url_and_token(process: subprocess.Popen[str], timeout: float = 20.0) -> tuple[str, str]:
    assert process.stdout is not None
    deadline = time.monotonic() + timeout
    lines = []
    url = None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        lines.append(line)
        match = re.search(r"listening on (http://\S+)", line)
        if match:
            url = match.group(1)
        match = re.match(r"token: (\S+)", line)
        if match and url is not None:
            return url, match.group(1)
        if process.poll() is not None:
            break
    raise AssertionError(f"no URL and token printed: {lines!r}")


def _fails(*args: str) -> tuple[int, str]:
    with _popen(*args) as process:
        _, stderr = process.communicate(timeout=20)
    return process.returncode, stderr


def test_serve_prints_url_serves_and_stops_on_ctrl_c() -> None:
    args = ("--port", "0", "--seed", "3", "--tokens", "12", "--ttft-ms", "1", "--itl-ms", "1")
    with running(*args) as (process, url, headers):
        assert httpx.get(url + "/health").json()["simulated"] is True
        r = httpx.post(url + "/v1/chat/completions", json=CHAT, headers=headers)
        assert r.json()["usage"]["completion_tokens"] == 12
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=15) == 0


def test_serve_refuses_network_bind_with_authentication_off() -> None:
    code, stderr = _fails("--host", "0.0.0.0", "--port", "0", "--no-auth")
    assert code == 2
    assert "refusing to listen on 0.0.0.0 with authentication off" in stderr


def test_serve_refuses_a_token_with_authentication_off() -> None:
    code, stderr = _fails("--port", "0", "--no-auth", "--token", "abcdefgh")
    assert code == 2
    assert "authentication off" in stderr
    assert "abcdefgh" not in stderr


def test_serve_reads_a_config_file(tmp_path: Path) -> None:
    config = tmp_path / "runtime.toml"
    config.write_text(
        'port = 0\n[sim]\ntokens = 7\nttft_ms = 1\nitl_ms = { dist = "uniform", low = 0, '
        "high = 2 }\n"
    )
    with running("--config", str(config)) as (process, url, headers):
        r = httpx.post(url + "/v1/chat/completions", json=CHAT, headers=headers)
        assert r.json()["usage"]["completion_tokens"] == 7
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)


def test_bad_config_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[sim]\ntokens = 'many'\n")
    code, stderr = _fails("--config", str(config))
    assert code == 2
    assert "[sim].tokens must be a whole number" in stderr
