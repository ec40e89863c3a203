"""``wincontainers selftest`` on every simulated profile: all steps pass, a failure skips what
depends on it, and nothing is left behind."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from wincontainers import Host, selftest
from tests.conftest import SimulatedHost
from tests.conftest import cli

STEP_NAMES = [s.name for s in selftest.STEPS]


def snapshot(sim: SimulatedHost) -> dict[str, Any]:
    """What a self-test could leave on the host."""
    objects = sim.objects()
    state = sim.root / "wincontainers"
    with Host.open(sim=sim.profile.name, root=sim.root) as host:
        # The host's own base images are recorded in the store on first use (as any build does):
        # only what the self-test made counts.
        images = sorted(t for i in host.images.list() for t in i.repo_tags if "selftest" in t)
        networks = sorted(n.name for n in host.networks.list())
        containers = sorted(c.name for c in host.containers.list(all=True))
        cache = host.images.cache_keys()
    return {
        "systems": [s["id"] for s in objects["systems"]], "volumes": objects["volumes"],
        "endpoints": [e["id"] for e in objects["endpoints"]],
        "layers": sorted(p.name for p in (state / "layers").iterdir()) if (state / "layers").exists() else [],
        "images": images, "networks": networks, "containers": containers, "cache": cache,
    }


@pytest.mark.simulator("runs the CLI or an example with --sim")
def test_every_step_passes_and_the_json_lists_them(sim: SimulatedHost, profile: str) -> None:
    before = snapshot(sim)
    result = cli("selftest", "--json", sim=sim)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    doc = json.loads(result.stdout)
    assert set(doc) >= {"version", "windows_build", "generation", "steps"}
    assert doc["windows_build"] == sim.profile.build
    assert doc["generation"] == {"tp3": 1, "2016": 2, "ws2019": 3}[profile]
    assert [s["name"] for s in doc["steps"]] == STEP_NAMES
    for step in doc["steps"]:
        assert set(step) >= {"name", "status", "seconds", "error", "hint"}
        if profile == "tp3" and step["name"] == "hyperv":  # TP3 had no Hyper-V containers
            assert step["status"] == "skip" and "TP3" in step["detail"], step
            continue
        assert step["status"] == "pass", step
        assert step["error"] is None and step["seconds"] >= 0
    hyperv = next(s for s in doc["steps"] if s["name"] == "hyperv")
    if profile != "tp3":
        assert "processes in the utility VM" in hyperv["detail"], hyperv
    assert doc["left"] == []
    assert snapshot(sim) == before

    table = cli("selftest", sim=sim)
    assert table.returncode == 0
    text = table.stdout.decode()
    passing = len(STEP_NAMES) - (profile == "tp3")
    assert text.count("PASS") == passing
    assert ("all steps passed" if profile != "tp3" else "no step failed (some were skipped)") in text


@pytest.mark.parametrize("profile", ["2016", "ws2019"])  # (TP3's step skips for its generation: above)
def test_the_hyperv_step_skips_with_the_reason_without_hyper_v(sim: SimulatedHost, profile: str) -> None:
    before = snapshot(sim)
    sim.hyperv(installed=False)
    try:
        report = selftest.run(sim=profile, root=sim.root, only=["images", "container", "hyperv"])
    finally:
        sim.hyperv(installed=True)
    assert report.ok, report.table()
    step = report.step("hyperv")
    assert step.status == "skip" and "HCS_E_HYPERV_NOT_INSTALLED" in step.detail and step.hint, step
    assert "Hyper-V" in step.hint
    assert snapshot(sim) == before


@pytest.mark.simulator("a simulated host of its own")
def test_a_standard_user_fails_the_privilege_step_and_skips_the_layer_steps(tmp_path: Path) -> None:
    sim = SimulatedHost("2016", tmp_path / "sim", user="standard").start()
    try:
        result = cli("selftest", "--json", sim=sim)
        assert result.returncode == 1
        steps = {s["name"]: s for s in json.loads(result.stdout)["steps"]}
        assert steps["dlls"]["status"] == "pass"
        privileges = steps["privileges"]
        assert privileges["status"] == "fail"
        assert "SeBackupPrivilege" in privileges["error"] and "SeRestorePrivilege" in privileges["error"]
        assert "PrivilegeNotHeld" in privileges["error"] and "elevated" in privileges["hint"]
        for name in ("layer", "build"):
            assert steps[name]["status"] == "skip" and "privileges failed" in steps[name]["detail"]
        assert steps["images"]["status"] == "fail" and "Access is denied" in steps["images"]["error"]
        assert steps["container"]["status"] == "skip"
        table = cli("selftest", sim=sim).stdout.decode()
        assert "FAIL" in table and "hint:" in table and "failed: privileges, images" in table
    finally:
        sim.stop()


@pytest.mark.simulator("fault injection")
def test_a_failing_create_fails_its_step_skips_the_rest_and_leaves_nothing(sim: SimulatedHost, profile: str,
                                                                          clean: SimulatedHost) -> None:
    before = snapshot(sim)
    function = "CreateComputeSystem" if profile == "tp3" else "HcsCreateComputeSystem"
    sim.inject(function, 0x80070005, pid=os.getpid())
    report = selftest.run(sim=profile, root=sim.root)
    assert not report.ok
    statuses = {s.name: s.status for s in report.steps}
    assert statuses == {"dlls": "pass", "privileges": "pass", "images": "pass", "container": "fail",
                        "hyperv": "skip", "layer": "skip", "network": "skip", "build": "skip"}
    failed = report.step("container")
    assert failed.error is not None and "AccessDenied" in failed.error and function in failed.error
    assert failed.hint
    assert report.left == ()
    assert snapshot(sim) == before


@pytest.mark.simulator("the simulator's own files")
def test_keep_leaves_the_objects_and_lists_them(sim: SimulatedHost, profile: str) -> None:
    before = snapshot(sim)
    report = selftest.run(sim=profile, root=sim.root, keep=True, only=["layer"])
    assert report.ok, report.table()
    assert [s.status for s in report.steps] == ["pass"] + ["skip"] * (len(STEP_NAMES) - 1)
    assert "privileges was skipped" in report.step("layer").detail

    report = selftest.run(sim=profile, root=sim.root, keep=True, only=["privileges", "images", "container", "layer"])
    assert report.ok, report.table()
    kept = [item for item in report.left if item.endswith("(kept)")]
    assert any(item.startswith("container selftest-") for item in kept), kept
    assert any(item.startswith("layer ") for item in kept), kept
    after = snapshot(sim)
    assert [n for n in after["containers"] if n.startswith("selftest-")], after
    with Host.open(sim=profile, root=sim.root) as host:  # what a user does after looking
        for info in host.containers.list(all=True):
            if info.name.startswith("selftest-"):
                with host.containers.get(info.name) as c:
                    c.remove(force=True)
        for item in kept:
            if item.startswith("layer "):
                host.layers.destroy(item.split()[1], force=True)
    assert snapshot(sim) == before


@pytest.mark.simulator("runs the CLI or an example with --sim")
def test_unknown_steps_are_refused(sim: SimulatedHost) -> None:
    result = cli("selftest", "--step", "nonsense", sim=sim)
    assert result.returncode == 1 and b"unknown selftest step" in result.stderr
    with pytest.raises(Exception, match="the steps are dlls, privileges"):
        selftest.run(sim=sim.profile.name, root=sim.root, only=["nope"])
