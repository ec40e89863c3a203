"""The process starter inside a simulated container: ``python -m wincontainers.sim.zygote FD``.

One runs per container (under bubblewrap when the host has it, see :mod:`sandbox`) with the
shell already imported; for each container process the daemon sends it a request and the
process's stdio over the socket ``FD``, and it forks. A forked child starts in about a
millisecond, where a new interpreter would take tens. The child reports through a socket of its
own: ``P`` first (the daemon reads the child's host pid from the message's credentials), then
``E`` and the full 32-bit exit code; the zygote adds ``X`` and the wait status when it reaps it.
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import fcntl
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
        os.setsid()
        for target, fd in ((0, stdin), (1, stdout), (2, stderr)):
            os.dup2(fd, target)
        for fd in {stdin, stdout, stderr}:
            if fd > 2:
                os.close(fd)
        console = bool(request.get("console"))
        if console:
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)
        status.send(b"P")
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


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    control = socket.socket(fileno=int(argv[0]))
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    os.set_blocking(wake_r, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    children: dict[int, socket.socket] = {}
    selector = selectors.DefaultSelector()
    selector.register(control, selectors.EVENT_READ, "control")
    selector.register(wake_r, selectors.EVENT_READ, "child")
    running = True
    while running or children:
        for key, _ in selector.select():
            if key.data == "child":
                try:
                    os.read(wake_r, 4096)
                except BlockingIOError:
                    pass
                _reap(children)
                continue
            try:
                data, fds, _, _ = socket.recv_fds(control, MAX_REQUEST, 4)
            except OSError:
                data, fds = b"", []
            if not data:
                running = False
                selector.unregister(control)
                if not children:
                    return 0
                continue
            if len(fds) != 4:
                for fd in fds:
                    os.close(fd)
                continue
            pid = os.fork()
            if pid == 0:
                control.close()
                signal.set_wakeup_fd(-1)
                os.close(wake_r)
                os.close(wake_w)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                _run_child(json.loads(data.decode()), fds)
            children[pid] = socket.socket(fileno=os.dup(fds[3]))
            for fd in fds:
                os.close(fd)
        _reap(children)
    return 0


def _reap(children: dict[int, socket.socket]) -> None:
    while children:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        sock = children.pop(pid, None)
        if sock is not None:
            try:
                sock.send(b"X" + struct.pack("<i", status))
            except OSError:
                pass
            sock.close()


if __name__ == "__main__":
    sys.exit(main())
