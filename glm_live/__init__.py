"""glm_live: real-time work with LLM agents in Jupyter.

Stream GLM (GLM-4.5 to GLM-5.1; :func:`model_info` tells a model's defaults) or any
OpenAI-compatible endpoint with :class:`GLMClient`, follow any server-sent-events stream with
:class:`EventSource`, and decode SSE yourself with :mod:`glm_live.sse`. The exception tree
is drawn in :mod:`glm_live.errors`; every exception is re-exported here.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from . import _compat, errors
from .agents.core import AgentContext, Run, Workflow, WorkflowError
from .agents.interrupts import Rejected
from .errors import (
    AuthenticationError,
    Cancelled,
    ContentFilteredError,
    ContentTypeError,
    EventTooLarge,
    GLMError,
    GlmLiveError,
    HTTPStatusError,
    InsufficientBalanceError,
    InvalidRequestError,
    MalformedResponseError,
    RateLimitError,
    ResponseError,
    RetriesExhausted,
    SavedFileError,
    ServerError,
    SSEError,
    StreamInterrupted,
    TransportError,
    UnsendableRequest,
)
from .measure.ledger import Price
from .notebook.aio import Handle, allow_nested_loops
from .notebook.conversation import Conversation, ConversationFormatError, Message
from .notebook.replay import ReplayHandle, replay
from .notebook.runlog import ReplayFormatError, RunLog
from .notebook.session import ChatHandle, RunHandle, Session, connect
from .notebook.tools import Tool, tool
from .protocols.agui import AgentStatus, RunState
from .protocols.glm import DEFAULT_BASE_URL, ChatStream, GLMClient
from .protocols.runtime import find_token, issue_token, revoke_token
from .transport.sse_client import (
    ConnectionEvent,
    ConnectionFailed,
    ConnectionState,
    EventSource,
    Observer,
)
from .wire import sse
from .wire.auth import AuthError
from .wire.chat import Chunk, Completion, Timings, ToolCall, ToolCallDelta
from .wire.models import ModelInfo, model_info
from .wire.retry import Backoff
from .wire.sse import Decoder, Event

# Errors of subsystems that import heavy libraries: loaded on first use, so that importing
# glm_live does not start the server floor (starlette) or the benchmark plots (matplotlib).
_LAZY = {
    "ClusterError": "glm_live.measure.bench.cluster",
    "HubStoreError": "glm_live.server.hub.store",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        msg = f"module 'glm_live' has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(module), name)


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext glm_live``: the ``%%glm`` and ``%glm`` magics (see
    :mod:`glm_live.notebook.magics`, imported only now, with IPython's magic machinery)."""
    from .notebook import magics

    magics.load_ipython_extension(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """``%unload_ext glm_live``: remove the magics and close the session they connected."""
    from .notebook import magics

    magics.unload_ipython_extension(ipython)


_compat.install()  # glm_live.sse, glm_live.widgets, ...: the paths before the floors

try:
    __version__ = version("glm_live")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"

__all__ = [
    "DEFAULT_BASE_URL",
    "AgentContext",
    "AgentStatus",
    "AuthError",
    "AuthenticationError",
    "Backoff",
    "Cancelled",
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
    "Conversation",
    "ConversationFormatError",
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
    "Message",
    "ModelInfo",
    "Observer",
    "Price",
    "RateLimitError",
    "Rejected",
    "ReplayFormatError",
    "ReplayHandle",
    "ResponseError",
    "RetriesExhausted",
    "Run",
    "RunHandle",
    "RunLog",
    "RunState",
    "SSEError",
    "SavedFileError",
    "ServerError",
    "Session",
    "StreamInterrupted",
    "Timings",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "TransportError",
    "UnsendableRequest",
    "Workflow",
    "WorkflowError",
    "__version__",
    "allow_nested_loops",
    "connect",
    "errors",
    "find_token",
    "issue_token",
    "model_info",
    "replay",
    "revoke_token",
    "sse",
    "tool",
]
