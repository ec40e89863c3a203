"""wincontainers' own records of the containers it created (like Docker's container store).

HCS does not remember names, images or commands, and the TP3 API cannot even list its compute
systems. Each container therefore has a small JSON record under ``<state>/containers``, written
atomically (temporary file, fsync, rename), and a name reservation under ``<state>/names``
created with ``O_EXCL`` so two processes cannot take the same name.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any, Iterator, Optional

import attrs

from wincontainers.atomicfile import write_atomic
from wincontainers.errors import AlreadyExists, BadInput, NotFound

__all__ = ["ContainerRecord", "RecordStore", "validate_name", "NAME_PATTERN"]

NAME_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")
_ID_PATTERN = re.compile(r"^[0-9a-f]{64}$")


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
    memory_mb: Optional[int] = None
    cpu_count: Optional[int] = None
    image_id: Optional[str] = None  # the store image it was created from, if any
    network: dict[str, Any] = attrs.field(factory=dict)  # endpoints (made for it or given), gen3 namespace

    def to_json(self) -> dict[str, Any]:
        return attrs.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ContainerRecord":
        names = {f.name for f in attrs.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class RecordStore:
    """Container records of one host."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.records_dir = root / "containers"
        self.names_dir = root / "names"
        self.records_dir.mkdir(parents=True, exist_ok=True)
        self.names_dir.mkdir(parents=True, exist_ok=True)

    def _path(self, container_id: str) -> Path:
        return self.records_dir / f"{container_id}.json"

    def reserve_name(self, name: str, container_id: str) -> None:
        validate_name(name)
        path = self.names_dir / name.lower()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            owner = path.read_text().strip() if path.exists() else "?"
            if owner and not self._path(owner).exists():
                # A reservation whose record never got written (interrupted create): take it over.
                path.write_text(container_id)
                return
            raise AlreadyExists(
                "create", subject=f"container name {name!r}",
                message=f"the name is already used by container {owner[:12]}",
                hint="remove that container (wincontainers rm) or choose another name",
            ) from None
        with os.fdopen(fd, "w") as f:
            f.write(container_id)

    def release_name(self, name: str, container_id: str) -> None:
        path = self.names_dir / name.lower()
        try:
            if path.read_text().strip() == container_id:
                path.unlink()
        except FileNotFoundError:
            pass

    def save(self, record: ContainerRecord) -> None:
        data = json.dumps(record.to_json(), indent=1, sort_keys=True).encode()
        write_atomic(self._path(record.id), data, durable=True)

    def load(self, container_id: str) -> ContainerRecord:
        try:
            return ContainerRecord.from_json(json.loads(self._path(container_id).read_text()))
        except FileNotFoundError:
            raise NotFound("inspect", subject=f"container {container_id[:12]}", message="no such container") from None

    def delete(self, record: ContainerRecord) -> None:
        try:
            self._path(record.id).unlink()
        except FileNotFoundError:
            pass
        self.release_name(record.name, record.id)

    def all(self) -> Iterator[ContainerRecord]:
        for path in sorted(self.records_dir.glob("*.json")):
            try:
                yield ContainerRecord.from_json(json.loads(path.read_text()))
            except (OSError, ValueError, TypeError):
                continue

    def find(self, ref: str) -> ContainerRecord:
        """By full id, name, or unique id prefix (as the Docker CLI resolves them)."""
        if not ref:
            raise BadInput("empty container reference")
        if _ID_PATTERN.match(ref) and self._path(ref).exists():
            return self.load(ref)
        name_file = self.names_dir / ref.lower()
        if name_file.exists():
            owner = name_file.read_text().strip()
            if self._path(owner).exists():
                return self.load(owner)
        matches = [r for r in self.all() if r.id.startswith(ref.lower())] if re.fullmatch(r"[0-9a-fA-F]+", ref) else []
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise BadInput(f"{ref!r} matches {len(matches)} containers; give more of the id")
        raise NotFound("find", subject=f"container {ref!r}", message="no such container",
                       hint="`wincontainers ps -a` lists the containers")
