"""NTFS metadata for folders of the simulated host.

Linux files cannot hold what a Windows layer carries: attributes, security descriptors, four
times, extended attributes, reparse data, alternate data streams. On the simulated host that
metadata lives in small SQLite files next to the real files that hold the data:

- every folder tree that plays a Windows volume or a layer keeps a store at its root
  (``.wcsim-ntfs.db``): a layer folder, an import or export folder, a base image. A folder
  created through the simulated ``CreateDirectoryW`` where no tree store exists above it gets
  one, so each layer the library writes has its own;
- a sandbox's volume keeps its store beside the volume (``<layer>/.wcsim-volume.db``);
- everything else on the simulated C: drive (the simulator's root) shares the root's store, and
  paths outside the root share one store in the daemon's folder.

:func:`locate` finds the store that holds a path and the path's key inside it; an
:class:`NtfsStore` is a view of one store under a prefix, so the daemon's layer code and its
``kernel32`` see the same rows whichever folder they start from. Keys are relative,
``/``-separated, case-preserving; lookups ignore case, as NTFS does.
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import contextlib
import json
import os
import sqlite3
import threading
from pathlib import Path
from typing import Iterator, Optional, Union

import attrs

from wincontainers.sim.wire import dumps

__all__ = [
    "NtfsStore", "FileMeta", "STORE_NAME", "VOLUME_STORE", "SANDBOX_VOLUME", "host_path", "rel_from_host",
    "locate", "open_view", "shared_view", "set_volume_root", "volume_root", "forget_locations", "is_internal",
]

STORE_NAME = ".wcsim-ntfs.db"
VOLUME_STORE = ".wcsim-volume.db"
SANDBOX_VOLUME = "sandbox.vhdx"
_OUTSIDE_STORE = "outside-ntfs.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    lpath BLOB PRIMARY KEY, path BLOB NOT NULL, attributes INTEGER, security BLOB,
    creation INTEGER, access INTEGER, write INTEGER, change INTEGER, eas BLOB, reparse BLOB
);
CREATE TABLE IF NOT EXISTS streams (lpath BLOB NOT NULL, name BLOB NOT NULL, data BLOB, PRIMARY KEY (lpath, name));
CREATE TABLE IF NOT EXISTS tombstones (lpath BLOB PRIMARY KEY, path BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT);
CREATE INDEX IF NOT EXISTS reparse_points ON entries(lpath) WHERE reparse IS NOT NULL;
"""


def host_path(root: Union[Path, bytes, str], rel: str) -> bytes:
    """The host path of a Windows relative path, as bytes: names with lone UTF-16 surrogates
    (legal on NTFS) are kept through WTF-8, which Linux file names can hold."""
    base = root if isinstance(root, bytes) else os.fsencode(root)
    if not rel:
        return base
    return base + b"/" + rel.encode("utf-8", "surrogatepass")


def rel_from_host(name: bytes) -> str:
    try:
        return name.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return name.decode("utf-8", "surrogateescape")


def is_internal(name: Union[str, bytes]) -> bool:
    """The simulator's own files (stores and their journals), which no listing shows."""
    return (name.startswith(b".wcsim-") if isinstance(name, bytes) else name.startswith(".wcsim-"))


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


def _unkey(raw: Union[bytes, str]) -> str:
    return raw if isinstance(raw, str) else bytes(raw).decode("utf-8", "surrogatepass")


