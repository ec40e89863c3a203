"""Containers: create from an image, start, exec, top, stop, remove.

A :class:`Container` is one compute system plus its sandbox layer, created as Docker does:
``CreateSandboxLayer`` over the image's layers, ``ActivateLayer``, ``PrepareLayer``, the mount
path into the container document, then the compute system. Every step is undone if a later one
fails, so a failed create leaves nothing behind.

If the container was created with a command, ``start()`` runs it as the container's main
process and the container stops when it exits (Docker's rule, and the only exit TP3 reports).

Why one file: :class:`Container` is the one object users hold for a container, and each of its
methods is the entry to a job that lives elsewhere (files in ``container_files``, logs in
``jsonlog``, detached runs in ``monitors``, awaitables in ``aio``, value types in
``container_types``); splitting the class itself would split what users see as one thing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import threading
import time
import weakref
from typing import IO, TYPE_CHECKING, Any, Callable, Iterator, Mapping, Optional, Union

from wincontainers import aio, errors
from wincontainers.aio import Signal
from wincontainers import networks as nets
from wincontainers.container_files import Change, ContainerFiles, CopyResult
from wincontainers.container_types import (STATES, ContainerExit, ContainerInfo, ContainerProcess, ContainerStats,
                                           ProcessList, StopResult, check_command, check_env, check_timeout, default_command,
                                           inspect_document, parse_env_list)
from wincontainers.driver.base import DEFAULT_TIMEOUT, ProcessSpec, SystemRef
from wincontainers.display import RichDisplay, Shown, name_or_id, short_id, when
from wincontainers.errors import BadInput
from wincontainers.jsonlog import LogOptions, LogRecord
from wincontainers.monitors import AttachSession, MonitorFiles, spawn
from wincontainers.process import CalledProcessError, Command, CompletedProcess, Process, TimeoutExpired, stream_sink
from wincontainers.records import ContainerRecord

if TYPE_CHECKING:
    from wincontainers.host import Host

log = logging.getLogger("wincontainers.containers")

__all__ = ["Container", "ContainerInfo", "ContainerProcess", "ContainerStats", "ContainerExit", "StopResult",
           "default_command", "parse_env_list"]


class Container(RichDisplay):
    """One container (compute system + sandbox layer). Get one from ``host.containers``."""

    def __init__(self, host: "Host", record: ContainerRecord, system: Optional[SystemRef] = None, *,
                 owned: bool = False) -> None:
        self.host = host
        self._record = record
        self._system_ref = system
        self._owned = owned
        self._lock = threading.RLock()
        self.process: Optional[Process] = None
        self._main_done = Signal()
        self._removed = False
        self._refs: list[Any] = [system]
        self._finalizer = weakref.finalize(self, _close_refs, self._refs)

    def __repr__(self) -> str:
        return f"<Container {self.name} {self.id[:12]} ({self._record.image})>"

    # -- identity ----------------------------------------------------------------------------

    def _shown_(self) -> Shown:
        record = self._record
        try:
            state = "removed" if self._removed else self.status
        except errors.HcsError as exc:  # a display never raises: it says what it could not ask
            state = f"unknown ({type(exc).__name__})"
        return Shown("Container", self.name, state=state, fields=(
            ("ID", short_id(self.id)), ("image", name_or_id(record.image)),
            ("command", record.command), ("created", when(record.created)),
            *((("exit code", record.exit_code),) if state == "exited" else ())))

    @property
    def id(self) -> str:
        return self._record.id

    @property
    def short_id(self) -> str:
        return self._record.id[:12]

    @property
    def name(self) -> str:
        return self._record.name

    @property
    def image(self) -> str:
        return self._record.image

    @property
    def record(self) -> ContainerRecord:
        return self._record

    @property
    def subject(self) -> str:
        return f"container {self.name}"

    def _system(self) -> SystemRef:
        with self._lock:
            if self._system_ref is None:
                self._system_ref = self.host.driver.open_system(self.id, hosted=self._record.hosted)
                self._refs.append(self._system_ref)
            return self._system_ref

    def update(self, **changes: Any) -> None:
        """Change fields of the container's record. The record on disk is read first, so what
        another process changed meanwhile (its monitor's exit code, a rename) is kept; a record
        removed meanwhile is not brought back."""
        with self._lock:
            if self._removed:
                return
            try:
                self._record = self.host.records.load(self.id)
            except (errors.NotFound, errors.DamagedRecord):  # removed, or damaged: rm -f's to repair
                self._removed = True
                return
            for k, v in changes.items():
                setattr(self._record, k, v)
            self.host.records.save(self._record)

    # -- state -------------------------------------------------------------------------------

    @property
    def status(self) -> str:
        """``created``, ``running``, ``paused`` or ``exited`` (asked from HCS where it can tell)."""
        if not self.host.driver.capabilities.reports_state:
            return self._record.state
        try:
            props = self._properties()
        except errors.NotFound:
            if self._record.state != "exited":
                self.update(state="exited", finished=self._record.finished or time.time())
            return "exited"
        state = STATES.get(str(props.get("State")), self._record.state)
        if state != self._record.state and state == "exited":
            self.update(state="exited", finished=self._record.finished or time.time())
        return state

    def _properties(self) -> dict[str, Any]:
        """Basic properties, asked twice: HCS fails the query transiently (E_HANDLE while stopping)."""
        try:
            return self._system().properties()
        except errors.NotFound:
            raise
        except errors.HcsError:
            time.sleep(0.05)
            return self._system().properties()

    def reload(self) -> None:
        """Re-read the record (another process may have changed it)."""
        with self._lock:
            self._record = self.host.records.load(self.id)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout: Optional[float] = DEFAULT_TIMEOUT, *, detach: bool = False,
              output: Optional[Callable[[str, bytes], None]] = None, stdin: bool = True) -> "Container":
        """Start the compute system, and the main process when the container has a command.
        An exited container starts again on a new compute system over the same sandbox (its
        files are kept), as ``docker start`` does.

        ``detach=True`` hands the container to a monitor process that holds the main process's
        stdio, keeps its log, records its exit and applies the restart policy; this process may
        then exit, and :meth:`logs`, :meth:`attach` and :meth:`wait` reach it from any process.
        It returns once the main process runs (a failure to start comes back typed). Without
        it, the main process's output is buffered on :attr:`process`, or given to
        ``output(stream, data)`` as it comes; ``stdin=False`` closes its stdin at once."""
        check_timeout(timeout)
        if detach and self._record.command:
            return self._start_detached()
        with self._lock:
            if self._record.state in ("exited", "restarting"):
                self._recreate(timeout)
            self._system().start(timeout)
            self.update(state="running", started=time.time(), finished=None, exit_code=None,
                       detached=self._record.detached and output is not None)
            if self._record.command:
                self.process = self._exec_main(output, stdin)
        return self

    def _monitor_files(self) -> MonitorFiles:
        return MonitorFiles(self.host.files, self.host.state_dir, self.id)

    def _start_detached(self) -> "Container":
        files = self._monitor_files()
        with self._lock:
            if files.status() in ("running", "starting") and self.status in ("running", "paused"):
                raise errors.InvalidState("start", subject=self.subject, message="it is already running",
                                          hint="attach to it (attach()) or stop it first")
            self.update(detached=True)
            self.close()  # the monitor opens the compute system itself
            spawn(files, self.host.open_arguments)
            self.reload()
        return self

    def monitor_status(self) -> str:
        """``none`` (never started detached), ``running``, ``ended`` or ``dead``: a monitor that
        was killed leaves its container running but unmonitored (no more output is kept)."""
        return self._monitor_files().status()

    def _recreate(self, timeout: Optional[float]) -> None:
        """A new compute system for an exited container (HCS cannot start a stopped one)."""
        self.close()
        system = self.host.containers.new_system(self._record, timeout)
        self._system_ref = system
        self._refs.append(system)
        self._main_done = Signal()
        self.process = None
        self.update(state="created")

    # -- networks -----------------------------------------------------------------------------

    def network_settings(self) -> list[dict[str, Any]]:
        """Each network adapter: network, endpoint, IP, prefix, gateway, MAC, port mappings.

        TP3 reports no addresses: there, a running container is asked (``ipconfig``) once.
        """
        def ask_ip() -> Optional[str]:
            return self._ipconfig_address() if self.status == "running" else None

        return self.host.networks.settings(self._record.network, ask_ip)

    def _ipconfig_address(self) -> Optional[str]:
        return nets.ipconfig_address(self.run("ipconfig", timeout=30).stdout.decode("utf-8", "replace"))

    def connect(self, network: nets.AttachLike, *, ports: nets.PortsLike = None) -> str:
        """Attach to another network while running (HNS/HCN hosts); returns the endpoint ID."""
        with self._lock:
            endpoint_id, state = self.host.networks.connect(self._system(), self._record.network, network, ports=ports,
                                                            container_name=self.name, container_id=self.id)
            self.update(network=state)
            return endpoint_id

    def disconnect(self, network: nets.AttachLike) -> None:
        """Detach from a network (a Network, its name or ID, an Endpoint or endpoint ID) while
        running; an endpoint made for the container is removed."""
        with self._lock:
            state = self.host.networks.disconnect(self._system(), self._record.network, network,
                                                  container_name=self.name)
            self.update(network=state)

    def inspect(self) -> dict[str, Any]:
        """The container as ``docker inspect`` shows one: state, config, mounts and network
        settings (each network's IP, prefix, gateway and MAC; the port mappings)."""
        return inspect_document(self._record, self.status, self.network_settings())

    def _exec_main(self, output: Optional[Callable[[str, bytes], None]], stdin: bool) -> Process:
        assert self._record.command is not None
        sinks: dict[str, Any] = {}
        if output is not None:
            sinks = {"stdout_sink": lambda data: output("stdout", data),
                     "stderr_sink": lambda data: output("stderr", data)}
        try:
            proc = self.exec(self._record.command, tty=self._record.tty, stdin=stdin, _on_exit=self._main_exited,
                             **sinks)
        except BaseException:
            self.kill()
            raise
        self.update(main_pid=proc.pid)
        return proc

    def _main_exited(self, proc: Process) -> None:
        """The main process ended: so does the container (Docker's rule; TP3's only exit)."""
        with self._lock:
            try:
                if self._removed or self._record.state == "exited":
                    return
                try:
                    self._system().shutdown(10)
                except errors.HcsError:
                    try:
                        self._system().terminate(30)
                    except errors.HcsError:
                        pass
            finally:
                if not self._removed:
                    self.update(state="exited", exit_code=proc.returncode, finished=time.time())
                self._main_done.set()

    def wait(self, timeout: Optional[float] = None) -> ContainerExit:
        """Wait until the container exits; with a main process, until it exits and the container stops."""
        check_timeout(timeout)
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.process is None:
            self.reload()  # its monitor, or another process, may have ended it meanwhile
        if self._monitored():
            return ContainerExit(self._wait_monitored(timeout), "GracefulExit")
        if self.process is None and self.status == "exited":  # its system may be gone: the record knows
            return ContainerExit(self._record.exit_code, "GracefulExit")
        if self.process is not None:
            try:
                self.process.wait(timeout)
            except TimeoutExpired:
                raise self._timed_out(timeout) from None
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not self._main_done.wait(remaining):
                raise self._timed_out(timeout)
            return ContainerExit(self.process.returncode, "GracefulExit")
        status = self._system().wait_exited(timeout)
        if status is None:
            raise self._timed_out(timeout)
        if self._record.state != "exited":
            self.update(state="exited", finished=time.time())
        return ContainerExit(self._record.exit_code, status.exit_type)

    # -- asyncio: the same operations, awaited (see wincontainers.aio) -------------------------

    async def start_async(self, timeout: Optional[float] = DEFAULT_TIMEOUT, *, detach: bool = False,
                          output: Optional[Callable[[str, bytes], None]] = None, stdin: bool = True) -> "Container":
        """:meth:`start`, awaited (HCS's start blocks: it runs on the shared pool). Cancelled
        once the start is under way, the container is stopped again when it has started."""
        check_timeout(timeout)
        return await aio.call_blocking(self.start, timeout, detach=detach, output=output, stdin=stdin,
                                       undo=lambda started: started.stop())

    async def stop_async(self, timeout: Optional[float] = None, *, kill_timeout: float = 30.0) -> StopResult:
        """:meth:`stop`, awaited (on the shared pool). A stop under way finishes even if the
        awaiting task is cancelled: it is what leaves nothing running."""
        return await aio.call_blocking(self.stop, timeout, kill_timeout=kill_timeout)

    async def wait_async(self, timeout: Optional[float] = None) -> ContainerExit:
        """:meth:`wait`, awaited: woken by the exit notification or the main process's exit,
        with no thread waiting (a detached container's monitor is waited for on the loop's
        executor). Cancelling the wait leaves the container as it is."""
        check_timeout(timeout)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        if self.process is None:
            self.reload()
        if self._monitored():
            return await loop.run_in_executor(None, self.wait, timeout)
        if self.process is None and self.status == "exited":
            return ContainerExit(self._record.exit_code, "GracefulExit")
        if self.process is not None:
            try:
                await self.process.wait_async(timeout)
            except TimeoutExpired:
                raise self._timed_out(timeout) from None
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            if not await aio.wait_signal(self._main_done, remaining):
                raise self._timed_out(timeout)
            return ContainerExit(self.process.returncode, "GracefulExit")
        system = self._system()
        probe = system.probe_exit if self.host.driver.capabilities.reports_state else None
        if not await aio.wait_signal(system.exit_signal(), timeout, probe=probe):
            raise self._timed_out(timeout)
        return self.wait(0)

    def _timed_out(self, timeout: Optional[float]) -> TimeoutExpired:
        """What a wait for the container raises when ``timeout`` expires (its command named)."""
        return TimeoutExpired(self._record.command or "", timeout or 0.0)

    def _monitored(self) -> bool:
        """Whether its main process is held by a live monitor (not by this object)."""
        return self.process is None and self._record.detached and self.monitor_status() == "running"

    def _wait_monitored(self, timeout: Optional[float]) -> Optional[int]:
        """Wait, through its monitor, for a detached container's main process to exit (the next
        exit: a container that restarts has exited once); its exit code."""
        try:
            with AttachSession(self._monitor_files()) as session:
                code = session.wait(timeout)
        except errors.MonitorError:
            code = None
        except TimeoutError:
            raise self._timed_out(timeout) from None
        self.reload()
        return code if code is not None else self._record.exit_code

    def stop(self, timeout: Optional[float] = None, *, kill_timeout: float = 30.0) -> StopResult:
        """Graceful shutdown, then terminate once ``timeout`` expires (default: the container's
        ``stop_timeout``, else 10 s). Already stopped is success. A stop also ends the restarting
        of a container with a restart policy."""
        timeout = timeout if timeout is not None else (self._record.stop_timeout or 10.0)
        check_timeout(timeout)
        check_timeout(kill_timeout, "kill_timeout")
        started = time.monotonic()
        self._monitor_files().request_stop()
        with self._lock:
            if self._record.state == "exited" and not self.host.driver.capabilities.reports_state:
                return StopResult("already-stopped", 0.0, self._record.exit_code)
            state = self.status
            if state == "exited":
                return StopResult("already-stopped", time.monotonic() - started, self._record.exit_code)
            system = self._system()
            if state == "paused":
                system.resume(DEFAULT_TIMEOUT)
            if system.shutdown(timeout):
                outcome = "graceful"
            else:
                system.terminate(kill_timeout)
                outcome = "forced"
            code = self._main_exit_code(5.0)
            self.update(state="exited", finished=time.time(), exit_code=code)
            return StopResult(outcome, time.monotonic() - started, code)

    def _main_exit_code(self, timeout: float) -> Optional[int]:
        if self._monitored():
            try:
                return self._wait_monitored(timeout)
            except TimeoutExpired:
                return None
        if self.process is None:
            return self._record.exit_code
        try:
            return self.process.wait(timeout)
        except TimeoutExpired:
            return None

    def kill(self, timeout: Optional[float] = 30.0) -> None:
        """Terminate the container at once."""
        check_timeout(timeout)
        self._monitor_files().request_stop()
        with self._lock:
            self._system().terminate(timeout)
            self.update(state="exited", finished=time.time(), exit_code=self._main_exit_code(5.0))

    def rename(self, name: str) -> None:
        """Give the container another name (running or not); the old name is free at once."""
        with self._lock:
            self.host.records.rename(self.id, name)
            self.reload()

    def pause(self, timeout: Optional[float] = DEFAULT_TIMEOUT) -> None:
        check_timeout(timeout)
        self._system().pause(timeout)
        self.update(state="paused")

    def resume(self, timeout: Optional[float] = DEFAULT_TIMEOUT) -> None:
        check_timeout(timeout)
        self._system().resume(timeout)
        self.update(state="running")

    unpause = resume

    # -- processes ---------------------------------------------------------------------------

    def exec(
        self,
        cmd: Command,
        *,
        env: Optional[Mapping[str, str]] = None,
        workdir: Optional[str] = None,
        user: Optional[str] = None,
        tty: bool = False,
        console_size: Optional[tuple[int, int]] = None,
        stdin: bool = True,
        text: bool = False,
        encoding: Optional[str] = None,
        errors: Optional[str] = None,
        stdout_sink: Optional[Callable[[bytes], None]] = None,
        stderr_sink: Optional[Callable[[bytes], None]] = None,
        echo: bool = False,
        _on_exit: Optional[Callable[[Process], None]] = None,
    ) -> Process:
        """Start ``cmd`` (a command line, or a list joined with Windows quoting) in the container.

        Pipes are the default; ``tty=True`` gives a console (stderr merged into stdout).
        ``stdin=False`` closes the process's stdin at once (it always exists). ``stdout_sink`` /
        ``stderr_sink`` receive the output as it comes instead of buffering it; ``echo=True``
        also writes it to this process's stdout and stderr as it comes (live in a Jupyter
        cell), while :attr:`Process.stdout` still reads it.
        """
        command_line = check_command(cmd, required=True)
        environment = {**self._record.env, **check_env(env)}
        if workdir is not None and (not isinstance(workdir, str) or not workdir):
            raise BadInput("workdir must be a non-empty string")  # ``errors`` is a parameter here
        if console_size is not None and (
            len(console_size) != 2 or not all(isinstance(v, int) and 0 < v <= 0xFFFF for v in console_size)
        ):
            raise BadInput("console_size is (height, width), each between 1 and 65535")
        spec = ProcessSpec(
            command_line=command_line or "",
            working_directory=workdir or self._record.workdir,
            environment=environment,
            console=tty,
            console_size=console_size or ((24, 80) if tty else None),
            user=user or self._record.user,
        )
        ref = self._system().create_process(spec)
        return Process(
            ref, cmd, tty=tty, text=text, encoding=encoding, errors_=errors, stdout_sink=stdout_sink,
            stderr_sink=stderr_sink, keep_stdin=stdin, on_exit=_on_exit, subject=f"{self.subject}",
            echo=(stream_sink(sys.stdout), stream_sink(sys.stderr)) if echo else None,
        )

    def run(
        self,
        cmd: Command,
        *,
        input: Any = None,
        capture_output: bool = True,
        timeout: Optional[float] = None,
        check: bool = False,
        text: bool = False,
        encoding: Optional[str] = None,
        errors: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        workdir: Optional[str] = None,
        user: Optional[str] = None,
        tty: bool = False,
        echo: bool = False,
    ) -> CompletedProcess:
        """Run ``cmd`` to completion, like :func:`subprocess.run` (output captured by default).

        With ``capture_output=False`` the output goes to this process's stdout and stderr.
        ``echo=True`` writes it there as it comes (live, in a Jupyter cell too) and still
        captures it.
        """
        check_timeout(timeout)
        sinks: dict[str, Any] = {}
        if not capture_output:
            sinks = {"stdout_sink": stream_sink(sys.stdout), "stderr_sink": stream_sink(sys.stderr)}
        proc = self.exec(cmd, env=env, workdir=workdir, user=user, tty=tty, text=text, encoding=encoding,
                         errors=errors, echo=echo and capture_output, **sinks)
        try:
            try:
                out, err = proc.communicate(input, timeout)
            except TimeoutExpired:
                proc.kill()
                proc.wait(30)
                raise
        finally:
            proc.close()
        result = CompletedProcess(cmd, proc.returncode if proc.returncode is not None else -1, out, err)
        if check and result.returncode:
            raise CalledProcessError(result.returncode, cmd, out, err)
        return result

    def top(self) -> ProcessList:
        """The container's processes with their PIDs, image names and memory (a list, shown as
        a table in Jupyter). The PIDs are HCS's: the host's under process isolation, the utility
        VM's own under Hyper-V isolation (those processes are not host processes)."""
        return ProcessList(ContainerProcess.from_hcs(e) for e in self._system().process_list())

    def stats(self) -> ContainerStats:
        """Memory, CPU and uptime from HCS (Server 2016 and later); for a container with a
        utility VM of its own, the VM's (its memory is all the container can have)."""
        if not self.host.driver.capabilities.statistics:
            raise errors.NotSupported(
                "stats", subject=self.subject, generation=self.host.generation,
                alternative="TP3 reports no statistics; top() shows each process's memory",
            )
        return ContainerStats.from_hcs(self._system().properties(["Statistics"]).get("Statistics") or {})

    # -- removal -----------------------------------------------------------------------------

    def remove(self, force: bool = False, *, timeout: Optional[float] = 30.0) -> None:
        """Remove the container and its sandbox. A running container needs ``force=True``."""
        check_timeout(timeout)
        with self._lock:
            state = self.status
            if state in ("running", "paused") and not force:
                raise errors.InvalidState(
                    "remove", subject=self.subject, message="the container is running",
                    hint="stop it first (stop()) or remove it with force=True",
                )
            monitor = self._monitor_files()
            monitor.request_stop()
            if state != "exited":
                try:
                    self._system().terminate(timeout)
                except (errors.NotFound, errors.AlreadyStopped):
                    pass
            self._removed = True
            self.close()
            if self._record.hosted:  # its utility VM, should nothing have stopped it yet
                self.host.containers.end_utility_vm(self.id)
            monitor.finish()
            self.host.layers.remove_sandbox(self._record.sandbox)
            if self._record.network:
                self.host.networks.release(self._record.network)
            self.host.records.delete(self._record)

    # -- files -------------------------------------------------------------------------------

    @property
    def files(self) -> ContainerFiles:
        """Its file system from the host: ``copy_to``, ``copy_from``, ``diff``, ``export``."""
        return ContainerFiles(self.host, self._record, self.status)

    def copy_to(self, src: Union[str, "os.PathLike[str]", IO[bytes]], dest: str) -> CopyResult:
        """Copy a host file or folder (or a tar stream) into the container: :meth:`ContainerFiles.copy_to`."""
        return self.files.copy_to(src, dest)

    def copy_from(self, src: str, dest: Union[str, "os.PathLike[str]", IO[bytes]]) -> CopyResult:
        """Copy a container file or folder to the host (or a tar stream): :meth:`ContainerFiles.copy_from`."""
        return self.files.copy_from(src, dest)

    def diff(self) -> list[Change]:
        """What changed since it was created (stopped only): :meth:`ContainerFiles.diff`."""
        return self.files.diff()

    def export(self, dest: Union[str, "os.PathLike[str]", IO[bytes]]) -> CopyResult:
        """Its whole file system as one tar: :meth:`ContainerFiles.export`."""
        return self.files.export(dest)

    # -- logs and attach ----------------------------------------------------------------------

    def log_records(self, *, stdout: bool = True, stderr: bool = True, tail: Optional[int] = None,
                    since: Union[float, str, None] = None, follow: bool = False) -> Iterator[LogRecord]:
        """The records of a detached container's log (:class:`~wincontainers.jsonlog.LogRecord`:
        stream, data, time), oldest first: the last ``tail`` only, those at or after ``since``
        (epoch seconds, an RFC 3339 time or a duration such as ``"10m"``); with ``follow``, then
        those written from now on until the container's monitor ends (it stops, or is stopped)."""
        options = LogOptions.from_json(self._record.log_options)
        return self._monitor_files().log_records(options, stdout=stdout, stderr=stderr, tail=tail, since=since,
                                                 follow=follow)

    def logs(self, stdout: bool = True, stderr: bool = True, timestamps: bool = False, tail: Optional[int] = None,
             since: Union[float, str, None] = None, follow: bool = False) -> Union[bytes, Iterator[bytes]]:
        """The output of a detached container, as docker-py's ``logs``: bytes, or with
        ``follow=True`` an iterator of chunks that ends when the container stops. ``timestamps``
        puts each line's RFC 3339 time before it. A killed monitor keeps what it wrote;
        :meth:`monitor_status` then says ``dead``."""
        records = self.log_records(stdout=stdout, stderr=stderr, tail=tail, since=since, follow=follow)
        chunks = ((r.timestamp.encode() + b" " + r.data) if timestamps else r.data for r in records)
        return chunks if follow else b"".join(chunks)

    def attach(self, *, stdin: bool = False, replay: bool = False) -> AttachSession:
        """Attach to a detached container's main process: iterate the session for its output
        (``(stream, data)``) until it exits; with ``stdin=True`` write to it (``write``,
        ``close_stdin``). :class:`~wincontainers.errors.MonitorError` when nothing is attachable
        (not running, never detached, or its monitor was killed). ``replay``: the output since
        the start first (up to 1 MiB)."""
        return AttachSession(self._monitor_files(), stdin=stdin, replay=replay)

    def close(self) -> None:
        """Release the HCS handles held for this container (it keeps running)."""
        with self._lock:
            self._finalizer()
            self._system_ref = None
            self._refs.clear()
            self._finalizer = weakref.finalize(self, _close_refs, self._refs)

    def __enter__(self) -> "Container":
        return self

    def __exit__(self, *exc: object) -> None:
        """A container created here is stopped and removed (like ``docker run --rm``); an opened one is closed."""
        if not self._owned:
            self.close()
            return
        try:
            if self.host.records.exists(self.id):
                try:
                    self.stop(10)
                except errors.HcsError:
                    pass
                self.remove(force=True)
        finally:
            self.close()


def _close_refs(refs: list[Any]) -> None:
    for ref in refs:
        if ref is not None:
            try:
                ref.close()
            except Exception as exc:  # noqa: BLE001 - a finalizer must not raise; it says so instead
                log.warning("closing a container handle failed (it may stay open until exit): %s", exc)
