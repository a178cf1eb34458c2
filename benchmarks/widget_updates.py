"""Widget traffic: a 10,000-token stream at 5,000 tokens/s into a StreamView, coalesced,
against naive per-token trait assignment in the same run.

Counts comm messages and bytes as a kernel would send them (a recording comm, no kernel or
browser needed), and checks that the final text is identical, character for character.
Target (issue 5): <= 1/50 of the naive messages and <= 1/20 of its bytes.

Run: ``make bench`` or ``python benchmarks/widget_updates.py [--tokens N] [--rate R]``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import traitlets
from anywidget import AnyWidget

from glm_live.notebook.widgets import StreamView
from glm_live.testing.comm_recorder import record_comms


class NaiveView(AnyWidget):  # type: ignore[misc]
    """What streaming into a widget looks like without coalescing."""

    _esm = "export default { render() {} };"
    text = traitlets.Unicode("").tag(sync=True)
    tokens = traitlets.Int(0).tag(sync=True)


def tokens(n: int) -> list[str]:
    words = [
        "The ",
        "account ",
        "grew ",
        "**12%** ",
        "this ",
        "quarter",
        ".\n",
        "| a | b |\n",
        "```py\n",
        "x = 1\n",
        "```\n",
        "- item\n",
        "é ",
        "日本 ",
    ]
    return [words[i % len(words)] for i in range(n)]


def paced(parts: list[str], rate: float):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    for i, part in enumerate(parts):
        due = start + i / rate
        while time.perf_counter() < due:
            time.sleep(max(0.0, min(0.001, due - time.perf_counter())))
        yield part


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=5_000.0)
    args = parser.parse_args()
    parts = tokens(args.tokens)
    expected = "".join(parts)

    with record_comms() as log:
        naive = NaiveView()
        text = ""
        for i, part in enumerate(paced(parts, args.rate)):
            text += part
            naive.text = text
            naive.tokens = i + 1
    naive_msgs, naive_bytes = log.count(), log.nbytes()
    assert naive.text == expected

    with record_comms() as log:
        view = StreamView(title="bench")
        started = time.perf_counter()
        for part in paced(parts, args.rate):
            view.feed(part)
        view.finish()
        elapsed = time.perf_counter() - started
    ours_msgs, ours_bytes = log.count(), log.nbytes()
    # Rebuild what the browser would show from the messages alone: deltas in order, then the
    # full text; both must equal the source.
    shown = ""
    final = None
    for state in log.updates():
        delta = state.get("_delta")
        if delta:
            shown += delta.get("text", "")
        if "text" in state:
            final = state["text"]
    assert shown == expected, "deltas do not rebuild the text"
    assert final == expected, "the final full text differs"
    print(f"{args.tokens:,} tokens at {args.rate:,.0f} tokens/s ({elapsed:.2f} s)")
    print(f"  naive per-token assignment: {naive_msgs:7,} messages {naive_bytes / 1e6:10.2f} MB")
    print(f"  StreamView (coalesced):     {ours_msgs:7,} messages {ours_bytes / 1e6:10.3f} MB")
    print(
        f"messages: 1/{naive_msgs / ours_msgs:.0f} of naive (target <= 1/50); bytes: "
        f"1/{naive_bytes / ours_bytes:.0f} (target <= 1/20); text identical: yes"
    )


if __name__ == "__main__":
    main()
