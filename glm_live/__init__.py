"""glm_live: real-time work with LLM agents in Jupyter.

Stream GLM-4.6 (or any OpenAI-compatible endpoint) with :class:`GLMClient`, follow any
server-sent-events stream with :class:`EventSource`, and decode SSE yourself with
:mod:`glm_live.sse`. Every exception is in :mod:`glm_live.errors`.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import _compat, errors
from .agents.core import AgentContext, Run, Workflow, WorkflowError
from .errors import (
    AuthenticationError,
    ClusterError,
    ContentFilteredError,
    ContentTypeError,
    EventTooLarge,
    GLMError,
    GlmLiveError,
    HTTPStatusError,
    HubStoreError,
    InsufficientBalanceError,
    InvalidRequestError,
    MalformedResponseError,
    RateLimitError,
    ResponseError,
    RetriesExhausted,
    ServerError,
    SSEError,
    StreamInterrupted,
    TransportError,
)
from .notebook.aio import Handle
from .notebook.session import ChatHandle, RunHandle, Session, connect
from .protocols.agui import AgentStatus, RunState
from .protocols.glm import DEFAULT_BASE_URL, ChatStream, GLMClient
from .transport.sse_client import (
    ConnectionEvent,
    ConnectionFailed,
    ConnectionState,
    EventSource,
    Observer,
)
from .wire import sse
from .wire.chat import Chunk, Completion, Timings, ToolCall, ToolCallDelta
from .wire.retry import Backoff
from .wire.sse import Decoder, Event

_compat.install()  # glm_live.sse, glm_live.widgets, ...: the paths before the floors

try:
    __version__ = version("glm_live")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = [
    "DEFAULT_BASE_URL",
    "AgentContext",
    "AgentStatus",
    "AuthenticationError",
    "Backoff",
    "ChatHandle",
    "ChatStream",
    "Chunk",
    "ClusterError",
    "Completion",
    "ConnectionEvent",
    "ConnectionFailed",
    "ConnectionState",
    "ContentFilteredError",
    "ContentTypeError",
    "Decoder",
    "Event",
    "EventSource",
    "EventTooLarge",
    "GLMClient",
    "GLMError",
    "GlmLiveError",
    "HTTPStatusError",
    "Handle",
    "HubStoreError",
    "InsufficientBalanceError",
    "InvalidRequestError",
    "MalformedResponseError",
    "Observer",
    "RateLimitError",
    "ResponseError",
    "RetriesExhausted",
    "Run",
    "RunHandle",
    "RunState",
    "SSEError",
    "ServerError",
    "Session",
    "StreamInterrupted",
    "Timings",
    "ToolCall",
    "ToolCallDelta",
    "TransportError",
    "Workflow",
    "WorkflowError",
    "__version__",
    "connect",
    "errors",
    "sse",
]
