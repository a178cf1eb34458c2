"""The widgets' markdown: the vendored markdown-it and ``static/markdown.js`` on top of it.

``tests/node/markdown_check.mjs`` runs the two files, concatenated as the widgets' ES modules
are, under plain ``node`` (no npm packages, a minimal fake DOM) and prints what they render;
these tests assert on it. Needs ``node`` on the PATH (``.ci/run`` installs it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from glm_live.notebook.widgets._base import esm, static

ROOT = Path(__file__).parent.parent
VENDOR = static("vendor/markdown-it.js")
VERSION = "14.3.3"


@pytest.fixture(scope="module")
def checked() -> dict[str, Any]:
    node = shutil.which("node")
    assert node, "node is needed on the PATH to test the widgets' markdown"
    done = subprocess.run(
        [node, str(ROOT / "tests" / "node" / "markdown_check.mjs"), str(static(""))],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def test_inline_markup_is_commonmark(checked: dict[str, Any]) -> None:
    html = checked["render"]
    assert html["code_literal"] == "<p><code>**x**</code></p>\n"  # no bold inside code
    assert "<em>" not in html["arithmetic"]
    assert "2*3*4" in html["arithmetic"]
    assert html["emphasis"] == "<p><em>a</em> and <strong>b</strong></p>\n"
    nested = html["nested_list"]
    assert re.search(r"<ul>\s*<li>a\s*<ul>\s*<li>b</li>\s*<li>c</li>\s*</ul>\s*</li>", nested)
    assert nested.count("<ul>") == 2


def test_raw_html_is_escaped(checked: dict[str, Any]) -> None:
    html = checked["render"]
    assert html["script"] == "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>\n"
    assert html["img_tag"] == "<p>&lt;img src=x onerror=alert(1)&gt;</p>\n"
    assert "<span" not in html["raw_attr"]
    assert "&lt;span" in html["raw_attr"]


def test_links_are_http_https_mailto_only_and_open_a_new_tab(checked: dict[str, Any]) -> None:
    html = checked["render"]
    for name in ("js_link", "data_link", "vb_link", "relative_link", "data_image"):
        assert "<a" not in html[name], name
        assert "href" not in html[name], name
    assert html["link"] == (
        '<p><a href="https://example.com/x?y=1&amp;z=2" target="_blank" '
        'rel="noopener noreferrer">a</a></p>\n'
    )
    assert 'href="mailto:someone@example.com" target="_blank"' in html["mailto"]


def test_images_are_links_not_loads(checked: dict[str, Any]) -> None:
    html = checked["render"]["image"]
    assert "<img" not in html
    assert '<a href="https://example.com/cat.png" target="_blank"' in html
    assert ">a cat</a>" in html


def test_code_blocks_have_a_copy_button(checked: dict[str, Any]) -> None:
    button = (
        '<button class="glm-copy jp-Button" type="button" aria-label="Copy code" '
        'title="Copy code" aria-live="polite">Copy</button>'
    )
    html = checked["render"]
    assert html["fence"] == (
        f'<div class="glm-code">{button}<pre><code class="language-python">'
        "print('&lt;b&gt;')\n</code></pre></div>\n"
    )
    assert (
        f'<div class="glm-code">{button}<pre><code>code line\n</code></pre></div>'
        in (html["indented"])
    )
    # while streaming, an unterminated fence is a code block already
    assert '<pre><code class="language-js">let x = 1;\n\nlet y</code></pre>' in html["open_fence"]


def test_copy_button_copies_the_code_and_says_so(checked: dict[str, Any]) -> None:
    copy = checked["copy"]
    assert copy["clipboard"] == ["print('<b>')\n"]  # textContent of the code, unescaped
    assert copy["during"] == {"text": "Copied", "label": "Copied"}
    assert copy["timer_ms"] == 1500
    assert copy["after"] == {"text": "Copy", "label": "Copy code"}
    # without navigator.clipboard (not a secure context): a hidden textarea and execCommand
    assert copy["fallback_exec"] == ["copy"]
    assert copy["fallback_value"] == ["print('<b>')\n"]
    assert copy["fallback_text"] == "Copied"


def test_final_semantics(checked: dict[str, Any]) -> None:
    html = checked["render"]
    assert html["final_heading"] == "<p>Partial answer.</p>\n"  # `##` cut before its text
    assert html["final_heading_text"].endswith("<h2>Next</h2>\n")
    assert "##" in html["fence_hashes_final"]  # a `##` line of an open fence is code
    assert "#" not in html["streaming_heading"]
    # the interrupted view of the browser test: the open table's row has both cells
    table = html["open_table"]
    assert "#" not in table
    assert re.findall(r"<td>(.*?)</td>", table) == ["ARR", "$1"]
    rows = re.findall(r"<tr>(.*?)</tr>", html["short_rows"], flags=re.S)
    assert [row.count("<t") for row in rows] == [3, 3, 3]  # short rows padded to the header


def test_incremental_rendering_equals_a_whole_rendering(checked: dict[str, Any]) -> None:
    """Committed blocks + the tail == renderMarkdown(prefix), for every prefix of each document:
    fed one character at a time, seven at a time, and each prefix to a fresh renderer."""
    for name, result in checked["stream"].items():
        for way in ("by1", "by7", "fresh"):
            assert result[way]["failures"] == [], (name, way, result[way]["failures"])
        assert result["final_ok"], name  # the end state is renderMarkdown(text, {final: true})
        assert result["final_again_null"], name
        if name != "crlf":  # text with \r is never cut (rendered whole), still correctly
            assert result["by1"]["commitCount"] >= 3, name  # it did commit blocks


def test_incremental_rendering_keeps_the_tail_small(checked: dict[str, Any]) -> None:
    speed = checked["speed"]
    assert speed["length"] == 200_000
    assert speed["maxTail"] < 2_000  # HTML re-rendered at each step, at most
    assert speed["commits"] > 1_000


def test_a_text_that_does_not_extend_the_old_one_starts_over(checked: dict[str, Any]) -> None:
    assert checked["resync"] == {
        "first_commits": 1,
        "reset": True,
        "html_ok": True,
        "unchanged_null": True,
        "extend_no_reset": True,
    }
    # a reference definition after a committed `[docs]` makes it a link: start over
    assert checked["late_definition"] == {
        "committed_first": 1,
        "reset": True,
        "html_ok": True,
        "linked": True,
    }


def test_stream_renderer_keeps_committed_nodes(checked: dict[str, Any]) -> None:
    dom = checked["dom"]
    assert dom["ok"]
    assert dom["kept"]
    assert dom["committed_nodes"] == 1
    assert dom["final_ok"]
    assert dom["listeners"] == dom["listeners_after_second_attach"] == 1


def test_vendored_markdown_it_is_pinned_and_intact(checked: dict[str, Any]) -> None:
    vendor = checked["vendor"]
    assert vendor["is_function"]
    assert vendor["header"][0].startswith(f"// markdown-it {VERSION} ")
    claimed = re.search(
        r"sha256 of the lines below this header: ([0-9a-f]{64})", vendor["header"][3]
    )
    assert claimed
    assert claimed.group(1) == vendor["sha256"]
    script = (ROOT / "scripts" / "vendor-markdown-it.sh").read_text()
    assert f"VERSION={VERSION}\n" in script
    licence = static("vendor/markdown-it.LICENSE").read_text()
    for package in ("markdown-it", "entities", "mdurl", "punycode.js", "uc.micro"):
        assert f"==== {package} " in licence
        assert package in vendor["header"][2]
    # one classic script inside the widgets' module: no import or export of its own
    body = VENDOR.read_text()
    assert body.count("\nvar markdownit=") == 1
    assert not re.search(r"(^|[;}\n])\s*(import|export)\s*[{*\w]", body)


def test_widget_modules_include_the_vendored_markdown_it() -> None:
    from glm_live.notebook.widgets.agent_board import AgentBoard
    from glm_live.notebook.widgets.stream_view import StreamView

    for widget in (StreamView, AgentBoard):
        module = widget._esm.default_value if hasattr(widget._esm, "default_value") else widget._esm
        module = str(module)
        assert module.startswith(esm("vendor/markdown-it.js", "markdown.js")), widget
        assert module.count("export default") == 1, widget
