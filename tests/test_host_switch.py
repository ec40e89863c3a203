"""``--host real``: the suite's switch to this machine's HCS (issue 17).

On Linux there is no HCS, so what can be checked here is the switch itself: collected under
``--host real`` every test is runnable there or skipped with a reason (none errors, and none
that needs the simulator is left unmarked); a run stops at once, saying there is no HCS; and
the ``host`` fixture takes ``Host.open()`` and starts no simulator.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, SIMULATOR_FIXTURES

#: what in a test's own code means it needs the simulator (the conftest helpers ``cli`` and
#: ``run_example`` take one; ``sim=`` opens one; ``.simulator`` reaches its controls)
SIMULATOR_CODE = re.compile(r"SimulatedHost\(|\bsim=|\w\.simulator\b(?!\()|\bsim_host\b|\brun_example\(|"
                            r"wincontainers\.sim\b|\"--sim\"|\bsim_roots\b|\bfault_injection\b")

COLLECTOR = '''
import inspect, json, os, textwrap

def pytest_collection_finish(session):
    out = []
    for item in session.items:
        skips = [m.kwargs.get("reason", m.args[0] if m.args else "") for m in item.iter_markers("skip")]
        function = getattr(item, "function", None)
        try:
            source = textwrap.dedent(inspect.getsource(function)) if function is not None else ""
        except (OSError, TypeError):
            source = ""
        out.append({"id": item.nodeid, "skips": skips, "fixtures": sorted(item.fixturenames),
                    "source": source})
    with open(os.environ["COLLECTED"], "w") as f:
        json.dump(out, f)
'''


def run_pytest(*args: str, tmp_path: Path, env: dict[str, str] | None = None,
               timeout: float = 300) -> subprocess.CompletedProcess[str]:
    merged = dict(os.environ, PYTHONPATH=str(tmp_path) + os.pathsep + str(ROOT))
    merged.pop("WINCONTAINERS_TEST_HOST", None)
    merged.pop("WINCONTAINERS_SIM", None)
    merged.update(env or {})
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args], cwd=ROOT,
                          capture_output=True, text=True, env=merged, timeout=timeout)


def collected(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    (tmp_path / "collector_plugin.py").write_text(COLLECTOR)
    out = tmp_path / "collected.json"
    r = run_pytest("--collect-only", "-q", "-p", "collector_plugin", *(args or ("tests",)), tmp_path=tmp_path,
                   env={"COLLECTED": str(out), **(env or {})})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "ERROR collecting" not in r.stdout and " error" not in r.stdout.splitlines()[-1], r.stdout[-2000:]
    items: list[dict[str, Any]] = json.loads(out.read_text())
    return items


def test_under_host_real_every_test_is_runnable_or_skipped_with_a_reason(tmp_path: Path) -> None:
    items = collected(tmp_path, "--host", "real", "tests")
    runnable, skipped, unmarked = [], [], []
    for item in items:
        if item["skips"]:
            assert all(reason.strip() for reason in item["skips"]), item["id"]
            skipped.append(item)
            continue
        needs = sorted(SIMULATOR_FIXTURES & set(item["fixtures"]))
        found = SIMULATOR_CODE.search(item["source"])
        if needs or found:
            unmarked.append(f"{item['id']}: {needs or found.group(0)}")  # type: ignore[union-attr]
        else:
            runnable.append(item)
    assert not unmarked, ("tests that need the simulator and do not carry @pytest.mark.simulator(reason):\n"
                          + "\n".join(unmarked))
    # the integration tests are there, once each, on the one real target
    on_real = [i for i in runnable if "host" in i["fixtures"]]
    assert len(on_real) > 100, len(on_real)
    assert all(i["id"].endswith("[real]") or "[real-" in i["id"] or "-real]" in i["id"] or "-real-" in i["id"]
               for i in on_real if "profile" in i["fixtures"]), [i["id"] for i in on_real][:5]
    assert not [i for i in runnable if re.search(r"\[(tp3|2016|ws2019)\b", i["id"])]
    reasons = {r for i in skipped for r in i["skips"]}
    assert any(r.startswith("needs the simulator: ") for r in reasons), reasons


WINDOWS_IMPORTS = '''
import importlib.abc, sys

BLOCKED = set(sys.argv and __import__("os").environ["BLOCKED"].split(","))

class NoSimulator(importlib.abc.MetaPathFinder):
    """Refuses the simulator's POSIX-only modules, as importing them on Windows does."""
    def find_spec(self, name, path=None, target=None):
        if name in BLOCKED:
            raise ImportError("wincontainers.sim runs on POSIX systems")
        return None

