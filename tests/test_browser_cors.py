"""A web page on another origin uses the runtime as a browser would: Chromium (through
Playwright) loads a page at ``https://app.example`` (served by ``page.route``; the runtime
lists it in ``cors_origins``) whose ``fetch`` streams a chat completion from the runtime on
loopback, and a page at ``https://evil.example`` (not listed) whose fetch is refused and whose
"simple" POST, which browsers send without asking, serves nothing.

Why https and a permission: recent Chromium's Local Network Access (156 here) blocks a
page on a public site from reaching a loopback address unless the page is a secure context and
the user granted it ``local-network-access``; an ``http://`` page cannot at all. The pages here
are https and hold that permission, as a real web app using a local runtime would; the evil
page holds it too (a user who clicked "allow", or a browser without the check), so that what
refuses it is the runtime's own rules, not Chromium's.

Only the pages' own origins are routed: the fetches to ``127.0.0.1`` reach the real runtime.
Needs Debian's ``chromium`` (``make test`` selects this test whenever it is on the PATH).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from glm_live.server import ServerHandle, serve
from glm_live.testing.lab import launch_chromium
from tests.agui_checker import run_input

pytestmark = pytest.mark.browser

APP = "https://app.example"
EVIL = "https://evil.example"
PAGE = "<!doctype html><title>a web app</title><p>a page on another origin</p>"

# Streams a chat completion with fetch and a body reader, as a web app would.
STREAM = """
async ({url, token, body}) => {
  const response = await fetch(url, {
    method: "POST",
    headers: {"authorization": "Bearer " + token, "content-type": "application/json"},
    body: JSON.stringify(body),
  });
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let text = "", reads = 0;
  for (;;) {
    const {done, value} = await reader.read();
    if (done) break;
    reads += 1;
    text += decoder.decode(value, {stream: true});
  }
  return {status: response.status, text, reads,
          type: response.headers.get("content-type")};
}
"""

# The same from a page that is not allowed: the browser refuses to hand over the response.
REFUSED = """
async ({url, token, body}) => {
  try {
    await fetch(url, {
      method: "POST",
      headers: {"authorization": "Bearer " + token, "content-type": "application/json"},
      body: JSON.stringify(body),
    });
    return "served";
  } catch (error) {
    return error.name;
  }
}
"""

# A "simple" request: text/plain, no custom header, so no preflight; the page cannot read the
# answer (no-cors), but the request reaches the server.
SIMPLE = """
async ({url, body}) => {
  await fetch(url, {method: "POST", mode: "no-cors", headers: {"content-type": "text/plain"},
                    body: JSON.stringify(body)});
  return "sent";
}
"""


@pytest.fixture(scope="module")
def runtime() -> Iterator[ServerHandle]:
    with serve(cors_origins=[APP]) as handle:
        yield handle


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        yield browser
        browser.close()


def page_at(browser: Any, origin: str) -> Any:
    """A page whose document comes from ``origin`` (answered by Playwright, not the network)."""
    context = browser.new_context(permissions=["local-network-access"])
    page = context.new_page()
    page.set_default_timeout(20_000)
    seen: list[str] = []

    def fulfil(route: Any) -> None:
        seen.append(route.request.url)
        route.fulfill(status=200, content_type="text/html", body=PAGE)

    page.route(f"{origin}/**", fulfil)
    page.goto(origin + "/")
    assert page.evaluate("location.origin") == origin
    page.routed = seen
    return page


def served(handle: ServerHandle) -> float:
    requests = handle.runtime.metrics.requests
    return sum(s.value for m in requests.collect() for s in m.samples if s.name.endswith("_total"))


def refused(handle: ServerHandle) -> float:
    """Requests refused for their origin, from the runtime's error counter."""
    errors = handle.runtime.metrics.errors
    return sum(
        s.value
        for m in errors.collect()
        for s in m.samples
        if s.name.endswith("_total") and s.labels.get("type") == "origin_refused"
    )


def chat_body() -> dict[str, Any]:
    return {
        "model": "glm-4.6",
        "messages": [{"role": "user", "content": "Review the Globex account"}],
        "stream": True,
        "sim": {"ttft_ms": 20, "itl_ms": 5, "tokens": 40},
    }


def test_an_allowed_origin_streams_a_completion_with_fetch(
    runtime: ServerHandle, browser: Any
) -> None:
    page = page_at(browser, APP)
    before = served(runtime)
    result = page.evaluate(
        STREAM,
        {
            "url": runtime.base_url + "/chat/completions",
            "token": runtime.token,
            "body": chat_body(),
        },
    )
    assert result["status"] == 200
    assert result["type"].startswith("text/event-stream")  # read across origins: CORS passed
    assert result["reads"] > 1  # it arrived as a stream, not in one piece
    assert result["text"].startswith("data: {")
    assert result["text"].rstrip().endswith("data: [DONE]")
    assert result["text"].count('"chat.completion.chunk"') >= 40
    assert served(runtime) == before + 1  # it reached the runtime itself, once
    assert all(url.startswith(APP) for url in page.routed)  # only the page was routed
    page.context.close()


def test_a_foreign_origin_is_refused_and_its_simple_post_serves_nothing(
    runtime: ServerHandle, browser: Any
) -> None:
    page = page_at(browser, EVIL)
    before, refused_before = served(runtime), refused(runtime)
    args = {"url": runtime.base_url + "/chat/completions", "token": runtime.token}
    assert page.evaluate(REFUSED, {**args, "body": chat_body()}) == "TypeError"
    assert page.evaluate(SIMPLE, {"url": args["url"], "body": chat_body()}) == "sent"
    run = run_input("evil-browser-run", {"ttft_ms": 1, "itl_ms": 1})
    agents = runtime.url + "/agents/account-review"
    assert page.evaluate(SIMPLE, {"url": agents, "body": run}) == "sent"
    assert served(runtime) == before  # no completion started
    assert "evil-browser-run" not in runtime.runtime.runs.states  # no run recorded
    # ...though all three reached it: the preflight, and both simple POSTs.
    assert refused(runtime) == refused_before + 3
    page.context.close()
