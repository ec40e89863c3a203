"""The parts of detached containers that need no container: the json-file log (rotation, hostile
files, following across a rotation), the restart policy and its back-off, the CLI's exit status
and its create flags."""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

import pytest

from wincontainers import errors, monitors
from wincontainers._native import oshandle
from wincontainers._native.win32 import Win32
from wincontainers.cli._common import exit_status
from wincontainers.cli.options import add_create_arguments, create_options, parse_memory, parse_mount, parse_volume
from wincontainers.jsonlog import JsonLogWriter, LogOptions, follow_log, parse_since, read_log
from tests.conftest import SimulatedHost, target
from wincontainers.monitors import FIRST_DELAY, MAX_DELAY, AttachSession, MonitorFiles, RestartPolicy, next_delay
from wincontainers.statefiles import StateFiles


@pytest.fixture(scope="module")
def win32(request: pytest.FixtureRequest) -> Win32:
    """The simulated host's kernel32 (the Win32 code path the library runs on Windows), or
    under ``--host real`` this machine's."""
    if target(request.config) == "real":
        return Win32(oshandle.system_directory())
    sims: dict[str, SimulatedHost] = request.getfixturevalue("sim_roots")
    return Win32(sims["ws2019"].start().system_directory)


def test_lines_are_records_and_a_partial_line_waits_for_its_end(win32: Win32, tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    writer = JsonLogWriter(win32, log, clock=lambda: 1_796_572_770_123_456_789)
    writer.write("stdout", b"one\r\ntw")
    writer.write("stdout", b"o\r")
    writer.write("stdout", b"\nthree")
    writer.write("stderr", b"\xff bad utf-8\n")
    assert [json.loads(line)["log"] for line in log.read_text(encoding="utf-8").splitlines()] == [
        "one\r\n", "two\r\n", "\ufffd bad utf-8\n"]
    writer.flush_partial()
    writer.close()
    records = read_log(win32, log).records
    assert [(r.stream, r.data) for r in records][-1] == ("stdout", b"three")
    assert records[0].timestamp == "2026-12-06T15:59:30.123456789Z"


def test_rotation_keeps_max_file_files_and_reading_joins_them_in_order(win32: Win32, tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    options = LogOptions.parse(["max-size=1k", "max-file=3"])
    writer = JsonLogWriter(win32, log, options)
    for n in range(100):
        writer.write("stdout", f"line {n:03d}\n".encode())
    writer.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["c-json.log", "c-json.log.1", "c-json.log.2"]
    assert all(p.stat().st_size <= 1024 for p in tmp_path.iterdir())
    kept = [r.data for r in read_log(win32, log, options).records]
    assert kept == [f"line {n:03d}\n".encode() for n in range(100 - len(kept), 100)] and len(kept) > 20


def test_max_file_1_empties_the_file_in_place(win32: Win32, tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    writer = JsonLogWriter(win32, log, LogOptions.parse(["max-size=300"]))
    for n in range(20):
        writer.write("stdout", f"{n}\n".encode())
    writer.close()
    assert [p.name for p in tmp_path.iterdir()] == ["c-json.log"] and log.stat().st_size <= 300


def test_a_log_deeper_than_max_path_is_written_rotated_and_read(win32: Win32, tmp_path: Path) -> None:
    """A state folder deep enough that a container's log path passes MAX_PATH (260): every name
    the log uses goes to kernel32 in the \\\\?\\ form, which has no such limit."""
    deep = tmp_path / ("d" * 120) / ("e" * 120)
    deep.mkdir(parents=True)
    log = deep / ("0" * 64 + "-json.log")
    assert len(str(log)) > 260
    options = LogOptions.parse(["max-size=1k", "max-file=2"])
    writer = JsonLogWriter(win32, log, options)
    for n in range(60):
        writer.write("stdout", f"line {n:02d}\n".encode())
    writer.close()
    assert sorted(p.name for p in deep.iterdir()) == [log.name, log.name + ".1"]
    kept = [r.data for r in read_log(win32, log, options).records]
    assert kept == [f"line {n:02d}\n".encode() for n in range(60 - len(kept), 60)] and len(kept) > 10


def test_a_hostile_log_is_skipped_line_by_line(win32: Win32, tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    good = json.dumps({"log": "ok\n", "stream": "stdout", "time": "2026-01-01T00:00:00.5Z"})
    log.write_bytes(b"\n".join([
        b"not json", b"[1, 2]", json.dumps({"log": 5, "stream": "stdout", "time": "x"}).encode(),
        json.dumps({"log": "x", "stream": "stdin", "time": "2026-01-01T00:00:00Z"}).encode(),
        b'{"log": "' + b"a" * (1 << 20) + b'"}', good.encode(), b"\xff\xfe", good.encode()]) + b"\n")
    records = read_log(win32, log).records
    assert [r.data for r in records] == [b"ok\n", b"ok\n"]
    assert records[0].time_ns == 1_767_225_600_500_000_000


def test_follow_reads_across_a_rotation_and_ends_when_the_writer_is_done(win32: Win32, tmp_path: Path) -> None:
    log = tmp_path / "c-json.log"
    options = LogOptions.parse(["max-size=4k", "max-file=3"])
    writer = JsonLogWriter(win32, log, options)
    writer.write("stdout", b"first\n")
    snapshot = read_log(win32, log, options)
    done = threading.Event()

    def write() -> None:
        try:
            for n in range(200):
                writer.write("stdout", f"n{n}\n".encode())
                if n % 50 == 0:
                    time.sleep(0.05)
            writer.close()
        finally:
            done.set()

    threading.Thread(target=write).start()
    followed = [r.data for r in follow_log(win32, log, lambda: not done.is_set(), poll=0.01, after=snapshot)]
    assert followed == [f"n{n}\n".encode() for n in range(200)]
    assert [r.data for r in snapshot.records] == [b"first\n"]


def test_log_options_and_since_are_checked() -> None:
    assert LogOptions.parse([]) == LogOptions(None, 1)
    assert LogOptions.parse(["max-size=10m", "max-file=3"]) == LogOptions(10 << 20, 3)
    for bad in (["max-size=0"], ["max-size=ten"], ["max-file=0"], ["max-file=3"], ["compress=true"], ["x"]):
        with pytest.raises(errors.BadInput):
            LogOptions.parse(bad)
    assert parse_since("2026-12-06T10:00:00Z") == parse_since("2026-12-06T10:00:00")
    assert parse_since("1796572770") == 1_796_572_770_000_000_000
    assert parse_since("1h30m", now=10_000) == (10_000 - 5400) * 1_000_000_000
    with pytest.raises(errors.BadInput):
        parse_since("last tuesday")


def test_restart_policies_and_docker_back_off() -> None:
    assert str(RestartPolicy.parse("on-failure:3")) == "on-failure:3"
    for bad in ("sometimes", "always:3", "on-failure:x", "no:1"):
        with pytest.raises(errors.BadInput):
            RestartPolicy.parse(bad)
    on_failure = RestartPolicy.parse("on-failure:2")
    assert [on_failure.wants_restart(1, n) for n in range(3)] == [True, True, False]
    assert not on_failure.wants_restart(0, 0)
    assert RestartPolicy.parse("on-failure").wants_restart(1, 10_000)
    assert RestartPolicy.parse("always").wants_restart(0, 99) and not RestartPolicy.parse("no").wants_restart(1, 0)
    delays = [FIRST_DELAY]
    for _ in range(12):
        delays.append(next_delay(delays[-1], ran=1.0))
    assert delays[:4] == [0.1, 0.2, 0.4, 0.8] and delays[-1] == MAX_DELAY
    assert next_delay(MAX_DELAY, ran=10.0) == FIRST_DELAY


def test_exit_status_keeps_codes_a_posix_status_can_hold() -> None:
    assert exit_status(3) == 3 and exit_status(255) == 255
    if sys.platform != "win32":
        assert exit_status(0xC000013A) == 130  # Ctrl+C / a stop's console event, not its low byte 58
        assert exit_status(0xC0000005) == 255
        assert exit_status(256) == 255  # its low byte would read as success


def _flags(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_create_arguments(parser)
    return parser.parse_args(list(argv))


def test_create_flags_become_create_options(tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# comment\nA=1\n\nFROM_HERE\n", encoding="utf-8")
    options = create_options(_flags("-e", "B=2", "--env-file", str(env_file), "-v", r"C:\data:C:\app:ro",
                                    "--mount", "type=bind,source=/srv/x,target=C:\\x", "-m", "512m", "--cpus", "2",
                                    "--label", "tier=web", "--restart", "on-failure:3", "--log-opt", "max-size=1m",
                                    "-u", "ContainerUser", "--stop-timeout", "3"),
                             environ={"FROM_HERE": "yes"})
    assert options["env"] == {"A": "1", "FROM_HERE": "yes", "B": "2"}
    assert options["volumes"] == {"C:\\data": {"bind": "C:\\app", "mode": "ro"},
                                  "/srv/x": {"bind": "C:\\x", "mode": "rw"}}
    assert (options["memory_mb"], options["cpu_count"], options["labels"]) == (512, 2, {"tier": "web"})
    assert (options["restart_policy"], options["user"], options["stop_timeout"]) == ("on-failure:3", "ContainerUser", 3)
    assert parse_memory("1g") == 1024 and parse_memory("100k") == 1
    assert parse_volume("/a:/b") == ("/a", "/b", False) and parse_mount("src=/a,dst=/b,readonly") == ("/a", "/b", True)
    for argv in (["-v", "named:C:\\x"], ["--mount", "type=volume,source=v,target=C:\\x"], ["-m", "lots"],
                 ["--cpus", "1.5"], ["--rm", "--restart", "always"], ["-v", "/a:/b", "-v", "/a:/c"],
                 ["--env-file", str(tmp_path / "missing")]):
        with pytest.raises(errors.BadInput):
            create_options(_flags(*argv), environ={})
    assert create_options(_flags("--isolation", "hyperv"), environ={})["isolation"] == "hyperv"
    assert create_options(_flags(), environ={})["isolation"] is None  # the default: process
    with pytest.raises(errors.BadInput, match="--isolation hyperv only"):
        create_options(_flags("--hyperv-route", "computecore"), environ={})


def test_a_client_too_far_behind_is_dropped_without_stopping_the_output() -> None:
    """Output frames reach every attach client through a bounded queue; one that stops reading
    is dropped, and the monitor's output path (which holds its lock) never waits for it."""
    import multiprocessing.connection as mpc
    from collections import deque

    from wincontainers import monitor as monitor_module

    monitor = monitor_module.Monitor.__new__(monitor_module.Monitor)  # its output path only: no host
    monitor.lock, monitor.clients, monitor.history, monitor.history_size = threading.Lock(), [], deque(), 0
    ours, theirs = mpc.Pipe()  # nobody reads ``theirs``: the pipe fills, then the client's queue
    client = monitor_module._Client(ours, monitor)
    monitor.clients.append(client)
    done = threading.Event()

    def flood() -> None:
        for _ in range(monitor_module.CLIENT_QUEUE * 3):
            monitor.broadcast(b"o" + b"x" * 200)
        done.set()

    threading.Thread(target=flood, daemon=True).start()
    assert done.wait(30), "the output path waited for a client that does not read"
    assert monitor.clients == [] and client.closed
    theirs.close()


def _running_monitor(win32: Win32, tmp_path: Path) -> MonitorFiles:
    """The files of a monitor that says it runs (this process's pid) at an address nobody listens on."""
    files = MonitorFiles(StateFiles(win32), tmp_path, "c" * 64)
    files.prepare()
    files.files.write_json(files.state, {"pid": os.getpid(), "address": str(tmp_path / "gone.sock"),
                                         "family": "AF_PIPE" if sys.platform == "win32" else "AF_UNIX"})
    assert files.status() == "running"
    return files


@pytest.mark.simulator("the monitor's files go through the simulated kernel32")
def test_attaching_to_a_monitor_that_ends_meanwhile_says_it_is_not_running(
        win32: Win32, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    files = _running_monitor(win32, tmp_path)
    with pytest.raises(errors.MonitorError, match="cannot attach to container c{12}: "):
        AttachSession(files)  # still running, but its address does not answer

    # it ends just after its state was read: one reading decides, and the failed connect is
    # explained by a second look, not by "names no attach address"
    readings: list[Optional[dict[str, Any]]] = [files.read_state(), {"pid": os.getpid(), "ended": True}]
    monkeypatch.setattr(files, "read_state", lambda: readings.pop(0) if len(readings) > 1 else readings[0])
    with pytest.raises(errors.MonitorError, match=r"^container c{12} is not running$"):
        AttachSession(files)
    monkeypatch.undo()

    # it ends while the connection is being made
    def connect_to_an_ended_monitor(*args: Any, **kwargs: Any) -> None:
        files.files.write_json(files.state, {"pid": os.getpid(), "ended": True})
        raise FileNotFoundError(2, "No such file or directory")
    monkeypatch.setattr(monitors.mpc, "Client", connect_to_an_ended_monitor)
    with pytest.raises(errors.MonitorError, match=r"^container c{12} is not running$"):
        AttachSession(files)
