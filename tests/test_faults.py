"""Fault injection into every HCS call that create, start, exec and stop make.

For each call of the scenario (each occurrence of each function), the simulator fails that one
call with E_UNEXPECTED. The caller must get the typed error naming the operation and the
HRESULT, or the library must recover (a failed probe, a graceful stop escalating to a forced
one); either way, afterwards the daemon shows no handle of this process, no compute system,
no volume, and no layer folder or record is left.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Optional

import pytest

from wincontainers import Host, errors
from tests.conftest import SimulatedHost

INJECTED = 0x8000FFFF
# Calls that cannot carry an HRESULT back (one-way bookkeeping and computecore's void closes).
NOT_INJECTABLE = {"HcsCreateOperation", "HcsCloseOperation", "AllocatorMisuse"}


def scenario(host: Host) -> None:
    with host.containers.create("windowsservercore", name="faulty") as c:
        c.start(timeout=20)
        result = c.run('cmd /S /C "echo hello"', timeout=20)
        assert result.stdout == b"hello\r\n"
        assert result.returncode == 0
        c.stop(timeout=5)


def assert_clean(host: Host, sim: SimulatedHost, context: str = "") -> None:
    import gc
    import time

    deadline = time.monotonic() + 10
    while True:
        gc.collect()
        handles = sim.handle_count(os.getpid())
        objects = sim.objects()
        layers = [p.name for p in host.layers_root.iterdir()]
        records = [r.name for r in host.records.all()]
        if not (handles or objects["systems"] or objects["volumes"] or layers or records):
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"{context}: left behind: handles={sim.open_handles(os.getpid())} objects={objects} layers={layers} "
                f"records={records}"
            )
        time.sleep(0.05)


@pytest.mark.simulator("fault injection")
def test_every_call_fails_cleanly(host: Host, sim: SimulatedHost) -> None:
    pid = os.getpid()
    sim.calls(clear=True)
    scenario(host)
    calls = sim.calls(clear=True)
    assert_clean(host, sim)
    assert calls, "the scenario made no HCS calls"
    occurrences: list[tuple[str, int]] = []
    seen: Counter[str] = Counter()
    for fn in calls:
        seen[fn] += 1
        if fn not in NOT_INJECTABLE and not (host.generation == 3 and fn in ("HcsCloseComputeSystem", "HcsCloseProcess")):
            occurrences.append((fn, seen[fn]))
    assert len(occurrences) >= 10

    typed_errors = 0
    for fn, nth in occurrences:
        dll = "computecore.dll" if host.generation == 3 and fn.startswith("Hcs") and fn not in (
            "HcsDestroyLayer",) else None
        rule = sim.inject(fn, INJECTED, nth=nth, pid=pid, dll=dll)
        raised: Optional[BaseException] = None
        try:
            scenario(host)
        except errors.HcsError as exc:
            raised = exc
        fired = next(r for r in sim.faults()["faults"] if r["id"] == rule)["fired"]
        sim.clear_faults()
        if fired and raised is not None:
            typed_errors += 1
            assert isinstance(raised, errors.Unexpected), (fn, nth, raised)
            assert raised.hresult == INJECTED, (fn, nth, raised)
            assert raised.operation == fn, (fn, nth, raised)
            assert "0x8000FFFF" in str(raised) and fn in str(raised)
        assert_clean(host, sim, f"after failing {fn} #{nth} (raised {raised!r})")
    print(f"{host.generation=}: {len(occurrences)} calls failed one by one, {typed_errors} reached the caller")
    # Most calls cannot be recovered from: their failure must have reached the caller.
    assert typed_errors >= len(occurrences) // 2, (typed_errors, len(occurrences))


@pytest.mark.simulator("fault injection")
def test_create_failure_names_the_step_and_leaves_nothing(host: Host, sim: SimulatedHost) -> None:
    sim.inject("PrepareLayer", INJECTED, pid=os.getpid())
    with pytest.raises(errors.Unexpected) as info:
        host.containers.create("windowsservercore")
    assert info.value.operation == "PrepareLayer"
    assert "layer" in (info.value.subject or "")
    assert_clean(host, sim)


@pytest.mark.simulator("stops and starts the simulated service")
def test_service_disconnect_is_a_typed_error(host: Host, sim: SimulatedHost) -> None:
    c = host.containers.create("windowsservercore", "ping -t localhost")
    c.start()
    try:
        sim.stop()
        with pytest.raises(errors.ServiceDisconnected):
            c.run('cmd /S /C "echo hello"')
    finally:
        c.close()
        sim.start()
    # The daemon restarted: its compute systems are gone, the record is stale but removable.
    fresh = Host.open(sim=sim.profile.name, root=sim.root)
    stale = fresh.containers.get(c.id)
    if fresh.generation == 1:
        # TP3 cannot ask whether a container exists: the record says running unless the main
        # process's monitor already recorded the end of its wait (it failed with the disconnect).
        assert stale.status in ("running", "exited")
        stale.remove(force=True)  # TerminateComputeSystem: "not found" counts as stopped
    else:
        assert stale.status == "exited"
        stale.remove()
    assert_clean(fresh, sim)


@pytest.mark.simulator("fault injection")
def test_a_failed_undo_is_logged_and_listed_on_the_error(host: Host, sim: SimulatedHost,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """Create fails at its last step, and undoing the sandbox's volume (UnprepareLayer) fails
    too: the error the caller gets lists it as left behind, and the containers logger says so."""
    import logging

    pid = os.getpid()
    sim.calls(clear=True)
    with host.containers.create("windowsservercore"):
        pass
    calls = sim.calls(clear=True)
    create_system = next(c for c in calls if c.endswith("CreateComputeSystem"))
    sim.inject(create_system, INJECTED, pid=pid, dll="computecore.dll" if host.generation == 3 else None)
    sim.inject("UnprepareLayer", INJECTED, pid=pid, count=3)  # the undo, and both tries of the removal
    try:
        with caplog.at_level(logging.WARNING, logger="wincontainers"), pytest.raises(errors.HcsError) as info:
            host.containers.create("windowsservercore", name="undo-fails")
    finally:
        sim.clear_faults()
    assert info.value.operation == create_system
    leftovers = info.value.leftovers
    assert len(leftovers) == 1 and "volume" in leftovers[0] and "0x8000FFFF" in leftovers[0], leftovers
    assert "Left behind (undoing failed): the sandbox's volume" in str(info.value)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "wincontainers.containers"]
    assert len(warnings) == 1 and "left behind" in warnings[0].getMessage()
    assert list(host.records.all()) == []  # the other steps were undone
    for volume in sim.objects()["volumes"]:  # what the failed undo left, undone now that nothing fails
        host.driver.unprepare_layer(volume["layer"])
        host.driver.deactivate_layer(volume["layer"])
    for layer in host.layers.list():
        host.layers.destroy(layer, force=True)
    assert_clean(host, sim)
