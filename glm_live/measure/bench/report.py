"""One self-contained HTML file per benchmark (or sweep): :func:`write_report`.

The file opens offline in any browser and can be mailed or attached to a paper: the CSS is
inline, the figures are PNGs in ``data:`` URIs, and nothing is fetched. It holds a headline,
the figures, the percentiles with their bootstrap intervals, each tool's metric dialect, a
definition for every metric shown (quoted from :data:`.stats.DEFINITIONS`, where the rules
live), the harness's calibration, the config (secrets removed) and the environment.

Sections that depend on features a result may not have (goodput against SLOs, server
telemetry, a workload description) appear only when the result carries them.

Everything that came from the user or the server (labels, URLs, model names, errors) is
escaped: a label is text, never markup.
"""

from __future__ import annotations

import base64
import io
import json
import os
import platform
import sys
import time
from collections.abc import Sequence
from html import escape
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .results import WRITERS, BenchResult
from .stats import DEFINITIONS, describe, dialect_samples

__all__ = ["render_report", "write_report"]

#: Config keys whose values are never written: a report is meant to be shared. (``token``
#: only as a suffix: ``max_tokens`` and ``tokenizer`` are settings, not secrets.)
_SECRET_WORDS = ("apikey", "api_key", "secret", "password", "authorization", "cookie", "bearer")


def _secret(key: str) -> bool:
    k = key.lower().replace("-", "_")
    return (
        any(w in k for w in _SECRET_WORDS)
        or k in ("key", "token")
        or k.endswith(("_key", "_token"))
    )


