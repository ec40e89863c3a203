"""Shared fixtures: one simulated host per profile for the whole session, or this machine's HCS.

Integration tests take the ``host`` fixture, which is parametrized over every simulator
profile, so each API generation's driver runs every such test.

``--host real`` (or ``WINCONTAINERS_TEST_HOST=real``) runs the same tests against this
machine's Host Compute Service instead (``Host.open()``, with a private state folder): the
``host`` fixture then has the one parameter ``real``. A test that needs the simulator itself
(its controls: fault injection, dropped notifications, handle counts, its files; or a simulated
host of its own) carries ``@pytest.mark.simulator("why")`` and is skipped there with that
reason. The base image the tests call ``windowsservercore`` is, on a real host, the host's own
(GetBaseImages) or the Docker image named by ``WINCONTAINERS_TEST_IMAGE``
(``mcr.microsoft.com/windows/nanoserver:ltsc2022``), tagged so in the private store.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from wincontainers import Host, errors
from wincontainers.testing import chosen_host, require_hcs
from wincontainers.sim.profiles import PROFILES

try:
    from wincontainers.sim.control import SimulatedHost

    SIMULATOR_IMPORTS = True
except ImportError:  # the simulator runs on POSIX systems: on Windows only --host real runs the tests
    SIMULATOR_IMPORTS = False

    class SimulatedHost:  # type: ignore[no-redef]
        """Stands in for the simulator where it cannot run: the tests that use it are skipped."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            raise RuntimeError("the simulated host runs on POSIX systems")

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
PROFILE_NAMES = list(PROFILES)
#: profiles whose API has notifications/events (gen1 has none)
NOTIFYING = [p for p in PROFILE_NAMES if p != "tp3"]
#: the name the tests give the base OS image (on a real host: see the module docstring)
BASE_IMAGE = "windowsservercore"
#: fixtures that exist only on a simulated host: a test using one carries the ``simulator`` marker
SIMULATOR_FIXTURES = frozenset({"sim", "sim_roots"})
IMAGE_ENV = "WINCONTAINERS_TEST_IMAGE"


def skip_module_without_simulator() -> None:
    """For a test module about the simulator alone: skip it as a whole where the simulator
    cannot be imported (Windows), before it imports the simulator's modules."""
    if not SIMULATOR_IMPORTS:
        pytest.skip("the simulated host runs on POSIX systems", allow_module_level=True)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--host", choices=("sim", "real"), default=None,
                     help="run the integration tests on the simulated hosts (sim, the default) or on this "
                          "machine's HCS (real); also WINCONTAINERS_TEST_HOST")


def target(config: pytest.Config) -> str:
    """``sim`` or ``real``: where the integration tests run (``--host``, else the plugin's
    ``WINCONTAINERS_TEST_HOST``)."""
    return chosen_host(config, "--host")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "simulator(reason): needs the simulated host (its controls, its files, or a simulated "
                   "host of its own); skipped with the reason under --host real")
    # a bad WINCONTAINERS_TEST_HOST, or --host real without HCS, is a usage error before anything runs
    if target(config) == "real" and not config.option.collectonly:
        require_hcs(_prepare_base_image)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """``profile``: every simulated profile, or ``real``; a test that names its own profiles
    keeps them (and is skipped on a real host, see below)."""
    if "profile" not in metafunc.fixturenames:
        return
    own = any("profile" in _argnames(m) for m in metafunc.definition.iter_markers("parametrize"))
    if own:
        return
    names = ["real"] if target(metafunc.config) == "real" else PROFILE_NAMES
    metafunc.parametrize("profile", names, indirect=True)


