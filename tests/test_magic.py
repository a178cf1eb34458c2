"""``%%glm`` and ``%glm`` (glm_live.notebook.magics): the option parsing, then the magics in a
real ipykernel (tests/test_kernel.py's helpers): a view streams, the cell's result is the
Completion, turns continue across cells, errors are one paragraph, Interrupt cancels."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from IPython.core.error import UsageError
from jupyter_client.blocking.client import BlockingKernelClient
from jupyter_client.manager import KernelManager

from glm_live.notebook.magics import parse
from tests.test_kernel import WIDGET_VIEW, _stdout, displayed, finish, kernel_and_manager, run

# Compact JSON on purpose: IPython's expansion of a magic's line would read {"tokens":30} as a
# format field, and the magic must keep its options as written.
FAST = """--sim '{"tokens":30,"ttft_ms":5,"itl_ms":1}'"""

# -- the line, split into options and prompt ------------------------------------------------------


def test_options_then_the_prompt_as_written() -> None:
    options, prompt = parse("""-m glm-4.7 --no-thinking -t 0.5 what's "up",  doc?""")
    assert (options.model, options.thinking, options.temperature) == ("glm-4.7", False, 0.5)
    assert prompt == """what's "up",  doc?"""
    options, prompt = parse("""--sim '{"tokens": 3}' -q --new -s "be brief" -c chat hi""")
    assert options.sim == '{"tokens": 3}'
    assert (options.quiet, options.new, options.system, options.conversation) == (
        True,
        True,
        "be brief",
        "chat",
    )
    assert prompt == "hi"
    options, prompt = parse("--system='be brief' --max-tokens=20 -- -m is a word here")
    assert (options.system, options.max_tokens, prompt) == ("be brief", 20, " -m is a word here")
    options, prompt = parse("")
    assert (options.conversation, options.thinking, options.no_history, prompt) == (
        "_glm_conversation",
        None,
        False,
        "",
    )
    assert parse("-5 plus 3?")[1] == "-5 plus 3?"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("--temprature 0.5 hi", "--temprature"),
        ("-t hot hi", "-t/--temperature"),
        ("-m", "-m/--model"),
        ('--sim \'{"a": 1}', "No closing quotation"),
    ],
)
def test_a_bad_option_is_a_usage_error_naming_it(line: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        parse(line)


def test_import_glm_live_does_not_import_the_magics() -> None:
    code = (
        "import sys, glm_live; glm_live.load_ipython_extension\n"
        "print('glm_live.notebook.magics' in sys.modules, 'IPython.core.magic' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]


# -- in a kernel ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def magic_kernel() -> Iterator[tuple[KernelManager, BlockingKernelClient]]:
    with kernel_and_manager() as (manager, client):
        run(client, "%load_ext glm_live")
        yield manager, client


@pytest.fixture
def client(magic_kernel: tuple[KernelManager, BlockingKernelClient]) -> BlockingKernelClient:
    return magic_kernel[1]


def result(messages: list[Any]) -> dict[str, Any]:
    (found,) = [m["content"]["data"] for m in messages if m["msg_type"] == "execute_result"]
    return dict(found)


def error(messages: list[Any]) -> dict[str, Any]:
    (found,) = [m["content"] for m in messages if m["msg_type"] == "error"]
    return dict(found)


def stderr(messages: list[Any]) -> str:
    """What a cell printed to stderr (where IPython prints a UsageError, without traceback)."""
    return "".join(
        m["content"]["text"]
        for m in messages
        if m["msg_type"] == "stream" and m["content"]["name"] == "stderr"
    )


def check(client: BlockingKernelClient, expression: str) -> list[str]:
    """``expression`` evaluated in the kernel: its printed words."""
    _, messages = run(client, f"print({expression})")
    return _stdout(messages).split()


def test_a_cell_streams_into_a_view_and_its_result_is_the_completion(
    client: BlockingKernelClient,
) -> None:
    _, messages = run(client, f"%%glm --new {FAST}\nReview the Globex account\n")
    assert len(displayed(messages)) == 1, "the StreamView was not displayed once"
    out = result(messages)
    assert out["text/plain"].startswith("<Completion finish_reason=stop"), out["text/plain"]
    assert "text/html" in out
    assert check(
        client, "_.text == _glm_conversation[-1].content, _glm_conversation[-1].status"
    ) == ["True", "done"]


def test_turns_continue_across_cells_until_new(client: BlockingKernelClient) -> None:
    run(client, f"%%glm --new {FAST}\nFirst question\n")
    run(client, "first = _")
    _, messages = run(client, f"%%glm {FAST}\nSecond question\n")
    assert result(messages)
    assert check(
        client,
        "[m.role for m in _glm_conversation], "
        "_.usage['prompt_tokens'] > first.usage['prompt_tokens']",
    ) == ["['user',", "'assistant',", "'user',", "'assistant']", "True"]
    # The server was sent the first turn with the second prompt.
    run(client, "from glm_live.notebook.magics import current")
    assert check(client, "len(current().to_openai_messages())") == ["4"]
    run(client, f"%%glm --new {FAST}\nStart over\n")
    assert check(client, "len(_glm_conversation), _glm_conversation[0].content") == [
        "2",
        "Start",
        "over",
    ]


def test_system_prompt_named_conversation_and_no_history(client: BlockingKernelClient) -> None:
    run(client, f"%%glm -c review -s 'You are terse.' {FAST}\nHello\n")
    assert check(client, "review[0].role, review[0].content, len(review)") == [
        "system",
        "You",
        "are",
        "terse.",
        "3",
    ]
    _, messages = run(client, f"%%glm -c review -s 'Another' {FAST}\nHello\n", ok=False)
    assert "UsageError: the conversation review has a system prompt already" in stderr(messages)
    run(client, "before = len(_glm_conversation)")
    run(client, f"%%glm --no-history {FAST}\nAlone\n")
    assert check(client, "len(_glm_conversation) == before, _.text != ''") == ["True", "True"]


def test_model_and_thinking(client: BlockingKernelClient) -> None:
    run(client, f"%%glm --new -m glm-4.7 {FAST}\nThink about it\n")
    assert check(client, "_.model, bool(_.reasoning), _glm_conversation[-1].model") == [
        "glm-4.7-sim",
        "True",
        "glm-4.7-sim",
    ]
    run(client, f"%%glm -m glm-4.7 --no-thinking {FAST}\nDo not think\n")
    assert check(client, "_.model, repr(_.reasoning)") == ["glm-4.7-sim", "''"]


def test_the_line_form_and_quiet(client: BlockingKernelClient) -> None:
    run(client, "x = 'Globex'")
    _, messages = run(client, f"%glm --new {FAST} Review the {{x}} account")
    assert len(displayed(messages)) == 1
    assert result(messages)["text/plain"].startswith("<Completion")
    assert check(client, "_glm_conversation[0].content") == ["Review", "the", "Globex", "account"]
    _, messages = run(client, f"c = %glm -q {FAST} Quietly")
    assert not [m for m in messages if m["msg_type"] in ("display_data", "execute_result")]
    assert check(client, "c.text == _glm_conversation[-1].content") == ["True"]
    _, messages = run(client, f"%%glm -q {FAST}\nQuiet cell\n")
    assert not displayed(messages), "-q displayed a view"
    assert WIDGET_VIEW not in result(messages)


def test_a_bad_option_is_one_line(client: BlockingKernelClient) -> None:
    reply, messages = run(client, "%%glm --temprature 0.5\nHi\n", ok=False)
    assert reply["content"]["status"] == "error"
    assert stderr(messages).strip() == "UsageError: unrecognized arguments: --temprature"
    _, messages = run(client, "%%glm --sim '[1]'\nHi\n", ok=False)
    assert "UsageError: --sim takes a JSON object" in stderr(messages)
    _, messages = run(client, "%%glm --session nowhere\nHi\n", ok=False)
    assert "not a glm_live.Session" in stderr(messages)
    _, messages = run(client, "%%glm\n\n", ok=False)
    assert "UsageError: nothing to send" in stderr(messages)
    _, messages = run(client, "%%glm -q stray words\nHi\n", ok=False)
    assert "UsageError: %%glm takes only options on its line, and 'stray words'" in stderr(messages)


def test_a_failed_chat_is_one_paragraph(client: BlockingKernelClient) -> None:
    reply, messages = run(client, '%%glm --new --sim \'{"fault": "server_error"}\'\nHi\n', ok=False)
    assert reply["content"]["status"] == "error"
    failure = error(messages)
    assert failure["ename"] == "ServerError"
    assert len(failure["traceback"]) == 1, failure["traceback"]
    assert failure["traceback"][0].startswith("ServerError: ")
    assert len(displayed(messages)) == 1, "the view of the failed chat was not shown"
    assert check(client, "_glm_conversation[-1].status") == ["error"]


def test_a_session_of_ones_own(client: BlockingKernelClient) -> None:
    run(client, "import glm_live\nmine = glm_live.connect(hub=False)")
    run(client, f"%%glm --new --session mine {FAST}\nHi\n")
    assert check(client, "len(mine.recorder.requests_frame())") == ["1"]


def test_interrupt_cancels_and_keeps_the_partial_answer(
    magic_kernel: tuple[KernelManager, BlockingKernelClient],
) -> None:
    manager, client = magic_kernel
    msg_id = client.execute(
        '%%glm --new --sim \'{"tokens": 3000, "ttft_ms": 5, "itl_ms": 5}\'\nA long answer\n'
    )
    time.sleep(2.0)
    manager.interrupt_kernel()
    reply, messages = finish(client, msg_id, ok=False)
    assert reply["content"]["status"] == "error"
    failure = error(messages)
    assert failure["ename"] == "KeyboardInterrupt"
    assert len(failure["traceback"]) == 1
    assert "kept in the conversation (status cancelled)" in failure["traceback"][0]
    words = check(
        client,
        "_glm_conversation[-1].status, len(_glm_conversation[-1].content) > 0, "
        "_glm_conversation.answering is None",
    )
    assert words == ["cancelled", "True", "True"]
    # The next cell continues the conversation, the partial answer included.
    run(client, f"%%glm {FAST}\nGo on\n")
    assert check(client, "*[m.status for m in _glm_conversation]") == [
        "done",
        "cancelled",
        "done",
        "done",
    ]
    # The partial answer (some hundred tokens in 2 s) was sent with the next prompt.
    assert check(client, "_.usage['prompt_tokens'] > 100") == ["True"]


def test_the_readme_cells_work_as_pasted(client: BlockingKernelClient) -> None:
    """The README's "From a cell" blocks, verbatim, one cell each."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("### From a cell", 1)[1].split("\n## ", 1)[0]
    cells = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(cells) == 3, cells
    run(client, "%unload_ext glm_live\ndel _glm_conversation")  # as in a new notebook
    for cell in cells:
        _, messages = run(client, cell, timeout=120)
    assert len(displayed(messages)) == 1
    assert check(client, "_.model, _glm_conversation[0].role, len(_glm_conversation)") == [
        "glm-4.7-sim",
        "system",
        "5",
    ]


def test_help_lists_the_options(client: BlockingKernelClient) -> None:
    reply = client.execute_interactive("%%glm?\n", timeout=30)
    (page,) = reply["content"]["payload"]
    text = page["data"]["text/plain"]
    for option in ("--model", "--no-thinking", "--system", "--sim", "--session", "--quiet"):
        assert option in text, option