class _Db:
    """One SQLite file. A shared one (the daemon's kernel32) is used by many threads, one
    statement at a time under ``lock``; others belong to one caller."""

    def __init__(self, path: Path, *, shared: bool = False) -> None:
        self.path = Path(path)
        self.shared = shared
        self.lock = threading.RLock()
        self._conn: Optional[sqlite3.Connection] = None
        self._reparse: Optional[tuple[int, frozenset[str]]] = None

    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), timeout=60, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=OFF")  # a simulator: speed over surviving a power cut
            conn.executescript(_SCHEMA)
            self._conn = conn
        grouped = getattr(_grouping, "dbs", None)
        if grouped is not None and self.shared and not self._conn.in_transaction:
            self._conn.execute("BEGIN")
            grouped.append(self)
        return self._conn

    def commit(self) -> None:
        with self.lock:
            if self._conn is not None and self._conn.in_transaction:
                self._conn.execute("COMMIT")

    def close(self) -> None:
        with self.lock:
            if self._conn is not None:
                self.commit()  # a CommitGroup's transaction, if one is open
                self._conn.close()
                self._conn = None
            self._reparse = None

    def reparse_keys(self) -> frozenset[str]:
        """Lower-case keys of every reparse point, kept until another connection writes (only
        the daemon writes stores, so it counts those writes itself)."""
        with self.lock:
            version = _written.get(self.path, 0)
            if self._reparse is None or self._reparse[0] != version:
                rows = self.conn().execute("SELECT lpath FROM entries WHERE reparse IS NOT NULL").fetchall()
                self._reparse = (version, frozenset(_unkey(r[0]) for r in rows))
            return self._reparse[1]

    def changed_here(self, key: bytes, reparse: Optional[bool], subtree: bool = False) -> None:
        """After a change through this connection: another connection's cache is stale; ours is
        kept current (``reparse`` True/False for one key, None for a removal)."""
        if not self.shared:
            _written[self.path] = _written.get(self.path, 0) + 1
            return
        if self._reparse is None:
            return
        version, keys = self._reparse
        lower = _unkey(key)
        if reparse:
            keys = keys | {lower}
        elif subtree:
            keys = frozenset(k for k in keys if k != lower and not k.startswith(lower + "/"))
        elif lower in keys:
            keys = keys - {lower}
        self._reparse = (version, keys)


