"""The caller's terminal: ``run -it`` through a real pty (raw mode, output once, settings back
byte for byte, the process's exit code), the console mode of the simulated kernel32, and the
detach keys."""

from __future__ import annotations

import contextlib
import os
import select
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import ROOT, cli
from wincontainers import errors
from wincontainers._native import win32 as w32
from wincontainers.cli.terminal import forward_input, parse_detach_keys
from tests.conftest import SimulatedHost

pty = pytest.importorskip("pty")  # POSIX: the simulated host's platform

CHILD = """
import sys, termios
before = termios.tcgetattr(0)
from wincontainers.cli import main
code = main(sys.argv[1:])
after = termios.tcgetattr(0)
print("TERMIOS-SAME" if before == after else "TERMIOS-CHANGED", flush=True)
sys.exit(code)
"""


def _read_until(fd: int, out: bytearray, token: bytes, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while token not in out and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                out += os.read(fd, 65536)
            except OSError:
                break
    return token in out


@pytest.mark.simulator("runs the CLI or an example with --sim")
@pytest.mark.parametrize("verb", ["run", "exec"])
def test_it_in_a_pty_is_raw_echoes_once_restores_the_terminal_and_exits_with_the_code(
        sim: SimulatedHost, tmp_path: Path, verb: str) -> None:
    child = tmp_path / "child.py"
    child.write_text(CHILD, encoding="utf-8")
    if verb == "exec":
        assert cli("run", "-d", "--name", "tty-target", "windowsservercore", "ping", "-t", "127.0.0.1",
                   sim=sim).returncode == 0
        argv = ["exec", "-it", "tty-target", "cmd"]
    else:
        argv = ["run", "-it", "--rm", "windowsservercore", "cmd"]
    try:
        _drive(sim, child, argv)
    finally:
        if verb == "exec":
            cli("rm", "-f", "tty-target", sim=sim)


def _fork(sim: SimulatedHost, child: Path, argv: list[str]) -> tuple[int, int]:
    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI on the pty's other end
        os.environ["PYTHONPATH"] = str(ROOT)
        os.execv(sys.executable, [sys.executable, str(child), "--sim", sim.profile.name, "--root", str(sim.root),
                                  *argv])
    return pid, fd


def _drive(sim: SimulatedHost, child: Path, argv: list[str]) -> None:
    pid, fd = _fork(sim, child, argv)
    out = bytearray()
    try:
        assert _read_until(fd, out, b"C:\\>"), bytes(out)
        os.write(fd, b"echo typed-once\r")
        assert _read_until(fd, out, b"typed-once\r\r\n", 20) or _read_until(fd, out, b"typed-once\r\n", 1), bytes(out)
        os.write(fd, b"exit 3\r")
        assert _read_until(fd, out, b"TERMIOS-"), bytes(out)
        _read_until(fd, out, b"\n", 2)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 3, bytes(out)
    assert b"TERMIOS-SAME" in out, bytes(out)
    assert out.count(b"echo typed-once") == 1, bytes(out)  # the container's console echoes; we do not


@pytest.mark.simulator("runs the CLI or an example with --sim")
def test_the_detach_keys_leave_an_attached_container_running(sim: SimulatedHost, tmp_path: Path) -> None:
    child = tmp_path / "child.py"
    child.write_text(CHILD, encoding="utf-8")
    assert cli("run", "-d", "-it", "--name", "tty-attach", "windowsservercore", "cmd", sim=sim).returncode == 0
    try:
        pid, fd = _fork(sim, child, ["attach", "tty-attach"])
        out = bytearray()
        try:
            time.sleep(1.0)  # attached
            os.write(fd, b"echo still-here\r")
            assert _read_until(fd, out, b"still-here\r"), bytes(out)
            os.write(fd, b"\x10\x11")  # ctrl-p, ctrl-q
            assert _read_until(fd, out, b"TERMIOS-"), bytes(out)
            _read_until(fd, out, b"\n", 2)
        finally:
            _, status = os.waitpid(pid, 0)
            os.close(fd)
        assert os.waitstatus_to_exitcode(status) == 0 and b"TERMIOS-SAME" in out, bytes(out)
        state = cli("inspect", "-f", "{{.State.Status}}", "tty-attach", sim=sim)
        assert state.stdout.strip() == b"running"  # detached, not stopped
    finally:
        cli("rm", "-f", "tty-attach", sim=sim)


@pytest.mark.simulator("the simulator's own files")
def test_a_redirected_standard_handle_has_no_console_mode(sim: SimulatedHost) -> None:
    api = w32.Win32(sim.system_directory)
    read_end, write_end = os.pipe()
    saved = os.dup(0)
    os.dup2(read_end, 0)  # standard input from a pipe: no console mode, as Windows says
    try:
        assert api.console_mode(w32.STD_INPUT_HANDLE) is None
        with pytest.raises(w32.Win32Error):
            api.set_console_mode(w32.STD_INPUT_HANDLE, 0)
    finally:
        os.dup2(saved, 0)
        for fd in (saved, read_end, write_end):
            os.close(fd)


def test_detach_keys_parse_as_docker_reads_them() -> None:
    assert parse_detach_keys("ctrl-p,ctrl-q") == b"\x10\x11"
    assert parse_detach_keys("ctrl-a,x") == b"\x01x"
    for bad in ("ctrl-", "ctrl-pp", "alt-x", ""):
        with pytest.raises(errors.BadInput):
            parse_detach_keys(bad)


@pytest.fixture
def stdin_pipe(monkeypatch: pytest.MonkeyPatch) -> Iterator[int]:
    """Our standard input from a pipe; yields its write end."""
    read_end, write_end = os.pipe()

    class Stdin:
        def fileno(self) -> int:
            return read_end

    monkeypatch.setattr(sys, "stdin", Stdin())
    yield write_end
    for fd in (read_end, write_end):
        with contextlib.suppress(OSError):
            os.close(fd)


@pytest.mark.parametrize("chunks", [[b"ab\x10\x11cd"], [b"ab\x10", b"\x11cd"], [b"a", b"b\x10", b"\x11"]])
def test_the_detach_keys_end_the_forwarding_even_split_across_reads(chunks: list[bytes], stdin_pipe: int) -> None:
    write_end = stdin_pipe
    written: list[bytes] = []
    events: list[str] = []
    thread = forward_input(written.append, lambda: events.append("closed"), detach_keys=b"\x10\x11",
                           on_detach=lambda: events.append("detached"))
    for chunk in chunks:
        os.write(write_end, chunk)
        time.sleep(0.05)
    thread.join(5)
    assert b"".join(written) == b"ab" and events == ["detached"]


def test_without_detach_keys_input_is_copied_and_its_end_closes(stdin_pipe: int) -> None:
    write_end = stdin_pipe
    written: list[bytes] = []
    closed = threading.Event()
    thread = forward_input(written.append, closed.set)
    os.write(write_end, b"\x10\x11 plain")
    os.close(write_end)
    thread.join(5)
    assert b"".join(written) == b"\x10\x11 plain" and closed.is_set()