def _argnames(marker: pytest.Mark) -> list[str]:
    names = marker.args[0] if marker.args else marker.kwargs.get("argnames", "")
    return [n.strip() for n in names.split(",")] if isinstance(names, str) else list(names)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a real host, skip what needs the simulator, saying why."""
    if target(config) != "real":
        return
    for item in items:
        marker = item.get_closest_marker("simulator")
        if marker is not None:
            reason = marker.args[0] if marker.args else "simulator controls"
            item.add_marker(pytest.mark.skip(reason=f"needs the simulator: {reason}"))
            continue
        callspec = getattr(item, "callspec", None)
        chosen = callspec.params.get("profile") if callspec is not None else None
        if chosen is not None and chosen != "real":
            item.add_marker(pytest.mark.skip(reason=f"written for the simulated profile {chosen}"))


@pytest.fixture
def profile(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _prepare_base_image(host: Host) -> None:
    """At the start of a real-host run: the host offers ``BASE_IMAGE`` itself, or
    ``WINCONTAINERS_TEST_IMAGE`` names an image to stand for it."""
    if not os.environ.get(IMAGE_ENV, "").strip():
        bases = host.base_images()
        if not any(b.name.lower() == BASE_IMAGE for b in bases):
            offered = ", ".join(f"{b.name}:{b.version}" for b in bases) or "none"
            raise errors.BadInput(f"this host offers no {BASE_IMAGE} base image (it offers: {offered}); "
                                  f"name a Docker image with {IMAGE_ENV}")
    _tag_base_image(host)


def _tag_base_image(host: Host) -> None:
    """Make ``BASE_IMAGE`` name ``WINCONTAINERS_TEST_IMAGE`` in a real host's store, again after
    a test removed its images (nothing to do for the host's own base image)."""
    wanted = os.environ.get(IMAGE_ENV, "").strip()
    if wanted and not host.images.exists(BASE_IMAGE):
        host.images.tag(host.images.resolve(wanted), BASE_IMAGE)


@pytest.fixture(scope="session")
def real_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The private state folder of the tests' real host (its images, layers, records)."""
    return tmp_path_factory.mktemp("real-host")


@pytest.fixture(scope="session")
def sim_roots(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, SimulatedHost]]:
    sims = {name: SimulatedHost(name, tmp_path_factory.mktemp(f"sim-{name}")) for name in PROFILE_NAMES}
    yield sims
    for sim in sims.values():
        sim.stop()


@pytest.fixture
def sim(sim_roots: dict[str, SimulatedHost], profile: str) -> Iterator[SimulatedHost]:
    if profile == "real":
        pytest.fail("this test uses the simulator: mark it @pytest.mark.simulator(\"why\")")
    simulator = sim_roots[profile].start()
    yield simulator
    simulator.clear_faults()
    simulator.ignore_shutdown("*", False)


@pytest.fixture
def host(request: pytest.FixtureRequest, profile: str) -> Iterator[Host]:
    """A host on ``profile``: a simulated one, or under ``--host real`` this machine's HCS
    (``Host.open()``: no simulator is started)."""
    if profile == "real":
        h = Host.open(root=request.getfixturevalue("real_root"))
        _tag_base_image(h)
    else:
        sim: SimulatedHost = request.getfixturevalue("sim")
        h = Host.open(sim=profile, root=sim.root)
    yield h
    h.close()


@pytest.fixture
def clean(request: pytest.FixtureRequest, profile: str) -> Iterator[Any]:
    """Asserts, after the test, that nothing the test made is left in the daemon: no compute
    system, no volume, and no more handles of this process than it held before (an earlier
    test's fault injection may have left a handle whose close was made to fail).

    On a real host, where neither handle counts nor volumes can be asked for, it checks what
    can be: no compute system the test made is left (HcsEnumerateComputeSystems)."""
    if profile == "real":
        yield from _clean_real_host(request.getfixturevalue("host"))
        return
    import gc
    import time

    sim: SimulatedHost = request.getfixturevalue("sim")

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


def _clean_real_host(host: Host) -> Iterator[None]:
    import time

    def systems() -> set[str]:
        return {str(s.get("Id", "")).lower() for s in host.driver.list_systems()}

    before = systems()
    yield None
    deadline = time.monotonic() + 30  # a real host takes its time to tear a container down
    while True:
        left = systems() - before
        if not left:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"left behind: compute systems {sorted(left)}")
        time.sleep(0.2)


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


def cli(*args: str, sim: Optional[SimulatedHost] = None, host: Optional[Host] = None, input: bytes = b"",
        timeout: float = 120) -> "subprocess.CompletedProcess[bytes]":
    """Run the wincontainers CLI in a separate process against ``host`` (as it was opened: on a
    real host too) or the simulated host ``sim``."""
    if host is not None:
        where = list(host.open_arguments)
    elif sim is not None:
        where = ["--sim", sim.profile.name, "--root", str(sim.root)]
    else:
        raise TypeError("cli() needs host= or sim=")
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "wincontainers", *where, *args],
                          input=input, capture_output=True, timeout=timeout, env=env)


def run_example(script: str, sim: SimulatedHost, timeout: float = 120) -> "subprocess.CompletedProcess[str]":
    """Run ``examples/<script>`` against ``sim`` as a user would (its own process)."""
    env = dict(os.environ, WINCONTAINERS_SIM=sim.profile.name, WINCONTAINERS_ROOT=str(sim.root),
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, str(ROOT / "examples" / script)], capture_output=True, env=env,
                          timeout=timeout, text=True)
