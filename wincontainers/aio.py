"""What the ``*_async`` methods are made of: signals HCS callbacks set, and one small shared pool.

asyncio and HCS meet in two ways:

- **Waits** (a process's exit, a container's exit, output arriving) are :class:`Signal`\\ s:
  the thread that learns of the event (HCS's callback thread, an output pump) sets it, and an
  awaiting task is woken through ``loop.call_soon_threadsafe``. No thread waits for it.
  Where HCS may lose a notification, the waiter also asks now and then (a short query run
  on the pool), as the blocking waits do.
- **Calls** that block in HCS or in file work (start, stop, layer import, build) run on one
  :func:`shared_pool` of :data:`POOL_SIZE` threads for the whole process, so 50 containers
  started at once in one loop use those few threads, not 50.

Cancelling an awaited call cannot take back an HCS call already running: :func:`call_blocking`
lets it finish and then runs the caller's undo step on what it made (a started container is
stopped, an imported layer destroyed), and the cancellation completes once that is done, so
the caller goes on with nothing half made. A call still queued is simply dropped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from typing import Any, Callable, Optional, TypeVar

__all__ = ["Signal", "POOL_SIZE", "shared_pool", "call_blocking", "call_cancellable", "wait_signal"]

log = logging.getLogger("wincontainers.aio")

T = TypeVar("T")

#: threads of the shared pool (blocking HCS and file calls made by ``*_async`` methods)
POOL_SIZE = 4

_pool: Optional[concurrent.futures.ThreadPoolExecutor] = None
_pool_lock = threading.Lock()


class Signal:
    """A one-shot event (like :class:`threading.Event`) that also calls subscribers when set.

    Subscribers run on the thread that sets it (an HCS callback thread: they must only hand
    the news on, as ``loop.call_soon_threadsafe`` does).
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._subscribers: list[Callable[[], None]] = []

    def set(self) -> None:
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            subscribers, self._subscribers = self._subscribers, []
        for subscriber in subscribers:
            try:
                subscriber()
            except Exception:  # a subscriber's failure must not stop the others, or HCS's thread
                log.exception("a signal subscriber raised")

    def is_set(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: Optional[float] = None) -> bool:
        return self._event.wait(timeout)

    def subscribe(self, subscriber: Callable[[], None]) -> Callable[[], None]:
        """Call ``subscriber`` once when set (at once when it already is); returns the unsubscribe."""
        with self._lock:
            if not self._event.is_set():
                self._subscribers.append(subscriber)

                def unsubscribe() -> None:
                    with self._lock:
                        if subscriber in self._subscribers:
                            self._subscribers.remove(subscriber)

                return unsubscribe
        subscriber()
        return lambda: None


def shared_pool() -> concurrent.futures.ThreadPoolExecutor:
    """The process's pool for blocking calls made on behalf of a loop (threads made on demand)."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(POOL_SIZE, thread_name_prefix="wc-aio")
        return _pool


async def call_blocking(fn: Callable[..., T], *args: Any, undo: Optional[Callable[[T], Any]] = None,
                        **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` on the shared pool, awaited.

    Cancelled while queued, ``fn`` never runs. Cancelled while ``fn`` runs: without ``undo``
    the cancellation is at once (``fn`` finishes on the pool, unseen: a stop goes on
    stopping); with ``undo`` it completes once ``fn`` has returned and ``undo`` (on the pool)
    has taken back what it made, so the caller goes on with nothing left behind.
    """
    future = shared_pool().submit(fn, *args, **kwargs)
    if undo is None:
        return await asyncio.wrap_future(future)
    wrapped = _wrapped(future)
    try:
        return await asyncio.shield(wrapped)
    except asyncio.CancelledError:
        if not future.cancel():  # running: it finishes, then what it made is undone
            await _undo_when_done(future, wrapped, undo)
        raise


