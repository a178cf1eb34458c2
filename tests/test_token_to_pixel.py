"""The token-to-pixel benchmark's machinery (``benchmarks/token_to_pixel.py``), briefly: a
second at 500 tokens/s into a StreamView in JupyterLab in Chromium. Structural facts only (the
benchmark's own run gives the figures and the verdict): every chunk's text reached the DOM,
after it was sent, through fewer comm messages than chunks."""

from __future__ import annotations

import pytest

from benchmarks.token_to_pixel import measure, table

pytestmark = pytest.mark.browser


def test_every_chunk_reaches_the_dom_through_coalesced_messages() -> None:
    result = measure([500], seconds=1.0, warmup=0)
    print(table(result))
    (run,) = result.runs
    assert run.chunks >= 400  # 500 tokens, one per chunk (the last may carry two)
    assert run.missing == 0
    assert len(run.latencies_ms) == run.chunks
    # Same machine, same clock: a negative latency would be a broken stamp or pairing
    # (less the offset's uncertainty, measured from round trips).
    assert min(run.latencies_ms) > -result.offset_err_ms
    assert 0 < run.sent < run.chunks
