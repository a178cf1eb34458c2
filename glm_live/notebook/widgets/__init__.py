"""Live notebook widgets (anywidget), fed through one coalescer so that any update rate stays
far below the notebook server's message limit."""

from __future__ import annotations

from ._coalescer import Coalescer, coalescer
from .agent_board import AgentBoard
from .bench_progress import BenchProgress
from .chat_view import ChatView
from .connection import ConnectionIndicator
from .metrics_dashboard import MetricsDashboard
from .panel import LivePanel
from .stream_view import StreamView

__all__ = [
    "AgentBoard",
    "BenchProgress",
    "ChatView",
    "Coalescer",
    "ConnectionIndicator",
    "LivePanel",
    "MetricsDashboard",
    "StreamView",
    "coalescer",
]