async def call_cancellable(fn: Callable[[threading.Event], T], *, undo: Optional[Callable[[T], Any]] = None) -> T:
    """``fn(cancel)`` on the shared pool, awaited; for work that can stop part-way.

    Cancelling the awaiting task sets ``cancel``, which ``fn`` checks as it goes and then
    stops, removing what it made (as on a failure). The cancellation completes only once
    ``fn`` has returned, so nothing is half made when the caller goes on; if ``fn`` finished
    before it saw the event, ``undo`` gets its result first.
    """
    cancel = threading.Event()
    future = shared_pool().submit(fn, cancel)
    wrapped = _wrapped(future)
    try:
        return await asyncio.shield(wrapped)
    except asyncio.CancelledError:
        cancel.set()
        if not future.cancel():
            await _undo_when_done(future, wrapped, undo)
        raise


def _wrapped(future: "concurrent.futures.Future[T]") -> "asyncio.Future[T]":
    """``future`` for the loop. Awaited through :func:`asyncio.shield`, whose cancellation leaves
    it unobserved: a failure of the call after that (it stopped, as asked) is the expected end,
    not an "exception never retrieved" for asyncio to log when it is collected."""
    wrapped = asyncio.wrap_future(future)
    wrapped.add_done_callback(lambda done: done.cancelled() or done.exception())
    return wrapped


async def _undo_when_done(future: "concurrent.futures.Future[T]", wrapped: "asyncio.Future[T]",
                          undo: Optional[Callable[[T], Any]]) -> None:
    """After a cancellation: wait until ``future``'s call returns, then ``undo`` what it made
    (on the pool: an undo blocks in HCS too). A call that failed made nothing. Cancelled again
    meanwhile, the undo still happens, in the background (only the waiting is given up)."""
    try:
        made = await asyncio.shield(wrapped)
    except asyncio.CancelledError:
        if undo is not None:
            future.add_done_callback(lambda done: _undo_finished(done, undo))
        raise
    except Exception:  # noqa: BLE001 - it stopped (cancelled, or failed) and cleaned up after itself
        return
    if undo is not None:
        await asyncio.shield(asyncio.wrap_future(shared_pool().submit(_undo, undo, made)))


def _undo_finished(done: "concurrent.futures.Future[T]", undo: Callable[[T], Any]) -> None:
    if done.cancelled() or done.exception() is not None:
        return  # it made nothing, or cleaned up after itself as a failed call does
    _undo(undo, done.result())


def _undo(undo: Callable[[T], Any], made: T) -> None:
    """Undo what a cancelled call made; a failure is logged (the cancellation is what the
    caller gets, and on the pool nobody else could be told)."""
    try:
        undo(made)
    except Exception:  # noqa: BLE001
        log.warning("undoing a cancelled call failed; what it made may be left", exc_info=True)


async def wait_signal(signal: Signal, timeout: Optional[float] = None,
                      probe: Optional[Callable[[], bool]] = None) -> bool:
    """Wait for ``signal`` in the running loop, up to ``timeout`` seconds; False on timeout.

    ``probe`` (a short blocking query, run on the pool) is asked every now and then, 50 ms
    doubling to 1 s, in case the notification that sets the signal was lost; it returns True
    when the awaited thing has happened (and should set the signal itself).
    """
    if signal.is_set():
        return True
    loop = asyncio.get_running_loop()
    woken: asyncio.Future[None] = loop.create_future()

    def wake() -> None:
        loop.call_soon_threadsafe(_resolve, woken)

    unsubscribe = signal.subscribe(wake)
    deadline = None if timeout is None else loop.time() + timeout
    interval = 0.05
    try:
        while not signal.is_set():
            remaining = None if deadline is None else deadline - loop.time()
            if remaining is not None and remaining <= 0:
                return False
            pause = remaining if probe is None else (interval if remaining is None else min(interval, remaining))
            try:
                await asyncio.wait_for(asyncio.shield(woken), pause)
            except asyncio.TimeoutError:
                if probe is not None and await call_blocking(probe):
                    return True
                interval = min(interval * 2, 1.0)
        return True
    finally:
        unsubscribe()
        if not woken.done():
            woken.cancel()


def _resolve(future: "asyncio.Future[None]") -> None:
    if not future.done():
        future.set_result(None)

