"""Containers and processes end to end, on every simulated profile."""

from __future__ import annotations

import os
import threading
import time

import pytest

from wincontainers import BadInput, Host, NotSupported, TimeoutExpired, errors
from tests.conftest import SimulatedHost
from tests.conftest import NOTIFYING, cli

HELLO = 'cmd /S /C "echo hello"'


def test_hello_world(host: Host, clean: SimulatedHost) -> None:
    with host.containers.create("windowsservercore") as c:
        c.start()
        result = c.run(HELLO)
        assert result.returncode == 0
        assert result.stdout == b"hello\r\n"
        assert result.stderr == b""
        assert c.run(["cmd", "/S", "/C", "exit 3"]).returncode == 3
        assert c.stop().outcome == "graceful"


def test_main_process_and_wait(host: Host, clean: SimulatedHost) -> None:
    with host.containers.create("windowsservercore", 'cmd /S /C "echo main & exit 7"') as c:
        c.start()
        assert c.process is not None
        out, err = c.process.communicate(timeout=30)
        assert out.strip() == b"main"
        exit_ = c.wait(30)
        assert exit_.exit_code == 7
        assert c.status == "exited"
        assert c.record.exit_code == 7


def test_stdin_stdout_stderr_and_text(host: Host, clean: SimulatedHost) -> None:
    with host.containers.create("windowsservercore") as c:
        c.start()
        p = c.exec('cmd /v:on /c "set /p line=& echo got:!line!& echo err>&2"', text=True)
        out, err = p.communicate("ping\n", timeout=30)
        assert out == "got:ping\n"  # text mode reads CRLF as a new line, as subprocess does
        assert err == "err\n"
        assert p.returncode == 0
        r = c.run('cmd /c findstr "^"', input=b"x" * 300000)
        assert r.stdout == b"x" * 300000 + b"\r\n"


def test_stdin_is_always_created_and_closing_it_ends_input(host: Host, clean: SimulatedHost) -> None:
    with host.containers.create("windowsservercore") as c:
        c.start()
        p = c.exec(["cmd", "/c", 'find /c /v ""'])
        assert p.stdin is not None
        p.stdin.write(b"12345")
        p.stdin.close()  # HCS CloseHandle(StdIn) + our handle: the process sees end of input
        assert p.wait(30) == 0
        assert p.stdout is not None and p.stdout.read() == b"1\r\n"  # one line read, then the end
        p.close()


def test_environment_and_workdir(host: Host, clean: SimulatedHost) -> None:
    with host.containers.create("windowsservercore", env={"GREETING": "hi"}) as c:
        c.start()
        r = c.run('cmd /c "echo %GREETING% %EXTRA%& cd"', env={"EXTRA": "there"}, workdir="C:\\windows\\system32")
        first, second = r.stdout.decode().splitlines()
        assert first == "hi there"
        assert second == "C:\\windows\\system32"  # the working directory as the caller spelt it


def test_workdir_missing_is_a_typed_error(host: Host, clean: SimulatedHost) -> None:
    with host.containers.create("windowsservercore") as c:
        c.start()
        with pytest.raises(errors.InvalidArgument) as info:
            c.exec('cmd /c "echo x"', workdir="C:\\does\\not\\exist")
        assert info.value.hresult == 0x8007010B
        with pytest.raises(errors.NotFound) as info2:
            c.exec("no-such-program-xyz")
        assert info2.value.hresult == 0x80070002


def test_console_mode(host: Host, clean: SimulatedHost) -> None:
    with host.containers.create("windowsservercore") as c:
        c.start()
        p = c.exec('cmd /c "echo out& echo err>&2& mode con"', tty=True, console_size=(30, 100))
        assert p.stderr is None  # a console merges stderr into stdout
        out, _ = p.communicate(timeout=30)
        lines = out.split(b"\r\n")
        assert lines[:2] == [b"out", b"err"]  # CRLF as written, once each, in order
        assert b"\n" not in out.replace(b"\r\n", b"")
        assert b"    Lines:          30" in lines and b"    Columns:        100" in lines


