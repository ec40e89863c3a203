"""The process starter inside a simulated container: ``python -m wincontainers.sim.zygote FD``.

One runs per container (under bubblewrap when the host has it, see :mod:`sandbox`) with the
shell already imported. It keeps one spare child forked ahead of time and hands the daemon, on
the control socket ``FD``, a socket to that spare (``S``). The spare introduces itself on it
(``R``, with its credentials, from which the daemon reads its host pid). For a CreateProcess the
daemon sends the spare the request and the process's stdio and returns at once: a process
starts in about the time an exec takes, where a new interpreter would take tens of milliseconds.
The child reports ``E`` and its full 32-bit exit code on a status socket of its own. The zygote
reports ``X``, a pid and its wait status, when it reaps a child.
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import fcntl
import io
import json
import os
import selectors
import signal
import socket
import struct
import termios
import traceback
from pathlib import Path
from typing import Any, Callable, Optional

from wincontainers.sim import wire
from wincontainers.sim.shell import entry
from wincontainers.sim.shell.interpreter import HostInfo, Shell
from wincontainers.sim.shell.programs import set_process_name
from wincontainers.sim.shell.textio import Io

__all__ = ["main", "MAX_REQUEST"]

MAX_REQUEST = 1 << 20


def control_client(socket_path: str) -> Callable[[dict[str, Any]], Any]:
    """A function asking the simulated host's daemon (``tasklist``, ``ipconfig``)."""

    def ask(request: dict[str, Any]) -> Any:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(30)
        try:
            sock.connect(socket_path)
            wire.send_message(sock, b"J" + json.dumps(request).encode())
            msg = wire.recv_message(sock)
        finally:
            sock.close()
        if msg is None:
            raise OSError("the simulator daemon closed the connection")
        answer = json.loads(msg[0][1:].decode())
        if not answer.get("ok"):
            raise OSError(answer.get("error"))
        return answer["result"]

    return ask


def _run_child(request: dict[str, Any], fds: list[int]) -> None:
    """In the forked child: become the container process and never return."""
    code = 1
    status: Optional[socket.socket] = None
    try:
        stdin, stdout, stderr, status_fd = fds
        status = socket.socket(fileno=status_fd)
        for target, fd in ((0, stdin), (1, stdout), (2, stderr)):
            os.dup2(fd, target)
        for fd in {stdin, stdout, stderr}:
            if fd > 2:
                os.close(fd)
        console = bool(request.get("console"))
        if console:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        set_process_name(str(request.get("image") or "cmd.exe"))
        Shell.fork_programs = True
        io = Io(os.fdopen(0, "rb", buffering=0), os.fdopen(1, "wb", buffering=0),  # type: ignore[arg-type]
                os.fdopen(2, "wb", buffering=0), tty=console)
        host = HostInfo(version=str(request.get("version", "10.0")), hostname=str(request.get("hostname", "")),
                        container_id=str(request.get("system", "")),
                        control=control_client(str(request["socket"])) if request.get("socket") else None)
        shell = entry.new_shell(Path(request["root"]), str(request.get("cwd") or "C:\\"),
                                dict(request.get("env") or {}), host, dict(request.get("mounts") or {}))
        code = entry.run_command_line(str(request["command_line"]), shell, io)
    except BaseException:  # noqa: BLE001 - the process must report, whatever happened
        try:
            os.write(2, ("the simulated process failed:\n" + traceback.format_exc()).encode())
        except OSError:
            pass
        code = 1
    finally:
        try:
            if status is not None:
                status.send(b"E" + struct.pack("<I", code & 0xFFFFFFFF))
        except OSError:
            pass
        os._exit(code & 0xFF)


