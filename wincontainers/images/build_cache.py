"""The build cache (``build-cache.json``): a build step's key -> the image config it produced.
The configs and the layers they name are kept like images' until the entry is removed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from wincontainers import errors
from wincontainers.images.blobs import Blobs, StoreLock
from wincontainers.images.model import LayerRecord, canonical_json, chain_id
from wincontainers.statefiles import StateFiles

__all__ = ["BuildCache"]


class BuildCache:
    def __init__(self, path: Path, files: StateFiles, blobs: Blobs, lock: StoreLock,
                 usable_layer: Callable[[str], Optional[LayerRecord]]) -> None:
        self.path = path
        self.files = files
        self.blobs = blobs
        self.lock = lock
        self.usable_layer = usable_layer

    def entries(self) -> dict[str, str]:
        """key -> config digest (an unreadable cache is an empty one: steps run again)."""
        try:
            doc = self.files.read_json(self.path)
        except (OSError, ValueError, errors.HcsError):
            return {}
        return {k: v for k, v in doc.items() if isinstance(k, str) and isinstance(v, str)} if isinstance(
            doc, dict) else {}

    def get(self, key: str) -> Optional[dict[str, Any]]:
        """The image config a build step with this key produced, if its layers are all here."""
        digest = self.entries().get(key)
        if digest is None or not self.blobs.has(digest):
            return None
        try:
            config = json.loads(self.blobs.read(digest))
            diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
            if not all(self.usable_layer(chain_id(diff_ids[:i + 1])) is not None for i in range(len(diff_ids))):
                return None
        except (errors.DamagedRecord, ValueError):  # something it needs cannot be read: run the step again
            return None
        return config  # type: ignore[no-any-return]

    def put(self, key: str, config: dict[str, Any]) -> str:
        with self.lock.held():  # the blob and the entry that keeps it, together for a gc
            digest = self.blobs.put(canonical_json(config))
            cache = self.entries()
            cache[key] = digest
            self.files.write(self.path, canonical_json(cache), durable=True)
        return digest

    def remove(self, keys: Iterable[str]) -> int:
        """Forget these entries (their images stay until a gc); how many were there."""
        wanted = set(keys)
        if not wanted:
            return 0
        with self.lock.held():
            cache = self.entries()
            kept = {k: v for k, v in cache.items() if k not in wanted}
            if len(kept) != len(cache):
                self.files.write(self.path, canonical_json(kept), durable=True)
        return len(cache) - len(kept)

    def clear(self) -> int:
        with self.lock.held():
            count = len(self.entries())
            self.files.write(self.path, b"{}", durable=True)
        return count
