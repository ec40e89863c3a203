"""``wincontainers.testing``: a pytest plugin for tools that embed wincontainers.

Installed with the package (the ``pytest11`` entry point ``wincontainers.testing``), so a
project that depends on wincontainers gets these fixtures in its tests with nothing to set up;
``pytest -p wincontainers.testing`` names it explicitly. Nothing here runs unless a test asks
for one of its fixtures.

- ``sim_profile``: the simulated Windows build a test runs on. A test that uses ``sim_host``
  (or ``sim_profile``) runs once per profile: ``tp3`` (API generation 1), ``2016`` (2) and
  ``ws2019`` (3). ``--sim-profiles=2016,ws2019`` (or ``WINCONTAINERS_TEST_PROFILES``) narrows
  the run; the marker ``@pytest.mark.sim_profiles("ws2019")`` narrows one test.
- ``sim_host``: a :class:`~wincontainers.Host` on that profile. The simulated host (its daemon)
  is started once per session and profile under pytest's temporary folder; each test gets a
  clean state: what the test left (containers, images, layers, networks, endpoints, faults)
  is removed after it.
- ``fault_injection``: makes the simulated HCS misbehave inside a ``with`` block: fail the Nth
  call of a function with an HRESULT, delay a call, drop a notification.
- ``no_leaks``: asserts at teardown that the test left no open HCS handle of this process,
  no compute system, no layer and no endpoint.

The same tests run on this machine's HCS with ``--wincontainers-host real`` (or
``WINCONTAINERS_TEST_HOST=real``): ``sim_profile`` is then ``real``, ``sim_host`` is
``Host.open()`` with a private state folder (what a test makes there is removed after it;
nothing the machine had before is touched), ``no_leaks`` checks compute systems, layers and
endpoints (a real host does not count a process's handles), and a test that uses
``fault_injection`` or is narrowed with ``sim_profiles`` is skipped, saying why. On a machine
without HCS the run stops at once with that reason (exit status 4).

Example::

    def test_my_tool_reports_a_failed_start(sim_host, fault_injection, no_leaks):
        with fault_injection.fail("HcsStartComputeSystem", 0x80370105):
            assert my_tool.run(sim_host, "windowsservercore") == "start failed"
"""

from __future__ import annotations

import contextlib
import gc
import os
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest

from wincontainers import errors
from wincontainers.host import Host

__all__ = ["PROFILES", "REAL", "FaultInjection", "chosen_host", "require_hcs", "sim_profile", "sim_host",
           "fault_injection", "no_leaks"]

#: the simulated profiles, oldest first: one per API generation
PROFILES = ("tp3", "2016", "ws2019")

#: the one "profile" of this machine's own HCS (``--wincontainers-host real``)
REAL = "real"

_OPTION = "--sim-profiles"
_ENV = "WINCONTAINERS_TEST_PROFILES"
_HOST_OPTION = "--wincontainers-host"
_HOST_ENV = "WINCONTAINERS_TEST_HOST"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("wincontainers", "wincontainers simulated hosts")
    group.addoption(_OPTION, default=None, metavar="P1,P2",
                    help=f"simulated profiles for tests using sim_host (default: all of {','.join(PROFILES)}; "
                         f"also {_ENV})")
    group.addoption(_HOST_OPTION, choices=("sim", REAL), default=None,
                    help=f"run tests using sim_host on the simulated hosts (sim, the default) or on this "
                         f"machine's HCS ({REAL}); also {_HOST_ENV}")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sim_profiles(*names): run this test only on these simulated profiles")
    _chosen(config)  # a bad --sim-profiles is a usage error before anything runs
    if _real(config) and not config.option.collectonly:
        require_hcs()


def chosen_host(config: pytest.Config, option: str) -> str:
    """``sim`` or ``real``: the command-line ``option`` if given, else ``WINCONTAINERS_TEST_HOST``,
    else ``sim``. Shared with suites that name the switch their own way (this project's uses
    ``--host``); a bad value is a usage error."""
    chosen = config.getoption(option, default=None) or os.environ.get(_HOST_ENV, "").strip().lower() or "sim"
    if chosen not in ("sim", REAL):
        raise pytest.UsageError(f"{_HOST_ENV}={chosen!r}: choose sim or {REAL}")
    return str(chosen)


def require_hcs(prepare: Optional[Any] = None) -> None:
    """Stop the pytest run before it collects anything, saying why (a usage error: exit status
    4), unless this machine's HCS opens. Called from ``pytest_configure`` on the real host.
    ``prepare(host)`` may check more, raising a
    :class:`~wincontainers.errors.WincontainersError` to stop the run the same way."""
    try:
        with tempfile.TemporaryDirectory(prefix="wincontainers-probe-") as state:
            host = Host.open(root=state)
            try:
                if prepare is not None:
                    prepare(host)
            finally:
                host.close()
    except errors.WincontainersError as exc:
        raise pytest.UsageError(f"the real host was asked for, and there is no usable HCS on this machine: "
                                f"{exc}") from None


def _real(config: pytest.Config) -> bool:
    return chosen_host(config, _HOST_OPTION) == REAL


