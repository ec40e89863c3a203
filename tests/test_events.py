"""The callback registry and waits that never trust one notification."""

from __future__ import annotations

import threading
import time

import pytest

from wincontainers import errors
from wincontainers.driver.events import REGISTRY, EventSink, Notice


def test_unknown_tokens_are_dropped_and_known_ones_delivered() -> None:
    sink = EventSink("t")
    token = REGISTRY.add(sink)
    REGISTRY.on_notification(0x80000003, token, 0x80004005, '{"Error": 1}')
    REGISTRY.remove(token)
    REGISTRY.on_notification(0x1, token, 0, None)  # late callback after close: ignored
    notice = sink.wait("SystemStartCompleted", 1, operation="start", subject=None)
    assert notice.failed and notice.status == 0x80004005 and notice.data == '{"Error": 1}'
    assert sink.sticky("SystemExited") is None


def test_completions_are_consumed_exits_are_sticky() -> None:
    sink = EventSink("t")
    sink.push(Notice("SystemPauseCompleted"))
    sink.wait("SystemPauseCompleted", 1, operation="pause", subject=None)
    with pytest.raises(errors.HcsTimeout):
        sink.wait("SystemPauseCompleted", 0.05, operation="pause", subject=None)
    sink.push(Notice("ProcessExited", data="{}"))
    assert sink.wait("ProcessExited", 0, operation="wait", subject=None).data == "{}"
    assert sink.wait("ProcessExited", 0, operation="wait", subject=None).data == "{}"


def test_waits_end_on_exit_and_disconnect() -> None:
    sink = EventSink("t")
    threading.Timer(0.05, sink.push, args=(Notice("SystemExited", data='{"ExitType":"UnexpectedExit"}'),)).start()
    with pytest.raises(errors.UnexpectedExit):
        sink.wait("SystemStartCompleted", 5, operation="HcsStartComputeSystem", subject="container x")
    other = EventSink("u")
    other.push(Notice("ServiceDisconnect"))
    with pytest.raises(errors.ServiceDisconnected) as info:
        other.wait("SystemExited", 5, operation="HcsShutdownComputeSystem", subject="container x")
    assert info.value.operation == "HcsShutdownComputeSystem"


def test_a_lost_notification_is_found_by_the_probe_in_time() -> None:
    sink = EventSink("t")
    state = {"exited": False, "probes": 0}

    def probe() -> Notice | None:
        state["probes"] += 1
        return Notice("SystemExited", synthesized=True) if state["exited"] else None

    threading.Timer(0.3, state.__setitem__, args=("exited", True)).start()
    started = time.monotonic()
    notice = sink.wait("SystemExited", 5, operation="wait", subject=None, probe=probe)
    assert notice.synthesized
    assert time.monotonic() - started < 2
    assert state["probes"] >= 2


def test_wait_timeout_is_bounded() -> None:
    sink = EventSink("t")
    started = time.monotonic()
    with pytest.raises(errors.HcsTimeout) as info:
        sink.wait("SystemExited", 0.2, operation="HcsShutdownComputeSystem", subject="container x",
                  probe=lambda: None)
    assert 0.2 <= time.monotonic() - started < 1.5
    assert "no SystemExited notification within 0.2 s" in str(info.value)