class NtfsStore:
    """The metadata of one folder tree: the rows of ``db`` under ``prefix`` (``""``: all of it)."""

    def __init__(self, db: Union[Path, _Db], prefix: str = "", *, owned: Optional[bool] = None) -> None:
        self._db = db if isinstance(db, _Db) else _Db(Path(db))
        self.prefix = prefix.strip("/")
        self._owned = not isinstance(db, _Db) if owned is None else owned

    @property
    def db(self) -> Path:
        return self._db.path

    @classmethod
    def at(cls, root: Path) -> "NtfsStore":
        """The store whose file is at the root of the tree ``root`` (created on first write)."""
        return cls(Path(root) / STORE_NAME)

    def close(self) -> None:
        if self._owned:
            self._db.close()

    def __enter__(self) -> "NtfsStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _k(self, rel: str) -> str:
        rel = rel.strip("/")
        if not self.prefix:
            return rel
        return f"{self.prefix}/{rel}" if rel else self.prefix

    def _strip(self, key: str) -> str:
        if not self.prefix:
            return key
        return key[len(self.prefix) + 1:] if key != self.prefix else ""

    def _range(self) -> tuple[bytes, bytes]:
        """Keys strictly below the prefix: between "<prefix>/" and "<prefix>0" ('0' follows '/')."""
        low = _lkey(self.prefix)
        return low + b"/", low + b"0"

    @contextlib.contextmanager
    def batch(self) -> Iterator["NtfsStore"]:
        """One transaction for many changes (an import writes thousands of rows)."""
        with self._db.lock:
            conn = self._db.conn()
            if conn.in_transaction:  # inside a CommitGroup: its transaction holds these too
                yield self
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @contextlib.contextmanager
    def reading(self) -> Iterator["NtfsStore"]:
        """One read transaction for many queries (an export asks one or two per file): one
        consistent view, and no lock taken and released per query. On a connection of its own
        only (a shared one is left as it is)."""
        with self._db.lock:
            conn = self._db.conn()
            if conn.in_transaction or self._db.shared:
                yield self
                return
            conn.execute("BEGIN")
            try:
                yield self
            finally:
                if conn.in_transaction:
                    conn.execute("COMMIT")

    # -- entries -----------------------------------------------------------------------------

    def put(self, rel: str, meta: FileMeta) -> None:
        key = self._k(rel)
        with self._db.lock:
            self._db.conn().execute(
                "INSERT OR REPLACE INTO entries VALUES (?,?,?,?,?,?,?,?,?,?)",
                (_lkey(key), _key(key), meta.attributes, meta.security, meta.creation, meta.access, meta.write,
                 meta.change, meta.eas, meta.reparse),
            )
            self._db.changed_here(_lkey(key), meta.reparse is not None)

    def update(self, rel: str, **fields: object) -> None:
        with self._db.lock:
            current = self.get(rel) or FileMeta()
            for name, value in fields.items():
                setattr(current, name, value)
            self.put(rel, current)

    def get(self, rel: str) -> Optional[FileMeta]:
        with self._db.lock:
            row = self._db.conn().execute(
                f"SELECT {','.join(_FIELDS)} FROM entries WHERE lpath=?", (_lkey(self._k(rel)),)
            ).fetchone()
        return FileMeta(*row) if row else None

    def holds(self, rel: str) -> bool:
        """Whether anything (an entry or a stream) is stored for ``rel`` (a read: cheaper than
        the writes of :meth:`remove` for a name that has nothing)."""
        key = _lkey(self._k(rel))
        with self._db.lock:
            row = self._db.conn().execute(
                "SELECT 1 FROM entries WHERE lpath=? UNION ALL SELECT 1 FROM streams WHERE lpath=? LIMIT 1",
                (key, key)).fetchone()
        return row is not None

    def items(self) -> Iterator[tuple[str, FileMeta]]:
        with self._db.lock:
            if self.prefix:
                low, high = self._range()
                rows = self._db.conn().execute(
                    f"SELECT path,{','.join(_FIELDS)} FROM entries WHERE (lpath >= ? AND lpath < ?) OR lpath = ?"
                    " ORDER BY path", (low, high, _lkey(self.prefix))).fetchall()
            else:
                rows = self._db.conn().execute(
                    f"SELECT path,{','.join(_FIELDS)} FROM entries ORDER BY path").fetchall()
        for row in rows:
            yield self._strip(_unkey(row[0])), FileMeta(*row[1:])

    def below(self) -> dict[bytes, FileMeta]:
        """Every row below this view by its lower-case key relative to it (WTF-8, '/' between
        names), in no order: a whole tree's metadata in one query, with no text made per row."""
        with self._db.lock:
            if self.prefix:
                low, high = self._range()
                rows = self._db.conn().execute(
                    f"SELECT lpath,{','.join(_FIELDS)} FROM entries WHERE lpath >= ? AND lpath < ?",
                    (low, high)).fetchall()
                skip = len(low)
            else:
                rows = self._db.conn().execute(f"SELECT lpath,{','.join(_FIELDS)} FROM entries").fetchall()
                skip = 0
        return {bytes(row[0][skip:]): FileMeta(*row[1:]) for row in rows if len(row[0]) > skip}

    def children(self, rel: str) -> dict[str, FileMeta]:
        """The rows directly below ``rel``, by lower-case name."""
        key = self._k(rel)
        low = _lkey(key) + b"/" if key else b""
        with self._db.lock:
            if key:
                rows = self._db.conn().execute(
                    f"SELECT lpath,{','.join(_FIELDS)} FROM entries WHERE lpath >= ? AND lpath < ?"
                    " AND instr(substr(lpath, ?), '/') = 0", (low, _lkey(key) + b"0", len(low) + 1)).fetchall()
            else:
                rows = self._db.conn().execute(
                    f"SELECT lpath,{','.join(_FIELDS)} FROM entries WHERE instr(lpath, '/') = 0").fetchall()
        return {_unkey(bytes(row[0])[len(low):]): FileMeta(*row[1:]) for row in rows if len(row[0]) > len(low)}

    def remove(self, rel: str, recursive: bool = True) -> None:
        key = _lkey(self._k(rel))
        with self._db.lock:
            conn = self._db.conn()
            conn.execute("DELETE FROM entries WHERE lpath=?", (key,))
            conn.execute("DELETE FROM streams WHERE lpath=?", (key,))
            if recursive:  # everything below: keys between "<key>/" and "<key>0" ('0' follows '/')
                low, high = key + b"/", key + b"0"
                conn.execute("DELETE FROM entries WHERE lpath >= ? AND lpath < ?", (low, high))
                conn.execute("DELETE FROM streams WHERE lpath >= ? AND lpath < ?", (low, high))
            self._db.changed_here(key, None, subtree=recursive)

    def drop_streams(self, rel: str) -> None:
        """Forget the alternate streams of ``rel`` (a new file of a name an old one had)."""
        with self._db.lock:
            self._db.conn().execute("DELETE FROM streams WHERE lpath=?", (_lkey(self._k(rel)),))

    def rename(self, old: str, new: str) -> None:
        """Move the rows of ``old`` and everything below it to ``new`` (same store)."""
        old_key, new_key = self._k(old), self._k(new)
        old_l, new_l = _lkey(old_key), _lkey(new_key)
        with self._db.lock:
            conn = self._db.conn()
            self.remove(new)
            for table in ("entries", "streams"):
                conn.execute(f"UPDATE {table} SET lpath = ? WHERE lpath = ?", (new_l, old_l))
                # || makes TEXT: cast back, so keys stay BLOBs (byte-exact, WTF-8)
                conn.execute(f"UPDATE {table} SET lpath = CAST(? || substr(lpath, ?) AS BLOB) "
                             "WHERE lpath >= ? AND lpath < ?",
                             (new_l, len(old_l) + 1, old_l + b"/", old_l + b"0"))
            conn.execute("UPDATE entries SET path = ? WHERE lpath = ?", (_key(new_key), new_l))
            conn.execute("UPDATE entries SET path = CAST(? || substr(path, ?) AS BLOB) WHERE lpath >= ? AND lpath < ?",
                         (_key(new_key), len(_key(old_key)) + 1, new_l + b"/", new_l + b"0"))
            self._db._reparse = None
            if not self._db.shared:
                _written[self._db.path] = _written.get(self._db.path, 0) + 1

    def reparse_points(self) -> frozenset[str]:
        """Lower-case keys (relative to this view) of the reparse points under it."""
        keys = self._db.reparse_keys()
        if not self.prefix:
            return keys
        low = self.prefix.lower() + "/"
        return frozenset(k[len(low):] for k in keys if k.startswith(low))

    def has_reparse(self, rel: str) -> bool:
        return self._k(rel).lower() in self._db.reparse_keys()

    # -- alternate data streams --------------------------------------------------------------

    def put_stream(self, rel: str, name: str, data: bytes) -> None:
        with self._db.lock:
            self._db.conn().execute("INSERT OR REPLACE INTO streams VALUES (?,?,?)",
                                    (_lkey(self._k(rel)), _key(name), data))

    def stream_owners(self) -> frozenset[str]:
        """The lower-case paths (below this view) that have an alternate data stream: one query,
        so a reader of many files asks :meth:`streams` only of these (few files have one)."""
        with self._db.lock:
            if self.prefix:
                low, high = self._range()
                rows = self._db.conn().execute("SELECT DISTINCT lpath FROM streams WHERE lpath >= ? AND lpath < ?",
                                               (low, high)).fetchall()
            else:
                rows = self._db.conn().execute("SELECT DISTINCT lpath FROM streams").fetchall()
        return frozenset(self._strip(_unkey(row[0])) for row in rows)

    def drop_stream(self, rel: str, name: str) -> None:
        with self._db.lock:
            self._db.conn().execute("DELETE FROM streams WHERE lpath=? AND lower(name)=lower(?)",
                                    (_lkey(self._k(rel)), _key(name)))

    def streams(self, rel: str) -> list[tuple[str, bytes]]:
        with self._db.lock:
            rows = self._db.conn().execute("SELECT name, data FROM streams WHERE lpath=? ORDER BY name",
                                           (_lkey(self._k(rel)),)).fetchall()
        return [(_unkey(n), bytes(d or b"")) for n, d in rows]

    # -- deletions recorded by a diff layer (the legacy transport's tombstones.txt) ---------

    def add_tombstone(self, rel: str) -> None:
        key = self._k(rel)
        with self._db.lock:
            self._db.conn().execute("INSERT OR REPLACE INTO tombstones VALUES (?,?)", (_lkey(key), _key(key)))

    def tombstones(self) -> list[str]:
        with self._db.lock:
            rows = self._db.conn().execute("SELECT path FROM tombstones ORDER BY path").fetchall()
        keys = [_unkey(r[0]) for r in rows]
        if not self.prefix:
            return keys
        low = self.prefix.lower() + "/"
        return [self._strip(k) for k in keys if k.lower().startswith(low)]

    # -- layer-level facts --------------------------------------------------------------------

    def _info_key(self, key: str) -> str:
        return f"{self.prefix}\0{key}" if self.prefix else key

    def set_info(self, key: str, value: object) -> None:
        with self._db.lock:
            self._db.conn().execute("INSERT OR REPLACE INTO info VALUES (?,?)", (self._info_key(key), dumps(value)))

    def info(self, key: str, default: object = None) -> object:
        with self._db.lock:
            row = self._db.conn().execute("SELECT value FROM info WHERE key=?", (self._info_key(key),)).fetchone()
        return json.loads(row[0]) if row else default


