"""JupyterLab in headless Chromium: a notebook streams into a StreamView and an AgentBoard;
the text and progress shown in the page are checked, and a screenshot is saved.

Needs Debian's ``chromium`` (``.ci/run`` installs it); ``make test`` selects this test
whenever Chromium is on the PATH. Set ``GLM_LIVE_SCREENSHOT=path.png`` to keep the picture.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.browser

CELLS = [
    "import glm_live\nsession = glm_live.connect()\nsession.panel()",
    "h = session.chat('Review the Globex account', thinking=True,\n"
    "                 sim={'ttft_ms': 300, 'itl_ms': 15, 'tokens': 160, 'reasoning_tokens': 20})",
    "run = session.run('account-review', account='Globex', sim={'ttft_ms': 50, 'itl_ms': 8})",
]


def _notebook(path: Path) -> None:
    path.write_text(
        json.dumps(
            {
                "cells": [
                    {
                        "cell_type": "code",
                        "execution_count": None,
                        "id": f"c{i}",
                        "metadata": {},
                        "outputs": [],
                        "source": source,
                    }
                    for i, source in enumerate(CELLS)
                ],
                "metadata": {
                    "kernelspec": {
                        "display_name": "Python 3",
                        "language": "python",
                        "name": "python3",
                    },
                    "language_info": {"name": "python"},
                },
                "nbformat": 4,
                "nbformat_minor": 5,
            }
        )
    )


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _notebook(tmp_path / "live.ipynb")
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
    }
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter",
            "lab",
            "--no-browser",
            f"--port={port}",
            "--ServerApp.ip=127.0.0.1",
            "--IdentityProvider.token=",
            "--ServerApp.password=",
            "--ServerApp.disable_check_xsrf=True",
            f"--ServerApp.root_dir={tmp_path}",
            f"--LabApp.workspaces_dir={tmp_path / 'workspaces'}",
            "--allow-root",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(url + "/api/status").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "JupyterLab did not start"
            time.sleep(0.3)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def launch_chromium(playwright: Any) -> Any:
    """Debian's Chromium, headless, through Playwright (no browser download)."""
    chromium = shutil.which("chromium")
    assert chromium, "make test selects the browser tests only when chromium is installed"
    return playwright.chromium.launch(
        executable_path=chromium,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ],
    )


def test_notebook_streams_into_widgets_in_chromium(lab: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1280, "height": 1600})
        page.set_default_timeout(60_000)
        page.goto(f"{lab}/lab/tree/live.ipynb")
        page.wait_for_selector(".jp-Notebook .jp-Cell")
        expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle", timeout=90_000)
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
        expect(board.locator(".glm-status")).to_have_text("finished", timeout=60_000)
        cards = board.locator(".glm-card")
        expect(cards).to_have_count(3)
        for i in range(3):
            expect(cards.nth(i).locator(".glm-card-meta")).to_contain_text("done · 100%")
        expect(page.locator(".glm-conn-text").first).to_contain_text("connected")
        expect(page.locator(".glm-dashboard").first).to_contain_text("TTFT")

        # JupyterLab's notification toasts (the news prompt) would cover the picture.
        page.add_style_tag(content=".Toastify { display: none !important; }")
        shot = tmp_path / "screenshot.png"
        page.screenshot(path=str(shot), full_page=True)
        browser.close()
    assert shot.stat().st_size > 10_000
    keep = os.environ.get("GLM_LIVE_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