sys.meta_path.insert(0, NoSimulator())
'''


def posix_only_modules() -> list[str]:
    """The simulator's modules that refuse to import on Windows (their first lines say so)."""
    found = []
    for path in sorted((ROOT / "wincontainers" / "sim").rglob("*.py")):
        if 'raise ImportError("wincontainers.sim runs on POSIX systems")' in path.read_text():
            parts = path.relative_to(ROOT).with_suffix("").parts
            found.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return found


@pytest.mark.simulator("stands in, here, for collecting on Windows")
def test_on_windows_the_suite_collects_without_the_simulator(tmp_path: Path) -> None:
    """Where the simulator's modules cannot be imported (Windows), ``--host real`` still
    collects every test module: the ones about the simulator alone are skipped as a whole,
    saying why, and the rest import it only inside tests that carry the marker."""
    blocked = posix_only_modules()
    assert "wincontainers.sim.control" in blocked and "wincontainers.sim.daemon" in blocked
    with_simulator = len(collected(tmp_path, "--host", "real", "tests"))  # (writes the collector plugin)
    (tmp_path / "no_simulator.py").write_text(WINDOWS_IMPORTS)
    out = tmp_path / "collected-without-simulator.json"
    r = run_pytest("-p", "no_simulator", "-p", "collector_plugin", "--collect-only", "-q", "-rs", "--host", "real",
                   "tests", tmp_path=tmp_path, env={"BLOCKED": ",".join(blocked), "COLLECTED": str(out)})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "ERROR collecting" not in r.stdout and " error" not in r.stdout.splitlines()[-1], r.stdout[-3000:]
    items = json.loads(out.read_text())
    on_real = [i for i in items if not i["skips"] and "host" in i["fixtures"]]
    assert len(on_real) > 100 and len(items) < with_simulator, (len(on_real), len(items), with_simulator)
    assert "the simulated host runs on POSIX systems" in r.stdout, r.stdout[-2000:]


def test_the_simulator_lane_is_unchanged_by_the_switch(tmp_path: Path) -> None:
    items = collected(tmp_path, "tests/test_layers.py")
    ids = {i["id"] for i in items}
    assert not any(re.search(r"\[(.*-)?real(-.*)?\]$", i) for i in ids)
    for profile in ("tp3", "2016", "ws2019"):
        assert any(f"[{profile}" in i for i in ids), profile
    assert not [i for i in items if i["skips"]]


@pytest.mark.simulator("shows what happens where there is no HCS")
def test_host_real_on_a_machine_without_hcs_stops_at_once(tmp_path: Path) -> None:
    for args, env in ((["--host", "real"], {}), ([], {"WINCONTAINERS_TEST_HOST": "real"})):
        r = run_pytest(*args, "tests/test_layers.py", tmp_path=tmp_path, env=env, timeout=120)
        assert r.returncode == 4, r.stdout[-2000:] + r.stderr[-2000:]
        text = r.stdout + r.stderr
        assert "no usable HCS on this machine" in text and "vmcompute.dll" in text, text[-2000:]
        assert "Traceback" not in text and " passed" not in text and " failed" not in text


def test_a_bad_host_choice_is_a_usage_error(tmp_path: Path) -> None:
    r = run_pytest("--co", "-q", "tests/test_names.py", tmp_path=tmp_path, env={"WINCONTAINERS_TEST_HOST": "windows"})
    assert r.returncode == 4 and "choose sim or real" in r.stderr, r.stdout[-1000:] + r.stderr[-1000:]
    r = run_pytest("--co", "-q", "--host", "hcs", "tests/test_names.py", tmp_path=tmp_path)
    assert r.returncode == 4 and "invalid choice" in r.stderr, r.stderr[-1000:]


@pytest.mark.simulator("runs the CLI or an example with --sim")
@pytest.mark.simulator("stands a simulated host in for this machine's HCS")
def test_the_real_switch_opens_this_machines_hcs_and_no_simulator(tmp_path: Path) -> None:
    """With Host.open() standing in for a machine that has HCS (it opens a simulated host the
    test started itself, as a real one would be found), the ``host`` fixture is that host: it
    came from Host.open() without ``sim``, under the private test root, and no simulator was
    started for the test."""
    (tmp_path / "test_probe.py").write_text(textwrap.dedent('''
        from tests.conftest import BASE_IMAGE

        def test_host_is_the_machines(host, profile):
            assert profile == "real"
            assert getattr(host, "opened_as_real", False)
            # WINCONTAINERS_TEST_IMAGE names the image the tests call windowsservercore
            assert host.images.get(BASE_IMAGE).id == host.images.resolve("nanoserver").id

        def test_fixture_closure_has_no_simulator(request, host):
            assert "sim" not in request.fixturenames and "sim_roots" not in request.fixturenames
    '''))
    opened = tmp_path / "opened.txt"
    basetemp = tmp_path / "basetemp"
    r = run_pytest("-p", "tests.conftest", "-p", "tests.fake_hcs", "--host", "real", "--basetemp", str(basetemp),
                   str(tmp_path / "test_probe.py"), tmp_path=tmp_path,
                   env={"FAKE_MACHINE": str(tmp_path / "machine"), "OPENED": str(opened),
                        "WINCONTAINERS_TEST_IMAGE": "nanoserver"})
    try:
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        assert "2 passed" in r.stdout
        roots = opened.read_text().split()
        # one probe at the start (a temporary folder), then the tests' private root
        assert len(roots) >= 2 and "wincontainers-probe-" in roots[0] and "real-host" in roots[1], roots
        assert not list(basetemp.glob("sim-*")), "a simulator was set up for the real lane"
    finally:
        subprocess.run([sys.executable, "-m", "wincontainers", "--sim", "ws2019", "--root",
                        str(tmp_path / "machine"), "sim", "stop"], capture_output=True, timeout=60)
