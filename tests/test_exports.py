"""The public surface: what users type keeps working across the move into floor folders."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

import glm_live
from glm_live._compat import MOVED

# glm_live.__all__ before the floors had folders (0.1.0): every name must stay importable.
EXPORTED_BEFORE = [
    "DEFAULT_BASE_URL", "AgentContext", "AgentStatus", "AuthenticationError", "Backoff",
    "ChatHandle", "ChatStream", "Chunk", "ClusterError", "Completion", "ConnectionEvent",
    "ConnectionFailed", "ConnectionState", "ContentFilteredError", "ContentTypeError", "Decoder",
    "Event", "EventSource", "EventTooLarge", "GLMClient", "GLMError", "GlmLiveError",
    "HTTPStatusError", "Handle", "HubStoreError", "InsufficientBalanceError",
    "InvalidRequestError", "MalformedResponseError", "Observer", "RateLimitError",
    "ResponseError", "RetriesExhausted", "Run", "RunHandle", "RunState", "SSEError",
    "ServerError", "Session", "StreamInterrupted", "Timings", "ToolCall", "ToolCallDelta",
    "TransportError", "Workflow", "WorkflowError", "__version__", "connect", "errors", "sse",
]  # fmt: skip


def test_all_is_sorted_and_keeps_every_earlier_name() -> None:
    assert glm_live.__all__ == sorted(glm_live.__all__, key=lambda n: (not n.isupper(), n))
    assert set(EXPORTED_BEFORE) <= set(glm_live.__all__)
    for name in glm_live.__all__:
        assert getattr(glm_live, name) is not None, name


@pytest.mark.parametrize(("old", "new"), sorted(MOVED.items()))
def test_an_old_module_path_is_the_module_at_its_new_home(old: str, new: str) -> None:
    assert importlib.import_module(old) is importlib.import_module(new)


@pytest.mark.parametrize(
    ("statement", "name"),
    [
        ("from glm_live.sse import Decoder", "Decoder"),
        ("from glm_live.ws import Connection", "Connection"),
        ("from glm_live.stream import EventSource", "EventSource"),
        ("from glm_live.bench import run, run_sync, sweep, BenchResult", "BenchResult"),
        ("from glm_live.server import serve", "serve"),
        ("from glm_live.widgets import StreamView, AgentBoard", "StreamView"),
        ("from glm_live.chaos import ChaosProxy", "ChaosProxy"),
        ("from glm_live.glm import GLMClient, Completion, Timings", "Timings"),
        ("from glm_live.metrics import Recorder", "Recorder"),
        ("from glm_live.server.hub import Hub", "Hub"),
        ("from glm_live.server.sim import Simulator", "Simulator"),
        ("from glm_live.agents import Workflow, AgentContext, Run", "Workflow"),
        ("from glm_live.bench.stats import describe", "describe"),
        ("from glm_live import ClusterError, HubStoreError, GlmLiveError", "HubStoreError"),
    ],
)
def test_old_imports_work_in_a_fresh_interpreter(statement: str, name: str) -> None:
    # A fresh process: nothing imported by other tests may make an alias look as if it works.
    code = f"{statement}\nprint({name}.__module__)"
    result = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().startswith("glm_live.")


def test_importing_glm_live_leaves_the_server_and_the_widgets_alone() -> None:
    code = (
        "import sys, glm_live\n"
        "heavy = [m for m in ('starlette', 'uvicorn', 'anywidget', 'matplotlib') "
        "if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_glm_live_bench_offers_everything_the_harness_does() -> None:
    # glm_live.bench lists the measure floor's names again (static, for type checkers): this
    # is what keeps the two lists from drifting apart.
    import glm_live.bench

    from glm_live.measure import bench as harness

    missing = set(harness.__all__) - set(glm_live.bench.__all__)
    assert not missing, f"add {sorted(missing)} to glm_live/notebook/bench.py"
    for name in set(harness.__all__) - {"run", "search", "sweep"}:  # shown live here
        assert getattr(glm_live.bench, name) is getattr(harness, name), name
