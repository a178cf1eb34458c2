"""JupyterLab in headless Chromium: a person chats in a ChatView. They type and press Enter,
watch the answer stream, stop it (the partial answer stays, cancelled), regenerate it, ask a
follow-up (its answer quotes the first question: the history was sent), and Shift+Enter makes
a new line instead of sending. The view is checked in the light and the dark theme, and a
screenshot of each is saved (``GLM_LIVE_SCREENSHOTS=folder`` keeps them as ``chat-light.png``
and ``chat-dark.png``).

JupyterLab starts as in :mod:`tests.test_browser` (its ``lab`` fixture and Chromium).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from glm_live.testing.lab import launch_chromium, write_notebook
from tests.test_browser import _screenshot, keep_screenshots, lab  # noqa: F401  # lab: a fixture

pytestmark = pytest.mark.browser

CELLS = [
    "import glm_live\nsession = glm_live.connect()\n"
    "chat = session.chat_view(title='Account desk',\n"
    "                         sim={'ttft_ms': 100, 'itl_ms': 20, 'tokens': 400})\n"
    "chat  # shown once: the call displayed it",
    "print('history:', len(chat.conversation.to_openai_messages()))",
    "agents = session.chat_view(agent='account-review', approval=True, title='Agents',\n"
    "                           sim={'ttft_ms': 20, 'itl_ms': 4})",
]


def _check_looks(page: Any) -> None:
    """What a person sees after the conversation: both answers' end states, the footer."""
    from playwright.sync_api import expect

    chat = page.locator(".glm-chat").first
    expect(chat.locator(".glm-sim")).to_be_visible()
    expect(chat.locator(".glm-chat-totals")).to_contain_text(" in · ")
    done = chat.locator('.glm-chat-msg[data-role="assistant"][data-status="done"]')
    expect(done.first.locator(".glm-status")).to_have_text("done")
    assert done.first.locator(".glm-chat-body").inner_text().strip()
    expect(done.first.locator(".glm-code .glm-copy").first).to_be_attached()  # Copy on code
    # the input's focus ring and the user's messages on the right
    user = chat.locator('.glm-chat-msg[data-role="user"]').first
    box, log = user.bounding_box(), chat.locator(".glm-chat-log").bounding_box()
    assert box["x"] + box["width"] > log["x"] + log["width"] - 12


