"""NTFS metadata for folders of the simulated host.

Linux files cannot hold what a Windows layer carries: attributes, security descriptors, four
times, extended attributes, reparse data, alternate data streams. On the simulated host every
folder tree that plays a Windows volume (a layer folder, a container's volume, an import or
export staging folder) keeps that metadata in a small SQLite file at its root, next to the real
files that hold the data. The daemon (ImportLayer, ExportLayer...) and the POSIX side of the
library's layer-folder functions (what BackupWrite, SetFileInformationByHandle and
CreateHardLink do on Windows) both go through :class:`NtfsStore`.

Paths are relative, ``/``-separated, case-preserving; lookups ignore case, as NTFS does.
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import contextlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Iterator, Optional

import attrs

from wincontainers.sim.wire import dumps

__all__ = ["NtfsStore", "FileMeta", "STORE_NAME", "host_path", "rel_from_host"]

STORE_NAME = ".wcsim-ntfs.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    lpath BLOB PRIMARY KEY, path BLOB NOT NULL, attributes INTEGER, security BLOB,
    creation INTEGER, access INTEGER, write INTEGER, change INTEGER, eas BLOB, reparse BLOB
);
CREATE TABLE IF NOT EXISTS streams (lpath BLOB NOT NULL, name BLOB NOT NULL, data BLOB, PRIMARY KEY (lpath, name));
CREATE TABLE IF NOT EXISTS tombstones (lpath BLOB PRIMARY KEY, path BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT);
"""


def host_path(root: Path, rel: str) -> bytes:
    """The host path of a Windows relative path, as bytes: names with lone UTF-16 surrogates
    (legal on NTFS) are kept through WTF-8, which Linux file names can hold."""
    base = os.fsencode(root)
    if not rel:
        return base
    return base + b"/" + rel.encode("utf-8", "surrogatepass")


def rel_from_host(name: bytes) -> str:
    try:
        return name.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return name.decode("utf-8", "surrogateescape")


@attrs.define
class FileMeta:
    attributes: Optional[int] = None
    security: Optional[bytes] = None
    creation: Optional[int] = None
    access: Optional[int] = None
    write: Optional[int] = None
    change: Optional[int] = None
    eas: Optional[bytes] = None
    reparse: Optional[bytes] = None


_FIELDS = ("attributes", "security", "creation", "access", "write", "change", "eas", "reparse")


def _key(rel: str) -> bytes:
    """Paths are stored as WTF-8 bytes: exact, reversible, lone surrogates included."""
    return rel.encode("utf-8", "surrogatepass")


def _lkey(rel: str) -> bytes:
    return rel.lower().encode("utf-8", "surrogatepass")


def _unkey(raw: bytes) -> str:
    return bytes(raw).decode("utf-8", "surrogatepass")


class NtfsStore:
    """The metadata of one folder tree (``db`` is its SQLite file)."""

    def __init__(self, db: Path) -> None:
        self.db = Path(db)
        self._conn: Optional[sqlite3.Connection] = None

    @classmethod
    def at(cls, root: Path) -> "NtfsStore":
        return cls(Path(root) / STORE_NAME)

    def _c(self) -> sqlite3.Connection:
        if self._conn is None:
            self.db.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.db), timeout=60, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(_SCHEMA)
            self._conn = conn
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> "NtfsStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextlib.contextmanager
    def batch(self) -> Iterator["NtfsStore"]:
        """One transaction for many changes (an import writes thousands of rows)."""
        conn = self._c()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # -- entries -----------------------------------------------------------------------------

    def put(self, rel: str, meta: FileMeta) -> None:
        self._c().execute(
            "INSERT OR REPLACE INTO entries VALUES (?,?,?,?,?,?,?,?,?,?)",
            (_lkey(rel), _key(rel), meta.attributes, meta.security, meta.creation, meta.access, meta.write, meta.change,
             meta.eas, meta.reparse),
        )

    def update(self, rel: str, **fields: object) -> None:
        current = self.get(rel) or FileMeta()
        for name, value in fields.items():
            setattr(current, name, value)
        self.put(rel, current)

    def get(self, rel: str) -> Optional[FileMeta]:
        row = self._c().execute(
            f"SELECT {','.join(_FIELDS)} FROM entries WHERE lpath=?", (_lkey(rel),)
        ).fetchone()
        return FileMeta(*row) if row else None

    def items(self) -> Iterator[tuple[str, FileMeta]]:
        for row in self._c().execute(f"SELECT path,{','.join(_FIELDS)} FROM entries ORDER BY path").fetchall():
            yield _unkey(row[0]), FileMeta(*row[1:])

    def remove(self, rel: str, recursive: bool = True) -> None:
        key = _lkey(rel)
        conn = self._c()
        conn.execute("DELETE FROM entries WHERE lpath=?", (key,))
        conn.execute("DELETE FROM streams WHERE lpath=?", (key,))
        if recursive:  # everything below: keys between "<key>/" and "<key>0" ('0' follows '/')
            low, high = key + b"/", key + b"0"
            conn.execute("DELETE FROM entries WHERE lpath >= ? AND lpath < ?", (low, high))
            conn.execute("DELETE FROM streams WHERE lpath >= ? AND lpath < ?", (low, high))

    # -- alternate data streams --------------------------------------------------------------

    def put_stream(self, rel: str, name: str, data: bytes) -> None:
        self._c().execute("INSERT OR REPLACE INTO streams VALUES (?,?,?)", (_lkey(rel), _key(name), data))

    def streams(self, rel: str) -> list[tuple[str, bytes]]:
        rows = self._c().execute("SELECT name, data FROM streams WHERE lpath=? ORDER BY name",
                                 (_lkey(rel),)).fetchall()
        return [(_unkey(n), bytes(d or b"")) for n, d in rows]

    # -- deletions recorded by a diff layer --------------------------------------------------

    def add_tombstone(self, rel: str) -> None:
        self._c().execute("INSERT OR REPLACE INTO tombstones VALUES (?,?)", (_lkey(rel), _key(rel)))

    def drop_tombstone(self, rel: str) -> None:
        self._c().execute("DELETE FROM tombstones WHERE lpath=?", (_lkey(rel),))

    def tombstones(self) -> list[str]:
        return [_unkey(r[0]) for r in self._c().execute("SELECT path FROM tombstones ORDER BY path").fetchall()]

    # -- layer-level facts --------------------------------------------------------------------

    def set_info(self, key: str, value: object) -> None:
        self._c().execute("INSERT OR REPLACE INTO info VALUES (?,?)", (key, dumps(value)))

    def info(self, key: str, default: object = None) -> object:
        row = self._c().execute("SELECT value FROM info WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default
