"""Detached containers: the monitor, its json-file log, attach, wait, exec and the restart policy,
each reached from processes other than the one that started the container (every profile)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import ROOT, cli, run_example
from wincontainers import Host, errors
from wincontainers.monitors import MonitorFiles
from tests.conftest import SimulatedHost

PING = 'cmd /S /C "echo hello & ping -n 3 127.0.0.1 >nul & echo done & exit 4"'


@pytest.fixture(autouse=True)
def _no_container_left(host: Host) -> Iterator[None]:
    """A failed test must not leave its containers (and their monitors) to the next ones."""
    yield
    for record in list(host.records.all()):
        with contextlib.suppress(errors.WincontainersError):
            host.containers.get(record.id).remove(force=True)


def _spawn_cli(*args: str, sim: SimulatedHost) -> "subprocess.Popen[bytes]":
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen([sys.executable, "-m", "wincontainers", "--sim", sim.profile.name, "--root",
                             str(sim.root), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)


def _until(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.simulator("runs the CLI or an example with --sim")
def test_run_d_output_is_seen_by_logs_follow_and_attach_from_three_other_processes(sim: SimulatedHost) -> None:
    started = cli("run", "-d", "--name", "web", "windowsservercore", "cmd", "/S", "/C",
                  "echo hello & ping -n 4 127.0.0.1 >nul & echo done & exit 4", sim=sim)
    assert started.returncode == 0, started.stderr
    container_id = started.stdout.decode().strip()
    assert len(container_id) == 64  # the starting process has exited; the container runs on
    follower = _spawn_cli("logs", "-f", "web", sim=sim)
    attacher = _spawn_cli("attach", "--no-stdin", "web", sim=sim)
    waiter = _spawn_cli("wait", "web", sim=sim)
    out, err = follower.communicate(timeout=60)
    assert follower.returncode == 0, err
    assert out == b"hello \r\ndone \r\n"
    out, err = attacher.communicate(timeout=60)
    assert b"done \r\n" in out and attacher.returncode == 4, err  # attach exits with the process's code
    out, err = waiter.communicate(timeout=60)
    assert out.decode().strip() == "4", err
    logs = cli("logs", "-t", "web", sim=sim)
    lines = logs.stdout.decode().splitlines()
    assert [line.split(" ", 1)[1] for line in lines] == ["hello ", "done "]
    assert all(line[:4].isdigit() and line.split(" ", 1)[0].endswith("Z") for line in lines)
    ps = cli("ps", "-a", sim=sim).stdout.decode()
    assert "Exited (4)" in ps and "web" in ps
    assert cli("rm", "web", sim=sim).returncode == 0
    assert not (sim.root / "wincontainers" / "monitors" / container_id).exists()


@pytest.mark.simulator("runs the CLI or an example with --sim")
def test_logs_follow_ends_when_the_container_is_stopped(sim: SimulatedHost) -> None:
    assert cli("run", "-d", "--name", "pinger", "windowsservercore", "cmd", "/S", "/C",
               "echo up & ping -t 127.0.0.1", sim=sim).returncode == 0
    follower = _spawn_cli("logs", "-f", "pinger", sim=sim)
    time.sleep(1.5)
    assert follower.poll() is None  # still following
    stopped = cli("stop", "pinger", sim=sim)
    assert stopped.returncode == 0, stopped.stderr
    out, err = follower.communicate(timeout=30)
    assert follower.returncode == 0, err
    assert out.startswith(b"up \r\n") and b"Reply from 127.0.0.1" in out


def test_the_log_is_docker_json_file_and_tail_and_since_filter_it(host: Host) -> None:
    with host.containers.create("windowsservercore", 'cmd /S /C "echo one & echo two 1>&2 & echo three"') as c:
        c.start(detach=True)
        assert c.wait(60).exit_code == 0
        files = MonitorFiles(host.files, host.state_dir, c.id)
        records = [json.loads(line) for line in files.log.read_text(encoding="utf-8").splitlines()]
        # the two pipes are read apart, so only each stream's own order is certain
        assert [r["log"] for r in records if r["stream"] == "stdout"] == ["one \r\n", "three\r\n"]
        assert [r["log"] for r in records if r["stream"] == "stderr"] == ["two  \r\n"]
        assert all(sorted(r) == ["log", "stream", "time"] for r in records)
        assert all(r["time"].endswith("Z") and len(r["time"]) == 30 for r in records)
        assert c.logs(stderr=False) == b"one \r\nthree\r\n"
        assert c.logs(tail=1) == records[-1]["log"].encode() and c.logs(stderr=False, tail=1) == b"three\r\n"
        assert c.logs(tail=0) == b""
        assert c.logs(since="1h") == c.logs()
        assert c.logs(since=time.time() + 3600) == b""
        with pytest.raises(errors.BadInput):
            c.logs(tail=-1)
        with pytest.raises(errors.BadInput):
            c.logs(since="yesterday")


def test_logs_of_a_container_never_detached_say_why(host: Host) -> None:
    with host.containers.create("windowsservercore") as c:
        with pytest.raises(errors.InvalidState, match="never started detached"):
            c.logs()
        with pytest.raises(errors.MonitorError, match="not started detached"):
            c.attach()


def test_on_failure_restarts_n_times_and_ps_shows_the_count(host: Host) -> None:
    started = cli("run", "-d", "--name", "flaky", "--restart", "on-failure:3", "windowsservercore",
                  "cmd", "/S", "/C", "echo try & exit 2", host=host)
    assert started.returncode == 0, started.stderr
    container = host.containers.get("flaky")
    files = MonitorFiles(host.files, host.state_dir, container.id)
    _until(lambda: files.status() == "ended", 60)
    container.reload()
    assert container.record.restart_count == 3 and container.record.exit_code == 2
    assert container.logs() == b"try \r\n" * 4
    assert "Exited (2)" in cli("ps", "-a", host=host).stdout.decode()
    assert "3 restarts" in cli("ps", "-a", host=host).stdout.decode()
    assert cli("rm", "flaky", host=host).returncode == 0


def test_stop_ends_the_restarting(host: Host) -> None:
    assert cli("run", "-d", "--name", "forever", "--restart", "always", "windowsservercore",
               "cmd", "/S", "/C", "ping -n 2 127.0.0.1 >nul & exit 1", host=host).returncode == 0
    container = host.containers.get("forever")
    _until(lambda: (container.reload(), container.record.restart_count)[1] >= 1, 60)
    stopped = cli("stop", "forever", host=host)
    assert stopped.returncode == 0, stopped.stderr
    files = MonitorFiles(host.files, host.state_dir, container.id)
    _until(lambda: files.status() == "ended", 30)
    container.reload()
    count = container.record.restart_count
    time.sleep(1.0)
    container.reload()
    assert container.record.restart_count == count and container.status == "exited"
    assert cli("rm", "forever", host=host).returncode == 0


def test_a_killed_monitor_leaves_the_container_listed_its_log_readable_and_rm_f_cleans_up(
        host: Host) -> None:
    started = cli("run", "-d", "--name", "orphan", "windowsservercore", "cmd", "/S", "/C",
                  "echo before & ping -t 127.0.0.1", host=host)
    assert started.returncode == 0, started.stderr
    container = host.containers.get("orphan")
    files = MonitorFiles(host.files, host.state_dir, container.id)
    _until(lambda: b"before" in container.logs())
    pid = files.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    _until(lambda: files.status() == "dead")
    assert "orphan" in cli("ps", host=host).stdout.decode()
    assert "(unmonitored)" in cli("ps", host=host).stdout.decode()
    logs = cli("logs", "orphan", host=host)
    assert logs.stdout.startswith(b"before") and b"monitor of orphan is gone" in logs.stderr
    assert cli("attach", "orphan", host=host).returncode != 0
    assert cli("rm", "-f", "orphan", host=host).returncode == 0
    assert not files.folder.exists() and not Path(container.record.sandbox).exists()


def test_exec_into_a_detached_container_from_another_process(host: Host) -> None:
    assert cli("run", "-d", "--name", "busy", "windowsservercore", "ping", "-t", "127.0.0.1", host=host).returncode == 0
    done = cli("exec", "busy", "cmd", "/S", "/C", "echo inside & exit 5", host=host)
    assert done.returncode == 5 and done.stdout == b"inside \r\n", done.stderr
    piped = cli("exec", "-i", "busy", "findstr", "x", host=host, input=b"axb\r\nno\r\n")
    assert piped.stdout == b"axb\r\n", piped.stderr
    assert cli("exec", "busy", host=host).returncode == 125  # no command
    assert cli("rm", "-f", "busy", host=host).returncode == 0
    assert cli("exec", "busy", "cmd", host=host).returncode == 125


def test_attach_with_stdin_drives_the_main_process(host: Host) -> None:
    assert cli("run", "-d", "-i", "--name", "talk", "windowsservercore", "findstr", "keep", host=host).returncode == 0
    with host.containers.get("talk") as c:
        with c.attach(stdin=True) as session:
            session.write(b"keep this\r\ndrop this\r\n")
            session.close_stdin()
            out = b"".join(data for _, data in session)
        assert out == b"keep this\r\n" and session.exit_code == 0
        assert c.wait(30).exit_code == 0
        c.remove()


def test_start_a_replays_the_output_from_the_start_and_restart_runs_again(host: Host) -> None:
    created = cli("create", "--name", "again", "windowsservercore", "cmd", "/S", "/C", "echo run & exit 3", host=host)
    assert created.returncode == 0, created.stderr
    first = cli("start", "-a", "again", host=host)
    assert first.stdout == b"run \r\n" and first.returncode == 3, first.stderr
    assert cli("restart", "again", host=host).returncode == 0
    assert cli("wait", "again", host=host).stdout.strip() == b"3"
    assert cli("logs", "again", host=host).stdout == b"run \r\nrun \r\n"
    assert cli("rm", "again", host=host).returncode == 0


@pytest.mark.simulator("runs the CLI in this process against the simulated host")
def test_start_a_of_a_command_that_ended_before_the_attach_shows_its_output_and_code(
        sim: SimulatedHost, monkeypatch: pytest.MonkeyPatch, capfdbinary: pytest.CaptureFixture[bytes]) -> None:
    """The race seen under load: the main process exits, and its monitor with it, before
    ``start -a`` attaches. What attaching would have shown comes from the log instead."""
    from wincontainers.cli import main
    from wincontainers.container import Container

    where = ["--sim", sim.profile.name, "--root", str(sim.root)]
    assert cli("create", "--name", "late", "windowsservercore", "cmd", "/S", "/C", "echo late & exit 5",
               sim=sim).returncode == 0
    attach = Container.attach

    def attach_after_the_end(self: Container, *args: object, **kwargs: object) -> object:
        _until(lambda: self.monitor_status() == "ended", 60)
        return attach(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Container, "attach", attach_after_the_end)
    capfdbinary.readouterr()
    assert main([*where, "start", "-a", "late"]) == 5
    assert capfdbinary.readouterr().out == b"late \r\n"
    monkeypatch.undo()
    assert cli("rm", "late", sim=sim).returncode == 0


def test_run_d_rm_removes_the_container_when_it_ends(host: Host) -> None:
    started = cli("run", "-d", "--rm", "--name", "brief", "windowsservercore", "cmd", "/S", "/C", "echo x", host=host)
    assert started.returncode == 0, started.stderr
    _until(lambda: not host.records.exists(started.stdout.decode().strip()), 60)
    assert cli("run", "-d", "--rm", "--restart", "always", "windowsservercore", "cmd", host=host).returncode == 125


def test_api_run_detach_returns_the_container_and_create_start_runs_the_image_command(host: Host) -> None:
    from wincontainers.build import build

    tag = f"cmdimage:{host.generation}"
    context = Path(host.state_dir) / "cmd-context"
    context.mkdir(exist_ok=True)
    (context / "Dockerfile").write_text('FROM windowsservercore\nCMD ["cmd", "/S", "/C", "echo from-cmd & exit 6"]\n')
    build(host, context, tags=[tag], output=lambda _t: None)
    result = host.containers.run(tag)
    assert result.returncode == 6 and result.stdout == b"from-cmd \r\n"
    container = host.containers.create(tag)
    container.start(detach=True)
    assert container.wait(60).exit_code == 6 and container.logs() == b"from-cmd \r\n"
    container.remove()
    detached = host.containers.run(tag, detach=True)
    assert detached.wait(60).exit_code == 6
    detached.remove()
    host.images.remove(tag, force=True)


def test_rename_moves_the_name(host: Host) -> None:
    with host.containers.create("windowsservercore", name="before") as c:
        c.rename("after")
        assert host.containers.get("after").id == c.id
        with pytest.raises(errors.NotFound):
            host.containers.get("before")
        with pytest.raises(errors.BadInput):
            c.rename("bad name")
        with host.containers.create("windowsservercore", name="taken"):
            with pytest.raises(errors.AlreadyExists):
                c.rename("taken")
        assert c.name == "after"


@pytest.mark.simulator("runs the CLI or an example with --sim")
def test_the_detached_example_runs(sim: SimulatedHost) -> None:
    done = run_example("detached.py", sim)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "runs detached: running, its monitor running" in lines[0]
    assert lines[1].startswith("its log so far: Reply from 127.0.0.1") and lines[2].startswith("followed: Reply")
    assert lines[3].endswith("stopped: graceful") or lines[3].endswith("stopped: forced")
    assert lines[4].endswith("exited 1 after 2 restarts; its log: ['trying', 'trying', 'trying']")
