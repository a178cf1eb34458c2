"""Authentication always, over HTTP, as an outsider meets it: plain httpx, the openai SDK,
raw websockets, and ``glm-live serve`` run as a process."""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import websockets
from websockets.asyncio.client import connect as ws_connect

import glm_live
from glm_live.server import ConfigError, InsecureBindError, ServerHandle, serve
from tests.agui_checker import run_input

FAST = {"ttft_ms": 1, "itl_ms": 1, "tokens": 5}
CHAT = {"model": "glm-4.6", "messages": [{"role": "user", "content": "x"}], "sim": FAST}


def agui_body(run_id: str) -> dict[str, Any]:
    return run_input(run_id, FAST, thread_id="thread-1")


@pytest.fixture(scope="module")
def runtime() -> Iterator[ServerHandle]:
    with serve(sim=FAST) as handle:
        yield handle


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def refused(response: httpx.Response, status: int, code: str) -> str:
    """Assert a GLM-shaped refusal; return its message."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert error["message"]
    return str(error["message"])


# --- no credentials, wrong credentials -------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "/v1/chat/completions", CHAT),
        ("POST", "/api/paas/v4/chat/completions", CHAT),
        ("POST", "/agents/account-review", agui_body("anon-run")),
        ("GET", "/agents", None),
        ("GET", "/agents/account-review", None),
        ("GET", "/runs/anon-run", None),
        ("GET", "/metrics", None),
        ("POST", "/auth/tokens", {"name": "bob"}),
        ("POST", "/auth/revoke", {"token": "x"}),
        ("POST", "/auth/ws-ticket", {}),
    ],
)
def test_no_credentials_is_a_401_saying_how_to_authenticate(
    runtime: ServerHandle, method: str, path: str, body: Any
) -> None:
    r = httpx.request(method, runtime.url + path, json=body)
    message = refused(r, 401, "1001")
    assert "Authorization: Bearer" in message
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_a_token_of_another_runtime_is_a_401_invalid(runtime: ServerHandle) -> None:
    with serve() as other:
        stranger = other.issue_token("bob")
    for token in ("not-a-token", stranger, "glt_abc.def"):
        r = httpx.post(runtime.url + "/v1/chat/completions", json=CHAT, headers=bearer(token))
        message = refused(r, 401, "1002")
        assert token not in message
    r = httpx.post(
        runtime.url + "/v1/chat/completions", json=CHAT, headers={"Authorization": "Basic eA=="}
    )
    assert "Bearer" in refused(r, 401, "1002")


def test_health_is_open_but_minimal(runtime: ServerHandle) -> None:
    anonymous = httpx.get(runtime.url + "/health").json()
    assert anonymous == {
        "status": "ok",
        "backend": "sim",
        "simulated": True,
        "model": "glm-4.6-sim",
        "auth": True,
    }
    # A wrong token is not refused here: it just sees what anyone sees.
    assert httpx.get(runtime.url + "/health", headers=bearer("wrong")).json() == anonymous
    detailed = httpx.get(runtime.url + "/health", headers=runtime.headers).json()
    assert "hub" in detailed
    assert "requests_in_flight" in detailed


# --- the admin token, scoped tokens ----------------------------------------------------------


def test_the_admin_token_chats_through_the_openai_sdk(runtime: ServerHandle) -> None:
    assert runtime.token is not None
    client = openai.OpenAI(base_url=runtime.base_url, api_key=runtime.token)
    answer = client.chat.completions.create(
        model="glm-4.6", messages=[{"role": "user", "content": "x"}], extra_body={"sim": FAST}
    )
    assert answer.choices[0].message.content
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=runtime.base_url, api_key="wrong", max_retries=0).models.list()


def test_admin_issues_a_scoped_token_that_chats_but_cannot_administer(
    runtime: ServerHandle,
) -> None:
    request = {"name": "bob", "read": ["chat:*", "@bob"], "write": ["chat:*", "@*"], "ttl_s": 60}
    r = httpx.post(runtime.url + "/auth/tokens", json=request, headers=runtime.headers)
    assert r.status_code == 201, r.text
    issued = r.json()
    assert issued["name"] == "bob"
    assert issued["read"] == ["chat:*", "@bob"]
    assert issued["write"] == ["chat:*", "@*"]
    assert issued["expires_at"] > time.time()
    assert re.fullmatch(r"[0-9a-f]{16}", issued["id"])
    bob = issued["token"]

    client = openai.OpenAI(base_url=runtime.base_url, api_key=bob)
    stream = client.chat.completions.create(
        model="glm-4.6",
        messages=[{"role": "user", "content": "x"}],
        stream=True,
        extra_body={"sim": FAST},
    )
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)

    for method, path, body in (
        ("POST", "/auth/tokens", {"name": "mallory"}),
        ("POST", "/auth/revoke", {"token": bob}),
        ("GET", "/metrics", None),
    ):
        r = httpx.request(method, runtime.url + path, json=body, headers=bearer(bob))
        assert "bob" in refused(r, 403, "1220")
    metrics = httpx.get(runtime.url + "/metrics", headers=runtime.headers)
    assert metrics.status_code == 200
    assert "glm_live" in metrics.text


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({}, "name"),
        ({"name": "bob", "read": "chat:*"}, "read"),
        ({"name": "bob", "write": [1]}, "write"),
        ({"name": "bob", "ttl_s": -1}, "ttl_s"),
        ({"name": "bob", "ttl_s": "long"}, "ttl_s"),
        ({"name": "admin"}, "admin"),
        ({"name": "bob bob"}, "name"),
        ({"name": "bob", "rooms": []}, "rooms"),
        (["bob"], "JSON object"),
    ],
)
def test_a_bad_token_request_is_a_400_naming_the_field(
    runtime: ServerHandle, body: Any, names: str
) -> None:
    r = httpx.post(runtime.url + "/auth/tokens", json=body, headers=runtime.headers)
    assert names in refused(r, 400, "1214")


def test_an_expired_token_is_a_401_1003(runtime: ServerHandle) -> None:
    r = httpx.post(
        runtime.url + "/auth/tokens", json={"name": "brief", "ttl_s": 1}, headers=runtime.headers
    )
    issued = r.json()
    time.sleep(max(0.0, issued["expires_at"] - time.time()) + 0.2)  # past its expiry
    r = httpx.post(runtime.url + "/v1/chat/completions", json=CHAT, headers=bearer(issued["token"]))
    assert "expired" in refused(r, 401, "1003")


def test_a_revoked_token_is_refused(runtime: ServerHandle) -> None:
    carol = runtime.issue_token("carol")
    assert httpx.post(runtime.url + "/auth/ws-ticket", headers=bearer(carol)).status_code == 200
    r = httpx.post(runtime.url + "/auth/revoke", json={"token": carol}, headers=runtime.headers)
    assert r.status_code == 200
    assert re.fullmatch(r"[0-9a-f]{16}", r.json()["revoked"])
    r = httpx.post(runtime.url + "/v1/chat/completions", json=CHAT, headers=bearer(carol))
    assert "revoked" in refused(r, 401, "1003")


def test_revoking_by_id_and_by_the_python_helpers(runtime: ServerHandle) -> None:
    issued = httpx.post(
        runtime.url + "/auth/tokens", json={"name": "dave"}, headers=runtime.headers
    ).json()
    r = httpx.post(
        runtime.url + "/auth/revoke",
        json={"id": issued["id"], "expires_at": issued["expires_at"]},
        headers=runtime.headers,
    )
    assert r.json() == {"revoked": issued["id"]}
    r = httpx.post(runtime.url + "/v1/chat/completions", json=CHAT, headers=bearer(issued["token"]))
    refused(r, 401, "1003")

    erin = glm_live.issue_token(runtime.url, token=runtime.token, name="erin", ttl_s=60)
    assert httpx.post(runtime.url + "/auth/ws-ticket", headers=bearer(erin)).status_code == 200
    glm_live.revoke_token(runtime.base_url, erin, token=runtime.token)
    refused(httpx.post(runtime.url + "/auth/ws-ticket", headers=bearer(erin)), 401, "1003")
    gina = runtime.issue_token("gina")
    runtime.revoke_token(gina)  # in-process, no HTTP
    refused(httpx.post(runtime.url + "/auth/ws-ticket", headers=bearer(gina)), 401, "1003")
    with pytest.raises(glm_live.AuthenticationError) as caught:
        glm_live.issue_token(runtime.url, token="wrong", name="frank")
    assert "wrong" not in str(caught.value)
    with pytest.raises(glm_live.InvalidRequestError, match="admin token cannot be revoked"):
        glm_live.revoke_token(runtime.url, runtime.token or "", token=runtime.token)
    # A lone pattern where a list belongs is refused by name, not taken as characters.
    with pytest.raises(glm_live.InvalidRequestError, match="read must be a list"):
        glm_live.issue_token(runtime.url, token=runtime.token, name="h", read="chat:*")
    with pytest.raises(glm_live.AuthError, match="write must be a list"):
        runtime.issue_token("h", write="chat:*")


async def test_a_ws_ticket_opens_one_hub_connection(runtime: ServerHandle) -> None:
    bob = runtime.issue_token("bob", read=["chat:*"])
    r = httpx.post(runtime.url + "/auth/ws-ticket", headers=bearer(bob))
    assert r.status_code == 200
    ticket = r.json()["ticket"]
    assert r.json()["expires_at"] <= time.time() + 31
    ws_url = runtime.url.replace("http://", "ws://") + "/ws?ticket=" + ticket
    async with ws_connect(ws_url) as ws:
        await ws.send(json.dumps({"type": "hello"}))
        welcome = json.loads(await ws.recv())
        assert welcome["type"] == "welcome"
    async with ws_connect(ws_url) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 4401


# --- runs belong to who started them ---------------------------------------------------------


def test_a_run_belongs_to_the_identity_that_started_it(runtime: ServerHandle) -> None:
    bob = runtime.issue_token("bob", read=["chat:*"])
    alice = runtime.issue_token("alice")
    watcher = runtime.issue_token("watcher", read=["run:*"])
    run_id = "owned-run-1"
    with httpx.stream(
        "POST",
        runtime.url + "/agents/account-review",
        json=agui_body(run_id),
        headers=bearer(bob),
        timeout=60,
    ) as r:
        assert r.status_code == 200
        r.read()
    for token in (bob, watcher, runtime.token or ""):
        seen = httpx.get(runtime.url + f"/runs/{run_id}", headers=bearer(token))
        assert seen.status_code == 200
        assert seen.json()["run"] == run_id
    stranger = httpx.get(runtime.url + f"/runs/{run_id}", headers=bearer(alice))
    missing = httpx.get(runtime.url + "/runs/no-such-run", headers=bearer(alice))
    assert refused(stranger, 404, "1214") == refused(missing, 404, "1214")

    taken = httpx.post(
        runtime.url + "/agents/account-review", json=agui_body(run_id), headers=bearer(alice)
    )
    assert "runId" in refused(taken, 409, "1214")


# --- switching authentication off ------------------------------------------------------------


def test_no_auth_is_refused_beyond_loopback_and_with_a_token() -> None:
    with pytest.raises(InsecureBindError, match="authentication off"):
        serve(host="0.0.0.0", auth=False)
    with pytest.raises(ConfigError, match="token"):
        serve(auth=False, token="secret-token")


def test_no_auth_on_loopback_works_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="glm_live.server"), serve(auth=False) as handle:
        assert handle.token is None
        assert handle.headers == {}
        r = httpx.post(handle.url + "/v1/chat/completions", json=CHAT)
        assert r.status_code == 200
        assert httpx.get(handle.url + "/health").json()["auth"] is False
    assert "authentication is off" in caplog.text


# --- tokens never shown ----------------------------------------------------------------------


def test_no_token_in_reprs_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="glm_live"):
        session = glm_live.connect(sim=FAST)
        try:
            handle = session.embedded
            assert handle is not None
            assert handle.token
            token = handle.token
            scoped = handle.issue_token("bob", ttl_s=60)
            completion = session.chat("x", display=False).wait(30)
            assert completion.text
            httpx.post(handle.url + "/v1/chat/completions", json=CHAT, headers=bearer("wrong"))
            for shown in (
                handle,
                session,
                session.client,
                handle.runtime.config,
                handle.runtime.auth,
                handle.runtime.hub,
            ):
                assert token not in repr(shown)
                assert scoped not in repr(shown)
        finally:
            session.close()
    assert token not in caplog.text
    assert scoped not in caplog.text


# --- glm-live serve --------------------------------------------------------------------------


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_cli_prints_the_token_and_keeps_a_runtime_file_while_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop: signal.Signals
) -> None:
    runtime_dir = tmp_path / "runtime"
    env = {k: v for k, v in os.environ.items() if k != "GLM_LIVE_TOKEN"}
    env["GLM_LIVE_RUNTIME_DIR"] = str(runtime_dir)
    command = [sys.executable, "-m", "glm_live", "serve", "--port", "0", "--ttft-ms", "1"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as process:
        try:
            assert process.stdout is not None
            url = token = None
            lines = []
            while token is None:
                line = process.stdout.readline()
                assert line, f"exited early: {lines!r}"
                lines.append(line)
                if match := re.search(r"listening on (http://\S+)", line):
                    url = match.group(1)
                if match := re.match(r"token: (\S+)", line):
                    token = match.group(1)
            assert url is not None
            files = list(runtime_dir.glob("runtime-*.json"))
            assert [f.name for f in files] == [f"runtime-{url.rsplit(':', 1)[1]}.json"]
            assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
            assert stat.S_IMODE(runtime_dir.stat().st_mode) == 0o700
            data = json.loads(files[0].read_text())
            assert data["token"] == token
            assert data["pid"] == process.pid
            refused(httpx.post(url + "/v1/chat/completions", json=CHAT), 401, "1001")

            # A client on the same machine finds the token with no step of its own.
            monkeypatch.setenv("GLM_LIVE_RUNTIME_DIR", str(runtime_dir))
            monkeypatch.delenv("GLM_LIVE_TOKEN", raising=False)
            assert glm_live.find_token(url.replace("127.0.0.1", "localhost") + "/v1") == token
            with glm_live.connect(url, hub=False) as session:
                assert session.chat("x", display=False, sim=FAST).wait(30).text
        finally:
            process.send_signal(stop)
            process.wait(timeout=15)
    assert process.returncode == 0
    assert not list(runtime_dir.glob("runtime-*.json"))  # removed however it was stopped


def test_cli_no_auth_is_refused_beyond_loopback(tmp_path: Path) -> None:
    env = {**os.environ, "GLM_LIVE_RUNTIME_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "glm_live", "serve", "--host", "0.0.0.0", "--no-auth"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "authentication off" in result.stderr