_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 13px; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f4f4f4; }
td.text, th.text { text-align: left; }
.headline { display: flex; flex-wrap: wrap; gap: 1em; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.6em 1em; min-width: 10em; }
.card b { display: block; font-size: 1.4em; }
.muted { color: #666; }
.warning { background: #fff4e5; border-left: 4px solid #f0a020; padding: 0.4em 0.8em; }
img { max-width: 100%; height: auto; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; }
nav a { margin-right: 0.8em; }
"""


# -- entry points -----------------------------------------------------------------------------


def write_report(
    results: BenchResult | Sequence[BenchResult],
    path: str | Path,
    *,
    labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Write the report of one result, or of several (a sweep, or runs to compare), to
    ``path``. Returns the path."""
    path = Path(path)
    path.write_text(render_report(results, labels=labels, title=title), encoding="utf-8")
    return path


def render_report(
    results: BenchResult | Sequence[BenchResult],
    *,
    labels: Sequence[str] | None = None,
    title: str | None = None,
) -> str:
    """The report as an HTML string (see :func:`write_report`)."""
    runs = [results] if isinstance(results, BenchResult) else list(results)
    if not runs:
        msg = "a report needs at least one result"
        raise ValueError(msg)
    names = list(labels) if labels is not None else [_label(r) for r in runs]
    if len(names) != len(runs):
        msg = f"{len(names)} labels for {len(runs)} results"
        raise ValueError(msg)
    title = title or ("Benchmark: " + names[0] if len(runs) == 1 else "Benchmark comparison")
    sections: list[tuple[str, str, str]] = []  # (id, heading, html)
    sections.append(("summary", "Summary", _headline(runs, names)))
    if len(runs) > 1:
        sections.append(("comparison", "Comparison", _comparison(runs, names)))
    sections.append(("plots", "Figures", _plots(runs, names)))
    sections.append(
        ("intervals", "Percentiles and 95% bootstrap intervals", _intervals(runs, names))
    )
    sections.append(("dialects", "Metric dialects", _dialects(runs, names)))
    optional = [
        ("goodput", "Goodput against SLOs", _goodput(runs, names)),
        ("telemetry", "Server telemetry", _telemetry(runs, names)),
        ("workload", "Workload", _workload(runs, names)),
    ]
    sections.extend(s for s in optional if s[2])
    sections.append(("definitions", "Definitions", _definitions(runs)))
    sections.append(("calibration", "Calibration", _calibration(runs, names)))
    sections.append(("config", "Config", _config(runs, names)))
    sections.append(("environment", "Environment", _environment()))
    nav = " ".join(f'<a href="#{sid}">{escape(head)}</a>' for sid, head, _ in sections)
    body = "\n".join(
        f'<section id="{sid}"><h2>{escape(head)}</h2>\n{html}</section>'
        for sid, head, html in sections
    )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{_CSS}</style></head><body>\n"
        f"<h1>{escape(title)}</h1>\n"
        f'<p class="muted">glm_live {escape(_version("glm_live"))} · written '
        f"{escape(time.strftime('%Y-%m-%d %H:%M:%S %Z'))}</p>\n<nav>{nav}</nav>\n"
        f"{body}\n</body></html>\n"
    )


WRITERS["report"] = write_report


# -- sections ---------------------------------------------------------------------------------


def _label(result: BenchResult) -> str:
    config = result.config
    source = config.get("source", "glm_live")
    prefix = "" if source == "glm_live" else f"{source}: "
    if config.get("label"):
        return prefix + str(config["label"])
    if config.get("rate") is not None:
        return f"{prefix}rate {float(config['rate']):g}/s"
    if config.get("concurrency") is not None:
        return f"{prefix}concurrency {config['concurrency']}"
    return prefix + "run"


def _source(result: BenchResult) -> str:
    config = result.config
    source = str(config.get("source", "glm_live"))
    if config.get("source_version"):
        source += f" {config['source_version']}"
    return source


def _throughput(result: BenchResult) -> dict[str, float]:
    reported = result.config.get("reported") or {}
    if result.config.get("source", "glm_live") == "glm_live" or not reported:
        try:
            return result.throughput()
        except (KeyError, TypeError, ValueError):
            return {"requests_per_s": np.nan, "output_tokens_per_s": np.nan}
    # A foreign tool's own throughput (its window, its rule).
    rps = reported.get("request_throughput")
    tps = reported.get("output_throughput")
    if rps is None:
        rps = (reported.get("requests_per_second") or {}).get("mean")
        tps = (reported.get("output_tokens_per_second") or {}).get("mean")
    return {
        "requests_per_s": np.nan if rps is None else float(rps),
        "output_tokens_per_s": np.nan if tps is None else float(tps),
    }


def _p(result: BenchResult, metric: str, q: float) -> float:
    if metric not in result.measured:
        return np.nan
    values = result.measured[metric].dropna().to_numpy(dtype=float)
    return float(np.percentile(values, q)) if len(values) else np.nan


def _fmt(value: Any, digits: int = 1) -> str:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return escape(str(value))
    return "–" if number != number else f"{number:,.{digits}f}"


def _headline(runs: list[BenchResult], names: list[str]) -> str:
    parts = []
    for result, name in zip(runs, names, strict=True):
        r = result.requests
        ok = int((r["status"] == "ok").sum()) if not r.empty else 0
        rate = _throughput(result)
        cards = [
            ("requests ok", f"{ok} / {len(r)}"),
            ("TTFT p50", _fmt(_p(result, "ttft_ms", 50)) + " ms"),
            ("TTFT p99", _fmt(_p(result, "ttft_ms", 99)) + " ms"),
            ("TPOT p50", _fmt(_p(result, "tpot_ms", 50), 2) + " ms"),
            ("E2E p99", _fmt(_p(result, "e2e_ms", 99), 0) + " ms"),
            ("output tokens/s", _fmt(rate.get("output_tokens_per_s"), 0)),
            ("requests/s", _fmt(rate.get("requests_per_s"), 2)),
        ]
        cal = result.calibration or {}
        if cal.get("timing_error_p99_ms") is not None:
            cards.append(("timing error p99", _fmt(cal["timing_error_p99_ms"], 2) + " ms"))
        html = "".join(f'<div class="card">{escape(k)}<b>{v}</b></div>' for k, v in cards)
        url = result.config.get("url")
        parts.append(
            f"<h3>{escape(name)}</h3>"
            f'<p class="muted">measured by {escape(_source(result))}'
            + (f" · {escape(str(url))}" if url else "")
            + f'</p><div class="headline">{html}</div>'
        )
        if cal.get("warning"):
            parts.append(f'<p class="warning">{escape(str(cal["warning"]))}</p>')
    return "\n".join(parts)


def _comparison(runs: list[BenchResult], names: list[str]) -> str:
    rows = []
    for result, name in zip(runs, names, strict=True):
        rate = _throughput(result)
        rows.append(
            {
                "run": name,
                "measured by": _source(result),
                "ok": int((result.requests["status"] == "ok").sum()),
                "TTFT p50 (ms)": _p(result, "ttft_ms", 50),
                "TTFT p99 (ms)": _p(result, "ttft_ms", 99),
                "TPOT p50 (ms)": _p(result, "tpot_ms", 50),
                "E2E p50 (ms)": _p(result, "e2e_ms", 50),
                "E2E p99 (ms)": _p(result, "e2e_ms", 99),
                "requests/s": rate.get("requests_per_s"),
                "output tokens/s": rate.get("output_tokens_per_s"),
            }
        )
    table = _table(pd.DataFrame(rows), text_columns=("run", "measured by"))
    note = (
        '<p class="muted">Each run\'s numbers follow the rules of the tool that measured it '
        "(see Definitions): compare like with like.</p>"
        if len({_source(r) for r in runs}) > 1
        else ""
    )
    return table + note


def _plots(runs: list[BenchResult], names: list[str]) -> str:
    from . import plots

    figures: list[tuple[str, Any]] = []
    if len(runs) == 1:
        result = runs[0]
        figures.append(("Distributions of TTFT, ITL and E2E", _distributions(result)))
        if _has_timeline(result):
            figures.append(("Latency over the run", _latency_over_time(result)))
            figures.append(("Throughput over the run", _throughput_over_time(result)))
            figures.append(("Each request's phases", plots.timeline(result)))
    else:
        for metric in ("ttft_ms", "e2e_ms"):
            figures.append((f"CDF of {metric}", plots.cdf(runs, metric, labels=names)))
        by = {r.config.get("rate") is not None for r in runs}
        levels = [r.config.get("rate") or r.config.get("concurrency") for r in runs]
        if len(by) == 1 and all(isinstance(v, int | float) and v > 0 for v in levels):
            figures.append(("TTFT percentiles against load", plots.percentiles_vs(runs)))
            figures.append(("Throughput against p99 TTFT", plots.throughput_latency(runs)))
    return "\n".join(
        f'<figure><img alt="{escape(caption)}" src="{_png(figure)}">'
        f"<figcaption>{escape(caption)}</figcaption></figure>"
        for caption, figure in figures
    )


def _has_timeline(result: BenchResult) -> bool:
    r = result.measured
    return not r.empty and "scheduled_ns" in r and bool(r["scheduled_ns"].astype(float).std() > 0)


def _distributions(result: BenchResult) -> Any:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 3, figsize=(10, 3.2), layout="constrained")
    measured = result.measured
    itl = np.asarray([], dtype=float)
    if result.config.get("source", "glm_live") == "glm_live":
        try:
            itl = dialect_samples(result.requests, result.events)["vLLM", "itl_ms"]
        except (KeyError, ValueError):
            itl = np.asarray([], dtype=float)
    elif "tpot_ms" in measured:
        itl = measured["tpot_ms"].to_numpy(dtype=float)
    series = [
        ("TTFT (ms)", measured["ttft_ms"].to_numpy(dtype=float) if "ttft_ms" in measured else []),
        ("ITL (ms)", itl),
        ("E2E (ms)", measured["e2e_ms"].to_numpy(dtype=float) if "e2e_ms" in measured else []),
    ]
    for ax, (name, values) in zip(axes, series, strict=True):
        data = np.asarray(values, dtype=float)
        data = data[~np.isnan(data)]
        if len(data):
            ax.hist(data, bins=min(40, max(5, len(data) // 3)), color="tab:blue", alpha=0.8)
            for q, style in ((50, "-"), (99, "--")):
                ax.axvline(np.percentile(data, q), color="k", linestyle=style, label=f"p{q}")
            ax.legend(fontsize=8)
        ax.set_xlabel(name)
        ax.set_ylabel("count")
        ax.grid(alpha=0.3)
    return figure


def _latency_over_time(result: BenchResult) -> Any:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(10, 3.5), layout="constrained")
    r = result.measured
    origin = float(r["scheduled_ns"].min())
    t = (r["scheduled_ns"].astype(float) - origin) / 1e9
    for metric, colour in (("ttft_ms", "tab:orange"), ("e2e_ms", "tab:blue")):
        if metric in r:
            axes.plot(t, r[metric], ".", color=colour, label=metric, markersize=4)
    axes.set_xlabel("s since the first scheduled send")
    axes.set_ylabel("ms")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return figure


def _throughput_over_time(result: BenchResult) -> Any:
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(10, 3.2), layout="constrained")
    r = result.measured
    origin = float(r["scheduled_ns"].min())
    ev = result.events
    token = ev[(ev["request"].isin(r["request"])) & (ev.get("tokens", 0) > 0)]
    seconds = (token["arrival_ns"].astype(float) - origin) / 1e9
    if len(seconds):
        width = max(0.1, float(seconds.max()) / 50)
        bins = np.arange(0, float(seconds.max()) + width, width)
        counts, edges = np.histogram(seconds, bins=bins)
        axes.step(edges[:-1], counts / width, where="post", label="output tokens/s")
    ends = (
        r["sent_ns"].astype(float) + (r["e2e_ms"] - r.get("queue_ms", 0).fillna(0)) * 1e6 - origin
    ) / 1e9
    ends = ends.dropna()
    if len(ends):
        twin = axes.twinx()
        order = np.sort(ends.to_numpy())
        twin.plot(order, np.arange(1, len(order) + 1), color="tab:green", label="requests done")
        twin.set_ylabel("requests done")
        twin.set_ylim(bottom=0)
        axes.plot([], [], color="tab:green", label="requests done (right axis)")
    axes.set_ylim(bottom=0)
    axes.set_xlabel("s since the first scheduled send")
    axes.set_ylabel("output tokens/s")
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")
    return figure


def _png(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _intervals(runs: list[BenchResult], names: list[str]) -> str:
    parts = []
    for result, name in zip(runs, names, strict=True):
        measured = result.measured
        rows = {}
        for metric in ("ttft_ms", "ttft_content_ms", "tpot_ms", "e2e_ms", "queue_ms"):
            if metric in measured and measured[metric].notna().any():
                rows[metric] = describe(measured[metric].to_numpy(dtype=float))
        if not rows:
            parts.append(f"<h3>{escape(name)}</h3><p>No measured requests.</p>")
            continue
        frame = pd.DataFrame(rows).T
        shown = pd.DataFrame(index=frame.index)
        shown["count"] = frame["count"].astype(int)
        shown["mean"] = frame["mean"]
        for q in ("p50", "p90", "p95", "p99", "p99.9"):
            shown[q] = [
                f"{v:.2f} [{lo:.2f}, {hi:.2f}]"
                for v, lo, hi in zip(frame[q], frame[f"{q}_low"], frame[f"{q}_high"], strict=True)
            ]
        parts.append(f"<h3>{escape(name)}</h3>" + _table(shown.reset_index(names="metric")))
    parts.append(
        '<p class="muted">Each percentile with its 95% percentile-bootstrap interval '
        "(1000 resamples); wide intervals mean too few requests for that tail.</p>"
    )
    return "\n".join(parts)


def _dialects(runs: list[BenchResult], names: list[str]) -> str:
    parts = []
    for result, name in zip(runs, names, strict=True):
        if result.config.get("source", "glm_live") != "glm_live" or result.events.empty:
            continue
        try:
            table = result.dialects()
        except (KeyError, ValueError):
            continue
        parts.append(
            f"<h3>{escape(name)}</h3>"
            + _table(table, text_columns=("tool", "metric", "definition"))
        )
    if not parts:
        return "<p>Only glm_live's own runs keep the raw events each tool's rule needs.</p>"
    parts.insert(
        0,
        "<p>The same raw events measured by each tool's rules: the tools disagree on what "
        "TTFT, ITL and TPOT mean, not (only) on the numbers.</p>",
    )
    return "\n".join(parts)


def _goodput(runs: list[BenchResult], names: list[str]) -> str:
    """Goodput against the SLO a run was judged by: ``config["slo"]``, which the capacity
    search and ``glm-live bench --slo`` record on each level."""
    parts = []
    for result, name in zip(runs, names, strict=True):
        slo = result.config.get("slo")
        if not slo:
            continue
        judged = result.goodput(slo)
        parts.append(
            f"<h3>{escape(name)}</h3><p>{escape(str(judged))}</p>"
            + _table(pd.DataFrame([judged.row()]))
        )
    return "\n".join(parts)


def _telemetry(runs: list[BenchResult], names: list[str]) -> str:
    parts = []
    for result, name in zip(runs, names, strict=True):
        frame = getattr(result, "telemetry", None)
        if callable(frame):
            frame = frame()
        if not isinstance(frame, pd.DataFrame) or frame.empty:
            continue
        numeric = frame.select_dtypes("number")
        summary = numeric.describe().T if not numeric.empty else frame.head(20)
        parts.append(
            f"<h3>{escape(name)}</h3><p>{len(frame)} samples.</p>" + _table(summary.reset_index())
        )
    return "\n".join(parts)


def _workload(runs: list[BenchResult], names: list[str]) -> str:
    parts = []
    for result, name in zip(runs, names, strict=True):
        workload = result.config.get("workload") or getattr(result, "workload", None)
        if not workload:
            continue
        text = json.dumps(_redact(workload), indent=2, default=str)
        parts.append(f"<h3>{escape(name)}</h3><pre>{escape(text)}</pre>")
    return "\n".join(parts)


def _definitions(runs: list[BenchResult]) -> str:
    rows: list[tuple[str, str, str]] = []
    seen = set()

    def add(tool: str, metric: str, text: str) -> None:
        if (tool, metric) not in seen:
            seen.add((tool, metric))
            rows.append((tool, metric, text))

    shown = ("ttft_ms", "ttft_content_ms", "tpot_ms", "e2e_ms", "queue_ms")
    for result in runs:
        source = _source(result)
        foreign = result.config.get("definitions")
        if foreign:
            for metric, text in foreign.items():
                add(source, metric, str(text))
            continue
        for metric in shown:
            if metric in result.requests:
                add("glm_live", metric, DEFINITIONS["glm_live", metric])
        for metric in ("requests_per_s", "output_tokens_per_s", "timing_error_ms", "loop_lag_ms"):
            add("glm_live", metric, DEFINITIONS["glm_live", metric])
        add("vLLM", "itl_ms", DEFINITIONS["vLLM", "itl_ms"] + " (the ITL histogram)")
        for (tool, metric), text in DEFINITIONS.items():
            if tool != "glm_live":
                add(tool, metric, text)
    add("report", "pNN [low, high]", "the NN-th percentile and its 95% bootstrap interval")
    frame = pd.DataFrame(rows, columns=["measured by", "metric", "from which stamp to which"])
    return _table(frame, text_columns=tuple(frame.columns))


def _calibration(runs: list[BenchResult], names: list[str]) -> str:
    parts = [
        "<p>The harness times itself: each SSE message carries the server's send stamp "
        "(<code>x_sent_ns</code>), and the difference to its arrival is the network plus the "
        "client's own delay, an upper bound on the timing error of every latency above. "
        "Event-loop lag is how late the client's loop woke from timed sleeps.</p>"
    ]
    for result, name in zip(runs, names, strict=True):
        cal = dict(result.calibration or {})
        cal.pop("runs", None)
        clock = cal.pop("clock", None)
        rows = [
            (k, _fmt(v, 3) if isinstance(v, int | float) else escape(str(v)))
            for k, v in cal.items()
            if v is not None
        ]
        html = "".join(f'<tr><th class="text">{escape(k)}</th><td>{v}</td></tr>' for k, v in rows)
        parts.append(f"<h3>{escape(name)}</h3><table>{html}</table>")
        if clock:
            parts.append(f"<p>{escape(str(clock.get('agreement', '')))}</p>")
    return "\n".join(parts)


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("[redacted]" if _secret(str(k)) else _redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    return value


def _config(runs: list[BenchResult], names: list[str]) -> str:
    parts = []
    for result, name in zip(runs, names, strict=True):
        config = {k: v for k, v in result.config.items() if k not in ("reported", "definitions")}
        text = json.dumps(_redact(config), indent=2, default=str, sort_keys=True)
        parts.append(f"<h3>{escape(name)}</h3><pre>{escape(text)}</pre>")
    return "\n".join(parts)


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def _environment() -> str:
    rows = [
        ("Python", sys.version.split()[0] + f" ({platform.python_implementation()})"),
        ("platform", platform.platform()),
        ("machine", platform.machine()),
        ("CPU count", str(os.cpu_count())),
        ("glm_live", _version("glm_live")),
        ("numpy", _version("numpy")),
        ("pandas", _version("pandas")),
        ("matplotlib", _version("matplotlib")),
        ("report written (UTC)", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())),
    ]
    html = "".join(
        f'<tr><th class="text">{escape(k)}</th><td class="text">{escape(v)}</td></tr>'
        for k, v in rows
    )
    return f"<table>{html}</table>"


# -- helpers ----------------------------------------------------------------------------------


def _table(frame: pd.DataFrame, text_columns: Sequence[str] = ()) -> str:
    """``frame`` as an HTML table, every cell escaped (``to_html`` escapes by default)."""
    formatters = {
        c: (lambda v: "–" if v is None or v != v else f"{v:,.2f}")
        for c in frame.columns
        if c not in text_columns and pd.api.types.is_float_dtype(frame[c])
    }
    html: str = frame.to_html(index=False, escape=True, formatters=formatters, border=0, na_rep="–")
    return html


def _any_table(value: Any) -> str:
    if isinstance(value, pd.DataFrame):
        return _table(value.reset_index())
    if isinstance(value, pd.Series):
        return _table(value.to_frame().reset_index())
    if isinstance(value, dict):
        text = json.dumps(value, indent=2, default=str)
        return f"<pre>{escape(text)}</pre>"
    if value is None:
        return ""
    return f"<p>{escape(str(value))}</p>"