def test_console_resize(host: Host, clean: SimulatedHost) -> None:
    with host.containers.create("windowsservercore") as c:
        c.start()
        p = c.exec('cmd /c "set /p x=& mode con"', tty=True, console_size=(24, 80))
        p.resize(50, 132)
        assert p.stdin is not None
        p.stdin.write(b"go\n")
        out, _ = p.communicate(timeout=30)
        assert b"    Lines:          50\r\n    Columns:        132\r\n" in out
        with pytest.raises(BadInput):
            c.exec(HELLO).resize(10, 10)


def test_top_lists_processes_with_host_pids_images_and_memory(host: Host, clean: SimulatedHost) -> None:
    with host.containers.create("windowsservercore") as c:
        c.start()
        p = c.exec('cmd /c "ping -n 30 localhost > nul"')
        deadline = time.monotonic() + 10
        while True:
            rows = c.top()
            images = {r.image for r in rows}
            if "PING.EXE" in images or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert "cmd.exe" in images and "PING.EXE" in images
        by_image = {r.image: r for r in rows}
        assert by_image["cmd.exe"].pid == p.pid
        for r in rows:
            if r.image != "tasklist.exe":  # TP3's top runs tasklist, which lists itself and ends
                assert os.path.exists(f"/proc/{r.pid}"), "top reports host PIDs"
        assert by_image["PING.EXE"].memory_private_bytes > 0
        p.kill()
        assert p.wait(30) == 1


@pytest.mark.simulator("stops and starts the simulated service")
def test_stop_graceful_and_forced(host: Host, sim: SimulatedHost, clean: SimulatedHost) -> None:
    with host.containers.create("windowsservercore", "ping -t localhost") as c:
        c.start()
        result = c.stop(timeout=10)
        assert result.outcome == "graceful"
        assert result.elapsed < 5
    with host.containers.create("windowsservercore", "ping -t localhost") as c:
        c.start()
        sim.ignore_shutdown(c.id)
        started = time.monotonic()
        result = c.stop(timeout=2)
        took = time.monotonic() - started
        assert result.outcome == "forced"
        assert result.forced
        assert 2 <= took < 4, took
        assert c.status == "exited"
        assert c.stop(timeout=2).outcome == "already-stopped"


@pytest.mark.parametrize("profile", NOTIFYING, indirect=True)
def test_dropped_notifications_do_not_hang_waits(host: Host, sim: SimulatedHost, clean: SimulatedHost) -> None:
    pid = os.getpid()
    sim.drop_notification("ProcessExited", pid=pid, count=100)
    sim.drop_notification("SystemExited", pid=pid, count=100)
    if sim.profile.name == "2016":
        sim.drop_notification("SystemStartCompleted", pid=pid)
    with host.containers.create("windowsservercore") as c:
        started = time.monotonic()
        c.start(timeout=10)
        # The process outlives its registration, so its exit notification is sent (and dropped).
        r = c.run('cmd /S /C "ping -n 2 localhost > nul && echo hello"', timeout=10)
        assert r.stdout == b"hello\r\n"
        result = c.stop(timeout=10)
        assert result.outcome == "graceful"
        assert time.monotonic() - started < 10
    fired = {d["notification"]: d["fired"] for d in sim.faults()["drops"]}
    assert fired["ProcessExited"] >= 1 and fired["SystemExited"] >= 1


def test_pause_resume(host: Host, clean: SimulatedHost) -> None:
    with host.containers.create("windowsservercore") as c:
        c.start()
        if host.generation == 1:
            with pytest.raises(NotSupported) as info:
                c.pause()
            assert "generation 1" in str(info.value) and "Hint:" in str(info.value)
            return
        c.pause()
        assert c.status == "paused"
        c.resume()
        assert c.status == "running"
        assert c.run(HELLO).stdout == b"hello\r\n"


