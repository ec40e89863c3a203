"""The ``wincontainers.testing`` pytest plugin, as a tool embedding wincontainers uses it:
each run is a separate pytest process over a small project, like the tool's own CI."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Optional

import pytest

from tests.conftest import ROOT


def pytest_in(folder: Path, *args: str, timeout: float = 600,
              env: Optional[dict[str, str]] = None) -> "subprocess.CompletedProcess[str]":
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTEST_ADDOPTS="", **(env or {}))
    env.pop("WINCONTAINERS_TEST_PROFILES", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "wincontainers.testing", "-v",
                           "-p", "no:cacheprovider", *args], cwd=folder, capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_the_embedding_example_passes_on_every_profile() -> None:
    done = pytest_in(ROOT / "examples" / "embedding")
    assert done.returncode == 0, done.stdout + done.stderr
    for profile in ("tp3", "2016", "ws2019"):
        assert f"test_a_failed_start_leaves_nothing[{profile}] PASSED" in done.stdout
    assert "test_a_lost_exit_notification_does_not_hang_the_tool[tp3]" not in done.stdout  # the marker
    assert " 14 passed" in done.stdout


PROJECT = '''
import pytest

from wincontainers.errors import AccessDenied

def test_leaks_a_container(sim_host, no_leaks):
    c = sim_host.containers.create("windowsservercore", image_command=False)
    c.start()

def test_the_next_test_starts_clean(sim_host):
    assert sim_host.containers.list(all=True) == []
    assert sim_host.layers.list() == []

def test_leaks_a_layer(sim_host, no_leaks):
    c = sim_host.containers.create("windowsservercore", image_command=False)
    sim_host.layers.create_sandbox(c.record.layers)
    c.remove()

def test_tidy(sim_host, no_leaks):
    with sim_host.containers.create("windowsservercore", image_command=False) as c:
        c.start()
        c.stop()

@pytest.mark.sim_profiles("2016")
def test_only_2016(sim_profile):
    assert sim_profile == "2016"

def test_a_fault_fires_and_ends(sim_host, fault_injection, sim_profile):
    name = "CreateComputeSystem" if sim_profile == "tp3" else "HcsCreateComputeSystem"
    with fault_injection.fail(name, 0x80070005):
        assert fault_injection.active()
        with pytest.raises(AccessDenied):
            sim_host.containers.create("windowsservercore", image_command=False)
    assert not any(fault_injection.active().values())
    sim_host.containers.create("windowsservercore", image_command=False).remove()
'''


@pytest.mark.simulator("the wincontainers.testing plugin's simulated hosts")
def test_fixtures_clean_up_detect_leaks_and_choose_profiles(tmp_path: Path) -> None:
    (tmp_path / "test_tool.py").write_text(textwrap.dedent(PROJECT))
    done = pytest_in(tmp_path, "--sim-profiles", "2016,ws2019")
    out = done.stdout
    assert done.returncode == 1, out + done.stderr
    for profile in ("2016", "ws2019"):
        assert f"test_leaks_a_container[{profile}] ERROR" in out  # no_leaks failed its teardown
        assert f"test_leaks_a_layer[{profile}] ERROR" in out
        assert f"test_the_next_test_starts_clean[{profile}] PASSED" in out  # sim_host removed the leftovers
        assert f"test_tidy[{profile}] PASSED" in out
        assert f"test_a_fault_fires_and_ends[{profile}] PASSED" in out
    assert "[tp3]" not in out  # --sim-profiles
    assert "test_only_2016[2016] PASSED" in out and "test_only_2016[ws2019]" not in out
    assert "the test left behind" in out and "systems=[{" in out and "layers=['" in out

    wrong = pytest_in(tmp_path, "--sim-profiles", "xp")
    assert wrong.returncode == 4 and "unknown profile(s) xp" in wrong.stderr


REAL_PROJECT = '''
import pytest

def test_tidy(sim_host, no_leaks, sim_profile):
    assert sim_profile == "real" and sim_host.opened_as_real and sim_host.simulator is not None
    with sim_host.containers.create("windowsservercore", image_command=False) as c:
        c.start()
        c.stop()

def test_leaks_a_container(sim_host, no_leaks):
    sim_host.containers.create("windowsservercore", image_command=False).start()

def test_the_next_test_starts_clean(sim_host):
    assert sim_host.containers.list(all=True) == []

@pytest.mark.sim_profiles("2016")
def test_only_2016(sim_profile):
    pass

def test_a_fault(sim_host, fault_injection):
    pass
'''


@pytest.mark.simulator("stands a simulated host in for this machine's HCS")
def test_the_real_host_switch_opens_this_machines_hcs_and_skips_what_needs_the_simulator(tmp_path: Path) -> None:
    """``--wincontainers-host real`` (or WINCONTAINERS_TEST_HOST=real): ``sim_host`` is
    Host.open() (tests/fake_hcs.py stands a simulated host in for this machine's HCS), tests
    narrowed to simulated profiles or asking for faults are skipped saying why, and no_leaks
    still finds a compute system the test left."""
    (tmp_path / "test_tool.py").write_text(textwrap.dedent(REAL_PROJECT))
    fake = {"FAKE_MACHINE": str(tmp_path / "machine")}
    try:
        for args, env in ((["--wincontainers-host", "real"], fake), ([], dict(fake, WINCONTAINERS_TEST_HOST="real"))):
            done = pytest_in(tmp_path, "-p", "tests.fake_hcs", "-rs", *args, env=env)
            out = done.stdout
            assert done.returncode == 1, out + done.stderr
            assert "test_tidy[real] PASSED" in out
            assert "test_leaks_a_container[real] ERROR" in out and "the test left behind" in out
            assert "test_the_next_test_starts_clean[real] PASSED" in out
            assert "narrowed to simulated profiles with sim_profiles" in out
            assert "needs the simulator: fault injection" in out
            assert "[2016]" not in out and "[ws2019]" not in out
    finally:
        subprocess.run([sys.executable, "-m", "wincontainers", "--sim", "ws2019", "--root", fake["FAKE_MACHINE"],
                        "sim", "stop"], capture_output=True, timeout=60)


@pytest.mark.simulator("shows what happens where there is no HCS")
def test_the_real_host_switch_stops_at_once_without_hcs(tmp_path: Path) -> None:
    (tmp_path / "test_tool.py").write_text(textwrap.dedent(REAL_PROJECT))
    done = pytest_in(tmp_path, "--wincontainers-host", "real")
    assert done.returncode == 4, done.stdout + done.stderr
    assert "no usable HCS on this machine" in done.stdout + done.stderr and "Traceback" not in done.stdout
    wrong = pytest_in(tmp_path, env={"WINCONTAINERS_TEST_HOST": "hcs"})
    assert wrong.returncode == 4 and "choose sim or real" in wrong.stderr
