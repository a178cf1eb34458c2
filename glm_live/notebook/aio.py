"""Running async work from notebook cells, without ``nest_asyncio``.

Network I/O runs on one background event loop thread (:class:`LoopThread`), so a handle keeps
streaming while a cell blocks in ``h.wait()`` (blocking the kernel's own loop would deadlock
it) and after the cell has ended. A :class:`Handle` is the cell's view of such work:

- ``async for item in h``: items as they come, from any event loop (the kernel's, via
  top-level ``await``, or another);
- ``await h``: the result. Cancelling or timing out the code that awaits
  (``asyncio.wait_for(h, 5)``, an interrupted cell) leaves the work running, as a cell
  ending does: only ``h.cancel()`` stops it;
- ``h.wait(timeout=None)``: the result, blocking (from a script or a plain cell);
- ``h.cancel()``: stop the work (thread-safe);
- ``h.status``: ``running``, then one end state: ``done``, ``cancelled``, ``error`` or
  ``interrupted`` (the stream was lost before the work ended).

Items are kept, so iterating after the fact replays them all.

A cancelled handle's ``await``/``wait()``/iteration raise :class:`~glm_live.Cancelled` (with
``.partial``, what had arrived), not :class:`asyncio.CancelledError`: the cell awaiting it was
not cancelled, the work was, and a bare ``CancelledError`` escaping into a cell reads as if the
cell itself had been interrupted.

Works with ``nest_asyncio`` applied (many notebooks do): nothing here runs a loop inside
another, and waiting from another loop goes through plain futures woken with
``call_soon_threadsafe``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Coroutine, Generator
from typing import Any, Generic, TypeVar

from ..errors import Cancelled, StreamInterrupted

__all__ = ["Handle", "LoopThread", "allow_nested_loops", "background_loop"]

logger = logging.getLogger("glm_live.aio")

T = TypeVar("T")
R = TypeVar("R")


class LoopThread:
    """An event loop running forever on a daemon thread."""

    def __init__(self, name: str = "glm-live-loop") -> None:
        self.loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self.thread = threading.Thread(target=self._main, name=name, daemon=True)
        self.thread.start()
        self._started.wait(10)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(self._started.set)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop; returns a thread-safe future of its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and block for its result (not from the loop's thread)."""
        if threading.current_thread() is self.thread:
            msg = "LoopThread.run() called from its own loop: await the coroutine instead"
            raise RuntimeError(msg)
        return self.submit(coro).result(timeout)

    @property
    def in_loop(self) -> bool:
        return threading.current_thread() is self.thread


_default: LoopThread | None = None
_default_lock = threading.Lock()


def background_loop() -> LoopThread:
    """The process-wide background loop (started on first use)."""
    global _default
    with _default_lock:
        if _default is None or not _default.thread.is_alive():
            _default = LoopThread()
        return _default


