"""JupyterLab in headless Chromium: a notebook streams into StreamViews and AgentBoards that
end in every end state (done, cancelled, failed, interrupted; a finished, a cancelled and a
failed run), with a panel whose dashboard follows the session's recorder. The text, progress
and end-state looks shown in the page are checked in JupyterLab's light theme and then its dark
theme, and a screenshot of each is saved.

Needs Debian's ``chromium`` (``.ci/run`` installs it); ``make test`` selects this test
whenever Chromium is on the PATH. Set ``GLM_LIVE_SCREENSHOTS=folder`` to keep the pictures
there as ``light.png`` and ``dark.png`` (``docs/screenshots`` holds the ones the README shows).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from glm_live.testing.lab import jupyter_lab, launch_chromium, write_notebook

pytestmark = pytest.mark.browser

CELLS = [
    "import time\nimport glm_live\nfrom glm_live.notebook.widgets import StreamView\n"
    "session = glm_live.connect()",
    "h = session.chat('Review the Globex account', thinking=True,\n"
    "                 sim={'ttft_ms': 300, 'itl_ms': 15, 'tokens': 160, 'reasoning_tokens': 20})",
    "run = session.run('account-review', account='Globex', sim={'ttft_ms': 50, 'itl_ms': 8})",
    "# cancelled after a few chunks, as the Stop button would\n"
    "stopped = session.chat('Review the Initech account', sim={'ttft_ms': 50, 'itl_ms': 20,"
    " 'tokens': 3000})\n"
    "while len(stopped.items) < 60:\n    time.sleep(0.05)\nstopped.cancel()",
    "# the runtime answers 500: failed\n"
    "failed = session.chat('Review the Acme account', sim={'ttft_ms': 5, 'fault': 'server_error'})",
    "# the interrupted look, fed by hand\nview = StreamView(title='Review the Umbrella account')\n"
    "display(view)\n"
    "view.feed('Partial answer.\\n\\n| Metric | Value |\\n|---|---|\\n| ARR | $1\\n##')\n"
    "view.finish('interrupted', 'the connection dropped and was not resumed')\n"
    "live = StreamView(title='Still streaming: its Stop button')\n"
    "display(live)\nlive.feed('Streaming...\\n\\n```python\\nprint(1 + 1)\\n```\\n\\nStill going')",
    "cancelled_run = session.run('account-review', account='Initech',"
    " sim={'ttft_ms': 50, 'itl_ms': 20})\n"
    "while not cancelled_run.agents:\n    time.sleep(0.05)\n"
    "time.sleep(1.2)  # the agents are writing\ncancelled_run.cancel()",
    "failed_run = session.run('account-review', account='Acme',"
    " sim={'ttft_ms': 5, 'fault': 'server_error'})",
    "# a benchmark's states and an offline hub, by hand\n"
    "import ipywidgets\n"
    "from glm_live.notebook.widgets import BenchProgress, ConnectionIndicator\n"
    "benches = []\n"
    "for status, done in [('running', 40), ('done', 100), ('cancelled', 62), ('error', 17),"
    " ('interrupted', 80)]:\n"
    "    bench = BenchProgress(title=f'benchmark, {status}', status=status)\n"
    "    bench.report({'done': done, 'total': 100, 'errors': int(status == 'error'),\n"
    "                  'ttft_p50_ms': 41.26, 'ttft_p99_ms': 408.599938})\n"
    "    benches.append(bench)\n"
    "offline = ConnectionIndicator(state='closed', reconnects=4, url='ws://127.0.0.1:9/hub')\n"
    "ipywidgets.VBox([*benches, offline])",
    "# waiting for a person (an AG-UI interrupt): one left waiting, one approved in the page\n"
    "asking = session.run('account-review', account='Globex', approval=True,"
    " sim={'ttft_ms': 20, 'itl_ms': 4})\n"
    "approving = session.run('account-review', account='Initech', approval=True,"
    " sim={'ttft_ms': 20, 'itl_ms': 4})",
    "# the dashboard counts every request of the session, those made before it too\n"
    "panel = session.panel()\npanel.dashboard.follow(session.recorder)\npanel",
]


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[str]:
    root = tmp_path / "notebooks"  # only the notebook in JupyterLab's file browser
    root.mkdir()
    write_notebook(root / "live.ipynb", CELLS)
    with jupyter_lab(root, tmp_path) as url:
        yield url


def _check_end_states(page: Any) -> None:
    """Each end state's look is in the page: the class, the label, a stopped clock."""
    from playwright.sync_api import expect

    for status, label in [
        ("done", "done"),
        ("cancelled", "cancelled"),
        ("error", "failed"),
        ("interrupted", "interrupted"),
    ]:
        view = page.locator(f'.glm-stream[data-status="{status}"]').first
        expect(view.locator(".glm-status")).to_have_text(label, timeout=60_000)
        expect(view.locator(".glm-stop")).to_be_hidden()  # no Stop once it has ended
    live = page.locator('.glm-stream[data-status="streaming"]')
    expect(live).to_have_count(1)  # the one fed by hand and left open
    expect(live.locator(".glm-stop")).to_be_visible()
    expect(live.locator(".glm-stop")).to_have_css("cursor", "pointer")
    cancelled = page.locator('.glm-stream[data-status="cancelled"]').first
    assert cancelled.locator(".glm-body").inner_text().strip()  # the partial answer stays
    failed = page.locator('.glm-stream[data-status="error"]').first
    expect(failed.locator(".glm-error")).to_be_visible()
    interrupted = page.locator('.glm-stream[data-status="interrupted"]').first
    expect(interrupted.locator(".glm-detail")).to_contain_text("connection dropped")
    # the table the stream left open is closed: its last row has both cells
    expect(interrupted.locator(".glm-body table tbody tr td")).to_have_count(2)
    # and the heading cut before its text is left out, not shown as "##"
    assert "#" not in interrupted.locator(".glm-body").inner_text()

    for status, label in [("done", "finished"), ("cancelled", "cancelled"), ("error", "failed")]:
        board = page.locator(f'.glm-board[data-status="{status}"]').first
        expect(board.locator(".glm-head .glm-status")).to_have_text(label, timeout=60_000)
        expect(board.locator('.glm-card[data-status="running"]')).to_have_count(0)
    finished = page.locator('.glm-board[data-status="done"]').first
    expect(finished.locator(".glm-report")).to_be_visible()
    assert finished.locator(".glm-report-body").inner_text().strip()
    stopped = page.locator('.glm-board[data-status="cancelled"]').first
    expect(stopped.locator('.glm-card[data-status="cancelled"]').first).to_be_visible()
    meta = stopped.locator(".glm-card-meta").first.inner_text()
    assert meta.startswith("cancelled")
    page.wait_for_timeout(1500)
    assert stopped.locator(".glm-card-meta").first.inner_text() == meta  # the clock stopped
    broken = page.locator('.glm-board[data-status="error"]').first
    expect(broken.locator('.glm-card[data-status="error"]').first).to_contain_text("failed")
    for message in page.locator(".glm-card-message").all():
        assert "**" not in message.inner_text()
        assert "##" not in message.inner_text()

    for status, label in [("done", "done"), ("cancelled", "cancelled"), ("error", "failed")]:
        bench = page.locator(f'.glm-bench[data-status="{status}"]').first
        expect(bench.locator(".glm-status")).to_have_text(label)
    interrupted_bench = page.locator('.glm-bench[data-status="interrupted"]').first
    expect(interrupted_bench.locator(".glm-stats")).to_contain_text(
        "80/100 requests · TTFT p50 41.3 ms · p99 409 ms · 0 errors"  # rounded
    )
    offline = page.locator('.glm-conn[data-state="closed"]').first
    expect(offline.locator(".glm-conn-text")).to_have_text("offline · 4 reconnects")

    dashboard = page.locator(".glm-dashboard").first
    expect(dashboard).to_contain_text("TTFT")
    expect(dashboard.locator("svg.glm-chart")).to_have_count(2)
    stats = dashboard.locator(".glm-stats").inner_text()
    requests = int(stats.split(" request")[0])
    assert requests >= 6, stats  # 3 chats and 3 runs, all before the dashboard existed
    assert "error" in stats