# -- where a path's metadata lives -----------------------------------------------------------------

_volume_root: Optional[Path] = None
_locations: dict[bytes, tuple[Path, str]] = {}
_shared: dict[Path, _Db] = {}
_registry_lock = threading.Lock()
#: store file -> how many writes other connections than the shared one made (reparse caches)
_written: dict[Path, int] = {}


def set_volume_root(root: Path) -> None:
    """The simulated host's C: drive (the simulator's root folder)."""
    global _volume_root
    _volume_root = Path(root)
    forget_locations()


def volume_root() -> Path:
    if _volume_root is None:
        raise RuntimeError("the simulated host's volume root is not set")
    return _volume_root


def forget_locations() -> None:
    """Drop the cached store locations (after a folder that holds stores moved or went away),
    and the shared connections to stores that are gone with them."""
    with _registry_lock:
        _locations.clear()
        for db in [db for db in _shared if not os.path.exists(db)]:
            _shared.pop(db).close()


def _find(path: bytes) -> tuple[Path, str]:
    """(store file, key) for the host path ``path``: the nearest tree store above it, else the
    C: drive's store, else (outside the drive) the daemon's store for foreign paths."""
    root = os.fsencode(volume_root())
    names: list[bytes] = []
    current = path.rstrip(b"/") or b"/"
    while True:
        if os.path.exists(current + b"/" + _STORE_B):
            return Path(os.fsdecode(current)) / STORE_NAME, _join(names)
        parent, name = os.path.split(current)
        if name == _VOLUME_B and os.path.exists(parent + b"/" + _VOLUME_STORE_B):
            return Path(os.fsdecode(parent)) / VOLUME_STORE, _join(names)
        if current == root:
            return Path(os.fsdecode(root)) / STORE_NAME, _join(names)
        if parent == current:
            return Path(os.fsdecode(root)) / "daemon" / _OUTSIDE_STORE, rel_from_host(path.strip(b"/"))
        names.append(name)
        current = parent