class Handle(ABC, Generic[T, R]):
    """Live work on the background loop: iterate its items, await or wait for its result.

    Subclasses implement :meth:`_produce`, an async generator run on the background loop,
    and :meth:`_result`, called there when it ends, and call :meth:`_start` once set up.
    """

    def __init__(self, loop: LoopThread) -> None:
        self._loop = loop
        self.items: list[T] = []
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._finished = False
        self._task: asyncio.Task[R] | None = None
        self._future: concurrent.futures.Future[R] = concurrent.futures.Future()
        self._listeners: list[Callable[[T], None]] = []
        self._finishers: list[Callable[[R | None, BaseException | None], None]] = []
        self._cancel_requested = False
        self._ended = False
        self._error: BaseException | None = None
        self._started_at = time.monotonic()
        self._ended_at: float | None = None
        self._started = False
        self._value: R | None = None

    #: What the work is called in messages ("chat", "run").
    noun = "work"

    def _start(self) -> None:
        self._started = True
        self._future = self._loop.submit(self._main())

    def _restart(self) -> None:
        """Produce again on this handle, once it has ended: a continuation of the same work
        (a run resumed after it waited for a person). The items go on from where they were
        (iterating anew replays them all), :attr:`status` is ``running`` again, and
        awaiting or waiting gives the new end; listeners and finishers are called again.

        Raises:
            RuntimeError: The work has not ended.
        """
        if not self._future.done():
            msg = f"this {self.noun} is still running: it can only be continued once it ended"
            raise RuntimeError(msg)
        with self._lock:
            self._finished = False
        self._ended, self._ended_at, self._error, self._value = False, None, None, None
        self._cancel_requested, self._task = False, None
        self._start()

    async def _main(self) -> R:
        self._task = asyncio.current_task()
        result: R | None = None
        failure: BaseException | None = None
        try:
            if self._cancel_requested:  # cancelled before it started
                raise asyncio.CancelledError
            async for item in self._produce():
                self._push(item)
            result = self._result()
            return result
        except asyncio.CancelledError as exc:
            if not self._cancel_requested:  # the loop is going away: stay a cancellation
                failure = exc
                raise
            failure = self._cancelled()
            raise failure from None
        except BaseException as exc:
            failure = exc
            raise
        finally:
            self._value, self._error = result, failure
            self._ended, self._ended_at = True, time.monotonic()
            for finisher in self._finishers:
                try:
                    finisher(result, failure)
                except Exception:
                    logger.exception("a handle's finisher failed")
            with self._lock:
                self._finished = True
                waiters, self._waiters = self._waiters, []
            for loop, waiter in waiters:
                _wake(loop, waiter)

    @abstractmethod
    def _produce(self) -> AsyncIterator[T]:
        """The items, produced on the background loop."""

    @abstractmethod
    def _result(self) -> R:
        """The result, once the items are all out."""

    def _push(self, item: T) -> None:
        with self._lock:
            self.items.append(item)
            waiters, self._waiters = self._waiters, []
        for loop, waiter in waiters:
            _wake(loop, waiter)
        for listener in list(self._listeners):
            listener(item)

    def on_done(self, finisher: Callable[[R | None, BaseException | None], None]) -> None:
        """Call ``finisher(result, error)`` on the background loop when the work ends."""
        self._finishers.append(finisher)

    def on_item(self, listener: Callable[[T], None]) -> None:
        """Call ``listener(item)`` on the background loop for every item from now on."""
        self._listeners.append(listener)

    def follow(
        self,
        on_item: Callable[[T], None],
        on_done: Callable[[R | None, BaseException | None], None],
    ) -> None:
        """Call ``on_item`` for every item, those that came already first, and ``on_done``
        when the work ends (at once if it has): for a view made at any time.

        Runs on the background loop (or here, before the work has started), where items are
        pushed, so no item is missed or seen twice.
        """

        def attach() -> None:
            for item in list(self.items):
                on_item(item)
            if self._ended:
                on_done(self._value, self._error)
            # Kept after the end too: a handle that :meth:`_restart` continues goes on
            # calling them (a run resumed after it waited for a person).
            self._listeners.append(on_item)
            self._finishers.append(on_done)

        if not self._started or self._loop.in_loop:
            attach()
        else:
            self._loop.loop.call_soon_threadsafe(attach)

    @property
    def done(self) -> bool:
        """Whether the work has ended (finished, failed or cancelled)."""
        return self._future.done()

    @property
    def status(self) -> str:
        """``running``, or how the work ended: ``done``, ``cancelled``, ``error`` or
        ``interrupted`` (the stream was lost before the work ended)."""
        if not self._ended:
            return "running"
        return self._status_of(self._error)

    def _status_of(self, error: BaseException | None) -> str:
        """The end state for the work's exception (``None``: it finished)."""
        if error is None:
            return "done"
        if isinstance(error, Cancelled | asyncio.CancelledError):
            return "cancelled"
        if isinstance(error, StreamInterrupted):
            return "interrupted"
        return "error"

    @property
    def elapsed(self) -> float:
        """Seconds since the work started (until it ended, once it has)."""
        return (self._ended_at or time.monotonic()) - self._started_at

    def _partial(self) -> Any:
        """What had arrived, for :class:`~glm_live.Cancelled` (subclasses say)."""
        return list(self.items)

    def _cancelled(self) -> Cancelled:
        return Cancelled(
            f"this {self.noun} was cancelled (.cancel() or its Stop button) after "
            f"{len(self.items)} items and {self.elapsed:.1f} s; what had arrived is on the "
            f"error's .partial; start a new {self.noun} to try again",
            partial=self._partial(),
        )

    def cancel(self) -> None:
        """Stop the work (safe from any thread; nothing happens once it has ended).

        Awaiting or waiting for it then raises :class:`~glm_live.Cancelled`, whose
        ``partial`` holds what had arrived; :attr:`status` becomes ``cancelled``.
        """
        if self._ended:
            return
        self._cancel_requested = True

        def cancel_task() -> None:
            if self._task is not None:
                self._task.cancel()
            # else: _main has not started; it sees _cancel_requested first thing

        self._loop.loop.call_soon_threadsafe(cancel_task)

    def wait(self, timeout: float | None = None) -> R:
        """Block until the result (``TimeoutError`` after ``timeout`` seconds).

        Raises the work's error: :class:`~glm_live.Cancelled` if it was cancelled. Not from
        the background loop itself: that would deadlock, so it raises instead.
        """
        if self._loop.in_loop:
            msg = "wait() on the background loop would deadlock: use 'await handle'"
            raise RuntimeError(msg)
        try:
            return self._future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"not finished after {timeout} s") from None
        except concurrent.futures.CancelledError:  # the loop cancelled it, not .cancel()
            raise self._cancelled() from None

    async def _result_here(self) -> R:
        """The result, awaited on the caller's loop (whatever loop that is)."""
        if not self._future.done():
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()

            def wake(_: object) -> None:
                _wake(loop, waiter)

            self._future.add_done_callback(wake)
            await waiter
        try:
            return self._future.result()
        except concurrent.futures.CancelledError:
            raise self._cancelled() from None

    def __await__(self) -> Generator[Any, None, R]:
        return self._result_here().__await__()

    async def __aiter__(self) -> AsyncIterator[T]:
        index = 0
        while True:
            with self._lock:
                if index < len(self.items):
                    item = self.items[index]
                    waiter = None
                elif self._finished:
                    break
                else:
                    loop = asyncio.get_running_loop()
                    waiter = loop.create_future()
                    self._waiters.append((loop, waiter))
            if waiter is not None:
                await waiter
                continue
            index += 1
            yield item
        await self._result_here()  # raise the work's exception, if it failed


def _wake(loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[None]) -> None:
    def set_result() -> None:
        if not waiter.done():
            waiter.set_result(None)

    if loop.is_closed():
        return
    loop.call_soon_threadsafe(set_result)


def allow_nested_loops() -> None:
    """Let synchronous code run an event loop inside a running one (``nest_asyncio``).

    glm_live does not need it: its I/O runs on a background loop thread, and a cell can
    ``await`` a handle or block in ``h.wait()``. Other libraries' synchronous calls that run
    ``asyncio.run`` or ``loop.run_until_complete`` inside a notebook's running loop do; this
    is the one explicit opt-in (glm_live never applies it on import). It patches asyncio for
    the whole process: every library's loops are affected, which is why it is not the default.

    Raises:
        ImportError: The ``nest`` extra is not installed (``pip install 'glm_live[nest]'``).
    """
    try:
        import nest_asyncio
    except ImportError as exc:
        msg = (
            "allow_nested_loops() needs nest-asyncio: pip install 'glm_live[nest]' "
            "(glm_live itself works without it: await handles, or use h.wait())"
        )
        raise ImportError(msg) from exc
    nest_asyncio.apply()