def _screenshot(page: Any, path: Path) -> None:
    """The whole notebook: the page grows until the notebook no longer scrolls."""
    # (not scrollHeight: JupyterLab pads the notebook's end by a screen to scroll past it)
    overflow = page.evaluate(
        "() => { const s = document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer');"
        " const cells = document.querySelectorAll('.jp-NotebookPanel .jp-Cell');"
        " if (!s || !cells.length) return 0;"
        " const bottom = cells[cells.length - 1].getBoundingClientRect().bottom"
        "   - s.getBoundingClientRect().top + s.scrollTop;"
        " return Math.ceil(bottom - s.clientHeight); }"
    )
    if overflow > 0:
        size = page.viewport_size
        page.set_viewport_size({"width": size["width"], "height": size["height"] + overflow + 40})
    # From the top: clicking a button on the board scrolled the notebook down.
    page.evaluate(
        "() => { const s = document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer');"
        " if (s) s.scrollTop = 0; }"
    )
    page.wait_for_timeout(500)  # the last animation frame
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000


def _check_copy(page: Any) -> None:
    """A code block of a streaming answer has a Copy button: keyboard-reachable, shown on
    focus, it copies the code and says so for a moment."""
    from playwright.sync_api import expect

    live = page.locator('.glm-stream[data-status="streaming"]')
    button = live.locator(".glm-body .glm-code .glm-copy")
    expect(button).to_have_count(1)
    expect(live.locator(".glm-body .glm-code pre code")).to_have_text("print(1 + 1)\n")
    button.focus()
    expect(button).to_have_css("opacity", "1")
    page.keyboard.press("Enter")
    expect(button).to_have_text("Copied")
    assert page.evaluate("() => navigator.clipboard.readText()") == "print(1 + 1)\n"
    expect(button).to_have_text("Copy", timeout=5_000)  # back after a moment