_STORE_B = STORE_NAME.encode()
_VOLUME_B = SANDBOX_VOLUME.encode()
_VOLUME_STORE_B = VOLUME_STORE.encode()


def _join(names: list[bytes]) -> str:
    return "/".join(rel_from_host(n) for n in reversed(names))


def locate(path: Union[Path, bytes, str], directory: Optional[bool] = None) -> tuple[Path, str]:
    """The store file that holds the metadata of ``path`` and the path's key in it
    (``directory=False``: the caller knows it is no folder, so it cannot be a tree's root)."""
    raw = (path if isinstance(path, bytes) else os.fsencode(path)).rstrip(b"/") or b"/"
    with _registry_lock:
        found = _locations.get(raw)
    if found is not None:
        return found
    folder, name = os.path.split(raw)
    if not name or name == _VOLUME_B or (directory is not False and os.path.exists(raw + b"/" + _STORE_B)):
        found = _find(raw)
    else:
        with _registry_lock:
            parent = _locations.get(folder)
        db, prefix = parent if parent is not None else locate(folder, True)
        leaf = rel_from_host(name)
        found = (db, f"{prefix}/{leaf}" if prefix else leaf)
    if directory is True or (directory is None and os.path.isdir(raw)):
        with _registry_lock:
            if len(_locations) > 4096:
                _locations.clear()
            _locations[raw] = found
    return found


_grouping = threading.local()


class CommitGroup:
    """From now until :meth:`close`, the shared stores this thread uses join one transaction
    each, committed at the close: the daemon applies a burst of kernel32's messages (a lease's
    journal: a row or two per file) with one commit instead of one per statement. Other threads
    on the same shared connection see the rows at once; other connections after the commit (the
    daemon's barrier waits for it). A group opened inside another one leaves it to the outer."""

    def __init__(self) -> None:
        self._dbs: Optional[list[_Db]] = None
        if getattr(_grouping, "dbs", None) is None:
            self._dbs = _grouping.dbs = []

    def close(self) -> None:
        if self._dbs is not None:
            _grouping.dbs = None
            for db in self._dbs:
                db.commit()
            self._dbs = None


def open_view(path: Union[Path, bytes, str]) -> NtfsStore:
    """A store of its own (own connection; close it) over the tree at ``path``."""
    db, prefix = locate(path)
    return NtfsStore(db, prefix)


def shared_view(path: Union[Path, bytes, str], directory: Optional[bool] = None) -> NtfsStore:
    """A view over the daemon's shared connection to the store of ``path`` (do not batch)."""
    db, prefix = locate(path, directory)
    return _shared_store(db, prefix)


def shared_store(db: Path) -> NtfsStore:
    """The whole store file ``db`` over the daemon's shared connection."""
    return _shared_store(db, "")


def _shared_store(db: Path, prefix: str) -> NtfsStore:
    with _registry_lock:
        shared = _shared.get(db)
        if shared is None:
            shared = _shared[db] = _Db(db, shared=True)
            if len(_shared) > 256:
                for old in list(_shared)[:64]:
                    _shared.pop(old).close()
    return NtfsStore(shared, prefix, owned=False)
