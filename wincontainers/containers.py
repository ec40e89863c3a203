"""``host.containers``: create containers from an image (Docker's order of steps, each undone
when a later one fails), get them by id, prefix or name, list them, and remove one whose record
is damaged."""

from __future__ import annotations

import logging
import os
import secrets
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, Union

from wincontainers import errors
from wincontainers import networks as nets
from wincontainers.driver.base import (
    DEFAULT_TIMEOUT,
    MappedDirectory,
    SystemRef,
    SystemSpec,
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
    STATES,
    ContainerInfo,
    check_command,
    image_command as main_command,
    check_env,
    check_timeout,
    config_env,
)

log = logging.getLogger("wincontainers.containers")

__all__ = ["ContainerCollection"]


class ContainerCollection:
    """``host.containers``: create, get and list containers (docker-py's ``client.containers``)."""

    def __init__(self, host: "Host") -> None:
        self.host = host

    def create(
        self,
        image: Union[str, Sequence[str]],
        command: Optional[Command] = None,
        *,
        entrypoint: Optional[Command] = None,
        image_command: bool = False,
        name: Optional[str] = None,
        env: Optional[Mapping[str, str]] = None,
        workdir: Optional[str] = None,
        hostname: Optional[str] = None,
        tty: bool = False,
        volumes: Optional[Mapping[str, str]] = None,
        memory_mb: Optional[int] = None,
        cpu_count: Optional[int] = None,
        labels: Optional[Mapping[str, str]] = None,
        network: Optional[nets.AttachLike] = None,
        ports: nets.PortsLike = None,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
    ) -> Container:
        """Create a container from an image (``"windowsservercore"``, a store image, or a list of
        layer folders, nearest parent first). Nothing is left behind when this fails.

        ``network``: a Network (or its name/ID: an endpoint is made for the container and removed
        with it) or an Endpoint (used as is). ``ports``: ``{"80/tcp": 8080}``, ``["8080:80"]`` or
        PortMappings; ports without a network use the host's NAT network.

        The main process is the image's ENTRYPOINT followed by ``command``, as in Docker;
        ``entrypoint`` replaces the image's ENTRYPOINT and drops its CMD. Without ``command`` the
        image's CMD is used only with ``image_command=True`` (what ``run`` does). Otherwise the
        container has no main process: it runs until stopped, for ``exec`` and ``run`` on it.
        (The store gives base images Docker's CMD, ``cmd.exe``, so defaulting to it here would
        make every such container an idle shell.)
        """
        check_timeout(timeout)
        check_command(command, required=False)
        check_command(entrypoint, required=False)
        environment = check_env(env)
        if name is not None:
            validate_name(name)
        if hostname is not None and (not isinstance(hostname, str) or not 0 < len(hostname) <= 63):
            raise errors.BadInput("hostname must be 1-63 characters")
        if workdir is not None and (not isinstance(workdir, str) or not workdir):
            raise errors.BadInput("workdir must be a non-empty string")
        for value, what in ((memory_mb, "memory_mb"), (cpu_count, "cpu_count")):
            if value is not None and (not isinstance(value, int) or value <= 0):
                raise errors.BadInput(f"{what} must be a positive integer")
        mapped = tuple(MappedDirectory(host_path=str(h), container_path=str(c), read_only=False)
                       for h, c in (volumes or {}).items())
        for m in mapped:
            if not os.path.isabs(m.host_path):
                raise errors.BadInput(f"volume host path {m.host_path!r} is not absolute")
        image_name, parents = self.host.images.layers_for(image)
        stored = self.host.images.find(image)
        image_config = stored.container_config if stored is not None else {}
        command_line = (main_command(image_config, command, entrypoint)
                        if command is not None or entrypoint is not None or image_command else None)
        environment = {**config_env(image_config), **environment}
        workdir = workdir or image_config.get("WorkingDir") or None
        user = image_config.get("User") or None

        container_id = secrets.token_hex(32)
        name = name or f"wc-{container_id[:12]}"
        records = self.host.records
        undo = Rollback(f"creating container {name}", log)
        try:
            records.reserve_name(name, container_id)
            undo.add(f"the name {name!r}", lambda: records.release_name(name, container_id))
            layers = self.host.layers
            sandbox = layers.create_sandbox(parents, layer_id=container_id).path
            undo.add(f"the sandbox {sandbox}", lambda: layers.remove_sandbox(sandbox))
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
                cpu_count=cpu_count, image_id=stored.id if stored is not None else None,
                network=plan.to_record() if plan is not None else {},
            )
            records.save(record)
            undo.add(f"the container record {container_id[:12]}", lambda: records.delete(record))
            spec = SystemSpec(
                id=container_id, name=name, hostname=record.hostname, volume_path=mount,
                layer_folder=str(sandbox), layers=tuple(parents), mapped_directories=mapped,
                memory_mb=memory_mb, cpu_count=cpu_count,
            )
            if plan is not None:
                spec = plan.network.apply(spec)
            system = driver.create_system(spec, timeout)
        except BaseException as exc:
            undo.undo(exc)
            raise
        return Container(self.host, record, system, owned=True)

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
                if state != record.state and state == "exited":
                    record.state = "exited"
                    record.finished = record.finished or time.time()
                    self.host.records.save(record)
            if not all and state not in ("running", "paused"):
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
        **create_options: Any,
    ) -> CompletedProcess:
        """Create, start, run ``command`` as the main process, wait, and (by default) remove.

        Without ``command`` the image's ENTRYPOINT and CMD run (BadInput if it has neither)."""
        check_timeout(timeout)
        if self.command_for(image, command, create_options.get("entrypoint")) is None:
            raise errors.BadInput(no_command_message(image))
        container = self.create(image, command, image_command=True, **create_options)
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