def test_notebook_streams_into_widgets_in_chromium(lab: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(
            viewport={"width": 1280, "height": 3100},
            permissions=["clipboard-read", "clipboard-write"],  # the code blocks' Copy buttons
        )
        page.set_default_timeout(60_000)
        page.goto(f"{lab}/lab/tree/live.ipynb")
        page.wait_for_selector(".jp-Notebook .jp-Cell")
        expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle", timeout=90_000)
        # The picture shows the notebook, not the file browser.
        page.wait_for_function("() => window.jupyterapp !== undefined")
        page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
        page.locator(".lm-MenuBar-item", has_text="Run").first.click()
        page.locator(".lm-Menu-item", has_text="Run All Cells").first.click()

        stream = page.locator(".glm-stream").first
        expect(stream.locator(".glm-status")).to_have_text("done", timeout=60_000)
        expect(stream.locator(".glm-body h2").first).to_contain_text("Account review: Globex")
        expect(stream.locator(".glm-sim")).to_be_visible()  # labelled as simulated
        expect(stream.locator(".glm-stats")).to_contain_text(
            "180 tokens"
        )  # 160 answer + 20 reasoning
        assert stream.locator(".glm-body table").count() >= 1  # markdown tables rendered

        board = page.locator(".glm-board").first
        expect(board.locator(".glm-status").first).to_have_text("finished", timeout=60_000)
        cards = board.locator(".glm-card")
        expect(cards).to_have_count(3)
        for i in range(3):
            expect(cards.nth(i).locator(".glm-card-meta")).to_contain_text("done · 100%")
        expect(page.locator('.glm-conn[data-state="open"] .glm-conn-text').first).to_contain_text(
            "connected"
        )
        expect(page.locator(".glm-dashboard").first).to_contain_text("TTFT")
        expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle", timeout=90_000)

        # A person answers on the board: the Approve button resumes the run (a new run on the
        # same thread), which finishes with its report; the other board keeps waiting.
        waiting = page.locator('.glm-board[data-status="waiting"]')
        expect(waiting).to_have_count(2, timeout=60_000)
        expect(waiting.first.locator(".glm-ask-message")).to_contain_text("Globex")
        approving = waiting.nth(1)
        expect(approving.locator(".glm-ask-message")).to_contain_text("Initech")
        approving.locator(".glm-ask-yes").click()
        finished = page.locator('.glm-board[data-status="done"]')
        expect(finished).to_have_count(2, timeout=60_000)  # the Globex run, and this one
        expect(finished.nth(1).locator(".glm-report-body")).to_contain_text("Initech")
        expect(page.locator('.glm-board[data-status="waiting"]')).to_have_count(1)
        expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle", timeout=90_000)

        # JupyterLab's notification toasts (the news prompt) would cover the picture.
        page.add_style_tag(content=".Toastify { display: none !important; }")
        _check_end_states(page)
        _screenshot(page, shots / "light.png")
        _check_copy(page)

        page.evaluate(
            "() => window.jupyterapp.commands.execute("
            "'apputils:change-theme', {theme: 'JupyterLab Dark'})"
        )
        page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'")
        _check_end_states(page)
        _screenshot(page, shots / "dark.png")
        browser.close()
    keep_screenshots(shots)


def keep_screenshots(shots: Path) -> None:
    """Copy the pictures to ``$GLM_LIVE_SCREENSHOTS`` when it is set (``docs/screenshots``
    holds the ones the README shows)."""
    keep = os.environ.get("GLM_LIVE_SCREENSHOTS")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        for shot in shots.iterdir():
            shutil.copy(shot, Path(keep) / shot.name)