def _warm_up() -> None:
    """Run a command nobody sees, in the spare, before its request: the pages a run writes
    (reference counts everywhere) are copied from the zygote now rather than on the request's
    path, where those copy-on-write faults cost more than the fork itself."""
    json.loads(json.dumps({"command_line": "cmd /c echo", "env": {"A": "b"}}))
    out = io.BytesIO()
    shell = entry.new_shell(Path("/"), "C:\\", {"PATHEXT": ".COM;.EXE;.BAT;.CMD"}, HostInfo())
    entry.run_command_line("cmd /c echo warm & set X=1", shell, Io(io.BytesIO(), out, out))  # type: ignore[arg-type]


class _Zygote:
    """The loop: spares forked ahead and announced to the daemon, children reaped and reported."""

    def __init__(self, control: socket.socket) -> None:
        self.control = control
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        os.set_blocking(self.wake_r, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        self.children: set[int] = set()
        self.spare: Optional[tuple[int, int]] = None  # pid, the read end its request closes

    def _become_child(self) -> None:
        """In a fresh fork: drop what only the zygote holds."""
        self.control.close()
        signal.set_wakeup_fd(-1)
        os.close(self.wake_r)
        os.close(self.wake_w)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)

    def fork_spare(self) -> None:
        """Fork the next process ahead of its request and hand the daemon its socket.

        A fork costs about a millisecond here and the pages a run first writes cost more: the
        spare pays both while the container is idle. It is its own session already, and
        tells the daemon its pid before any request, so CreateProcess waits for nothing.
        """
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        used_r, used_w = os.pipe()
        pid = os.fork()
        if pid == 0:
            ours.close()
            os.close(used_r)
            self._become_child()
            _spare(theirs, used_w)
        theirs.close()
        os.close(used_w)
        self.children.add(pid)
        self.spare = (pid, used_r)
        try:
            socket.send_fds(self.control, [b"S" + struct.pack("<i", pid)], [ours.fileno()])
        except OSError:
            pass  # the daemon is gone: run() ends on the control socket's end
        ours.close()

    def run(self) -> int:
        selector = selectors.DefaultSelector()
        selector.register(self.control, selectors.EVENT_READ, "control")
        selector.register(self.wake_r, selectors.EVENT_READ, "child")
        self.fork_spare()
        assert self.spare is not None
        selector.register(self.spare[1], selectors.EVENT_READ, "used")
        running = True
        while running or self.children:
            for key, _ in selector.select():
                if key.data == "child":
                    try:
                        os.read(self.wake_r, 4096)
                    except BlockingIOError:
                        pass
                elif key.data == "used":  # the spare got its request (or died): the next one
                    selector.unregister(key.fd)
                    os.close(key.fd)  # type: ignore[arg-type]
                    self.spare = None
                    if running:
                        self.fork_spare()
                        assert self.spare is not None
                        selector.register(self.spare[1], selectors.EVENT_READ, "used")
                else:
                    try:
                        data = self.control.recv(64)
                    except OSError:
                        data = b""
                    if not data:  # the daemon closed: end the spare, wait for the rest
                        running = False
                        selector.unregister(self.control)
                        if self.spare is not None:
                            os.kill(self.spare[0], signal.SIGKILL)
            self.reap()
        return 0

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.discard(pid)
            try:
                self.control.send(b"X" + struct.pack("<ii", pid, status))
            except OSError:
                pass


def _spare(requests: socket.socket, used_w: int) -> None:
    """A forked spare: announce itself, warm up, wait for its request, run it; never returns."""
    try:
        os.setsid()
        requests.sendmsg([b"R" + struct.pack("<i", os.getpid())], [(
            socket.SOL_SOCKET, socket.SCM_CREDENTIALS, struct.pack("3i", os.getpid(), os.getuid(), os.getgid()))])
        _warm_up()
        data, fds, _, _ = socket.recv_fds(requests, MAX_REQUEST, 4)
    except (OSError, ValueError):
        os._exit(0)
    os.close(used_w)
    requests.close()
    if not data or len(fds) != 4:
        os._exit(0)
    _run_child(json.loads(data.decode()), fds)


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    return _Zygote(socket.socket(fileno=int(argv[0]))).run()


if __name__ == "__main__":
    sys.exit(main())
