"""The library's small state files (container records, name and port claims, endpoint owner tags,
TP3 endpoint records, layer info, the image store's index and records), read and replaced through
kernel32 so that they behave the same on Windows and on the simulated host.

Why not ``pathlib``: on Windows a replace fails while any other handle has the target open (a
reader in another thread or process, an antivirus scan), Python opens files without
``FILE_SHARE_DELETE``, and ``read_text()`` decodes in the locale's code page while the files are
written as UTF-8. Here:

- readers open with every share mode, so they never block a writer for longer than their read;
- a replace writes a unique temporary file in the same folder (``.<name>.<random>.tmp``, never
  matched by ``*.json``), then ``MoveFileExW(MOVEFILE_REPLACE_EXISTING)``, retried for a bounded
  time while another handle holds the target;
- text is always UTF-8;
- a missing file raises :class:`FileNotFoundError`, as ``pathlib`` does, so callers keep their
  ``except FileNotFoundError``; other failures are the typed :class:`~wincontainers._native.win32.Win32Error`.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any, Optional, Union

from wincontainers._native import win32 as w32
from wincontainers.errors import DamagedRecord

__all__ = ["StateFiles", "read_optional_json"]

_log = logging.getLogger("wincontainers.state")

#: The largest state file read: they are small documents, and a huge one is damage, not data.
MAX_STATE_FILE = 64 * 1024 * 1024

PathLike = Union[str, "os.PathLike[str]"]


class StateFiles:
    """Reads and atomic replacements of small state files through one :class:`~wincontainers._native.win32.Win32`."""

    def __init__(self, win32: w32.Win32) -> None:
        self.win32 = win32

    def __repr__(self) -> str:
        return f"<StateFiles {self.win32!r}>"

    # -- reading ------------------------------------------------------------------------------------

    def read_bytes(self, path: PathLike) -> bytes:
        """The whole file; :class:`FileNotFoundError` when it (or its folder) does not exist."""
        target = w32.long_path(path)
        try:
            f = self.win32.create_file(target, w32.GENERIC_READ, w32.OPEN_EXISTING, share=w32.FILE_SHARE_ALL)
        except w32.PathNotFound as exc:
            raise FileNotFoundError(2, str(exc), os.fspath(path)) from None
        with f:
            size = f.size()
            if size > MAX_STATE_FILE:
                raise w32.Win32Error("ReadFile", 13, target,
                                     message=f"{size} bytes is too large for a state file (at most {MAX_STATE_FILE})")
            data = bytearray(size)
            view, done = memoryview(data), 0
            while done < size:
                n = f.readinto(view[done:])
                if not n:
                    break
                done += n
            return bytes(data[:done])

    def read_text(self, path: PathLike) -> str:
        return self.read_bytes(path).decode("utf-8")

    def read_json(self, path: PathLike) -> Any:
        """The parsed document (:class:`ValueError` for one that is not UTF-8 JSON)."""
        return json.loads(self.read_text(path))

    def read_document(self, path: PathLike, *, hint: str) -> dict[str, Any]:
        """A JSON object of our state; :class:`FileNotFoundError` when missing and
        :class:`~wincontainers.errors.DamagedRecord` (naming the file, what is wrong and
        ``hint``) when it cannot be read as one."""
        try:
            doc = self.read_json(path)
        except FileNotFoundError:
            raise
        except (ValueError, OSError, w32.Win32Error) as exc:
            raise DamagedRecord(path, damage_of(exc), hint) from None
        if not isinstance(doc, dict):
            raise DamagedRecord(path, f"a JSON {type(doc).__name__}, not an object", hint)
        return doc

    def exists(self, path: PathLike) -> bool:
        return self.win32.attributes(w32.long_path(path)) is not None

    def is_dir(self, path: PathLike) -> bool:
        """Whether ``path`` is a folder (a junction to one counts: it is not followed here)."""
        attributes = self.win32.attributes(w32.long_path(path))
        return attributes is not None and bool(attributes & w32.FILE_ATTRIBUTE_DIRECTORY)

    def entries(self, folder: PathLike) -> list[w32.FindData]:
        """What ``folder`` holds, hidden names included; empty when it does not exist."""
        try:
            return self.win32.listdir(w32.long_path(folder))
        except w32.PathNotFound:
            return []

    def names(self, folder: PathLike, suffix: str = "") -> list[str]:
        """The names in ``folder`` ending with ``suffix``, sorted, without hidden temporary files;
        an empty list when the folder does not exist."""
        return sorted(e.name for e in self.entries(folder) if e.name.endswith(suffix) and not e.name.startswith("."))

    # -- writing ------------------------------------------------------------------------------------

    def makedirs(self, folder: PathLike) -> None:
        """Create ``folder`` and the folders above it that are missing."""
        target = Path(folder)
        missing = []
        while self.win32.attributes(w32.long_path(target)) is None:
            missing.append(target)
            if target.parent == target:
                break
            target = target.parent
        for each in reversed(missing):
            self.win32.create_directory(w32.long_path(each), exist_ok=True)

    def write(self, path: PathLike, data: bytes, *, durable: bool = False) -> None:
        """Replace ``path`` with ``data``, atomically for readers; ``durable`` flushes the data to
        disk before the rename (records that must survive a power cut, not only a crash)."""
        final = w32.long_path(path)
        tmp = w32.long_path(Path(path).parent / f".{Path(path).name}.{secrets.token_hex(6)}.tmp")
        try:
            with self.win32.create_file(tmp, w32.GENERIC_WRITE, w32.CREATE_NEW, share=0) as out:
                out.write(data)
                if durable:
                    out.sync()
            w32.retry_while_shared(lambda: self.win32.move(tmp, final, replace=True, write_through=durable))
        except BaseException:
            self._remove_quietly(tmp)
            raise

    def write_json(self, path: PathLike, doc: Any, *, durable: bool = False, **dumps: Any) -> None:
        self.write(path, json.dumps(doc, ensure_ascii=False, **dumps).encode("utf-8"), durable=durable)

    def create_new(self, path: PathLike, data: bytes) -> bool:
        """Create ``path`` holding ``data`` only if nothing has that name (a claim two processes
        cannot both win); ``False`` when it already exists."""
        target = w32.long_path(path)
        try:
            f = self.win32.create_file(target, w32.GENERIC_WRITE, w32.CREATE_NEW, share=w32.FILE_SHARE_READ)
        except w32.AlreadyExists:
            return False
        with f:
            f.write(data)
        return True

    def remove(self, path: PathLike) -> bool:
        """Delete ``path``; ``False`` when it was not there. Retried while a reader holds it."""
        target = w32.long_path(path)
        try:
            w32.retry_while_shared(lambda: self.win32.delete_file(target))
        except w32.PathNotFound:
            return False
        return True

    def _remove_quietly(self, target: str) -> None:
        try:
            self.win32.delete_file(target)
        except w32.PathNotFound:
            pass
        except w32.Win32Error as exc:
            _log.warning("could not remove the temporary file %s: %s", target, exc)


def damage_of(exc: BaseException) -> str:
    """What is wrong with a state file, in words, from the error reading it raised."""
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text (byte {exc.start})"
    if isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON: {exc.msg} at byte {exc.pos}"
    return f"{type(exc).__name__}: {exc}"


def read_optional_json(files: StateFiles, path: PathLike) -> Optional[Any]:
    """The document at ``path``, or ``None`` when it is missing or damaged."""
    try:
        return files.read_json(path)
    except (FileNotFoundError, ValueError, w32.Win32Error):
        return None