def test_signals(host: Host, clean: SimulatedHost) -> None:
    with host.containers.create("windowsservercore") as c:
        c.start()
        p = c.exec("ping -t localhost")
        assert p.stdout is not None and p.stdout.readline() == b"\r\n"
        assert p.stdout.readline().startswith(b"Pinging localhost")
        if host.generation == 3:
            p.send_signal("CtrlC")
            assert p.wait(30) == 0xC000013A  # STATUS_CONTROL_C_EXIT, after ping's own summary
            assert p.stdout.read().endswith(b"Control-C\r\n")
        else:
            with pytest.raises(NotSupported) as info:
                p.send_signal("CtrlC")
            assert f"generation {host.generation}" in str(info.value)
            p.kill()
            assert p.wait(30) == 1


def test_stats(host: Host, clean: SimulatedHost) -> None:
    with host.containers.create("windowsservercore") as c:
        c.start()
        if host.generation == 1:
            with pytest.raises(NotSupported):
                c.stats()
            return
        p = c.exec("ping -n 5 localhost")
        stats = c.stats()
        assert stats.memory_commit_bytes > 0
        assert stats.uptime_seconds >= 0
        p.kill()


@pytest.mark.simulator("the simulator's call log")
def test_bad_input_fails_before_side_effects(host: Host, sim: SimulatedHost, clean: SimulatedHost) -> None:
    before = sim.calls(clear=True)
    assert isinstance(before, list)
    with pytest.raises(BadInput, match="empty"):
        host.containers.create("windowsservercore", "   ")
    with pytest.raises(errors.NotFound, match=r"no such image: 'nosuchimage' \(base images on this host: "
                                              r"windowsservercore:\S+, nanoserver:") as missing:
        host.containers.create("nosuchimage")
    assert str(missing.value).count("no such image") == 1 and "image on image" not in str(missing.value)
    with pytest.raises(BadInput, match="invalid container name"):
        host.containers.create("windowsservercore", name="bad name!")
    with pytest.raises(BadInput, match="timeout"):
        host.containers.create("windowsservercore", timeout=-1)
    with pytest.raises(BadInput, match="environment variable"):
        host.containers.create("windowsservercore", env={"A=B": "x"})
    from wincontainers.container import parse_env_list

    with pytest.raises(BadInput, match="malformed"):
        parse_env_list(["=value"])
    # NAME alone takes the caller's value, and is left out when the caller has none (Docker's -e NAME).
    assert parse_env_list(["FROM_CALLER", "UNSET_HERE", "A=1"], {"FROM_CALLER": "x y"}) == {"FROM_CALLER": "x y", "A": "1"}
    calls = sim.calls()
    # Only lookups happened: no layer, no compute system, no process.
    assert set(calls) <= {"GetBaseImages", "NameToGuid"}, calls
    assert not list(host.records.all())
    assert not any(host.layers_root.iterdir())
    with host.containers.create("windowsservercore") as c:
        c.start()
        with pytest.raises(BadInput):
            c.exec([])
        with pytest.raises(BadInput):
            c.run(HELLO, timeout=-1)
        with pytest.raises(BadInput):
            c.stop(timeout=-5)


def test_name_is_unique_and_get_finds_by_name_and_prefix(host: Host, clean: SimulatedHost) -> None:
    with host.containers.create("windowsservercore", name="unique-name") as c:
        with pytest.raises(errors.AlreadyExists):
            host.containers.create("windowsservercore", name="unique-name")
        assert host.containers.get("unique-name").id == c.id
        assert host.containers.get(c.id[:10]).id == c.id
        listed = [i.name for i in host.containers.list(all=True)]
        assert "unique-name" in listed


