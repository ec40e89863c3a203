"""Layer records (``layers/<chain-hex>.json``): for each layer chain of the store, its diff ID,
parent chain, folder and kept blob. The first record of a chain wins."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Optional

import attrs

from wincontainers import errors
from wincontainers.images.blobs import StoreLock
from wincontainers.images.model import REPAIR_HINT, LayerRecord, canonical_json, hex_of
from wincontainers.statefiles import StateFiles

__all__ = ["LayerRecords"]


class LayerRecords:
    def __init__(self, folder: Path, files: StateFiles, lock: StoreLock) -> None:
        self.folder = folder
        self.files = files
        self.lock = lock

    def path(self, chain: str) -> Path:
        return self.folder / f"{hex_of(chain)}.json"

    def names(self) -> list[str]:
        return self.files.names(self.folder, ".json")

    def get(self, chain: str) -> Optional[LayerRecord]:
        """The record of a layer chain; None when there is none, :class:`errors.DamagedRecord`
        when it cannot be read."""
        path = self.path(chain)
        try:
            doc = self.files.read_document(path, hint=REPAIR_HINT)
        except FileNotFoundError:
            return None
        try:
            return LayerRecord.from_json(doc)
        except (TypeError, ValueError) as exc:
            raise errors.DamagedRecord(path, f"not a layer record: {exc}", REPAIR_HINT) from None

    def write(self, record: LayerRecord) -> None:
        """Write a record as it is (a repair; :meth:`put` for a new layer)."""
        self.files.write(self.path(record.chain_id), canonical_json(record.to_json()), durable=True)

    def remove(self, chain: str) -> None:
        self.files.remove(self.path(chain))

    def put(self, record: LayerRecord) -> LayerRecord:
        """Record a layer; the first record of a chain wins. When another process recorded the
        same chain with a folder of its own meanwhile, that record is returned and the caller's
        folder is the caller's to remove."""
        with self.lock.held():
            if record.parent is not None and self.get(record.parent) is None:
                raise errors.BadInput(f"layer {record.chain_id}: parent {record.parent} is not in the store")
            existing = self.find(record.chain_id)
            if existing is not None and existing.folder and existing.folder != record.folder and \
                    Path(existing.folder).is_dir():
                if record.blob and not existing.blob and not existing.descriptor:
                    existing = attrs.evolve(existing, blob=record.blob, media_type=record.media_type)
                    self.write(existing)
                return existing
            self.write(record)
        return record

    def usable(self, chain: str) -> Optional[LayerRecord]:
        """The record of a layer chain when its layer can be used: recorded, and its folder (a
        foreign layer has none) still there. :class:`errors.DamagedRecord` as :meth:`get`."""
        record = self.get(chain)
        if record is None or (record.folder is not None and not Path(record.folder).is_dir()):
            return None
        return record

    def find(self, chain: str) -> Optional[LayerRecord]:
        """The record of a layer chain, or None when it is missing or cannot be read (listings
        show what they can; :meth:`get` says why)."""
        try:
            return self.get(chain)
        except (OSError, ValueError, TypeError, KeyError, errors.WincontainersError):
            return None

    def all(self) -> list[LayerRecord]:
        """Every readable record."""
        out = []
        for name in self.names():
            with contextlib.suppress(OSError, ValueError, TypeError, errors.HcsError, errors.DamagedRecord):
                out.append(LayerRecord.from_json(self.files.read_json(self.folder / name)))
        return out

    def chain_folders(self, top: Optional[LayerRecord]) -> list[str]:
        """Folders of ``top`` and its parents, nearest first (empty for no layer)."""
        folders: list[str] = []
        record = top
        while record is not None:
            if record.folder is None:
                raise errors.NotFound("layers", subject=f"layer {record.chain_id[:19]}",
                                      message="a foreign layer that is not on this host",
                                      hint="load an archive that holds the layer first")
            folders.append(record.folder)
            record = self.get(record.parent) if record.parent else None
        return folders
