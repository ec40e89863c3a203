"""wincontainers' own records of the containers it created (like Docker's container store).

HCS does not remember names, images or commands, and the TP3 API cannot even list its compute
systems. Each container therefore has a small JSON record under ``<state>/containers``, replaced
atomically (temporary file, flush, rename; see :mod:`wincontainers.statefiles`), and a name
reservation under ``<state>/names`` created with ``CREATE_NEW`` so two processes cannot take the
same name.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import attrs

from wincontainers.errors import AlreadyExists, BadInput, DamagedRecord, HcsError, NotFound
from wincontainers.statefiles import StateFiles

__all__ = ["ContainerRecord", "RecordStore", "validate_name", "NAME_PATTERN"]

NAME_PATTERN = re.compile(r"\A[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}\Z")  # \Z: "$" would let a newline end it
_ID_PATTERN = re.compile(r"\A[0-9a-f]{64}\Z")


@attrs.frozen
class DamagedContainer:
    """A container whose record cannot be read: its id, names, the record file and what is wrong."""

    id: str
    names: list[str]
    path: Path
    reason: str


def validate_name(name: str) -> str:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise BadInput(
            f"invalid container name {name!r}: use 1-128 characters from [a-zA-Z0-9_.-], "
            "starting with a letter or digit"
        )
    if _ID_PATTERN.match(name):
        raise BadInput(f"invalid container name {name!r}: a 64-hex-digit name would be mistaken for an id")
    return name


@attrs.define
class ContainerRecord:
    id: str
    name: str
    image: str
    layers: list[str]
    sandbox: str
    hostname: str
    generation: int
    command: Optional[str] = None
    env: dict[str, str] = attrs.field(factory=dict)
    workdir: Optional[str] = None
    tty: bool = False
    created: float = attrs.field(factory=time.time)
    state: str = "created"  # created | running | paused | exited
    started: Optional[float] = None
    finished: Optional[float] = None
    exit_code: Optional[int] = None
    main_pid: Optional[int] = None
    labels: dict[str, str] = attrs.field(factory=dict)
    user: Optional[str] = None
    volumes: dict[str, str] = attrs.field(factory=dict)
    read_only_volumes: list[str] = attrs.field(factory=list)  # host paths of volumes mapped read-only
    memory_mb: Optional[int] = None
    cpu_count: Optional[int] = None
    image_id: Optional[str] = None  # the store image it was created from, if any
    network: dict[str, Any] = attrs.field(factory=dict)  # endpoints (made for it or given), gen3 namespace
    restart_policy: str = "no"  # --restart, applied by the monitor of a detached container
    restart_count: int = 0
    log_options: dict[str, Any] = attrs.field(factory=dict)  # --log-opt (jsonlog.LogOptions)
    open_stdin: bool = False  # -i: a detached main process keeps its stdin for attach clients
    stop_timeout: Optional[float] = None  # --stop-timeout: stop()'s default grace
    detached: bool = False  # last started through a monitor (logs, attach)
    auto_remove: bool = False  # run -d --rm: the monitor removes the container when it ends
    isolation: str = "process"  # or "hyperv": in a utility VM
    hyperv_route: Optional[str] = None  # "vmcompute" | "computecore" (driver.base.HYPERV_ROUTES)
    utility_vm: Optional[str] = None  # the UtilityVM folder its VM boots from
    storage_size: Optional[int] = None  # bytes its sandbox volume was grown to (--storage-opt size=)

    @property
    def hosted(self) -> bool:
        """Whether it has a utility VM of its own (opened and stopped with it)."""
        return self.isolation == "hyperv" and self.hyperv_route == "computecore"

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ContainerRecord":
        names = {f.name for f in attrs.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class RecordStore:
    """Container records of one host."""

    def __init__(self, files: StateFiles, root: Path) -> None:
        self.files = files
        self.root = root
        self.records_dir = root / "containers"
        self.names_dir = root / "names"
        files.makedirs(self.records_dir)
        files.makedirs(self.names_dir)

    def _path(self, container_id: str) -> Path:
        return self.records_dir / f"{container_id}.json"

    def _owner(self, name_file: Path) -> str:
        try:
            return self.files.read_text(name_file).strip()
        except FileNotFoundError:
            return ""

    def exists(self, container_id: str) -> bool:
        return bool(container_id) and self.files.exists(self._path(container_id))

    def reserve_name(self, name: str, container_id: str) -> None:
        validate_name(name)
        path = self.names_dir / name.lower()
        if self.files.create_new(path, container_id.encode()):
            return
        owner = self._owner(path)
        if not self.exists(owner):
            # A reservation whose record never got written (interrupted create): take it over.
            self.files.write(path, container_id.encode())
            return
        raise AlreadyExists(
            "create", subject=f"container name {name!r}",
            message=f"the name is already used by container {owner[:12]}",
            hint="remove that container (wincontainers rm) or choose another name",
        )

    def release_name(self, name: str, container_id: str) -> None:
        path = self.names_dir / name.lower()
        if self._owner(path) == container_id:
            self.files.remove(path)

    def rename(self, container_id: str, name: str) -> None:
        """Move a container to another name: the new one reserved first (AlreadyExists if taken),
        then the record, then the old name released."""
        validate_name(name)
        record = self.load(container_id)
        old = record.name
        if name == old:
            return
        self.reserve_name(name, container_id)
        try:
            record.name = name
            self.save(record)
        except BaseException:
            self.release_name(name, container_id)
            raise
        self.release_name(old, container_id)

    def save(self, record: ContainerRecord) -> None:
        self.files.write_json(self._path(record.id), record.to_json(), durable=True, indent=1, sort_keys=True)

    def load(self, container_id: str) -> ContainerRecord:
        """The record; :class:`NotFound`, or :class:`DamagedRecord` when it cannot be read."""
        path = self._path(container_id)
        hint = f"`wincontainers rm -f {container_id[:12]}` removes the container and what it left"
        try:
            doc = self.files.read_document(path, hint=hint)
        except FileNotFoundError:
            raise NotFound("inspect", subject=f"container {container_id[:12]}", message="no such container") from None
        try:
            return ContainerRecord.from_json(doc)
        except (TypeError, ValueError, KeyError) as exc:
            raise DamagedRecord(path, f"not a container record: {exc}", hint) from None

    def damaged(self) -> list[DamagedContainer]:
        """Containers whose record cannot be read (``ps -a`` shows them, ``rm -f`` removes them)."""
        out = []
        for name in self.files.names(self.records_dir, ".json"):
            container_id = name[:-len(".json")]
            if not _ID_PATTERN.match(container_id):
                continue
            try:
                self.load(container_id)
            except DamagedRecord as exc:
                out.append(DamagedContainer(container_id, self.names_of(container_id), Path(exc.path), exc.reason))
            except (NotFound, OSError, HcsError):
                continue
        return out

    def names_of(self, container_id: str) -> list[str]:
        """The names reserved for a container (normally one)."""
        return [name for name in self.files.names(self.names_dir, "") if self._owner(self.names_dir / name) == container_id]

    def forget(self, container_id: str) -> None:
        """Drop a container's record and names whatever they hold (a damaged record)."""
        for name in self.names_of(container_id):
            self.files.remove(self.names_dir / name)
        self.files.remove(self._path(container_id))

    def delete(self, record: ContainerRecord) -> None:
        self.files.remove(self._path(record.id))
        self.release_name(record.name, record.id)

    def all(self) -> Iterator[ContainerRecord]:
        for name in self.files.names(self.records_dir, ".json"):
            try:
                yield ContainerRecord.from_json(self.files.read_json(self.records_dir / name))
            except (OSError, ValueError, TypeError, HcsError):
                continue

    def find(self, ref: str) -> ContainerRecord:
        """By full id, name, or unique id prefix (as the Docker CLI resolves them);
        :class:`DamagedRecord` for a container whose record cannot be read."""
        return self.load(self.find_id(ref))

    def find_id(self, ref: str) -> str:
        """The id of the container ``ref`` names (whether or not its record can be read)."""
        if not ref:
            raise BadInput("empty container reference")
        if _ID_PATTERN.match(ref) and self.exists(ref):
            return ref
        if NAME_PATTERN.match(ref):
            owner = self._owner(self.names_dir / ref.lower())
            if self.exists(owner):
                return owner
        ids = [n[:-len(".json")] for n in self.files.names(self.records_dir, ".json")]
        matches = [i for i in ids if i.startswith(ref.lower())] if re.fullmatch(r"[0-9a-fA-F]+", ref) else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise BadInput(f"{ref!r} matches {len(matches)} containers; give more of the id")
        raise NotFound("find", subject=f"container {ref!r}", message="no such container",
                       hint="`wincontainers ps -a` lists the containers")
