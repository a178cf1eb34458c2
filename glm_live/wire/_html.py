"""Small HTML summaries for notebooks' rich display (``_repr_html_``): a title and a table.

Everything that goes in is escaped here, so a result's text (a model's answer, an agent's
message, a server's error) can never inject markup into the notebook.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape

__all__ = ["fmt_ms", "table"]


def fmt_ms(seconds: float | None) -> str:
    """Seconds as milliseconds for a summary, ``–`` for what never happened."""
    return "–" if seconds is None else f"{seconds * 1000:.0f} ms"


def table(
    title: str,
    rows: Iterable[tuple[str, object]],
    *,
    header: Sequence[str] = (),
    grid: Iterable[Sequence[object]] = (),
    footer: str = "",
) -> str:
    """``title`` in bold, then ``rows`` as name/value lines, then an optional ``grid`` with
    ``header``, then ``footer`` as preformatted text. Every piece is HTML-escaped."""
    out = [f"<div class='glm-live-summary'><b>{escape(title)}</b>", "<table>"]
    out += [
        f"<tr><th style='text-align:left'>{escape(name)}</th>"
        f"<td style='text-align:left'>{escape(str(value))}</td></tr>"
        for name, value in rows
    ]
    out.append("</table>")
    lines = list(grid)
    if lines:
        out.append("<table>")
        if header:
            out.append("<tr>" + "".join(f"<th>{escape(h)}</th>" for h in header) + "</tr>")
        out += [
            "<tr>"
            + "".join(f"<td style='text-align:left'>{escape(str(v))}</td>" for v in line)
            + "</tr>"
            for line in lines
        ]
        out.append("</table>")
    if footer:
        out.append(f"<pre style='white-space:pre-wrap'>{escape(footer)}</pre>")
    out.append("</div>")
    return "\n".join(out)
