"""``host.containers``: create containers from an image (Docker's order of steps, each undone
when a later one fails), get them by id, prefix or name, list them, and remove one whose record
is damaged."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Mapping, Optional, Sequence, Union, overload

from wincontainers import aio, errors
from wincontainers import networks as nets
from wincontainers.display import RichDisplay, Shown
from wincontainers.driver.base import (
    DEFAULT_TIMEOUT,
    HYPERV_ROUTES,
    LayerRef,
    SystemRef,
    container_of_utility_vm,
    utility_vm_id,
)
from wincontainers.process import (
    CalledProcessError,
    Command,
    CompletedProcess,
    TimeoutExpired,
    stream_sink,
)
from wincontainers.records import ContainerRecord, validate_name
from wincontainers.rollback import Rollback

if TYPE_CHECKING:
    from wincontainers.host import Host
from wincontainers.container import Container
from wincontainers.container_types import (
    CONTAINER_COLUMNS,
    STATES,
    ContainerInfo,
    check_command,
    image_command as main_command,
    check_env,
    check_isolation,
    check_timeout,
    config_env,
    mapped_directories,
    only_a_shell,
    system_spec,
)
from wincontainers.jsonlog import LogOptions
from wincontainers.monitors import RestartPolicy

log = logging.getLogger("wincontainers.containers")

__all__ = ["ContainerCollection"]


class ContainerCollection(RichDisplay):
    """``host.containers``: create, get and list containers (docker-py's ``client.containers``)."""

    def __init__(self, host: "Host") -> None:
        self.host = host

    def _shown_(self) -> Shown:
        return Shown.table("Containers", CONTAINER_COLUMNS, (c.row() for c in self.list(all=True)),
                           empty="no container")

    def create(
        self,
        image: Union[str, Sequence[str]],
        command: Optional[Command] = None,
        *,
        entrypoint: Optional[Command] = None,
        image_command: Optional[bool] = None,
        name: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        workdir: Optional[str] = None,
        hostname: Optional[str] = None,
        tty: bool = False,
        volumes: Optional[Mapping[str, Any]] = None,
        user: Optional[str] = None,
        memory_mb: Optional[int] = None,
        cpu_count: Optional[int] = None,
        labels: Optional[Mapping[str, str]] = None,
        network: Optional[nets.AttachLike] = None,
        ports: nets.PortsLike = None,
        restart_policy: Optional[str] = None,
        log_options: Optional[Sequence[str]] = None,
        stdin_open: bool = False,
        stop_timeout: Optional[float] = None,
        auto_remove: bool = False,
        isolation: Optional[str] = None,
        hyperv_route: Optional[str] = None,
        storage_size: Optional[int] = None,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
    ) -> Container:
        """Create a container from an image (``"windowsservercore"``, a store image, or a list of
        layer folders, nearest parent first). Nothing is left behind when this fails.

        ``volumes``: ``{host_path: container_path}``, or docker-py's ``{host_path: {"bind":
        container_path, "mode": "ro"}}`` for a read-only one. ``user``: the account the main
        process and ``exec`` run as (else the image's USER).

        ``network``: a Network (or its name/ID: an endpoint is made for the container and removed
        with it) or an Endpoint (used as is). ``ports``: ``{"80/tcp": 8080}``, ``["8080:80"]`` or
        PortMappings; ports without a network use the host's NAT network.

        The main process is the image's ENTRYPOINT followed by ``command`` (else the image's
        CMD), as in Docker; ``entrypoint`` replaces the image's ENTRYPOINT and drops its CMD.
        One exception: when all the image would run is an interactive shell (the OS images' CMD,
        ``cmd.exe``), the container gets no main process unless ``image_command=True``: it runs
        until stopped, for ``exec`` and ``run`` on it (in Docker such a shell, given no stdin,
        would end at once and the container with it). ``image_command=False`` never uses the
        image's command.

        For a container started detached (``start(detach=True)``): ``restart_policy``
        (``"no"``, ``"on-failure[:N]"``, ``"always"``, ``"unless-stopped"``), ``log_options``
        (``["max-size=10m", "max-file=3"]``) and ``stdin_open`` (its main process keeps stdin
        for attach clients; else stdin is closed, as without ``docker run -i``).
        ``stop_timeout`` is :meth:`Container.stop`'s default grace; ``auto_remove``: its
        monitor removes it when it has ended for good (``run -d --rm``).

        ``isolation="hyperv"`` runs the container in a utility VM booted from its image's
        ``UtilityVM`` (Server 2016 and later): an image of another Windows build runs, and the
        boundary is a VM's. ``memory_mb`` and ``cpu_count`` size the VM; ``top`` shows PIDs
        inside the VM. ``hyperv_route`` picks how (1809+ hosts offer both): ``"vmcompute"``
        (the default; HCS makes the VM with the container, networks attach as for process
        isolation) or ``"computecore"`` (a VM of the library's own, hcsshim's way).

        ``storage_size``: the container's C: grows to at least this many bytes (ExpandSandboxSize,
        Docker's ``--storage-opt size=``; Server 2016 and later).
        """
        check_timeout(timeout)
        check_timeout(stop_timeout, "stop_timeout")
        policy = RestartPolicy.parse(restart_policy)
        logging_options = LogOptions.parse(list(log_options or ()))
        check_command(command, required=False)
        check_command(entrypoint, required=False)
        environment = check_env(env)
        if name is not None:
            validate_name(name)
        if hostname is not None and (not isinstance(hostname, str) or not 0 < len(hostname) <= 63):
            raise errors.BadInput("hostname must be 1-63 characters")
        if workdir is not None and (not isinstance(workdir, str) or not workdir):
            raise errors.BadInput("workdir must be a non-empty string")
        for value, what in ((memory_mb, "memory_mb"), (cpu_count, "cpu_count"), (storage_size, "storage_size")):
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise errors.BadInput(f"{what} must be a positive integer")
        mapped = mapped_directories(volumes)
        for m in mapped:
            if not os.path.isabs(m.host_path):
                raise errors.BadInput(f"volume host path {m.host_path!r} is not absolute")
        isolation = check_isolation(isolation)
        route = self._hyperv_route(isolation, hyperv_route)
        image_name, parents = self.host.images.layers_for(image)
        utility_vm = self._utility_vm(image_name, parents) if route is not None else None
        stored = self.host.images.find(image)
        image_config = stored.container_config if stored is not None else {}
        if image_command is None:
            image_command = not only_a_shell(image_config)
        command_line = (main_command(image_config, command, entrypoint)
                        if command is not None or entrypoint is not None or image_command else None)
        environment = {**config_env(image_config), **environment}
        workdir = workdir or image_config.get("WorkingDir") or None
        if user is not None and (not isinstance(user, str) or not user.strip()):
            raise errors.BadInput("user must be a non-empty user name")
        user = user or image_config.get("User") or None

        container_id = secrets.token_hex(32)
        name = name or f"wc-{container_id[:12]}"
        records = self.host.records
        undo = Rollback(f"creating container {name}", log)
        try:
            records.reserve_name(name, container_id)
            undo.add(f"the name {name!r}", lambda: records.release_name(name, container_id))
            layers = self.host.layers
            sandbox = layers.create_sandbox(parents, layer_id=container_id, size=storage_size).path
            undo.add(f"the sandbox {sandbox}", lambda: layers.remove_sandbox(sandbox))
            mount = ""  # Hyper-V: the sandbox's disk is attached to the utility VM, not mounted here
            if route is None:
                mount = layers.mount(sandbox, parents)
                undo.add(f"the sandbox's volume ({sandbox.name[:12]})", lambda: layers.unmount(sandbox))
            driver = self.host.driver
            plan = None
            if network is not None or ports:
                plan = self.host.networks.plan(name, container_id, network, ports)
                undo.add("the container's network endpoints",
                         lambda: self.host.networks.release(plan.to_record()))
            record = ContainerRecord(
                id=container_id, name=name, image=image_name, layers=[p.path for p in parents],
                sandbox=str(sandbox), hostname=hostname or container_id[:12], generation=self.host.generation,
                command=command_line, env=environment, workdir=workdir, tty=tty, labels=dict(labels or {}),
                user=user, volumes={m.host_path: m.container_path for m in mapped}, memory_mb=memory_mb,
                read_only_volumes=[m.host_path for m in mapped if m.read_only],
                cpu_count=cpu_count, image_id=stored.id if stored is not None else None,
                network=plan.to_record() if plan is not None else {},
                restart_policy=str(policy), log_options=logging_options.to_json(), open_stdin=bool(stdin_open),
                stop_timeout=stop_timeout, auto_remove=bool(auto_remove),
                isolation=isolation, hyperv_route=route, utility_vm=utility_vm, storage_size=storage_size,
            )
            records.save(record)
            undo.add(f"the container record {container_id[:12]}", lambda: records.delete(record))
            spec = system_spec(record, mount, tuple(parents))
            if plan is not None:
                spec = plan.network.apply(spec)
            system = driver.create_system(spec, timeout)
        except BaseException as exc:
            undo.undo(exc)
            raise
        return Container(self.host, record, system, owned=True)

    def new_system(self, record: ContainerRecord, timeout: Optional[float]) -> SystemRef:
        """A new compute system for an exited container (HCS cannot start a stopped one) over
        the same sandbox, with the same networks; what is left of the old one (and of its
        utility VM) is terminated."""
        driver = self.host.driver
        with contextlib.suppress(errors.HcsError):
            self._end_system(record.id, 5)
        if record.hosted:
            self.end_utility_vm(record.id)
        parents = tuple(LayerRef(driver.name_to_guid(Path(p).name), p) for p in record.layers)
        mount = ""
        if record.isolation != "hyperv":
            mount = driver.layer_mount_path(record.sandbox) or self.host.layers.mount(record.sandbox, list(parents))
        elif driver.layer_mount_path(record.sandbox):  # mounted here since it stopped (cp, diff): the VM's again
            self.host.layers.unmount(record.sandbox)
        spec = system_spec(record, mount, parents, first_boot=False)
        if record.network:
            spec = self.host.networks.rejoin(record.network).apply(spec)
        return driver.create_system(spec, timeout)

    def _hyperv_route(self, isolation: str, route: Optional[str]) -> Optional[str]:
        """The way this host makes the Hyper-V container asked for (None: process isolation)."""
        if isolation != "hyperv":
            if route is not None:
                raise errors.BadInput("hyperv_route applies to isolation='hyperv' only")
            return None
        routes = self.host.driver.capabilities.hyperv_routes
        if not routes:
            raise errors.NotSupported(
                "create", generation=self.host.generation,
                alternative="this host's HCS has no Hyper-V containers (TP3 had none; they came with Technical "
                            "Preview 4): use process isolation, or a Windows Server 2016 or later host")
        chosen = route if route is not None else routes[0]
        if chosen not in HYPERV_ROUTES:
            raise errors.BadInput(f"hyperv_route must be one of {', '.join(HYPERV_ROUTES)}, not {route!r}")
        if chosen not in routes:
            raise errors.NotSupported("create", generation=self.host.generation,
                                      alternative=f"this host makes Hyper-V containers through {' or '.join(routes)}")
        return chosen

    def _utility_vm(self, image_name: str, parents: Sequence[LayerRef]) -> str:
        """The ``UtilityVM`` folder a Hyper-V container of this image boots: the nearest layer's
        that has one (a diff layer that updates it carries a whole one), as hcsshim looks."""
        from wincontainers._native.win32 import long_path

        for layer in parents:
            folder = os.path.join(layer.path, "UtilityVM")
            attributes = self.host.win32.attributes(long_path(folder))
            if attributes is not None and attributes & 0x10:
                return folder
        raise errors.NotFound(
            "create", subject=f"image {image_name}",
            message="no layer of the image has a UtilityVM folder, the utility VM that Hyper-V isolation boots",
            hint="use a Windows base image of Server 2016 or later (servercore, nanoserver) or process isolation")

    def end_utility_vm(self, container_id: str) -> bool:
        """Stop the utility VM of a container with one of its own (the computecore route of
        Hyper-V isolation), if it runs; whether it did."""
        if "computecore" not in self.host.driver.capabilities.hyperv_routes:
            return False
        return self._end_system(utility_vm_id(container_id))

    def _end_system(self, system_id: str, timeout: float = 30.0) -> bool:
        """Terminate and close a compute system if it exists; whether it did."""
        try:
            system = self.host.driver.open_system(system_id)
        except errors.HcsError:
            return False
        try:
            system.terminate(timeout)
        except (errors.AlreadyStopped, errors.NotFound):
            pass
        finally:
            system.close()
        return True

    def remove_orphans(self) -> list[str]:
        """Stop the utility VMs whose container is gone or has ended (a process killed between
        the two, or a container that ended with nobody holding it); returns their ids. Only
        VMs of this owner are looked at (``<container id>@vm``)."""
        if not self.host.driver.capabilities.lists_systems:
            return []
        ended = []
        systems = self.host.driver.list_systems(owner="wincontainers")
        running = {str(s.get("Id", "")).lower() for s in systems if s.get("State") in ("Running", "Paused")}
        for entry in systems:
            vm_id = str(entry.get("Id", ""))
            container_id = container_of_utility_vm(vm_id)
            if entry.get("SystemType") != "VirtualMachine" or container_id is None:
                continue
            if container_id.lower() in running or entry.get("State") == "Stopped":
                continue
            if self._end_system(vm_id):
                log.info("stopped utility VM %s: its container %s is gone or has ended", vm_id, vm_id[:12])
                ended.append(vm_id)
        return ended

    async def create_async(self, image: Union[str, Sequence[str]], command: Optional[Command] = None,
                           **options: Any) -> Container:
        """:meth:`create`, awaited (same arguments; on the shared pool of :mod:`wincontainers.aio`).
        Cancelled once under way, the container is removed again when it has been made."""
        return await aio.call_blocking(self.create, image, command, **options,
                                       undo=lambda made: made.remove(force=True))

    def get(self, ref: str) -> Container:
        """A container by id, unique id prefix or name (:class:`~wincontainers.errors.DamagedRecord`
        when its record cannot be read: :meth:`remove_damaged` removes it)."""
        return Container(self.host, self.host.records.find(ref))

    def status_of(self, container_id: str) -> str:
        """The status of the container with this id (:attr:`Container.status`)."""
        with self.get(container_id) as container:
            return container.status

    def remove_damaged(self, ref: str, *, timeout: Optional[float] = 30.0) -> str:
        """Remove a container whose record cannot be read: its compute system (if it runs), its
        sandbox (``<layers>/<id>``, where every container's is), its names and the record. What
        only the record knew (network endpoints it was given) is left to ``network prune``.
        Returns the container's id."""
        check_timeout(timeout)
        records = self.host.records
        container_id = records.find_id(ref)
        try:
            records.load(container_id)
        except errors.DamagedRecord:
            pass
        else:
            raise errors.InvalidState("remove", subject=f"container {container_id[:12]}",
                                      message="its record is readable", hint="remove it with remove()/rm")
        system: Optional[SystemRef] = None
        try:
            system = self.host.driver.open_system(container_id)
            system.terminate(timeout)
        except (errors.NotFound, errors.AlreadyStopped):
            pass
        finally:
            if system is not None:
                system.close()
        self.end_utility_vm(container_id)
        self.host.layers.remove_sandbox(self.host.layers_root / container_id)  # where every sandbox is
        records.forget(container_id)
        log.info("removed container %s, whose record was damaged", container_id[:12])
        return container_id

    def list(self, all: bool = False) -> list[ContainerInfo]:
        """Containers created by wincontainers; running ones only unless ``all=True`` (``ps -a``)."""
        live: Optional[dict[str, str]] = None
        if self.host.driver.capabilities.lists_systems:
            try:
                live = {
                    str(p.get("Id", "")).lower(): STATES.get(str(p.get("State")), "created")
                    for p in self.host.driver.list_systems(owner=None)
                }
            except errors.HcsError:
                live = None
        out = []
        for record in self.host.records.all():
            state = record.state
            if live is not None:
                state = live.get(record.id.lower(), "exited" if record.state != "created" else "exited")
                if record.state == "restarting" and state == "exited":
                    state = "restarting"  # between two runs: its monitor waits out the back-off
                elif state != record.state and state == "exited":
                    record.state = "exited"
                    record.finished = record.finished or time.time()
                    self.host.records.save(record)
            if not all and state not in ("running", "paused", "restarting"):
                continue
            out.append(ContainerInfo(record.id, record.name, record.image, record.command, state, record.created,
                                     record.exit_code))
        if all:  # shown, so they can be removed (rm -f)
            for damaged in self.host.records.damaged():
                out.append(ContainerInfo(damaged.id, damaged.names[0] if damaged.names else "", "?", None, "damaged",
                                         _mtime(damaged.path)))
        out.sort(key=lambda c: c.created, reverse=True)
        return out

    def command_for(self, image: Union[str, Sequence[str]], command: Optional[Command] = None,
                    entrypoint: Optional[Command] = None) -> Optional[str]:
        """The main process a container of ``image`` would run (see ``create``), or None."""
        stored = self.host.images.find(image)
        return main_command(stored.container_config if stored is not None else {}, command, entrypoint)

    @overload
    def run(self, image: Union[str, Sequence[str]], command: Optional[Command] = None, *, remove: bool = True,
            capture_output: bool = True, timeout: Optional[float] = None, check: bool = False, text: bool = False,
            detach: Literal[False] = False, **create_options: Any) -> CompletedProcess: ...

    @overload
    def run(self, image: Union[str, Sequence[str]], command: Optional[Command] = None, *, remove: bool = True,
            capture_output: bool = True, timeout: Optional[float] = None, check: bool = False, text: bool = False,
            detach: Literal[True], **create_options: Any) -> Container: ...

    def run(
        self,
        image: Union[str, Sequence[str]],
        command: Optional[Command] = None,
        *,
        remove: bool = True,
        capture_output: bool = True,
        timeout: Optional[float] = None,
        check: bool = False,
        text: bool = False,
        detach: bool = False,
        **create_options: Any,
    ) -> Union[CompletedProcess, Container]:
        """Create, start, run ``command`` as the main process, wait, and (by default) remove;
        a :class:`~wincontainers.process.CompletedProcess`.

        Without ``command`` the image's ENTRYPOINT and CMD run (BadInput if it has neither).
        ``detach=True`` (docker-py's ``run(detach=True)``) returns the started
        :class:`Container` at once, its main process held by a monitor (``remove`` is ignored:
        remove it when done)."""
        check_timeout(timeout)
        if self.command_for(image, command, create_options.get("entrypoint")) is None:
            raise errors.BadInput(no_command_message(image))
        container = self.create(image, command, image_command=True, **create_options)
        if detach:
            try:
                return container.start(detach=True)
            except BaseException:
                container.remove(force=True)
                container.close()
                raise
        try:
            container.start()
            proc = container.process
            if proc is None:
                raise errors.InvalidState("run", subject=f"container {container.name}",
                                          message="it started without its main process",
                                          hint="the container record names no command")
            try:
                out, err = proc.communicate(timeout=timeout)
            except TimeoutExpired:
                container.kill()
                raise
            container.wait(60)
            if not capture_output:
                stream_sink(sys.stdout)(out or b"")
                stream_sink(sys.stderr)(err or b"")
                out = err = None
            elif text:
                out = out.decode("utf-8", "replace") if out is not None else None
                err = err.decode("utf-8", "replace") if err is not None else None
            result = CompletedProcess(container.record.command or "", proc.returncode if proc.returncode is not None else -1, out, err)
        finally:
            if remove:
                try:
                    container.remove(force=True)
                finally:
                    container.close()
            else:
                container.close()
        if check and result.returncode:
            raise CalledProcessError(result.returncode, result.args, result.stdout, result.stderr)
        return result


def no_command_message(image: Union[str, Sequence[str]]) -> str:
    name = image if isinstance(image, str) else "the layers given"
    return (f"{name} has no ENTRYPOINT or CMD: give the command to run (e.g. cmd /S /C \"echo hello\")")


def _mtime(path: Path) -> float:
    """A file's modification time, 0 when it cannot be read."""
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
