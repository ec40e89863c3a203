"""Shared fixtures: one simulated host per profile for the whole session.

Integration tests take the ``host`` fixture, which is parametrized over every simulator
profile, so each API generation's driver runs every such test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from wincontainers import Host
from wincontainers.sim.control import SimulatedHost
from wincontainers.sim.profiles import PROFILES

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
PROFILE_NAMES = list(PROFILES)
#: profiles whose API has notifications/events (gen1 has none)
NOTIFYING = [p for p in PROFILE_NAMES if p != "tp3"]


@pytest.fixture(scope="session")
def sim_roots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, SimulatedHost]]:
    sims = {name: SimulatedHost(name, tmp_path_factory.mktemp(f"sim-{name}")) for name in PROFILE_NAMES}
    yield sims
    for sim in sims.values():
        sim.stop()


@pytest.fixture(params=PROFILE_NAMES)
def profile(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def sim(sim_roots: dict[str, SimulatedHost], profile: str) -> Iterator[SimulatedHost]:
    simulator = sim_roots[profile].start()
    yield simulator
    simulator.clear_faults()
    simulator.ignore_shutdown("*", False)


@pytest.fixture
def host(sim: SimulatedHost, profile: str) -> Iterator[Host]:
    h = Host.open(sim=profile, root=sim.root)
    yield h
    h.close()


@pytest.fixture
def clean(sim: SimulatedHost) -> Iterator[SimulatedHost]:
    """Asserts, after the test, that nothing the test made is left in the daemon: no compute
    system, no volume, and no more handles of this process than it held before (an earlier
    test's fault injection may have left a handle whose close was made to fail)."""
    import gc
    import time

    def held() -> dict[str, int]:
        return {k: v for k, v in sim.open_handles(os.getpid()).get(str(os.getpid()), {}).items() if k != "total"}

    gc.collect()
    before = held()
    yield sim
    deadline = time.monotonic() + 10
    while True:
        gc.collect()
        leftover = {k: n - before.get(k, 0) for k, n in held().items() if n > before.get(k, 0)}
        objects = sim.objects()
        if not leftover and not objects["systems"] and not objects["volumes"]:
            break
        if time.monotonic() > deadline:
            raise AssertionError(f"left behind: handles={leftover} objects={objects}")
        time.sleep(0.05)


@pytest.fixture
def built(host: Host) -> Iterator[Host]:
    """``host`` with the multistage example built as ``ms:1``; every image removed after."""
    from wincontainers.build.builder import build

    build(host, ROOT / "examples" / "dockerfiles" / "multistage", tags=["ms:1"], output=lambda _t: None)
    yield host
    for image in host.images.list():
        host.images.remove(image.id, force=True, prune=False)
    host.images.cache_clear()
    host.images.gc()
    assert host.images.fsck().clean


def cli(*args: str, sim: SimulatedHost, input: bytes = b"", timeout: float = 120) -> "subprocess.CompletedProcess[bytes]":
    """Run the wincontainers CLI in a separate process against ``sim``."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run(
        [sys.executable, "-m", "wincontainers", "--sim", sim.profile.name, "--root", str(sim.root), *args],
        input=input, capture_output=True, timeout=timeout, env=env,
    )


def run_example(script: str, sim: SimulatedHost, timeout: float = 120) -> "subprocess.CompletedProcess[str]":
    """Run ``examples/<script>`` against ``sim`` as a user would (its own process)."""
    env = dict(os.environ, WINCONTAINERS_SIM=sim.profile.name, WINCONTAINERS_ROOT=str(sim.root),
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, str(ROOT / "examples" / script)], capture_output=True, env=env,
                          timeout=timeout, text=True)
