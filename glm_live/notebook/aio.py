"""Running async work from notebook cells, without ``nest_asyncio``.

Network I/O runs on one background event loop thread (:class:`LoopThread`), so a handle keeps
streaming while a cell blocks in ``h.wait()`` (blocking the kernel's own loop would deadlock
it) and after the cell has ended. A :class:`Handle` is the cell's view of such work:

- ``async for item in h``: items as they come, from any event loop (the kernel's, via
  top-level ``await``, or another);
- ``await h``: the result;
- ``h.wait(timeout=None)``: the result, blocking (from a script or a plain cell);
- ``h.cancel()``: stop the work (thread-safe).

Items are kept, so iterating after the fact replays them all.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Coroutine, Generator
from typing import Any, Generic, TypeVar

__all__ = ["Handle", "LoopThread", "background_loop"]

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

    def _start(self) -> None:
        self._future = self._loop.submit(self._main())

    async def _main(self) -> R:
        self._task = asyncio.current_task()
        result: R | None = None
        failure: BaseException | None = None
        try:
            async for item in self._produce():
                self._push(item)
            result = self._result()
            return result
        except BaseException as exc:
            failure = exc
            raise
        finally:
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

    @property
    def done(self) -> bool:
        """Whether the work has ended (finished, failed or cancelled)."""
        return self._future.done()

    def cancel(self) -> None:
        """Stop the work (safe from any thread); awaiting it then raises ``CancelledError``."""
        task = self._task
        if task is not None:
            self._loop.loop.call_soon_threadsafe(task.cancel)
        else:
            self._future.cancel()

    def wait(self, timeout: float | None = None) -> R:
        """Block until the result (``TimeoutError`` after ``timeout`` seconds).

        Not from the background loop itself: that would deadlock, so it raises instead.
        """
        if self._loop.in_loop:
            msg = "wait() on the background loop would deadlock: use 'await handle'"
            raise RuntimeError(msg)
        try:
            return self._future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise TimeoutError(f"not finished after {timeout} s") from None

    def __await__(self) -> Generator[Any, None, R]:
        return asyncio.wrap_future(self._future).__await__()

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
        await asyncio.wrap_future(self._future)  # raise the work's exception, if it failed


def _wake(loop: asyncio.AbstractEventLoop, waiter: asyncio.Future[None]) -> None:
    def set_result() -> None:
        if not waiter.done():
            waiter.set_result(None)

    if loop.is_closed():
        return
    loop.call_soon_threadsafe(set_result)
