"""``glm_live.connect()``: a session with the runtime, for notebooks and scripts.

A :class:`Session` holds a GLM client, a hub connection, a :class:`~glm_live.metrics.Recorder`
(every chat, run and hub heartbeat it makes) and a background event loop. With no
URL it starts the embedded runtime (simulated GLM-4.6) on a free loopback port. Its calls
return at once with a live handle (see :mod:`glm_live.aio`):

- ``session.chat(prompt, **params)`` → :class:`ChatHandle`: iterate the chunks, ``await`` or
  ``.wait()`` for the completion, ``.cancel()``;
- ``session.run("account-review", account="Globex")`` → :class:`RunHandle`: iterate the
  AG-UI events; ``.state``, ``.agents``, ``.messages`` follow them; ``.control(...)`` pauses,
  resumes, cancels an agent or gives it input; ``.cancel()`` stops the run on the server.
  A :class:`~glm_live.agents.Workflow` object runs in this process instead, on the same loop.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from ag_ui.core import BaseEvent

from ..agents.core import Run, Workflow
from ..measure.recorder import Recorder
from ..protocols.agui import AgentStatus, RunState, event_dict, parse_event
from ..protocols.glm import ChatStream, Chunk, Completion, GLMClient
from ..protocols.runtime import find_token
from ..transport.hub_client import Connection
from ..transport.sse_client import ConnectionEvent, EventSource
from ._env import in_kernel
from .aio import Handle, LoopThread, background_loop

if TYPE_CHECKING:  # the server floor is imported only when an embedded runtime is started
    from ..server.runner import ServerHandle

__all__ = ["ChatHandle", "RunHandle", "Session", "connect"]


class ChatHandle(Handle[Chunk, Completion]):
    """A streamed chat: chunks as they come; the completion at the end."""

    def __init__(
        self,
        session: Session,
        messages: Any,
        params: dict[str, Any],
        show: Callable[[ChatHandle, str], Any] | None = None,
    ) -> None:
        super().__init__(session.loop)
        self.recorder = session.recorder
        label = messages if isinstance(messages, str) else str(messages[-1].get("content", ""))
        self.request = self.recorder.begin(label[:80], kind="chat", model=params.get("model"))
        self._stream: ChatStream = session.client.stream(messages, **params)
        #: The StreamView showing this chat, when displayed.
        self.view: Any = None
        if show is not None:
            self.view = show(self, label[:80])
        self._start()

    @property
    def completion(self) -> Completion:
        """The completion so far (complete once done)."""
        return self._stream.completion

    async def _produce(self) -> AsyncIterator[Chunk]:
        recorder, request = self.recorder, self.request
        try:
            async with self._stream:
                async for chunk in self._stream:
                    recorder.record_chunk(request, chunk)
                    yield chunk
        except BaseException as exc:
            status = "cancelled" if isinstance(exc, asyncio.CancelledError) else "error"
            recorder.end(request, status=status, error=exc, completion=self._stream.completion)
            raise
        recorder.end(request, completion=self._stream.completion)

    def _result(self) -> Completion:
        return self._stream.completion

    def __repr__(self) -> str:
        state = "done" if self.done else "streaming"
        return f"<ChatHandle {state}, {self.completion.chunks} chunks>"


class RunHandle(Handle[BaseEvent, RunState]):
    """A workflow run: AG-UI events as they come; the folded :class:`RunState` at the end."""

    def __init__(
        self,
        session: Session,
        workflow: str | Workflow,
        inputs: dict[str, Any],
        sim: Mapping[str, Any] | None,
        show: Callable[[RunHandle, str], Any] | None = None,
    ) -> None:
        super().__init__(session.loop)
        self.session = session
        self.workflow = workflow
        self.inputs = inputs
        self.sim = dict(sim) if sim else None
        self.run_id = uuid.uuid4().hex
        self.thread_id = uuid.uuid4().hex
        self.folded = RunState()
        self._local: Run | None = None
        self.recorder = session.recorder
        name = workflow if isinstance(workflow, str) else workflow.name
        self.request = self.recorder.begin(name, kind="run")
        #: The AgentBoard showing this run, when displayed.
        self.view: Any = None
        if show is not None:
            self.view = show(self, name)
        self._start()

    @property
    def state(self) -> Any:
        """The shared state, snapshots and deltas applied."""
        return self.folded.state

    @property
    def agents(self) -> dict[str, AgentStatus]:
        """Per agent: status, progress, current step, last message, timings."""
        return self.folded.agents

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The run's text messages: ``id``, ``role``, ``name`` (the agent), ``content``."""
        return self.folded.messages

    @property
    def status(self) -> str:
        return self.folded.status

    async def _produce(self) -> AsyncIterator[BaseEvent]:
        recorder, request = self.recorder, self.request
        index = 0
        try:
            async for event in self._events():
                recorder.event(request, index, time.perf_counter_ns(), 0, "agui")
                index += 1
                yield event
        except BaseException as exc:
            status = "cancelled" if isinstance(exc, asyncio.CancelledError) else "error"
            recorder.end(request, status=status, error=exc)
            raise
        recorder.end(
            request,
            status="ok" if self.folded.status == "finished" else self.folded.status,
            run_id=self.folded.run_id,
        )

    async def _events(self) -> AsyncIterator[BaseEvent]:
        if isinstance(self.workflow, Workflow):
            async for event in self._run_here(self.workflow):
                yield event
            return
        body = {
            "threadId": self.thread_id,
            "runId": self.run_id,
            "state": {},
            "messages": [
                {
                    "id": uuid.uuid4().hex,
                    "role": "user",
                    "content": str(self.inputs.get("prompt", "")),
                }
            ],
            "tools": [],
            "context": [],
            "forwardedProps": {"inputs": self.inputs, **({"sim": self.sim} if self.sim else {})},
        }
        source = EventSource(
            f"{self.session.url}/agents/{self.workflow}",
            "POST",
            json=body,
            headers=self.session.auth_headers,
            reconnect=False,
            idle_timeout=300,
        )
        async with source:
            async for sse in source:
                event = parse_event(sse.data)
                self.folded.apply(event)
                yield event

    async def _run_here(self, workflow: Workflow) -> AsyncIterator[BaseEvent]:
        run = self._local = Run(
            workflow,
            self.session.client,
            inputs=self.inputs,
            run_id=self.run_id,
            thread_id=self.thread_id,
            chat_defaults={"sim": self.sim} if self.sim else None,
        )
        hub = self.session.hub
        async for event in run.events():
            self.folded.apply(event)
            if hub is not None:
                await hub.publish(f"run:{self.run_id}", event_dict(event))
            yield event

    def _result(self) -> RunState:
        return self.folded

    def control(self, command: str, agent: str | None = None, data: Any = None) -> None:
        """``pause``, ``resume``, ``cancel`` or ``input`` (human input) for ``agent``, or for
        every agent when ``agent`` is ``None`` (``cancel`` then stops the whole run)."""
        if command not in ("pause", "resume", "cancel", "input"):
            msg = f"unknown command {command!r}: use pause, resume, cancel or input"
            raise ValueError(msg)
        if self._local is not None:
            local = self._local
            self.session.loop.loop.call_soon_threadsafe(local.control, agent, command, data)
            return
        message = {"command": command, "agent": agent, "data": data}
        hub = self.session.hub
        if hub is None:
            msg = "this session has no hub connection to send commands through"
            raise RuntimeError(msg)
        self.session.loop.submit(hub.publish(f"control:{self.run_id}", message))

    def __repr__(self) -> str:
        name = self.workflow if isinstance(self.workflow, str) else self.workflow.name
        return f"<RunHandle {name} {self.folded.status}, {len(self.agents)} agents>"


