"""aio's parts on their own: signals, waits woken from another thread, probes, cancellation."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from wincontainers import aio
from wincontainers.aio import Signal, call_blocking, call_cancellable, wait_signal


def test_a_signal_calls_each_subscriber_once_even_when_subscribed_late() -> None:
    signal = Signal()
    calls: list[str] = []
    signal.subscribe(lambda: calls.append("early"))
    gone = signal.subscribe(lambda: calls.append("unsubscribed"))
    gone()
    signal.set()
    signal.set()  # a second set is nothing
    signal.subscribe(lambda: calls.append("late"))  # already set: called at once
    assert calls == ["early", "late"] and signal.is_set() and signal.wait(0)


def test_a_failing_subscriber_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    signal = Signal()
    calls: list[int] = []
    signal.subscribe(lambda: 1 / 0)  # type: ignore[func-returns-value]
    signal.subscribe(lambda: calls.append(1))
    signal.set()
    assert calls == [1] and "subscriber raised" in caplog.text


def test_a_wait_is_woken_by_a_set_on_another_thread() -> None:
    signal = Signal()

    async def main() -> tuple[bool, float]:
        threading.Timer(0.1, signal.set).start()
        started = time.monotonic()
        woke = await wait_signal(signal, timeout=5)
        return woke, time.monotonic() - started

    woke, took = asyncio.run(main())
    assert woke and 0.05 < took < 2


def test_a_wait_times_out_and_a_probe_can_end_it() -> None:
    async def main() -> tuple[bool, bool, int]:
        never = Signal()
        timed_out = await wait_signal(never, timeout=0.1)
        asked = [0]
        found = Signal()

        def probe() -> bool:  # what a lost notification leaves: only asking finds the exit
            asked[0] += 1
            if asked[0] >= 3:
                found.set()
                return True
            return False

        probed = await wait_signal(found, timeout=10, probe=probe)
        return timed_out, probed, asked[0]

    timed_out, probed, asked = asyncio.run(main())
    assert timed_out is False and probed is True and asked == 3


def test_a_cancelled_call_finishes_and_is_undone_before_the_cancellation_completes() -> None:
    undone: list[tuple[str, str]] = []
    running = threading.Event()

    def make() -> str:
        running.set()
        time.sleep(0.2)
        return "made"

    async def main() -> list[tuple[str, str]]:
        task = asyncio.ensure_future(call_blocking(make, undo=lambda made: undone.append(
            (made, threading.current_thread().name))))
        while not running.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return list(undone)  # as the caller sees it when it goes on

    seen = asyncio.run(main())
    assert [made for made, _ in seen] == ["made"]
    assert seen[0][1].startswith("wc-aio")  # the undo blocked a pool thread, not the loop


def test_cancelled_twice_the_caller_goes_on_and_the_undo_still_happens() -> None:
    undone: list[str] = []
    running, release = threading.Event(), threading.Event()

    def make() -> str:
        running.set()
        release.wait(10)
        return "made"

    async def main() -> None:
        task = asyncio.ensure_future(call_blocking(make, undo=undone.append))
        while not running.is_set():
            await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.sleep(0.05)  # now waiting for make to return
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert undone == []  # make has not returned: nothing to undo yet

    asyncio.run(main())
    release.set()
    deadline = time.monotonic() + 5
    while not undone and time.monotonic() < deadline:
        time.sleep(0.01)
    assert undone == ["made"]


def test_a_call_cancelled_while_queued_never_runs() -> None:
    ran: list[str] = []
    release = threading.Event()
    busy = [aio.shared_pool().submit(release.wait, 10) for _ in range(aio.POOL_SIZE)]

    async def main() -> None:
        task = asyncio.ensure_future(call_blocking(ran.append, "late", undo=lambda _: ran.append("undone")))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    try:
        asyncio.run(main())
    finally:
        release.set()
    for f in busy:
        f.result(10)
    aio.shared_pool().submit(lambda: None).result(10)  # anything queued behind them has had its turn
    assert ran == []


def test_a_cancellable_call_stops_part_way_and_the_cancel_waits_for_it() -> None:
    steps: list[int] = []

    def work(cancel: threading.Event) -> int:
        for i in range(200):
            if cancel.is_set():
                steps.append(-1)  # its clean-up
                raise RuntimeError("stopped")
            steps.append(i)
            time.sleep(0.01)
        return len(steps)

    async def main() -> None:
        task = asyncio.ensure_future(call_cancellable(work))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert steps[-1] == -1  # the cancellation completed after the clean-up, not before

    asyncio.run(main())
    assert len(steps) < 100


def test_the_pool_is_shared_and_bounded() -> None:
    assert aio.shared_pool() is aio.shared_pool()
    assert aio.shared_pool()._max_workers == aio.POOL_SIZE
