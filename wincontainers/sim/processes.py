"""Processes and consoles of simulated containers: create (pipes or a pty, environment,
the container's user), reap, signal, resize the console, process info, TP3's wait.
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import fcntl
import os
import pty
import signal
import struct
import termios
import threading
from typing import Any, Optional

from wincontainers.sim.sandbox import Zygote
from wincontainers.sim.shell import entry, tools
from wincontainers.sim.shell.environment import Environment, windows_environment
from wincontainers.sim.shell.textio import CommandError
from wincontainers.sim.shell.winpaths import ContainerFs
from wincontainers.sim.calls import (
    E_INVALIDARG,
    ERROR_BROKEN_PIPE,
    ERROR_DIRECTORY,
    ERROR_FILE_NOT_FOUND,
    ERROR_NOT_FOUND,
    ERROR_NOT_SUPPORTED,
    HCS_E_PROCESS_INFO_NOT_AVAILABLE,
    WAIT_TIMEOUT,
    Call,
    close_fd,
    get_key,
    loads_document,
)
from wincontainers.sim.faults import Fail
from wincontainers.sim.model import ComputeSystem, SimProcess
from wincontainers.sim.systems import Systems

__all__ = ["Processes", "set_winsize"]


class Processes(Systems):
    """Processes in compute systems, their pipes or console."""

    def create_process(
        self,
        call: Call,
        system: ComputeSystem,
        params_text: Optional[str],
        pipes: tuple[bool, bool, bool],
        keep: bool,
    ) -> tuple[SimProcess, list[int], int]:
        """Start a process; returns it, the caller's stdio fds (in, out, err order) and their mask."""
        params = loads_document(params_text, call, "process parameters")
        if not isinstance(params, dict):
            raise call.fail("INVALID_JSON", "the process parameters are not a JSON object")
        command_line = get_key(params, "CommandLine") or get_key(params, "ApplicationName")
        if not command_line or not str(command_line).strip():
            raise Fail(E_INVALIDARG, "the process has no CommandLine")
        with self.lock:
            if system.state != "Running":
                raise call.fail("INVALID_STATE", f"cannot create a process in a compute system that is {system.state}")
            if system.vm is not None:
                raise Fail(ERROR_NOT_SUPPORTED, "processes run in the containers a utility VM hosts, not in the VM")
        console = bool(get_key(params, "EmulateConsole", default=False))
        cwd_text = get_key(params, "WorkingDirectory") or "C:\\"
        try:
            fs = ContainerFs(system.root, str(cwd_text), system.mounts)
            cwd_windows = fs.cwd
            if not fs.is_dir(cwd_windows):
                raise CommandError("not a folder")
        except CommandError:
            raise Fail(ERROR_DIRECTORY, f"working directory {cwd_text!r} does not exist in the container") from None
        user = str(get_key(params, "User", default="") or "")
        env = self._environment(system, get_key(params, "Environment", default={}) or {}, user)
        try:
            image = entry.image_for(str(command_line), fs, env)
        except entry.ProgramNotFound as exc:
            raise Fail(ERROR_FILE_NOT_FOUND, f"cannot find {str(exc) or command_line!r} in the container") from None

        want_in, want_out, want_err = pipes
        parent_fds: list[Optional[int]] = [None, None, None]
        child_fds: list[Optional[int]] = [None, None, None]
        master = slave = None
        null_fd = None
        try:
            if console:
                master, slave = pty.openpty()
                _raw_output(slave)
                size = get_key(params, "ConsoleSize")
                if isinstance(size, list) and len(size) == 2 and all(size):
                    set_winsize(master, int(size[0]), int(size[1]))
                child_fds = [slave, slave, slave]
                if want_in:
                    parent_fds[0] = os.dup(master)
                if want_out:
                    parent_fds[1] = os.dup(master)
                # With a console stderr is merged into stdout: no stderr pipe (hcs-api.md 6.2).
            else:
                if want_in:
                    r, w = os.pipe()
                    child_fds[0], parent_fds[0] = r, w
                if want_out:
                    r, w = os.pipe()
                    parent_fds[1], child_fds[1] = r, w
                if want_err:
                    r, w = os.pipe()
                    parent_fds[2], child_fds[2] = r, w
            null_fd = os.open(os.devnull, os.O_RDWR)
            stdio = tuple(fd if fd is not None else null_fd for fd in child_fds)
            request = {
                "command_line": str(command_line), "root": str(system.root), "cwd": cwd_windows,
                "env": env, "console": console, "socket": str(self.socket_path), "system": system.id,
                "hostname": system.hostname.upper(), "version": self.version, "mounts": system.mounts,
                "image": image,
            }
            child = self.zygote_of(system).spawn(request, stdio)  # type: ignore[arg-type]
        except OSError as exc:
            for fd in (*parent_fds, master):
                if fd is not None:
                    close_fd(fd)
            raise Fail(0x80004005, f"starting {command_line!r} failed: {exc}") from None
        finally:
            for fd in {*child_fds, null_fd}:
                if fd is not None:
                    close_fd(fd)
        proc = SimProcess(
            system=system, child=child, pid=system.reported_pid(child.pid), image_name=image,
            command_line=str(command_line), console=console, host_pid=child.pid,
        )
        if master is not None:
            proc.pty_master = master
        if keep:
            for name, fd in zip(("StdIn", "StdOut", "StdErr"), parent_fds):
                if fd is not None:
                    proc.kept[name] = os.dup(fd)
        with self.lock:
            system.processes[proc.pid] = proc
        threading.Thread(target=self._reap, args=(proc,), name=f"reap-{proc.pid}", daemon=True).start()
        mask = sum(1 << i for i, fd in enumerate(parent_fds) if fd is not None)
        return proc, [fd for fd in parent_fds if fd is not None], mask

    def _environment(self, system: ComputeSystem, requested: Any, user: str) -> dict[str, str]:
        """A Windows container's environment: the system's variables, what ``setx`` saved in the
        container, then the ones the caller asked for."""
        merged = Environment(windows_environment(system.hostname, user))
        for key, value in tools.persisted_environment(system.root).items():
            merged.set(key, value)
        if isinstance(requested, dict):
            for key, value in list(requested.items())[:4096]:
                merged.set(str(key), "" if value is None else str(value))
        return merged.as_dict()

    def zygote_of(self, system: ComputeSystem) -> Zygote:
        """The container's process starter (made on its first process)."""
        with self.lock:
            if system.zygote is None:
                system.zygote = Zygote(system.root, self.socket_path, system.hostname, self.zygote_log,
                                       mounts=list(system.mounts.values()),
                                       read_only=sorted(system.read_only_mounts))
            return system.zygote  # type: ignore[no-any-return]

    def _reap(self, proc: SimProcess) -> None:
        code = proc.child.wait()
        with self.lock:
            proc.exit_code = code
            proc.exited.set()
            proc.close_kept()
            system = proc.system
            system.exit_codes[proc.pid] = proc.exit_code
            if len(system.exit_codes) > 4096:
                for old in list(system.exit_codes)[:2048]:
                    del system.exit_codes[old]
            handles = list(proc.handles)
            self.forget_if_done(proc)
        self.notify(handles, "ProcessExited", 0, proc.status_json())

    def forget_if_done(self, proc: SimProcess) -> None:
        with self.lock:
            if proc.exited.is_set() and not proc.handles:
                proc.system.processes.pop(proc.pid, None)

    def find_process(self, call: Call, system: ComputeSystem, pid: int) -> SimProcess:
        with self.lock:
            proc = system.processes.get(pid)
            if proc is None:
                raise Fail(ERROR_NOT_FOUND, f"no process {pid} in compute system {system.id}")
            return proc

    def signal_process(self, call: Call, proc: SimProcess, sig: int, already: int) -> None:
        if proc.exited.is_set():
            raise Fail(already, f"process {proc.pid} has already exited")
        if sig == signal.SIGKILL:
            proc.killed_by_terminate = True
        proc.signal_group(sig)
        if sig != signal.SIGKILL:
            proc.signal_group(signal.SIGCONT)

    def modify_process(self, call: Call, proc: SimProcess, settings_text: Optional[str]) -> None:
        settings = loads_document(settings_text, call, "modify process")
        operation = str(get_key(settings, "Operation", default="")).lower()
        if operation == "consolesize":
            size = get_key(settings, "ConsoleSize", default={}) or {}
            self.resize(proc, int(get_key(size, "Height", default=0)), int(get_key(size, "Width", default=0)))
        elif operation == "closehandle":
            if proc.exited.is_set():
                raise call.fail("INVALID_STATE", f"process {proc.pid} has exited")
            which = str(get_key(get_key(settings, "CloseHandle", default={}), "Handle", default=""))
            with self.lock:
                if which.lower() == "all":
                    proc.close_kept()
                elif which in ("StdIn", "StdOut", "StdErr"):
                    proc.close_kept(which)
                else:
                    raise Fail(E_INVALIDARG, f"unknown handle {which!r}")
        else:
            raise Fail(E_INVALIDARG, f"unknown modify operation {operation!r}")

    def resize(self, proc: SimProcess, height: int, width: int) -> None:
        if proc.pty_master is not None and height > 0 and width > 0:
            set_winsize(proc.pty_master, height, width)

    def process_info(self, call: Call, proc: SimProcess) -> tuple[list[int], int]:
        with self.lock:
            if proc.exited.is_set():
                raise Fail(HCS_E_PROCESS_INFO_NOT_AVAILABLE, f"process {proc.pid} has exited")
            fds, mask = [], 0
            for i, name in enumerate(("StdIn", "StdOut", "StdErr")):
                fd = proc.kept.get(name)
                if fd is not None:
                    fds.append(os.dup(fd))
                    mask |= 1 << i
            return fds, mask

    def wait_process_gen1(self, call: Call, system_id: str, pid: int, timeout_ms: int) -> int:
        system = self.find_system(call, system_id)
        with self.lock:
            proc = system.processes.get(pid)
            if proc is None:
                if pid in system.exit_codes:
                    return system.exit_codes[pid]
                raise Fail(ERROR_NOT_FOUND, f"no process {pid} in compute system {system_id}")
        timeout = None if timeout_ms == 0xFFFFFFFF else timeout_ms / 1000
        if not proc.exited.wait(timeout):
            raise Fail(WAIT_TIMEOUT, "the process is still running")
        if proc.killed_by_terminate and system.exit_type == "ForcedExit":
            raise Fail(ERROR_BROKEN_PIPE, "the compute system was terminated")
        return proc.exit_code or 0


def _raw_output(fd: int) -> None:
    """The console's output as written: the programs write CRLF themselves, as Windows ones do."""
    try:
        attrs_ = termios.tcgetattr(fd)
        attrs_[1] &= ~termios.ONLCR
        termios.tcsetattr(fd, termios.TCSANOW, attrs_)
    except termios.error:
        pass


def set_winsize(fd: int, rows: int, cols: int) -> None:
    """Resize a pty (a console's ResizeConsole)."""
    try:
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    except OSError:
        pass
