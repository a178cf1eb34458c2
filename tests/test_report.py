"""The HTML report: one self-contained file, every section, nothing hostile or secret in it."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from html import escape
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest

from glm_live import bench
from glm_live.measure.bench import BenchResult
from glm_live.measure.bench.stats import DEFINITIONS
from glm_live.server import ServerHandle, serve

SIM = {"ttft_ms": 5, "itl_ms": 1, "tokens": 12}
SECTIONS = (
    "summary",
    "plots",
    "intervals",
    "dialects",
    "definitions",
    "calibration",
    "config",
    "environment",
)
HOSTILE = "<script>alert('pwned')</script>"


class _Page(HTMLParser):
    """Every tag and attribute of a page, and the ids of its sections."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def ids(self, tag: str) -> set[str]:
        return {str(a["id"]) for t, a in self.tags if t == tag and a.get("id")}


def _parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    page.close()
    return page


@pytest.fixture(scope="module")
def runtime() -> Iterator[ServerHandle]:
    with serve() as handle:
        yield handle


@pytest.fixture(scope="module")
def result(runtime: ServerHandle) -> BenchResult:
    return bench.run_sync(
        runtime.url, api_key=runtime.token, concurrency=4, requests=24, warmup=2, sim=SIM
    )


def test_the_report_is_one_self_contained_file(
    result: BenchResult, runtime: ServerHandle, tmp_path: Path
) -> None:
    path = result.report(tmp_path / "run.html")
    html = path.read_text(encoding="utf-8")
    page = _parse(html)

    assert set(SECTIONS) <= page.ids("section")
    # Nothing is fetched: no scripts, no stylesheets, no external images or frames.
    tags = {tag for tag, _ in page.tags}
    assert not tags & {"script", "link", "iframe", "object", "embed"}
    for tag, attrs in page.tags:
        for name in ("src", "href", "srcset", "data"):
            value = attrs.get(name)
            if value is not None:
                assert value.startswith(("data:image/png;base64,", "#")), (tag, name, value)
    images = [a for t, a in page.tags if t == "img"]
    assert len(images) >= 4  # distributions, latency over time, throughput, timeline
    assert "url(" not in html
    assert "@import" not in html
    text_of = html.replace("&nbsp;", " ")  # pandas writes runs of spaces as &nbsp;
    # Definitions quote stats.DEFINITIONS, the rules' one home.
    shown = ("ttft_ms", "ttft_content_ms", "tpot_ms", "e2e_ms", "queue_ms", "requests_per_s")
    for metric in (*shown, "output_tokens_per_s", "timing_error_ms", "loop_lag_ms"):
        assert escape(DEFINITIONS["glm_live", metric], quote=False) in text_of, metric
    for (tool, metric), text in DEFINITIONS.items():
        if tool != "glm_live":
            assert escape(text, quote=False) in text_of, (tool, metric)
    assert "bootstrap" in html
    assert "[" in html
    assert "timing_error_p99_ms" in html  # the calibration
    assert f"{os.cpu_count()}" in html
    assert sys.version.split()[0] in html
    assert runtime.token not in html


def test_a_hostile_label_and_url_are_text(result: BenchResult, tmp_path: Path) -> None:
    hostile = BenchResult(
        result.requests,
        result.events,
        {**result.config, "url": f"http://x/{HOSTILE}", "label": HOSTILE},
        result.calibration,
    )
    html = hostile.report(tmp_path / "x.html", label=HOSTILE).read_text()
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt;" in html
    assert "script" not in {tag for tag, _ in _parse(html).tags}


def test_secrets_in_the_config_are_not_written(result: BenchResult, tmp_path: Path) -> None:
    config = {
        **result.config,
        "api_key": "sk-top-secret-1",
        "params": {
            "extra_headers": {"Authorization": "Bearer sk-top-secret-2"},
            "access_token": "sk-top-secret-3",
            "max_tokens": 64,
        },
    }
    html = BenchResult(result.requests, result.events, config, result.calibration).report(
        tmp_path / "k.html"
    )
    text = html.read_text()
    assert "sk-top-secret" not in text
    assert "[redacted]" in text
    assert "max_tokens&quot;: 64" in text  # a setting, not a secret


def test_optional_sections_only_when_the_result_has_them(
    result: BenchResult, tmp_path: Path
) -> None:
    plain = _parse(bench.render_report(result)).ids("section")
    assert not plain & {"goodput", "telemetry", "workload"}
    richer = BenchResult(
        result.requests,
        result.events,
        {**result.config, "slo": {"ttft_ms": 500}, "workload": {"kind": "multi-turn"}},
        result.calibration,
    )
    richer.telemetry = pd.DataFrame({"t": [0.0, 1.0], "value": [3.0, 4.0]})  # type: ignore[attr-defined]
    ids = _parse(bench.render_report(richer)).ids("section")
    assert {"goodput", "telemetry", "workload"} <= ids


def test_a_sweep_gets_a_comparison_table_and_curves(
    runtime: ServerHandle, result: BenchResult, tmp_path: Path
) -> None:
    low = bench.run_sync(runtime.url, api_key=runtime.token, concurrency=1, requests=8, sim=SIM)
    path = bench.write_report([low, result], tmp_path / "sweep.html")
    page = _parse(path.read_text())
    assert "comparison" in page.ids("section")
    captions = {a.get("alt") for t, a in page.tags if t == "img"}
    assert "TTFT percentiles against load" in captions
    assert "concurrency 1" in path.read_text()
    assert "concurrency 4" in path.read_text()
    with pytest.raises(ValueError, match="labels"):
        bench.render_report([low, result], labels=["one"])


def test_cli_writes_the_report(runtime: ServerHandle, tmp_path: Path) -> None:
    out = tmp_path / "cli.html"
    env = {k: v for k, v in os.environ.items() if k != "GLM_LIVE_TOKEN"}
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "glm_live",
            "bench",
            runtime.url,
            "--concurrency",
            "1,2",
            "--requests",
            "4",
            "--no-estimate",
            "--token",
            runtime.token,
            "--sim",
            '{"ttft_ms": 2, "itl_ms": 1, "tokens": 6}',
            "--report",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert f"wrote {out}" in completed.stdout
    html = out.read_text()
    assert {"summary", "comparison", "definitions"} <= _parse(html).ids("section")
    assert runtime.token not in html