def test_a_person_chats_in_chromium(lab: str, tmp_path: Path) -> None:  # noqa: F811
    from playwright.sync_api import expect, sync_playwright

    write_notebook(tmp_path / "notebooks" / "chat.ipynb", CELLS)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = launch_chromium(p)
        page = browser.new_page(viewport={"width": 1100, "height": 1400})
        page.set_default_timeout(60_000)
        page.goto(f"{lab}/lab/tree/chat.ipynb")
        page.wait_for_selector(".jp-Notebook .jp-Cell")
        expect(page.locator("#jp-main-statusbar")).to_contain_text("Idle", timeout=90_000)
        page.wait_for_function("() => window.jupyterapp !== undefined")
        page.evaluate("() => window.jupyterapp.shell.collapseLeft()")
        page.add_style_tag(content=".Toastify { display: none !important; }")
        page.locator(".lm-MenuBar-item", has_text="Run").first.click()
        page.locator(".lm-Menu-item", has_text="Run All Cells").first.click()

        expect(page.locator(".glm-chat")).to_have_count(2)  # not twice: the cell's result
        chat = page.locator(".glm-chat").first
        expect(chat.locator(".glm-title")).to_have_text("Account desk")
        expect(chat.locator(".glm-sim")).to_be_visible()
        expect(chat.locator(".glm-chat-endpoint")).to_contain_text("http://127.0.0.1:")
        expect(chat.locator(".glm-chat-input")).to_have_attribute("aria-label", "Message")
        log = chat.locator(".glm-chat-log")
        expect(log).to_have_attribute("role", "log")
        expect(log).to_have_attribute("aria-live", "polite")

        # Type, Enter: the answer streams, text growing.
        field = chat.locator(".glm-chat-input")
        field.click()
        field.type("Review the Globex account")
        field.press("Enter")
        expect(field).to_have_value("")
        expect(field).to_be_focused()
        user = chat.locator('.glm-chat-msg[data-role="user"]')
        expect(user.first).to_contain_text("Review the Globex account")
        live = chat.locator('.glm-chat-msg[data-role="assistant"][data-status="streaming"]')
        expect(live).to_have_count(1)
        expect(live.locator(".glm-chat-body")).not_to_be_empty()
        early = len(live.locator(".glm-chat-body").inner_text())
        page.wait_for_timeout(600)
        assert len(live.locator(".glm-chat-body").inner_text()) > early  # growing
        expect(log).to_have_attribute("aria-busy", "true")  # no announcement per token
        expect(chat.locator(".glm-chat-send")).to_be_hidden()

        # Stop: the partial answer stays, cancelled; the focus goes back to the input.
        chat.locator(".glm-chat-stop").click()
        cancelled = chat.locator('.glm-chat-msg[data-role="assistant"][data-status="cancelled"]')
        expect(cancelled).to_have_count(1)
        expect(cancelled.locator(".glm-status")).to_have_text("cancelled")
        assert cancelled.locator(".glm-chat-body").inner_text().strip()
        expect(field).to_be_focused()
        expect(chat.locator(".glm-chat-send")).to_be_visible()
        expect(log).to_have_attribute("aria-busy", "false")

        # Regenerate: a new answer streams to done, in the cancelled one's place.
        chat.locator(".glm-chat-regenerate").click()
        answers = chat.locator('.glm-chat-msg[data-role="assistant"]')
        expect(answers).to_have_count(1)
        expect(answers.first).to_have_attribute("data-status", "done", timeout=60_000)
        expect(cancelled).to_have_count(0)

        # Shift+Enter makes a new line and sends nothing.
        field.click()
        field.type("What did I ask first?")
        field.press("Shift+Enter")
        field.type("Answer briefly.")
        expect(field).to_have_value("What did I ask first?\nAnswer briefly.")
        expect(user).to_have_count(1)
        field.press("Enter")
        expect(user).to_have_count(2)
        expect(user.nth(1)).to_contain_text("Answer briefly.")
        expect(answers).to_have_count(2)
        expect(answers.nth(1)).to_have_attribute("data-status", "done", timeout=60_000)
        # The simulator's answer shows the history it was sent: the first question, quoted.
        expect(answers.nth(1)).to_contain_text(
            'This is turn 2 of our conversation, and your first question was "Review the Globex'
        )
        expect(chat.locator(".glm-chat-regenerate")).to_have_count(1)  # on the last answer
        expect(chat.locator(".glm-chat-edit")).to_have_count(2)  # on each user message

        # The kernel's conversation sent the history with the follow-up.
        page.locator(".jp-Cell").nth(1).locator(".jp-InputArea-editor").click()
        page.keyboard.press("Shift+Enter")
        output = page.locator(".jp-Cell").nth(1).locator(".jp-OutputArea-output")
        expect(output).to_contain_text("history:", timeout=30_000)
        count = int(output.inner_text().split("history:")[1].split()[0])
        assert count >= 4, output.inner_text()  # user, answer, user, answer

        footer = chat.locator(".glm-chat-totals")
        expect(footer).to_contain_text("2 answers")
        _check_looks(page)

        # An agent's run asks in its chat: the question waits under the answer, with Approve.
        agents = page.locator(".glm-chat").nth(1)
        agents.locator(".glm-chat-input").click()
        agents.locator(".glm-chat-input").type("Review the Globex account")
        agents.locator(".glm-chat-input").press("Enter")
        ask = agents.locator(".glm-ask")
        expect(ask.locator(".glm-ask-message")).to_contain_text("Globex", timeout=60_000)
        expect(agents).to_have_attribute("data-status", "waiting")
        waiting = agents.locator('.glm-chat-msg[data-role="assistant"][data-status="waiting"]')
        expect(waiting.locator(".glm-status")).to_have_text("waiting for you")
        expect(agents.locator(".glm-chat-totals")).to_have_text(
            "1 answer · no token usage reported"  # a run reports none
        )
        expect(ask.locator(".glm-ask-yes")).to_have_text("Approve")
        expect(ask.locator(".glm-ask-no")).to_have_text("Reject")
        page.locator(".jp-Cell").first.click()  # the focus off the chat for the picture
        # The picture shows the follow-up and its answer's start: the history scrolls.
        log.evaluate(
            "log => { const asked = log.querySelectorAll('[data-role=user]');"
            " log.scrollTop = asked[asked.length - 1].offsetTop - 8; }"
        )
        _screenshot(page, shots / "chat-light.png")
        page.evaluate(
            "() => window.jupyterapp.commands.execute("
            "'apputils:change-theme', {theme: 'JupyterLab Dark'})"
        )
        page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'")
        _check_looks(page)
        _screenshot(page, shots / "chat-dark.png")

        # Approve: the run goes on into the same answer, which ends with the report.
        ask.locator(".glm-ask-text").fill("ship it")
        ask.locator(".glm-ask-yes").click()
        report = agents.locator('.glm-chat-msg[data-role="assistant"]')
        expect(report).to_have_count(1)
        expect(report).to_have_attribute("data-status", "done", timeout=60_000)
        expect(agents).to_have_attribute("data-status", "idle")
        expect(report.locator(".glm-chat-body h1")).to_contain_text("Account review: Globex")
        expect(agents.locator(".glm-ask")).to_have_count(0)

        # Edit the follow-up in place: Save & send drops its answer and answers the new text.
        user.nth(1).locator(".glm-chat-edit").click()
        editor = chat.locator(".glm-chat-edit-input")
        expect(editor).to_be_focused()
        expect(editor).to_have_value("What did I ask first?\nAnswer briefly.")
        editor.fill("Which account did I ask about?")
        chat.locator(".glm-chat-save").click()
        expect(user.nth(1)).to_contain_text("Which account did I ask about?")
        expect(answers).to_have_count(2)
        expect(answers.nth(1)).to_have_attribute("data-status", "done", timeout=60_000)
        expect(user).to_have_count(2)
        browser.close()
    keep_screenshots(shots)