class Session:
    """A connection to a runtime: GLM client, hub connection, background loop.

    Use :func:`connect` to make one. ``close()`` (or ``with``) releases everything,
    including an embedded runtime (see :attr:`embedded`).
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        loop: LoopThread | None = None,
        embedded: ServerHandle | None = None,
        hub: bool = True,
        model: str = "glm-4.6",
        name: str | None = None,
        heartbeat: float = 5.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.loop = loop or background_loop()
        self._embedded = embedded
        self.auth_headers = {"Authorization": f"Bearer {token}"} if token else {}
        # The runtime's token is the key here; never the user's ZAI_API_KEY.
        self.client = GLMClient(base_url=self.url + "/v1", api_key=token or "", model=model)
        #: Every chat, run and hub heartbeat of this session, as DataFrames on demand.
        self.recorder = Recorder()
        self._panel: Any = None
        self.hub: Connection | None = None
        if hub:
            self.hub = Connection(
                self.url,
                token=token,
                name=name,
                kind="notebook",
                heartbeat=heartbeat,
                observers=[self._observe_hub],
            )
            self.loop.loop.call_soon_threadsafe(self.hub.start)

    def _observe_hub(self, change: ConnectionEvent) -> None:
        if change.kind == "heartbeat" and change.delay is not None:
            self.recorder.sample("hub_rtt_s", change.delay)
        elif change.kind == "reconnecting":
            self.recorder.sample("hub_reconnects", change.reconnects)

    @property
    def embedded(self) -> ServerHandle | None:
        """The embedded runtime this session started, or ``None`` (connected to a URL, or closed).

        Its :class:`~glm_live.server.ServerHandle`: ``.runtime`` registers workflows
        (``session.embedded.runtime.register(flow)``) and shows the runs in progress
        (``.runtime.runs.runs``); ``.port`` is the port it listens on, for a proxy put in front
        of it. :meth:`close` stops it.
        """
        return self._embedded

    def __repr__(self) -> str:
        kind = "embedded simulator" if self._embedded is not None else "remote"
        return f"<glm_live.Session {self.url} ({kind})>"

    def chat(
        self, prompt_or_messages: Any, *, display: bool | None = None, **params: Any
    ) -> ChatHandle:
        """Start a streamed chat; returns at once with its live handle.

        In a notebook its :class:`~glm_live.widgets.StreamView` is displayed (``display=False``
        opts out); in a script nothing is.
        """
        show = self._show_chat if _wants_display(display) else None
        return ChatHandle(self, prompt_or_messages, params, show)

    def run(
        self,
        workflow: str | Workflow,
        *,
        sim: Mapping[str, Any] | None = None,
        display: bool | None = None,
        **inputs: Any,
    ) -> RunHandle:
        """Start a workflow run (a name the runtime serves, or a Workflow to run here).

        ``sim`` passes simulator knobs to every chat of the run. In a notebook its
        :class:`~glm_live.widgets.AgentBoard` is displayed (``display=False`` opts out).
        """
        show = self._show_run if _wants_display(display) else None
        return RunHandle(self, workflow, inputs, sim, show)

    def panel(self) -> Any:
        """A :class:`~glm_live.widgets.LivePanel` for this session: the hub connection, live
        latency metrics, and the views of the chats and runs started from now on."""
        from .widgets import LivePanel

        if self._panel is None:
            self._panel = LivePanel()
            self._panel.indicator.update(url=self.hub.url if self.hub else "")
            if self.hub is not None:
                self.hub.add_observer(self._panel.indicator.observe_connection)
        return self._panel

    def _show_chat(self, handle: ChatHandle, title: str) -> Any:
        from IPython.display import display

        from .widgets import StreamView

        view = StreamView(title=title, on_stop=handle.cancel)
        panel = self._panel

        def finished(result: Completion | None, error: BaseException | None) -> None:
            if isinstance(error, asyncio.CancelledError):
                view.finish("cancelled", "stopped")
            elif error is not None:
                view.finish("error", error)
                if panel is not None:
                    panel.dashboard.fail()
            else:
                usage = (result.usage or {}) if result is not None else {}
                view.finish("done", usage_tokens=usage.get("completion_tokens"))
                if panel is not None and result is not None:
                    panel.dashboard.record(result)

        handle.on_item(lambda chunk: view.feed_chunk(chunk, handle.completion))
        handle.on_done(finished)
        if panel is not None:
            panel.add(view)
        else:
            display(view)  # type: ignore[no-untyped-call]
        return view

    def _show_run(self, handle: RunHandle, title: str) -> Any:
        from IPython.display import display

        from .widgets import AgentBoard

        board = AgentBoard(title=title)
        handle.on_item(lambda _: board.show(handle.folded))

        def finished(result: RunState | None, error: BaseException | None) -> None:
            if isinstance(error, asyncio.CancelledError):
                handle.folded.status = "cancelled"
            elif error is not None:
                handle.folded.status, handle.folded.error = "error", str(error)
            board.show(handle.folded)

        handle.on_done(finished)
        if self._panel is not None:
            self._panel.add(board)
        else:
            display(board)  # type: ignore[no-untyped-call]
        return board

    def close(self) -> None:
        """Close the hub connection and the client; stop an embedded runtime."""
        if self.hub is not None:
            self.loop.run(self.hub.aclose(), timeout=10)
        self.loop.run(self.client.aclose(), timeout=10)
        if self._embedded is not None:
            self._embedded.close()
            self._embedded = None

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _wants_display(display: bool | None) -> bool:
    """Display widgets by default only inside a Jupyter kernel."""
    return in_kernel() if display is None else display


def connect(
    url: str | None = None,
    token: str | None = None,
    *,
    hub: bool = True,
    heartbeat: float = 5.0,
    **serve_options: Any,
) -> Session:
    """A :class:`Session` with the runtime at ``url``, or with an embedded one.

    Without ``url``, starts the embedded runtime (simulated GLM-4.6, loopback, a free port);
    ``serve_options`` go to :func:`glm_live.server.serve` (``sim=``, ``seed=``...). Its token
    (made for it, or ``token``) is passed on to the session's client and hub connection:
    nothing to copy, and nothing printed.

    With ``url`` and no ``token``, the token is found by
    :func:`glm_live.protocols.runtime.find_token`: ``GLM_LIVE_TOKEN``, else the runtime file
    ``glm-live serve`` wrote for that URL.
    """
    if url is None:
        from ..server import serve  # the server floor, only when asked for

        embedded = serve(token=token, **serve_options)
        return Session(
            embedded.url, token=embedded.token, embedded=embedded, hub=hub, heartbeat=heartbeat
        )
    if token is None:
        token = find_token(url)
    return Session(url, token=token, hub=hub, heartbeat=heartbeat)