def test_cli_run_prints_hello_and_propagates_exit_code(host: Host, clean: SimulatedHost) -> None:
    r = cli("run", "--rm", "windowsservercore", "cmd", "/S", "/C", "echo hello", host=host)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"hello\r\n"
    r = cli("run", "--rm", "windowsservercore", "cmd", "/S", "/C", "exit 3", host=host)
    assert r.returncode == 3
    r = cli("run", "--rm", "-i", "-e", "A=1", "windowsservercore", "cmd", "/c", "findstr .* & echo %A%", host=host,
            input=b"in\n")
    assert r.stdout == b"in\r\n1\r\n", r.stderr
    r = cli("run", "--rm", "-e", "=broken", "windowsservercore", "cmd", host=host)
    assert r.returncode == 125 and b"malformed environment variable" in r.stderr
    os.environ["WC_TEST_FROM_CALLER"] = "caller's value"
    try:
        r = cli("run", "--rm", "-e", "WC_TEST_FROM_CALLER", "-e", "WC_TEST_UNSET", "windowsservercore",
                "cmd", "/c", "echo [%WC_TEST_FROM_CALLER%] [%WC_TEST_UNSET%]", host=host)
    finally:
        del os.environ["WC_TEST_FROM_CALLER"]
    assert r.stdout == b"[caller's value] [%WC_TEST_UNSET%]\r\n", r.stderr


def test_container_from_another_process_is_listed_and_stopped(host: Host) -> None:
    c = host.containers.create("windowsservercore", 'cmd /c "ping -n 100 localhost > nul"', name="shared-one")
    c.start()
    try:
        r = cli("ps", host=host)
        assert r.returncode == 0
        assert b"shared-one" in r.stdout
        r = cli("top", "shared-one", host=host)
        assert b"PING.EXE" in r.stdout and str(c.process.pid).encode() in r.stdout  # type: ignore[union-attr]
        r = cli("stop", "-t", "5", "shared-one", host=host)
        assert r.returncode == 0 and b"graceful" in r.stdout, r.stderr
        assert c.process is not None and c.process.wait(30) is not None
        assert c.status == "exited"
        r = cli("ps", host=host)
        assert b"shared-one" not in r.stdout
        assert b"shared-one" in cli("ps", "-a", host=host).stdout
        r = cli("rm", "shared-one", host=host)
        assert r.returncode == 0
        assert b"shared-one" not in cli("ps", "-a", host=host).stdout
    finally:
        c.close()


@pytest.mark.simulator("handle counts")
def test_many_short_processes_keep_output_and_leak_nothing(host: Host, sim: SimulatedHost, clean: SimulatedHost) -> None:
    fd_dir = "/proc/self/fd"
    with host.containers.create("windowsservercore") as c:
        c.start()
        c.run(HELLO)  # warm up (first-use threads, callback objects)
        fds_before = len(os.listdir(fd_dir))
        for i in range(1000):
            r = c.run(f'cmd /S /C "echo line-{i}"')
            assert r.stdout == f"line-{i}\r\n".encode(), (i, r)
            assert r.returncode == 0
        assert len(os.listdir(fd_dir)) <= fds_before + 2
        system_handles = 1 if host.generation != 1 else 0
        callbacks = 1 if host.generation == 2 else 0
        deadline = time.monotonic() + 10
        while sim.handle_count() > system_handles + callbacks and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sim.handle_count() == system_handles + callbacks


def test_concurrent_containers(host: Host, clean: SimulatedHost) -> None:
    errors_seen: list[BaseException] = []
    outputs: dict[int, bytes] = {}

    def worker(i: int) -> None:
        try:
            with host.containers.create("windowsservercore", name=f"conc-{i}") as c:
                c.start()
                outputs[i] = c.run(f'cmd /S /C "echo {i}"').stdout
                c.stop(timeout=10)
        except BaseException as exc:  # surfaced below
            errors_seen.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "deadlock"
    assert not errors_seen, errors_seen
    assert outputs == {i: f"{i}\r\n".encode() for i in range(20)}
    assert not list(host.records.all())


def test_wait_timeout_and_kill(host: Host, clean: SimulatedHost) -> None:
    with host.containers.create("windowsservercore") as c:
        c.start()
        p = c.exec("ping -n 30 localhost")
        with pytest.raises(TimeoutExpired):
            p.wait(0.2)
        assert p.poll() is None
        p.kill()
        assert p.wait(30) == 1
        assert p.poll() == 1
        p.close()