def _chosen(config: pytest.Config) -> list[str]:
    raw = config.getoption(_OPTION, default=None) or os.environ.get(_ENV) or ""
    names = [n.strip() for n in raw.split(",") if n.strip()] or list(PROFILES)
    unknown = [n for n in names if n not in PROFILES]
    if unknown:
        raise pytest.UsageError(f"{_OPTION}: unknown profile(s) {', '.join(unknown)}; choose from {', '.join(PROFILES)}")
    return names


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "sim_profile" not in metafunc.fixturenames:
        return
    profiles = _chosen(metafunc.config)
    marker = metafunc.definition.get_closest_marker("sim_profiles")
    if marker is not None:
        wanted = [str(a) for a in marker.args]
        unknown = [n for n in wanted if n not in PROFILES]
        if unknown:
            raise pytest.UsageError(f"{metafunc.definition.nodeid}: sim_profiles names unknown profile(s) "
                                    f"{', '.join(unknown)}")
        profiles = [p for p in profiles if p in wanted]
    if _real(metafunc.config):
        profiles = [REAL]  # what needs the simulator is skipped below
    # an empty list makes pytest skip the test, saying no profile was chosen for it
    metafunc.parametrize("sim_profile", profiles, indirect=True)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On the real host, skip, saying why, what only the simulator can run."""
    if not _real(config):
        return
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if "sim_profile" not in fixtures:
            continue
        if item.get_closest_marker("sim_profiles") is not None:
            item.add_marker(pytest.mark.skip(reason="narrowed to simulated profiles with sim_profiles"))
        elif "fault_injection" in fixtures:
            item.add_marker(pytest.mark.skip(reason="needs the simulator: fault injection"))


@pytest.fixture
def sim_profile(request: pytest.FixtureRequest) -> str:
    """The simulated profile this test runs on (``tp3``, ``2016`` or ``ws2019``), or ``real``."""
    return str(request.param)


class _Hosts:
    """One simulated host per profile for the session, started on first use."""

    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self.factory = factory
        self.hosts: dict[str, Host] = {}

    def get(self, profile: str) -> Host:
        if profile not in self.hosts:
            root = self.factory.mktemp(f"wincontainers-{profile}")
            self.hosts[profile] = Host.open(root=root) if profile == REAL else Host.open(sim=profile, root=root)
        return self.hosts[profile]

    def stop(self) -> None:
        for host in self.hosts.values():
            simulator = host.simulator
            host.close()
            if simulator is not None:
                simulator.stop()


@pytest.fixture(scope="session")
def _wincontainers_hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Hosts]:
    hosts = _Hosts(tmp_path_factory)
    yield hosts
    hosts.stop()


class _Baseline:
    """What the host held before a test: what the test made is the rest (on a real host, what
    the machine had is never touched)."""

    def __init__(self, host: Host) -> None:
        self.networks = {n.id.lower() for n in host.networks.list()}
        self.endpoints = {e.id.lower() for e in host.networks.endpoints()}
        self.containers = {c.id for c in host.containers.list(all=True)}
        self.images = {i.id for i in host.images.list()}
        self.layers = {layer.id for layer in host.layers.list()}

    def reset(self, host: Host) -> list[str]:
        """Remove what the test left; what could not be removed, with why."""
        failures: list[str] = []

        def attempt(what: str, action: Any) -> None:
            try:
                action()
            except errors.WincontainersError as exc:
                failures.append(f"{what}: {exc}")

        for info in host.containers.list(all=True):
            if info.id not in self.containers:
                attempt(f"container {info.name}", lambda i=info: host.containers.get(i.id).remove(force=True))
        images = host.images
        for image in images.list():
            if image.id not in self.images:
                attempt(f"image {image.short_id}", lambda i=image: images.remove(i.id, force=True, prune=False))
        attempt("the build cache", images.cache_clear)
        attempt("image gc", images.gc)
        for layer in host.layers.list():
            if layer.id not in self.layers:
                attempt(f"layer {layer.short_id}", lambda x=layer: host.layers.destroy(x))
        for endpoint in host.networks.endpoints():
            if endpoint.id.lower() not in self.endpoints:
                attempt(f"endpoint {endpoint.name}", endpoint.remove)
        for network in host.networks.list():
            if network.id.lower() not in self.networks:
                attempt(f"network {network.name}", lambda n=network: n.remove(force=True))
        return failures


@pytest.fixture
def sim_host(_wincontainers_hosts: _Hosts, sim_profile: str) -> Iterator[Host]:
    """A :class:`~wincontainers.Host` on the simulated ``sim_profile`` (or, on the real host,
    this machine's HCS), clean for each test."""
    shared = _wincontainers_hosts.get(sim_profile)
    if sim_profile == REAL:
        host = Host.open(root=shared.state_dir)
    else:
        host = Host.open(sim=sim_profile, root=_root(shared))
    baseline = _Baseline(host)
    try:
        yield host
    finally:
        if host.simulator is not None:
            simulator = _simulator(host)
            simulator.clear_faults()
            simulator.ignore_shutdown("*", False)
        failures = baseline.reset(host)
        host.close()
        if failures:
            raise AssertionError("sim_host could not clean up after the test: " + "; ".join(failures))


def _root(host: Host) -> Path:
    return Path(_simulator(host).root)


def _simulator(host: Host) -> Any:
    """The host's :class:`~wincontainers.sim.control.SimulatedHost` (POSIX-only: typed loosely,
    so that the module type-checks for Windows too)."""
    simulator = host.simulator
    if simulator is None:
        raise errors.BadInput("this fixture needs a simulated host (Host.open(sim=...))")
    return simulator


class FaultInjection:
    """Make the simulated HCS misbehave inside a ``with`` block (the faults end with it).

    ``function`` is an exported name (``HcsStartComputeSystem``, ``HcsCreateProcess``,
    ``ImportLayer``...); ``nth`` picks the call (1: the next one) and ``count`` how many calls
    from there. ``pid`` limits the fault to one client process (default: every client, the
    tool's own subprocesses too); ``dll`` to one DLL where a name exists in two.
    """

    def __init__(self, host: Host) -> None:
        self.host = host

    @contextlib.contextmanager
    def fail(self, function: str, hresult: int, *, nth: int = 1, count: int = 1, pid: Optional[int] = None,
             dll: Optional[str] = None, asynchronous: bool = False) -> Iterator[None]:
        """The call returns ``hresult`` (``asynchronous=True``: a gen-2 start, pause or resume
        reports it through its completion notification instead, as HCS may)."""
        with self._active():
            _simulator(self.host).inject(function, hresult, nth=nth, count=count, pid=pid, dll=dll,
                                         mode="async" if asynchronous else "return")
            yield

    @contextlib.contextmanager
    def delay(self, function: str, seconds: float, *, nth: int = 1, count: int = 1, pid: Optional[int] = None,
              dll: Optional[str] = None) -> Iterator[None]:
        """The call takes ``seconds`` longer (then succeeds)."""
        if seconds < 0:
            raise errors.BadInput("a delay is a non-negative number of seconds")
        with self._active():
            _simulator(self.host).inject(function, None, delay=seconds, nth=nth, count=count, pid=pid, dll=dll)
            yield

    @contextlib.contextmanager
    def drop(self, notification: str, *, nth: int = 1, count: int = 1, pid: Optional[int] = None) -> Iterator[None]:
        """The ``nth`` ``notification`` (``SystemExited``, ``ProcessExited``,
        ``SystemStartCompleted``...) is lost, as a real host may lose one."""
        with self._active():
            _simulator(self.host).drop_notification(notification, nth=nth, count=count, pid=pid)
            yield

    def active(self) -> dict[str, Any]:
        """The faults in force now, as the simulator lists them."""
        faults: dict[str, Any] = _simulator(self.host).faults()
        return faults

    @contextlib.contextmanager
    def _active(self) -> Iterator[None]:
        try:
            yield
        finally:
            _simulator(self.host).clear_faults()


@pytest.fixture
def fault_injection(sim_host: Host) -> FaultInjection:
    """Faults in the simulated HCS of ``sim_host`` (see :class:`FaultInjection`)."""
    return FaultInjection(sim_host)


@pytest.fixture
def no_leaks(sim_host: Host) -> Iterator[None]:
    """Fails the test if it left an HCS handle of this process open, or a compute system, a
    layer or an endpoint on the host (waiting up to 10 s for releases in flight; 30 s on a real
    host, which does not count a process's handles and takes longer to tear a system down)."""
    simulator = sim_host.simulator
    pid = str(os.getpid())

    def handles() -> dict[str, int]:
        if simulator is None:
            return {}
        held = _simulator(sim_host).open_handles(os.getpid()).get(pid, {})
        return {k: v for k, v in held.items() if k != "total"}

    def system_ids() -> set[str]:
        return {str(s.get("Id", "")) for s in sim_host.driver.list_systems()}

    def systems_left() -> list[Any]:
        """The simulator's every compute system (a test starts with none); on a real host, the
        ones the test made."""
        if simulator is not None:
            found: list[Any] = _simulator(sim_host).objects()["systems"]
            return found
        return sorted(system_ids() - systems_before)

    gc.collect()
    before = handles()
    systems_before = system_ids() if simulator is None else set()
    layers_before = {layer.id for layer in sim_host.layers.list()}
    endpoints_before = {e.id.lower() for e in sim_host.networks.endpoints()}
    yield
    deadline = time.monotonic() + (10 if simulator is not None else 30)
    while True:
        gc.collect()
        leaked = {k: n - before.get(k, 0) for k, n in handles().items() if n > before.get(k, 0)}
        left = systems_left()
        layers = sorted(layer.short_id for layer in sim_host.layers.list() if layer.id not in layers_before)
        endpoints = sorted(e.name for e in sim_host.networks.endpoints() if e.id.lower() not in endpoints_before)
        if not (leaked or left or layers or endpoints):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the test left behind: handles={leaked} systems={left} layers={layers} "
                                 f"endpoints={endpoints}")
        time.sleep(0.05)
