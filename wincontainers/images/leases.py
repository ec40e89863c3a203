"""Leases: what an operation in progress is making (``leases/<pid>-<n>-<t>.json``). Objects a
live lease names are never collected; a killed process's lease is ignored, and the folders it
named are what gc removes first."""

from __future__ import annotations

import contextlib
import itertools
import os
import time
from pathlib import Path
from typing import Callable, Iterator, Union

import attrs

from wincontainers.images.model import canonical_json
from wincontainers.statefiles import StateFiles, read_optional_json

__all__ = ["Lease", "Leases", "LiveLeases", "owned_by_live"]


class Lease:
    """The blobs, layer records and folders an operation is creating."""

    def __init__(self, files: StateFiles, path: Path) -> None:
        self.files = files
        self.path = path
        self.objects: list[str] = []
        self.folders: list[str] = []

    def save(self) -> None:
        self.files.write(self.path, canonical_json({"objects": self.objects, "folders": self.folders}),
                         durable=True)

    def hold(self, *objects: str) -> None:
        self.objects.extend(objects)
        self.save()

    def hold_folder(self, folder: Union[str, "os.PathLike[str]"]) -> None:
        self.folders.append(os.fspath(folder))
        self.save()


@attrs.frozen
class LiveLeases:
    """One pass over the leases: objects held by live leases, folders live leases are making
    (normalized), and lease files of dead processes with the folders they name."""

    held: set[str]
    making: set[str]
    stale: dict[str, list[str]]


class Leases:
    """The leases folder of a store."""

    def __init__(self, folder: Path, files: StateFiles, process_alive: Callable[[int], bool]) -> None:
        self.folder = folder
        self.files = files
        self.process_alive = process_alive
        self._counter = itertools.count()

    @contextlib.contextmanager
    def open(self) -> Iterator[Lease]:
        path = self.folder / f"{os.getpid()}-{next(self._counter)}-{time.monotonic_ns()}.json"
        lease = Lease(self.files, path)
        lease.save()
        try:
            yield lease
        finally:
            self.files.remove(path)

    def names(self) -> list[str]:
        return self.files.names(self.folder, ".json")

    def live(self) -> LiveLeases:
        held: set[str] = set()
        making: set[str] = set()
        stale: dict[str, list[str]] = {}
        for name in self.names():
            path = self.folder / name
            doc = read_optional_json(self.files, path)
            folders = [f for f in (doc.get("folders") or []) if isinstance(f, str)] if isinstance(doc, dict) else []
            if not owned_by_live(name, self.process_alive):
                stale[str(path)] = folders
                continue
            if isinstance(doc, dict):
                held.update(str(o) for o in doc.get("objects", []) if isinstance(o, str))
            making.update(os.path.normcase(os.path.abspath(f)) for f in folders)
        return LiveLeases(held, making, stale)


def owned_by_live(name: str, alive: Callable[[int], bool]) -> bool:
    """Whether the file ``<pid>-...`` (a lease, a temporary file) belongs to a live process."""
    pid_text = name.split("-", 1)[0]
    return pid_text.isdigit() and alive(int(pid_text))
