"""Host opening, the CLI's other commands, and containers from a layer list."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from wincontainers import Host, HcsUnavailable, errors
from tests.conftest import SimulatedHost
from tests.conftest import ROOT, cli


@pytest.mark.simulator("runs the CLI or an example with --sim")
def test_no_hcs_and_no_sim_says_to_use_the_simulator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WINCONTAINERS_SIM", raising=False)
    with pytest.raises(HcsUnavailable, match="use the simulated host"):
        Host.open()
    env = {k: v for k, v in os.environ.items() if k != "WINCONTAINERS_SIM"}
    env["PYTHONPATH"] = str(ROOT)
    r = subprocess.run([sys.executable, "-m", "wincontainers", "run", "windowsservercore", "cmd"],
                       capture_output=True, env=env, timeout=60)
    assert r.returncode != 0
    lines = r.stderr.decode().strip().splitlines()
    assert len(lines) == 1 and "--sim" in lines[0], lines


@pytest.mark.simulator("a simulated host of its own")
def test_sim_start_status_stop_from_the_command_line(tmp_path: object) -> None:
    sim = SimulatedHost("2016", str(tmp_path))
    try:
        r = cli("sim", "start", sim=sim)
        assert r.returncode == 0 and b"running" in r.stdout
        r = cli("sim", "status", sim=sim)
        assert r.returncode == 0 and b'"compute_systems": 0' in r.stdout
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        r = subprocess.run([sys.executable, "-m", "wincontainers.sim", "status", "--profile", "2016", "--root",
                            str(tmp_path)], capture_output=True, env=env, timeout=60)
        assert r.returncode == 0, r.stderr
        r = cli("sim", "stop", sim=sim)
        assert r.returncode == 0 and b"stopped" in r.stdout
        assert cli("sim", "status", sim=sim).returncode == 3
    finally:
        sim.stop()


@pytest.mark.simulator("a simulated host of its own")
def test_starting_and_stopping_the_simulator_is_logged(tmp_path: object, caplog: pytest.LogCaptureFixture) -> None:
    """The ``wincontainers.sim`` logger says which daemon runs where (and where it logs), and
    when it stopped; the daemon's own records go to its log file."""
    import logging

    sim = SimulatedHost("ws2019", str(tmp_path))
    with caplog.at_level(logging.INFO, logger="wincontainers.sim"):
        try:
            sim.start()
            pid = (sim.status() or {}).get("pid")
        finally:
            assert sim.stop() is True
    lines = [r.getMessage() for r in caplog.records if r.name == "wincontainers.sim"]
    started = [line for line in lines if line.startswith("started the simulated host")]
    assert len(started) == 1 and f"daemon pid {pid}," in started[0] and "daemon.log" in started[0], lines
    assert lines[-1] == f"stopped the simulated host {sim.root}", lines
    assert "listening on" in (sim.root / "daemon" / "daemon.log").read_text()


def test_info(host: Host) -> None:
    info = host.info()
    assert info["generation"] == host.generation and info["simulated"] is True
    assert any("WindowsServerCore" in i for i in info["base_images"])
    r = cli("info", host=host)
    assert r.returncode == 0 and f"generation: {host.generation}".encode() in r.stdout


def test_container_from_a_layer_list(host: Host, clean: SimulatedHost) -> None:
    base = next(i for i in host.base_images() if i.name == "NanoServer")
    with host.containers.create([base.path], name="from-layers") as c:
        c.start()
        assert c.record.layers == [base.path]
        assert c.run('cmd /S /C "dir /b Windows\\System32"').stdout.split()[0] == b"cmd.exe"
    with pytest.raises(errors.BadInput, match="does not exist"):
        host.containers.create(["/no/such/layer"])
    with pytest.raises(errors.BadInput, match="empty"):
        host.containers.create([])


def test_kill_and_wait(host: Host, clean: SimulatedHost) -> None:
    with host.containers.create("windowsservercore", "ping -t localhost") as c:
        c.start()
        c.kill()
        assert c.status == "exited"
        exit_ = c.wait(10)
        assert exit_.exit_code == 1  # terminated
        assert c.process is not None and c.process.returncode == 1


def test_wait_for_a_container_stopped_elsewhere(host: Host, clean: SimulatedHost) -> None:
    with host.containers.create("windowsservercore", name="waited") as c:
        c.start()
        r = cli("stop", "waited", host=host)
        assert r.returncode == 0, r.stderr
        if host.generation == 1:
            c.reload()  # TP3 has no exit notification: the record is where the stop shows
            assert c.status == "exited"
        else:
            assert c.wait(10).exit_type == "GracefulExit"


def test_cli_tty_run(host: Host, clean: SimulatedHost) -> None:
    r = cli("run", "--rm", "-t", "windowsservercore", "cmd", "/c", "echo console& mode con", host=host)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"console\r\n\r\nStatus for device CON:\r\n")  # CRLF once, as written
    assert b"    Lines:          9001\r\n" not in r.stdout  # a console has a size; a pipe would not


def test_cli_errors_for_unknown_containers(host: Host) -> None:
    r = cli("stop", "nonexistent-thing", host=host)
    assert r.returncode == 1 and b"no such container" in r.stderr
    r = cli("stop", "-t", "-1", "x", host=host)
    assert r.returncode != 0


@pytest.mark.simulator("runs the CLI or an example with --sim")
def test_version_options_after_the_command_and_unknown_flags(sim: SimulatedHost, profile: str) -> None:
    import subprocess
    import sys

    import wincontainers

    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, "-m", "wincontainers", "--version"], capture_output=True, text=True, env=env)
    assert run.returncode == 0 and run.stdout.strip() == f"wincontainers {wincontainers.__version__}"
    after = subprocess.run([sys.executable, "-m", "wincontainers", "run", "--sim", profile, "--root", str(sim.root),
                            "--rm", "windowsservercore", "cmd", "/c", "echo", "after", "-x"],
                           capture_output=True, text=True, env=env, timeout=120)
    assert after.returncode == 0 and after.stdout.split() == ["after", "-x"], after.stderr
    bogus = cli("layer", "import", "--bogus", "x.tar", sim=sim)
    assert bogus.returncode == 2 and b"usage: wincontainers layer import" in bogus.stderr
    assert b"unrecognized arguments: --bogus" in bogus.stderr
