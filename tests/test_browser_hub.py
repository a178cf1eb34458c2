"""A browser authenticates to the hub the documented ways: Chromium (through Playwright) opens
``new WebSocket(...)`` from a page of the runtime's origin, with the bearer subprotocol or a
one-use ticket, as a web app would. Browsers cannot set an ``Authorization`` header on a
WebSocket; these are the ways that work for them.

Needs Debian's ``chromium`` (``make test`` selects this test whenever it is on the PATH).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from glm_live.server import ServerHandle, serve
from glm_live.testing.lab import launch_chromium

pytestmark = pytest.mark.browser

# Opens a WebSocket, says hello, and resolves with what happened: the subprotocol chosen and
# the first two frames (welcome, the inbox's joined), or the close code and reason.
OPEN = """
async ({url, protocols}) => new Promise((resolve) => {
  const ws = protocols ? new WebSocket(url, protocols) : new WebSocket(url);
  const frames = [];
  ws.onopen = () => ws.send(JSON.stringify({type: "hello", id: "browser-tab"}));
  ws.onmessage = (event) => {
    frames.push(JSON.parse(event.data));
    if (frames.length === 2) { resolve({protocol: ws.protocol, frames}); ws.close(1000); }
  };
  ws.onclose = (event) => resolve({closed: event.code, reason: event.reason, frames});
})
"""

TICKET = """
async ({token}) => {
  const response = await fetch("/auth/ws-ticket", {
    method: "POST", headers: {"Authorization": "Bearer " + token}});
  return await response.json();
}
"""


@pytest.fixture(scope="module")
def runtime() -> Iterator[ServerHandle]:
    with serve() as handle:
        yield handle


@pytest.fixture(scope="module")
def page(runtime: ServerHandle) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page()
        page.set_default_timeout(20_000)
        page.goto(runtime.url + "/health")  # a page of the runtime's (loopback) origin
        yield page
        browser.close()


def ws_url(runtime: ServerHandle) -> str:
    return runtime.url.replace("http://", "ws://") + "/ws"


def test_a_browser_authenticates_with_the_bearer_subprotocol(
    runtime: ServerHandle, page: Any
) -> None:
    bob = runtime.issue_token("bob", read=["chat:*"], write=["chat:*"])
    result = page.evaluate(
        OPEN, {"url": ws_url(runtime), "protocols": ["glm-live.v1", f"glm-live.bearer.{bob}"]}
    )
    assert result.get("closed") is None, result
    assert result["protocol"] == "glm-live.v1"  # the token is not echoed back
    welcome, inbox = result["frames"]
    assert (welcome["type"], welcome["name"], welcome["id"]) == ("welcome", "bob", "browser-tab")
    assert (inbox["type"], inbox["room"]) == ("joined", "@bob")


def test_a_browser_without_credentials_is_told_how_to_authenticate(
    runtime: ServerHandle, page: Any
) -> None:
    result = page.evaluate(OPEN, {"url": ws_url(runtime), "protocols": None})
    assert result["closed"] == 4401
    assert "glm-live.bearer.<token>" in result["reason"]
    assert result["frames"] == []


def test_a_browser_ticket_opens_one_connection(runtime: ServerHandle, page: Any) -> None:
    carol = runtime.issue_token("carol", read=["chat:*"])
    answer = page.evaluate(TICKET, {"token": carol})
    assert set(answer) == {"ticket", "expires_at"}
    url = f"{ws_url(runtime)}?ticket={answer['ticket']}"
    first = page.evaluate(OPEN, {"url": url, "protocols": None})
    assert first["frames"][0]["name"] == "carol", first
    again = page.evaluate(OPEN, {"url": url, "protocols": None})
    assert again["closed"] == 4401
    assert "revoked" in again["reason"]
