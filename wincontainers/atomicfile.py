"""Whole-file replacement that readers never see half done, for the library's small state files
(container records, endpoint owner tags, TP3 endpoint records, layer info).

The data goes to a unique temporary file in the same folder (``.<name>.*.tmp``: never matched by
a ``*.json`` glob), which then replaces the target. Unique names matter: several threads and
processes write these folders at once.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["write_atomic"]


def write_atomic(path: Path, data: bytes, *, durable: bool = False) -> None:
    """Replace ``path`` with ``data``; ``durable`` also flushes it to disk before the rename
    (for records that must survive a power cut, not only a crash of this process)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            if durable:
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
