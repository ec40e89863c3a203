"""The listing and control verbs as a Docker user types them, each in its own process:
``ps`` filters and formats, ``inspect -f``, ``version``, ``stats``, ``port``, ``pause`` and
``unpause``, ``rename``, and what a bad flag says."""

from __future__ import annotations

import json
from typing import Iterator

import pytest

from wincontainers import Host
from tests.conftest import cli
from tests.conftest import SimulatedHost


@pytest.fixture
def two(sim: SimulatedHost) -> Iterator[SimulatedHost]:
    """``front`` (label tier=web, a published port) running and ``back`` exited."""
    publish = ["-p", "18095:80"]
    assert cli("run", "-d", "--name", "front", "--label", "tier=web", *publish, "windowsservercore", "ping", "-t",
               "127.0.0.1", sim=sim).returncode == 0
    assert cli("run", "--name", "back", "windowsservercore", "cmd", "/S", "/C", "exit 2", sim=sim).returncode == 2
    yield sim
    cli("rm", "-f", "front", "back", "middle", sim=sim)


def _out(*args: str, sim: SimulatedHost) -> str:
    done = cli(*args, sim=sim)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode()


@pytest.mark.simulator("runs the CLI or an example with --sim")
def test_ps_filters_formats_and_limits(two: SimulatedHost) -> None:
    sim = two
    assert _out("ps", "--format", "{{.Names}}", sim=sim).split() == ["front"]
    assert sorted(_out("ps", "-a", "--format", "{{.Names}}", sim=sim).split()) == ["back", "front"]
    assert _out("ps", "-a", "--filter", "status=exited", "--format", "{{.Names}}", sim=sim).split() == ["back"]
    assert _out("ps", "--filter", "label=tier=web", "--format", "{{.Names}}", sim=sim).split() == ["front"]
    assert _out("ps", "--filter", "label=tier=db", "--format", "{{.Names}}", sim=sim).split() == []
    assert sorted(_out("ps", "-a", "-f", "name=fro", "-f", "name=bac", "--format", "{{.Names}}",
                       sim=sim).split()) == ["back", "front"]  # one key's values are alternatives
    assert _out("ps", "-a", "-f", "name=fro", "-f", "status=exited", "--format", "{{.Names}}", sim=sim).split() == []
    assert _out("ps", "-f", "ancestor=windowsservercore", "--format", "{{.Names}}", sim=sim).split() == ["front"]
    assert sorted(_out("ps", "-a", "-f", "ancestor=windowsservercore", "--format", "{{.Names}}",
                       sim=sim).split()) == ["back", "front"]
    assert _out("ps", "-l", "--format", "{{.Names}}", sim=sim).split() == ["back"]  # the last created
    assert len(_out("ps", "-n", "2", "-q", sim=sim).split()) == 2
    full = _out("ps", "-q", "--no-trunc", sim=sim).split()
    assert len(full) == 1 and len(full[0]) == 64
    rows = [json.loads(line) for line in _out("ps", "-a", "--format", "{{json .}}", sim=sim).splitlines()]
    assert {r["Names"]: r["State"] for r in rows} == {"front": "running", "back": "exited"}
    table = _out("ps", "--format", "table {{.ID}}\\t{{.Names}}", sim=sim).splitlines()
    assert table[0].split() == ["CONTAINER", "ID", "NAMES"] and table[1].split()[1] == "front"
    bad = cli("ps", "--format", "{{.Nope}}", sim=sim)
    assert bad.returncode == 1 and b"no field '.Nope'" in bad.stderr
    assert cli("ps", "--filter", "colour=red", sim=sim).returncode == 1


@pytest.mark.simulator("runs the CLI or an example with --sim")
def test_inspect_f_version_stats_port_pause_rename(two: SimulatedHost) -> None:
    sim = two
    assert _out("inspect", "-f", "{{.State.Status}}", "front", sim=sim).strip() == "running"
    assert _out("inspect", "-f", "{{.State.ExitCode}}", "back", sim=sim).strip() == "2"
    assert json.loads(_out("inspect", "-f", "{{json .Config}}", "front", sim=sim))["Labels"] == {"tier": "web"}
    version = _out("version", "-f", "{{.Server.Version}} {{.Server.ApiGeneration}}", sim=sim).split()
    assert version == [f"10.0.{sim.profile.build}.0", {"tp3": "1", "2016": "2", "ws2019": "3"}[sim.profile.name]]
    assert _out("port", "front", sim=sim).strip() == "80/tcp -> 0.0.0.0:18095"
    assert _out("port", "front", "80", sim=sim).strip() == "0.0.0.0:18095"
    assert cli("port", "front", "81", sim=sim).returncode == 1
    stats = cli("stats", "--no-stream", "front", sim=sim)
    if sim.profile.name == "tp3":  # TP3 reports no statistics: said, not a traceback
        assert stats.returncode != 0 and b"TP3 reports no statistics" in stats.stderr
    else:
        assert stats.returncode == 0 and stats.stdout.decode().splitlines()[1].split()[1] == "front", stats.stderr
    paused = cli("pause", "front", sim=sim)
    if sim.profile.name == "tp3":
        assert paused.returncode == 1 and b"not supported by API generation 1" in paused.stderr
    else:
        assert paused.returncode == 0, paused.stderr
        assert _out("inspect", "-f", "{{.State.Status}}", "front", sim=sim).strip() == "paused"
        assert _out("unpause", "front", sim=sim).strip() == "front"
    assert cli("rename", "back", "middle", sim=sim).returncode == 0
    assert _out("ps", "-a", "--filter", "name=middle", "--format", "{{.Names}}", sim=sim).split() == ["middle"]
    assert cli("rename", "middle", "front", sim=sim).returncode == 1  # taken


def test_bad_flags_are_refused_before_anything_is_made(host: Host) -> None:
    for argv, says in ((["--cpus", "1.5"], b"whole processors"), (["-v", "data:C:\\data"], b"named volumes"),
                       (["--restart", "sometimes"], b"on-failure"), (["--log-opt", "max-file=3"], b"max-size"),
                       (["--hyperv-route", "computecore"], b"--isolation hyperv only"), (["-m", "lots"], b"512m")):
        done = cli("run", *argv, "--name", "never", "windowsservercore", "cmd", host=host)
        assert done.returncode == 125 and says in done.stderr, (argv, done.stderr)
    assert b"never" not in cli("ps", "-a", host=host).stdout
