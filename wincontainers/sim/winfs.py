"""The simulated host's file system as kernel32 sees it: Windows paths, handles and their rules.

The simulated ``kernel32.dll`` sends every call that needs the host's state here: opening and
creating (``CreateFileW``), listing, deleting, linking, renaming, attributes, and the metadata
a handle wrote when it is closed. File *data* never comes through: ``CreateFileW`` hands the
client a descriptor of the backing file, and ``ReadFile``/``WriteFile``/the data streams of
``BackupRead``/``BackupWrite`` use it directly.

Where Windows refuses, this refuses, with the same Win32 error:

- paths: ``\\\\?\\`` paths are taken literally (``.``/``..`` are invalid names); other paths are
  normalized (``.``, ``..``, trailing dots and spaces) and limited to MAX_PATH (248 for a new
  directory); ``C:\\`` is the simulator's root, ``\\\\?\\Volume{...}\\`` a mounted sandbox;
  names are case-insensitive and case-preserving;
- reparse points: junctions and symbolic links in the middle of a path are followed (an
  absolute target such as ``C:\\Users`` leads out of the folder, as on Windows); the last
  component too, unless the caller opens with ``FILE_FLAG_OPEN_REPARSE_POINT``; reparse points
  Windows cannot follow (WSL/LX symlinks, container placeholders) give ERROR_CANT_ACCESS_FILE;
  a POSIX symlink on the host is such an LX symlink, never followed;
- opening: dispositions, a directory only with ``FILE_FLAG_BACKUP_SEMANTICS``, share modes
  between handles (also across processes), read-only files, ``ACCESS_SYSTEM_SECURITY`` only with
  SeSecurityPrivilege enabled, the DACL of the file's security descriptor (bypassed with backup
  semantics by enabled SeBackupPrivilege/SeRestorePrivilege);
- deleting: read-only files and non-empty directories are refused; ``DeleteFileW`` does not
  delete directories; a file open without FILE_SHARE_DELETE cannot be deleted or replaced.

Why one file: kernel32's file rules (share modes, delete-pending, reparse points, privileges, long
paths) all meet on one handle table; split, every part would need the others' locks.
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import fnmatch
import io
import logging
import os
import re
import shutil
import stat
import struct
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import attrs

from wincontainers.layerfile.backup import BackupWriter
from wincontainers.layerfile.reparse import ReparseError, decode_reparse, encode_reparse, reparse_tag
from wincontainers.layerfile.security import SecurityDescriptor, SecurityError
from wincontainers.layerfile.times import unix_ns_to_filetime
from wincontainers.sim import ntfs
from wincontainers.sim.faults import Fail
from wincontainers.sim.ntfs import FileMeta, NtfsStore, is_internal, rel_from_host
from wincontainers.sim.tokens import Token, Tokens
from wincontainers.sim.winerror import (
    ACCESS_SYSTEM_SECURITY,
    CREATE_ALWAYS,
    CREATE_NEW,
    DELETE,
    ERROR_ACCESS_DENIED,
    ERROR_ALREADY_EXISTS,
    ERROR_BAD_NETPATH,
    ERROR_CANT_ACCESS_FILE,
    ERROR_CANT_RESOLVE_FILENAME,
    ERROR_DIR_NOT_EMPTY,
    ERROR_DIRECTORY,
    ERROR_FILE_EXISTS,
    ERROR_FILE_NOT_FOUND,
    ERROR_FILENAME_EXCED_RANGE,
    ERROR_INVALID_HANDLE,
    ERROR_INVALID_NAME,
    ERROR_INVALID_PARAMETER,
    ERROR_NOT_SAME_DEVICE,
    ERROR_PATH_NOT_FOUND,
    ERROR_PRIVILEGE_NOT_HELD,
    ERROR_SHARING_VIOLATION,
    FILE_ALL_ACCESS,
    FILE_APPEND_DATA,
    FILE_ATTRIBUTE_ARCHIVE,
    FILE_ATTRIBUTE_DIRECTORY,
    FILE_ATTRIBUTE_NORMAL,
    FILE_ATTRIBUTE_READONLY,
    FILE_ATTRIBUTE_REPARSE_POINT,
    FILE_EXECUTE,
    FILE_FLAG_BACKUP_SEMANTICS,
    FILE_FLAG_DELETE_ON_CLOSE,
    FILE_FLAG_OPEN_REPARSE_POINT,
    FILE_GENERIC_EXECUTE,
    FILE_GENERIC_READ,
    FILE_GENERIC_WRITE,
    FILE_READ_ATTRIBUTES,
    FILE_READ_DATA,
    FILE_SHARE_DELETE,
    FILE_SHARE_READ,
    FILE_SHARE_WRITE,
    FILE_WRITE_ATTRIBUTES,
    FILE_WRITE_DATA,
    GENERIC_ALL,
    GENERIC_EXECUTE,
    GENERIC_READ,
    GENERIC_WRITE,
    MAXIMUM_ALLOWED,
    MOVEFILE_COPY_ALLOWED,
    MOVEFILE_REPLACE_EXISTING,
    OPEN_ALWAYS,
    OPEN_EXISTING,
    READ_CONTROL,
    SETTABLE_ATTRIBUTES,
    SYMBOLIC_LINK_FLAG_DIRECTORY,
    SYNCHRONIZE,
    TRUNCATE_EXISTING,
    WRITE_DAC,
    WRITE_OWNER,
)

__all__ = ["WinFs", "OpenFile", "LX_SYMLINK_TAG", "lx_symlink", "now_filetime", "file_meta"]

log = logging.getLogger("wincontainers.sim.winfs")

LX_SYMLINK_TAG = 0xA000001D
MAX_PATH = 260
_DATA_READ = FILE_READ_DATA | FILE_EXECUTE
_DATA_WRITE = FILE_WRITE_DATA | FILE_APPEND_DATA
_READ_RIGHTS = FILE_GENERIC_READ | FILE_GENERIC_EXECUTE | ACCESS_SYSTEM_SECURITY
_WRITE_RIGHTS = FILE_GENERIC_WRITE | WRITE_DAC | WRITE_OWNER | DELETE | ACCESS_SYSTEM_SECURITY
_GENERIC = ((GENERIC_READ, FILE_GENERIC_READ), (GENERIC_WRITE, FILE_GENERIC_WRITE),
            (GENERIC_EXECUTE, FILE_GENERIC_EXECUTE), (GENERIC_ALL, FILE_ALL_ACCESS))
_BAD_CHARS = re.compile(r'[<>:"|?*\x00-\x1f]')


def now_filetime() -> int:
    return unix_ns_to_filetime(time.time_ns())


def lx_symlink(target: bytes) -> bytes:
    """The reparse buffer WSL writes for a symlink (what a POSIX symlink on the host is)."""
    return struct.pack("<IHH", LX_SYMLINK_TAG, 4 + len(target), 0) + struct.pack("<I", 2) + target


def map_generic(access: int) -> int:
    for generic, specific in _GENERIC:
        if access & generic:
            access = (access & ~generic) | specific
    return access


def file_meta(host: bytes, st: os.stat_result, view: Optional[NtfsStore] = None) -> tuple[int, tuple[int, int, int, int],
                                                                                         Optional[bytes]]:
    """(attributes, (creation, access, write, change), reparse buffer) of a host entry."""
    return describe(host, st, (view or ntfs.shared_view(host, stat.S_ISDIR(st.st_mode))).get(""))


def describe(host: Any, st: os.stat_result, meta: Optional[FileMeta]) -> tuple[int, tuple[int, int, int, int],
                                                                             Optional[bytes]]:
    """What Windows shows of a host entry with the metadata its store holds (``None``: none)."""
    directory = stat.S_ISDIR(st.st_mode)
    reparse = meta.reparse if meta is not None else None
    if stat.S_ISLNK(st.st_mode):
        reparse = lx_symlink(os.readlink(host))
    # Reading does not move times here, as on NTFS since Vista: unset times are the last write.
    write = unix_ns_to_filetime(st.st_mtime_ns)
    fallback = (write, write, write, unix_ns_to_filetime(st.st_ctime_ns))
    times = fallback if meta is None else tuple(
        t if t is not None else f for t, f in zip((meta.creation, meta.access, meta.write, meta.change), fallback))
    return _attributes_of(directory, meta, reparse), times, reparse  # type: ignore[return-value]


def describe_stored(directory: bool, meta: Optional[FileMeta]) -> Optional[tuple[int, tuple[int, int, int, int],
                                                                                  Optional[bytes]]]:
    """:func:`describe` of an entry (not a host link) whose store holds all four times: what
    Windows shows needs no stat then. None when it does."""
    if meta is None or meta.creation is None or meta.access is None or meta.write is None or meta.change is None:
        return None
    times = (meta.creation, meta.access, meta.write, meta.change)
    return _attributes_of(directory, meta, meta.reparse), times, meta.reparse


def _attributes_of(directory: bool, meta: Optional[FileMeta], reparse: Optional[bytes]) -> int:
    attributes = meta.attributes if meta is not None and meta.attributes is not None else (
        FILE_ATTRIBUTE_DIRECTORY if directory else FILE_ATTRIBUTE_ARCHIVE)
    attributes = attributes or FILE_ATTRIBUTE_NORMAL
    if directory:
        attributes = (attributes | FILE_ATTRIBUTE_DIRECTORY) & ~FILE_ATTRIBUTE_NORMAL
    if reparse is not None:
        attributes = (attributes | FILE_ATTRIBUTE_REPARSE_POINT) & ~FILE_ATTRIBUTE_NORMAL
    return attributes


def privilege_bits(token: Token) -> int:
    """What kernel32 is told of a token: SeBackup 1, SeRestore 2, SeSecurity 4 enabled, elevated 8."""
    return (int(token.enabled("SeBackupPrivilege")) | int(token.enabled("SeRestorePrivilege")) << 1
            | int(token.enabled("SeSecurityPrivilege")) << 2 | int(token.elevated) << 3)


def volume_serial(dev: int) -> int:
    return (dev * 2654435761 + 0x5EED) & 0xFFFFFFFF


@attrs.define(eq=False)
class OpenFile:
    """A daemon-side file handle: what share modes, deletion and the close need to know."""

    id: int
    pid: int
    host: bytes
    dev: int
    ino: int
    directory: bool
    access: int
    share: int
    flags: int
    stream: Optional[str] = None
    memfd: Optional[int] = None
    owner: Any = None  # the client connection


@attrs.define
class Resolved:
    """Where a Windows path leads: the host entry (``st`` is None when it does not exist)."""

    host: bytes
    st: Optional[os.stat_result]
    name: str
    reparse: Optional[bytes] = None

    @property
    def parent(self) -> bytes:
        return os.path.dirname(self.host)

    @property
    def is_dir(self) -> bool:
        return self.st is not None and stat.S_ISDIR(self.st.st_mode)


class WinFs:
    """Files of the simulated host, as kernel32 sees them. Thread-safe."""

    def __init__(self, root: Path, tokens: Tokens, volume: Callable[[str], Optional[Path]]) -> None:
        self.root = Path(root)
        self.tokens = tokens
        self._volume = volume
        self.lock = threading.RLock()
        self.opens: dict[int, OpenFile] = {}
        self._by_file: dict[tuple[int, int], list[OpenFile]] = {}
        self._delete_pending: set[tuple[int, int]] = set()
        self._names: dict[bytes, tuple[int, dict[str, bytes]]] = {}
        self._folders: dict[bytes, tuple[int, int]] = {}
        #: told of every host folder a path reaches through a reparse point (the leases: a
        #: folder seen through a link is touched by somebody they cannot name)
        self.through_link: Callable[[bytes], None] = lambda host: None

    # -- paths ------------------------------------------------------------------------------------

    def parse(self, text: Optional[str], *, directory: bool = False,
              allow_stream: bool = False) -> tuple[bytes, list[str], Optional[str]]:
        """A Windows path -> (host folder to start from, components, stream name)."""
        if not text:
            raise Fail(ERROR_PATH_NOT_FOUND, "empty path")
        long = text.startswith("\\\\?\\")
        if long:
            rest = text[4:]
            if rest[:4].upper() == "UNC\\":
                raise Fail(ERROR_BAD_NETPATH, f"{text!r}: network paths do not exist on the simulated host")
        else:
            if text.startswith(("\\\\", "//")):
                raise Fail(ERROR_BAD_NETPATH, f"{text!r}: network and device paths do not exist here")
            limit = MAX_PATH - 12 if directory else MAX_PATH
            if len(text.encode("utf-16-le", "surrogatepass")) // 2 >= limit:
                raise Fail(ERROR_FILENAME_EXCED_RANGE,
                           f"{len(text)} characters without the \\\\?\\ prefix is more than MAX_PATH allows")
            rest = text
        if rest[:7].lower() == "volume{":
            end = rest.find("}")
            content = self._volume(rest[7:end].lower()) if end > 0 else None
            if content is None:
                raise Fail(ERROR_PATH_NOT_FOUND, f"{text!r}: no mounted volume with that GUID")
            base, tail = os.fsencode(content), rest[end + 1:]
        elif len(rest) >= 2 and rest[1] == ":" and rest[0].isalpha():
            if rest[0].upper() != "C":
                raise Fail(ERROR_PATH_NOT_FOUND, f"{text!r}: the simulated host has only a C: drive")
            base, tail = os.fsencode(self.root), rest[2:]
            if tail and tail[0] not in "\\/":
                raise Fail(ERROR_INVALID_NAME, f"{text!r}: drive-relative paths are not supported")
        elif rest.startswith("/"):
            base, tail = b"/", rest
        else:
            raise Fail(ERROR_INVALID_NAME, f"{text!r} is not an absolute path")
        comps: list[str] = []
        for part in re.split(r"[\\/]", tail):
            if not part:
                continue
            if long:
                if part in (".", ".."):
                    raise Fail(ERROR_INVALID_NAME, f"{text!r}: '{part}' in a \\\\?\\ path is a name, and an invalid one")
            else:
                if part == ".":
                    continue
                if part == "..":
                    if comps:
                        comps.pop()
                    continue
                part = part.rstrip(" .")
                if not part:
                    continue
            comps.append(part)
        stream = None
        if comps and ":" in comps[-1]:
            if not allow_stream:
                raise Fail(ERROR_INVALID_NAME, f"{text!r}: ':' is not allowed in a name")
            name, _, rest_stream = comps[-1].partition(":")
            stream_name, _, kind = rest_stream.partition(":")
            if not name or (kind and kind.upper() != "$DATA") or ":" in kind:
                raise Fail(ERROR_INVALID_NAME, f"{text!r}: bad stream name")
            comps[-1] = name
            stream = stream_name or None
        for part in comps:
            if _BAD_CHARS.search(part):
                raise Fail(ERROR_INVALID_NAME, f"{text!r}: {part!r} holds a character Windows names cannot hold")
        return base, comps, stream

    def resolve(self, text: Optional[str], *, follow: bool = True, directory: bool = False,
                allow_stream: bool = False) -> tuple[Resolved, Optional[str]]:
        base, comps, stream = self.parse(text, directory=directory, allow_stream=allow_stream)
        fast = self._fast(base, comps, follow)
        if fast is not None:
            return fast, stream
        return self._walk(base, comps, follow), stream

    def _existing(self, text: Optional[str]) -> tuple[Resolved, os.stat_result]:
        """Where ``text`` leads, not following a final reparse point; ERROR_FILE_NOT_FOUND when
        nothing is there."""
        res, _ = self.resolve(text, follow=False)
        if res.st is None:
            raise Fail(ERROR_FILE_NOT_FOUND, f"{res.name} does not exist")
        return res, res.st

    def _fast(self, base: bytes, comps: list[str], follow: bool) -> Optional[Resolved]:
        """The common case in one go: the folder exists exactly as named, through no link."""
        if not comps or any(is_internal(c) for c in comps):
            return None
        parent = base.rstrip(b"/")
        for part in comps[:-1]:
            parent += b"/" + part.encode("utf-8", "surrogatepass")
        parent = parent or b"/"
        if not self._verified(parent):
            return None  # a host symlink (or a name in another case) on the way: walk it
        view = ntfs.shared_view(parent)
        points = view._db.reparse_keys()
        if points:
            probe = ""
            for part in view._k("").lower().split("/") if view._k("") else []:
                probe = f"{probe}/{part}" if probe else part
                if probe in points:
                    return None  # a junction or symlink on the way: walk it
        child, st = self._lookup(parent, comps[-1])
        name = rel_from_host(os.path.basename(child))
        if st is None:
            return Resolved(child, None, comps[-1])
        if stat.S_ISLNK(st.st_mode) or (points and view.has_reparse(name)):
            if follow:
                return None
            _attrs, _times, reparse = file_meta(child, st)
            return Resolved(child, st, name, reparse)
        return Resolved(child, st, name)

    def _verified(self, folder: bytes) -> bool:
        """Whether ``folder`` is a folder reached through no host symlink. The answer is kept
        per folder with its identity: the same device and inode later is the same folder."""
        try:
            st = os.stat(folder)
        except OSError:
            return False
        with self.lock:
            known = self._folders.get(folder)
        if known == (st.st_dev, st.st_ino):
            return True
        try:
            fd = os.open(folder, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            real = os.fsencode(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            return False
        finally:
            os.close(fd)
        if real != folder:
            return False
        with self.lock:
            if len(self._folders) > 8192:
                self._folders.clear()
            self._folders[folder] = (st.st_dev, st.st_ino)
        return True

    def _walk(self, base: bytes, comps: list[str], follow: bool) -> Resolved:
        current = base.rstrip(b"/") or b"/"
        remaining = list(comps)
        hops = 0
        if not remaining:
            return Resolved(current, os.lstat(current), "")
        while remaining:
            name = remaining.pop(0)
            last = not remaining
            if is_internal(name):
                if last:
                    return Resolved(_join(current, name), None, name)
                raise Fail(ERROR_PATH_NOT_FOUND, f"{name!r} does not exist")
            child, st = self._lookup(current, name)
            if st is None:
                if last:
                    return Resolved(child, None, name)
                raise Fail(ERROR_PATH_NOT_FOUND, f"{rel_from_host(child)} does not exist")
            reparse = None
            if stat.S_ISLNK(st.st_mode) or ntfs.shared_view(child).has_reparse(""):
                _attrs, _times, reparse = file_meta(child, st)
            if reparse is not None and (follow or not last):
                hops += 1
                if hops > 31:
                    raise Fail(ERROR_CANT_RESOLVE_FILENAME, "too many reparse points on the way")
                current, more = self._target(current, rel_from_host(child), reparse)
                self.through_link(_join(current, "/".join(more)) if more else current)
                remaining = more + remaining
                if not remaining:
                    return Resolved(current, os.lstat(current), os.path.basename(current).decode("utf-8", "surrogatepass"))
                continue
            if not last and not stat.S_ISDIR(st.st_mode):
                raise Fail(ERROR_PATH_NOT_FOUND, f"{rel_from_host(child)} is not a folder")
            if last:
                return Resolved(child, st, rel_from_host(os.path.basename(child)), reparse)
            current = child
        raise AssertionError("unreachable")

    def _target(self, folder: bytes, link: str, reparse: bytes) -> tuple[bytes, list[str]]:
        """Where a reparse point leads: (host folder to go on from, components)."""
        try:
            point = decode_reparse(reparse)
        except ReparseError:
            raise Fail(ERROR_CANT_ACCESS_FILE,
                       f"{link}: reparse tag 0x{reparse_tag(reparse):08X} cannot be followed") from None
        target = point.substitute or point.target
        if target.startswith("\\??\\"):
            target = target[4:]
        if point.relative or not (len(target) >= 2 and target[1] == ":"):
            if target.startswith(("\\", "/")):
                raise Fail(ERROR_CANT_ACCESS_FILE, f"{link}: a rooted relative link target {target!r}")
            parts = [p for p in re.split(r"[\\/]", target) if p and p != "."]
            current = folder
            out: list[str] = []
            for part in parts:
                if part == "..":
                    if out:
                        out.pop()
                    else:
                        current = os.path.dirname(current) or b"/"
                else:
                    out.append(part)
            return current, out
        base, comps, _stream = self.parse("\\\\?\\" + target)
        return base.rstrip(b"/") or b"/", comps

    def _lookup(self, folder: bytes, name: str) -> tuple[bytes, Optional[os.stat_result]]:
        child = _join(folder, name)
        try:
            return child, os.lstat(child)
        except (FileNotFoundError, NotADirectoryError):
            pass
        actual = self._names_of(folder).get(name.lower())
        if actual is not None:
            child = folder.rstrip(b"/") + b"/" + actual
            try:
                return child, os.lstat(child)
            except OSError:
                pass
        return _join(folder, name), None

    def _names_of(self, folder: bytes) -> dict[str, bytes]:
        """Lower-case name -> name on disk, for case-insensitive lookups (kept per folder mtime)."""
        try:
            mtime = os.stat(folder).st_mtime_ns
        except OSError:
            return {}
        with self.lock:
            cached = self._names.get(folder)
            if cached is not None and cached[0] == mtime:
                return cached[1]
        try:
            names = {rel_from_host(n).lower(): n for n in os.listdir(folder) if not is_internal(n)}
        except OSError:
            return {}
        with self.lock:
            if len(self._names) > 512:
                self._names.clear()
            self._names[folder] = (mtime, names)
        return names

    def _removed(self, folder: bytes, name_bytes: bytes) -> None:
        """Keep the name cache of ``folder`` current after we removed an entry from it."""
        self._note_name(folder, name_bytes, present=False)

    def _added(self, folder: bytes, name_bytes: bytes) -> None:
        """Keep the name cache of ``folder`` current after we created an entry in it."""
        self._note_name(folder, name_bytes, present=True)

    def _note_name(self, folder: bytes, name_bytes: bytes, *, present: bool) -> None:
        with self.lock:
            cached = self._names.get(folder)
            if cached is None:
                return
            try:
                mtime = os.stat(folder).st_mtime_ns
            except OSError:
                self._names.pop(folder, None)
                return
            key = rel_from_host(name_bytes).lower()
            if present:
                cached[1][key] = name_bytes
            else:
                cached[1].pop(key, None)
            self._names[folder] = (mtime, cached[1])

    # -- access checks ------------------------------------------------------------------------------

    def _check_access(self, token: Token, security: Optional[bytes], desired: int, backup: bool) -> int:
        """The rights granted of ``desired`` (MAXIMUM_ALLOWED: all that may be), or ERROR_ACCESS_DENIED."""
        maximum = bool(desired & MAXIMUM_ALLOWED)
        desired &= ~MAXIMUM_ALLOWED
        if desired & ACCESS_SYSTEM_SECURITY and not token.enabled("SeSecurityPrivilege"):
            raise Fail(ERROR_PRIVILEGE_NOT_HELD, "ACCESS_SYSTEM_SECURITY needs SeSecurityPrivilege enabled")
        free = SYNCHRONIZE | FILE_READ_ATTRIBUTES | ACCESS_SYSTEM_SECURITY
        if backup and token.enabled("SeBackupPrivilege"):
            free |= _READ_RIGHTS
        if backup and token.enabled("SeRestorePrivilege"):
            free |= _WRITE_RIGHTS
        allowed = self._dacl_rights(token, security) | free
        missing = desired & ~allowed
        if missing:
            raise Fail(ERROR_ACCESS_DENIED, f"the file's DACL does not grant 0x{missing:08X}")
        return desired | (allowed & (FILE_ALL_ACCESS | ACCESS_SYSTEM_SECURITY) if maximum else 0)

    def _dacl_rights(self, token: Token, security: Optional[bytes]) -> int:
        if not security:
            return FILE_ALL_ACCESS
        try:
            sd = SecurityDescriptor.from_bytes(security)
        except SecurityError:
            return FILE_ALL_ACCESS
        groups = token.groups
        owner_rights = 0
        if sd.owner is not None and sd.owner.to_bytes() in groups:
            owner_rights = READ_CONTROL | WRITE_DAC
        if sd.dacl is None:
            return FILE_ALL_ACCESS
        granted = denied = 0
        for ace in sd.dacl.aces:
            if ace.sid is None or ace.flags & 0x08 or ace.type not in (0, 1):
                continue  # inherit-only, or a type that does not decide access
            if ace.sid.to_bytes() not in groups:
                continue
            mask = map_generic(ace.mask)
            if ace.type == 1:
                denied |= mask & ~granted
            else:
                granted |= mask & ~denied
        return (granted | owner_rights) & ~(denied & ~owner_rights)

    # -- CreateFileW ----------------------------------------------------------------------------------

    def create_file(self, pid: int, owner: Any, path: Optional[str], access: int, share: int, disposition: int,
                    flags: int, new_id: Callable[[], int]) -> tuple[OpenFile, int, list[int], bool]:
        """Open or create; returns (handle, client fd, info, existed)."""
        if disposition not in (CREATE_NEW, CREATE_ALWAYS, OPEN_EXISTING, OPEN_ALWAYS, TRUNCATE_EXISTING):
            raise Fail(ERROR_INVALID_PARAMETER, f"creation disposition {disposition}")
        token = self.tokens.of(pid)
        backup = bool(flags & FILE_FLAG_BACKUP_SEMANTICS)
        res, stream = self.resolve(path, follow=not flags & FILE_FLAG_OPEN_REPARSE_POINT, allow_stream=True)
        granted = map_generic(access)
        if flags & FILE_FLAG_DELETE_ON_CLOSE and not granted & DELETE:
            raise Fail(ERROR_INVALID_PARAMETER, "FILE_FLAG_DELETE_ON_CLOSE needs DELETE access")
        with self.lock:
            existed = res.st is not None
            if stream is not None and not existed:
                raise Fail(ERROR_FILE_NOT_FOUND, f"{res.name}: a stream of a file that does not exist")
            if existed:
                assert res.st is not None
                directory = stat.S_ISDIR(res.st.st_mode) and stream is None
                if disposition == CREATE_NEW and stream is None:
                    raise Fail(ERROR_FILE_EXISTS, f"{res.name} exists")
                if directory and not backup:
                    raise Fail(ERROR_ACCESS_DENIED, f"{res.name} is a folder: open it with FILE_FLAG_BACKUP_SEMANTICS")
                if directory and disposition in (CREATE_ALWAYS, TRUNCATE_EXISTING):
                    raise Fail(ERROR_ACCESS_DENIED, f"{res.name} is a folder")
                if disposition == TRUNCATE_EXISTING and not granted & FILE_WRITE_DATA:
                    raise Fail(ERROR_INVALID_PARAMETER, "TRUNCATE_EXISTING needs write access")
                view = ntfs.shared_view(res.host, directory)
                meta = view.get("")
                attributes, _times, _rp = file_meta(res.host, res.st, view)
                if not directory and attributes & FILE_ATTRIBUTE_READONLY and (
                        granted & _DATA_WRITE or disposition in (CREATE_ALWAYS, TRUNCATE_EXISTING)
                        or flags & FILE_FLAG_DELETE_ON_CLOSE):
                    raise Fail(ERROR_ACCESS_DENIED, f"{res.name} is read-only")
                granted = self._check_access(token, meta.security if meta else None, granted, backup)
                key = (res.st.st_dev, res.st.st_ino)
                if key in self._delete_pending:
                    raise Fail(ERROR_ACCESS_DENIED, f"{res.name} is being deleted")
                if _conflict(self._by_file.get(key, []), granted, share, stream):
                    raise Fail(ERROR_SHARING_VIOLATION, f"{res.name} is open in a way that does not share it")
            else:
                if disposition in (OPEN_EXISTING, TRUNCATE_EXISTING):
                    raise Fail(ERROR_FILE_NOT_FOUND, f"{res.name} does not exist")
                directory = False
                granted = self._check_access(token, None, granted, backup)
            fd, client_fd = self._open_fd(res, directory, granted, disposition, existed, stream, flags)
        try:
            st = os.fstat(fd) if stream is None else res.st
            assert st is not None
            fresh = not existed or disposition == CREATE_ALWAYS
            written = self._created(res, flags, existed) if fresh else None
            handle = OpenFile(new_id(), pid, res.host, st.st_dev, st.st_ino, directory, granted, share, flags,
                              stream, fd if stream is not None else None, owner)
            with self.lock:
                self.opens[handle.id] = handle
                self._by_file.setdefault((handle.dev, handle.ino), []).append(handle)
                if flags & FILE_FLAG_DELETE_ON_CLOSE:
                    self._delete_pending.add((handle.dev, handle.ino))
            if stream is None:
                os.close(fd)
            main = st  # the file (for a stream: the file it belongs to)
            if fresh and stream is None:  # what _created wrote (None: nothing, the defaults)
                attributes, times, reparse = describe(res.host, main, written)
            else:
                attributes, times, reparse = file_meta(res.host, main)
            privileges = privilege_bits(token)
            size = st.st_size if stream is not None else (0 if directory else main.st_size)
            info = [attributes, *times, volume_serial(main.st_dev), main.st_ino, main.st_nlink,
                    reparse_tag(reparse) if reparse else 0, int(directory), size, granted, privileges]
            return handle, client_fd, info, existed
        except BaseException:
            os.close(client_fd)
            raise

    def _open_fd(self, res: Resolved, directory: bool, granted: int, disposition: int, existed: bool,
                 stream: Optional[str], flags: int) -> tuple[int, int]:
        """(our fd, the client's fd); for a stream both are one memory file."""
        host = res.host
        if stream is not None:
            view = ntfs.shared_view(host, False)
            data = next((d for n, d in view.streams("") if n.lower() == stream.lower()), None)
            if data is None and disposition in (OPEN_EXISTING, TRUNCATE_EXISTING):
                raise Fail(ERROR_FILE_NOT_FOUND, f"{res.name}:{stream} does not exist")
            if data is not None and disposition == CREATE_NEW:
                raise Fail(ERROR_FILE_EXISTS, f"{res.name}:{stream} exists")
            memfd = os.memfd_create("wcsim-stream", os.MFD_CLOEXEC)
            if data and disposition not in (CREATE_ALWAYS, TRUNCATE_EXISTING):
                os.pwrite(memfd, data, 0)
            return memfd, os.dup(memfd)
        if directory:
            fd = os.open(host, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            return fd, os.dup(fd)
        if existed and res.st is not None and stat.S_ISLNK(res.st.st_mode):
            fd = os.open(host, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC)
            return fd, os.dup(fd)
        reading, writing = bool(granted & _DATA_READ), bool(granted & _DATA_WRITE)
        mode = os.O_RDWR if reading and writing else os.O_WRONLY if writing else os.O_RDONLY
        extra = os.O_NOFOLLOW | os.O_CLOEXEC
        if not existed:
            try:
                created = os.open(host, mode | os.O_CREAT | os.O_EXCL | extra, 0o644)
            except FileExistsError:
                raise Fail(ERROR_FILE_EXISTS, f"{res.name} appeared meanwhile") from None
            except (FileNotFoundError, NotADirectoryError):
                raise Fail(ERROR_PATH_NOT_FOUND, f"the folder of {res.name} does not exist") from None
            self._added(res.parent, os.path.basename(host))
            if not reading and not writing:
                os.close(created)
                created = os.open(host, os.O_PATH | extra)
            return created, os.dup(created)
        truncate = os.O_TRUNC if disposition in (CREATE_ALWAYS, TRUNCATE_EXISTING) else 0
        if not reading and not writing:
            if truncate:
                os.truncate(host, 0)
            fd = os.open(host, os.O_PATH | extra)
        else:
            fd = os.open(host, mode | truncate | extra)
        return fd, os.dup(fd)

    def _created(self, res: Resolved, flags: int, existed: bool) -> Optional[FileMeta]:
        """Attributes and times of a new (or overwritten) file: the flags' attributes plus
        ARCHIVE. Returns the metadata now stored for it (None: none, the defaults)."""
        requested = flags & SETTABLE_ATTRIBUTES
        view = ntfs.shared_view(res.host, False)
        now = now_filetime()
        if existed:
            meta = view.get("") or FileMeta()
            meta.attributes = requested | FILE_ATTRIBUTE_ARCHIVE
            meta.write = meta.change = meta.access = now
            view.put("", meta)
            return meta
        if view.holds(""):
            view.remove("", recursive=False)  # what a name deleted outside kernel32 left
        if requested & ~FILE_ATTRIBUTE_ARCHIVE:
            meta = FileMeta(attributes=requested | FILE_ATTRIBUTE_ARCHIVE, creation=now, access=now, write=now,
                            change=now)
            view.put("", meta)
            return meta
        return None

    # -- closing -------------------------------------------------------------------------------------

    def close(self, hid: int, basic: Optional[bytes] = None, wrote: bool = False, security: Optional[bytes] = None,
              eas: Optional[bytes] = None, reparse: Optional[bytes] = None,
              streams: Optional[list[Any]] = None) -> None:
        """CloseHandle: apply what the handle changed, release its share, delete if pending."""
        with self.lock:
            handle = self.opens.pop(hid, None)
            if handle is None:
                return
            others = self._by_file.get((handle.dev, handle.ino), [])
            if handle in others:
                others.remove(handle)
            if not others:
                self._by_file.pop((handle.dev, handle.ino), None)
        try:
            self._apply(handle, basic, wrote, security, eas, reparse, streams or [])
        except (OSError, Fail) as exc:
            log.warning("closing %s: %s", rel_from_host(handle.host), exc)
        finally:
            if handle.memfd is not None:
                os.close(handle.memfd)
        with self.lock:
            key = (handle.dev, handle.ino)
            if key in self._delete_pending and not self._by_file.get(key):
                self._delete_pending.discard(key)
                self._delete_now(handle.host, handle.directory)

    def _apply(self, handle: OpenFile, basic: Optional[bytes], wrote: bool, security: Optional[bytes],
               eas: Optional[bytes], reparse: Optional[bytes], streams: list[Any], *,
               st: Optional[os.stat_result] = None, fresh: bool = False) -> bool:
        """Store what a handle changed; returns whether anything was stored. ``fresh``: a file
        just created, whose name may still carry what an earlier file of that name left."""
        if st is None:
            try:
                st = os.lstat(handle.host)
            except OSError:
                return False
        if (st.st_dev, st.st_ino) != (handle.dev, handle.ino):
            return False  # the name now belongs to another file
        if not any((basic, wrote, security is not None, eas is not None, reparse is not None, streams,
                    handle.stream is not None)):
            return False
        view = ntfs.shared_view(handle.host, handle.directory)
        if fresh:
            view.drop_streams("")
            meta = FileMeta()
        else:
            meta = view.get("") or FileMeta()
        changed_stream = False
        if handle.stream is not None and handle.memfd is not None and wrote:
            size = os.fstat(handle.memfd).st_size
            view.put_stream("", handle.stream, os.pread(handle.memfd, size, 0) if size else b"")
            changed_stream = True
        for name, data in streams:
            view.put_stream("", str(name), bytes(data or b""))
        if security is not None:
            meta.security = security
        if eas is not None:
            meta.eas = eas
        if reparse is not None:
            meta.reparse = reparse
            base = meta.attributes if meta.attributes is not None else (
                FILE_ATTRIBUTE_DIRECTORY if handle.directory else FILE_ATTRIBUTE_ARCHIVE)
            meta.attributes = base | FILE_ATTRIBUTE_REPARSE_POINT
        explicit_write = False
        if basic:
            creation, access_t, write, change, attributes = struct.unpack_from("<qqqqI", basic)
            for field, value in (("creation", creation), ("access", access_t), ("write", write), ("change", change)):
                if value not in (0, -1):
                    setattr(meta, field, value)
                    explicit_write = explicit_write or field == "write"
            if attributes:
                keep = FILE_ATTRIBUTE_DIRECTORY if handle.directory else 0
                current = meta.attributes or 0
                keep |= current & FILE_ATTRIBUTE_REPARSE_POINT
                new = attributes & SETTABLE_ATTRIBUTES if attributes != FILE_ATTRIBUTE_NORMAL else 0
                meta.attributes = (new | keep) or FILE_ATTRIBUTE_NORMAL
        if (wrote or changed_stream) and not explicit_write:
            now = now_filetime()
            meta.write = meta.change = now
            if meta.creation is None:
                meta.creation = unix_ns_to_filetime(st.st_mtime_ns)
            if meta.access is None:
                meta.access = now
        view.put("", meta)
        return True

    # -- deletion -----------------------------------------------------------------------------------

    def set_disposition(self, hid: int, pid: int, delete: bool, basic: Optional[bytes]) -> None:
        """SetFileInformationByHandle(FileDispositionInfo): refused for read-only files and
        non-empty folders; the deletion happens when the last handle closes."""
        with self.lock:
            handle = self.opens.get(hid)
            if handle is None or handle.pid != pid:
                raise Fail(ERROR_INVALID_HANDLE, "not an open file")
            if not handle.access & DELETE:
                raise Fail(ERROR_ACCESS_DENIED, "the handle was not opened with DELETE access")
            if basic:
                self._apply(handle, basic, False, None, None, None, [])
            key = (handle.dev, handle.ino)
            if not delete:
                self._delete_pending.discard(key)
                return
            st = os.lstat(handle.host)
            attributes, _times, _rp = file_meta(handle.host, st)
            if attributes & FILE_ATTRIBUTE_READONLY:
                raise Fail(ERROR_ACCESS_DENIED, f"{rel_from_host(handle.host)} is read-only")
            if handle.directory and _has_children(handle.host):
                raise Fail(ERROR_DIR_NOT_EMPTY, f"{rel_from_host(handle.host)} is not empty")
            self._delete_pending.add(key)

    def _delete_now(self, host: bytes, directory: bool) -> None:
        try:
            if directory and not os.path.islink(host):
                for name in os.listdir(host):
                    if is_internal(name):
                        os.unlink(host + b"/" + name)
                os.rmdir(host)
            else:
                os.unlink(host)
        except OSError as exc:
            log.warning("deleting %s: %s", rel_from_host(host), exc)
            return
        self._forget_entry(host, directory)

    def _forget_entry(self, host: bytes, directory: bool) -> None:
        """An entry is gone from the host: so is what we kept of it."""
        if directory:
            ntfs.forget_locations()
        ntfs.shared_view(host, directory).remove("", recursive=directory)
        self._removed(os.path.dirname(host), os.path.basename(host))

    def _open_without(self, key: tuple[int, int], share_bit: int) -> bool:
        return any(not o.share & share_bit for o in self._by_file.get(key, []))

    def delete_file(self, pid: int, path: Optional[str]) -> None:
        res, res_st = self._existing(path)
        if stat.S_ISDIR(res_st.st_mode):
            raise Fail(ERROR_ACCESS_DENIED, f"{res.name} is a folder (DeleteFileW deletes files)")
        view = ntfs.shared_view(res.host, False)
        meta = view.get("")
        attributes, _t, _rp = describe(res.host, res_st, meta)
        if attributes & FILE_ATTRIBUTE_READONLY:
            raise Fail(ERROR_ACCESS_DENIED, f"{res.name} is read-only")
        self._check_access(self.tokens.of(pid), meta.security if meta else None, DELETE, False)
        with self.lock:
            key = (res_st.st_dev, res_st.st_ino)
            if self._open_without(key, FILE_SHARE_DELETE):
                raise Fail(ERROR_SHARING_VIOLATION, f"{res.name} is open without FILE_SHARE_DELETE")
            self._delete_now(res.host, False)

    def remove_directory(self, pid: int, path: Optional[str]) -> None:
        res, res_st = self._existing(path)
        if not stat.S_ISDIR(res_st.st_mode):
            raise Fail(ERROR_DIRECTORY, f"{res.name} is not a folder")
        view = ntfs.shared_view(res.host)
        attributes, _t, _rp = file_meta(res.host, res_st, view)
        if attributes & FILE_ATTRIBUTE_READONLY:
            raise Fail(ERROR_ACCESS_DENIED, f"{res.name} is read-only")
        if _has_children(res.host):
            raise Fail(ERROR_DIR_NOT_EMPTY, f"{res.name} is not empty")
        with self.lock:
            if self._open_without((res_st.st_dev, res_st.st_ino), FILE_SHARE_DELETE):
                raise Fail(ERROR_SHARING_VIOLATION, f"{res.name} is open without FILE_SHARE_DELETE")
            self._delete_now(res.host, True)

    # -- folders, links, renames ------------------------------------------------------------------------

    def create_directory(self, pid: int, path: Optional[str]) -> bytes:
        """CreateDirectoryW; returns the new folder's host path."""
        res, _ = self.resolve(path, directory=True)
        if res.st is not None:
            raise Fail(ERROR_ALREADY_EXISTS, f"{res.name} exists")
        try:
            os.mkdir(res.host, 0o755)
        except FileExistsError:
            raise Fail(ERROR_ALREADY_EXISTS, f"{res.name} exists") from None
        except (FileNotFoundError, NotADirectoryError):
            raise Fail(ERROR_PATH_NOT_FOUND, f"the folder of {res.name} does not exist") from None
        db, _prefix = ntfs.locate(res.parent)
        if db.parent == self.root or db.name == "outside-ntfs.db":
            # A new tree (a layer or a staging folder) keeps its metadata at its own root.
            open(res.host + b"/" + ntfs.STORE_NAME.encode(), "ab").close()
            ntfs.forget_locations()
        self.folder_made(res.host)
        return res.host

    # -- what kernel32 did in a leased folder (see leases.py) -------------------------------------------

    def folder_made(self, host: bytes) -> None:
        """Folder ``host`` was just made (by create_directory, or by kernel32 in a lease): its
        name is noted, and what an earlier folder of that name left is forgotten."""
        self._added(os.path.dirname(host), os.path.basename(host))
        ntfs.shared_view(host).remove("")

    def leased_close(self, host: bytes, ino: int, created: bool, basic: Optional[bytes], wrote: bool,
                     security: Optional[bytes], eas: Optional[bytes], reparse: Optional[bytes],
                     streams: list[Any]) -> None:
        """kernel32 closed a handle it opened itself: for a file it created, what
        create_file does for a new one; then what close applies."""
        try:
            st = os.lstat(host)
        except OSError:
            return
        if st.st_ino != ino:
            return  # the name now belongs to another file
        directory = stat.S_ISDIR(st.st_mode)
        if created:
            self._added(os.path.dirname(host), os.path.basename(host))
        handle = OpenFile(0, 0, host, st.st_dev, st.st_ino, directory, 0, 0, 0)
        if not self._apply(handle, basic, wrote, security, eas, reparse, streams, st=st, fresh=created) and created:
            ntfs.shared_view(host, False).remove("", recursive=False)  # what a name deleted outside kernel32 left

    def adopt(self, hid: int, pid: int, owner: Any, host: bytes, access: int, share: int, flags: int,
              directory: bool) -> None:
        """A handle kernel32 opened itself in a lease that ends becomes one of ours (its flags
        say FILE_FLAG_DELETE_ON_CLOSE when it is to delete the file, however it was asked)."""
        st = os.lstat(host)
        handle = OpenFile(hid, pid, host, st.st_dev, st.st_ino, directory, access, share, flags, owner=owner)
        with self.lock:
            self.opens[hid] = handle
            self._by_file.setdefault((handle.dev, handle.ino), []).append(handle)
            if flags & FILE_FLAG_DELETE_ON_CLOSE:
                self._delete_pending.add((handle.dev, handle.ino))

    def leased_delete(self, host: bytes, directory: bool) -> None:
        """kernel32 deleted an entry of a lease; a folder it could not remove (the leased folder
        itself holds the simulator's store) is removed here."""
        if directory and os.path.lexists(host):
            self._delete_now(host, True)
        else:
            self._forget_entry(host, directory)

    def create_hard_link(self, pid: int, new: Optional[str], existing: Optional[str]) -> None:
        target, target_st = self._existing(existing)
        if stat.S_ISDIR(target_st.st_mode):
            raise Fail(ERROR_ACCESS_DENIED, f"{target.name} is a folder; folders cannot be hard-linked")
        res, _ = self.resolve(new, follow=False)
        if res.st is not None:
            raise Fail(ERROR_ALREADY_EXISTS, f"{res.name} exists")
        source_view = ntfs.shared_view(target.host)
        meta = source_view.get("")
        token = self.tokens.of(pid)
        if not token.enabled("SeRestorePrivilege"):
            self._check_access(token, meta.security if meta else None, FILE_WRITE_ATTRIBUTES, False)
        try:
            os.link(target.host, res.host, follow_symlinks=False)
        except FileNotFoundError:
            raise Fail(ERROR_PATH_NOT_FOUND, f"the folder of {res.name} does not exist") from None
        except OSError as exc:
            if exc.errno == 18:  # EXDEV
                raise Fail(ERROR_NOT_SAME_DEVICE, "hard links stay on one volume") from None
            raise
        self._added(res.parent, os.path.basename(res.host))
        # The metadata belongs to the file, not the name: the new name gets the file's.
        view = ntfs.shared_view(res.host)
        view.remove("")
        if meta is not None:
            view.put("", meta)
        for name, data in source_view.streams(""):
            view.put_stream("", name, data)

    def create_symbolic_link(self, pid: int, link: Optional[str], target: Optional[str], flags: int) -> None:
        token = self.tokens.of(pid)
        if not token.enabled("SeCreateSymbolicLinkPrivilege") and "SeCreateSymbolicLinkPrivilege" not in \
                token.privileges:
            raise Fail(ERROR_PRIVILEGE_NOT_HELD, "creating a symbolic link needs SeCreateSymbolicLinkPrivilege")
        if not target:
            raise Fail(ERROR_INVALID_PARAMETER, "empty link target")
        res, _ = self.resolve(link, follow=False)
        if res.st is not None:
            raise Fail(ERROR_ALREADY_EXISTS, f"{res.name} exists")
        directory = bool(flags & SYMBOLIC_LINK_FLAG_DIRECTORY)
        try:
            if directory:
                os.mkdir(res.host, 0o755)
            else:
                os.close(os.open(res.host, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644))
        except FileNotFoundError:
            raise Fail(ERROR_PATH_NOT_FOUND, f"the folder of {res.name} does not exist") from None
        self._added(res.parent, os.path.basename(res.host))
        now = now_filetime()
        attributes = (FILE_ATTRIBUTE_DIRECTORY if directory else FILE_ATTRIBUTE_ARCHIVE) | FILE_ATTRIBUTE_REPARSE_POINT
        ntfs.shared_view(res.host).put("", FileMeta(attributes=attributes, creation=now, access=now, write=now,
                                                    change=now, reparse=encode_reparse(target)))

    def move(self, pid: int, source: Optional[str], dest: Optional[str], flags: int) -> None:
        src, src_st = self._existing(source)
        dst, _ = self.resolve(dest, follow=False)
        with self.lock:
            key = (src_st.st_dev, src_st.st_ino)
            if self._open_without(key, FILE_SHARE_DELETE):
                raise Fail(ERROR_SHARING_VIOLATION, f"{src.name} is open without FILE_SHARE_DELETE")
            if stat.S_ISDIR(src_st.st_mode) and any(o.host.startswith(src.host + b"/") for o in self.opens.values()):
                raise Fail(ERROR_ACCESS_DENIED, f"files in {src.name} are open")
            if dst.st is not None and (dst.st.st_dev, dst.st.st_ino) != key:
                if not flags & MOVEFILE_REPLACE_EXISTING:
                    raise Fail(ERROR_ALREADY_EXISTS, f"{dst.name} exists")
                if stat.S_ISDIR(dst.st.st_mode) or stat.S_ISDIR(src_st.st_mode):
                    raise Fail(ERROR_ACCESS_DENIED, f"{dst.name} exists and a folder is involved")
                attributes, _t, _rp = file_meta(dst.host, dst.st)
                if attributes & FILE_ATTRIBUTE_READONLY:
                    raise Fail(ERROR_ACCESS_DENIED, f"{dst.name} is read-only")
                # NTFS does not supersede a file that has open handles (even ones that share
                # delete; only POSIX-semantics renames do, which MoveFileExW does not ask for).
                if self._by_file.get((dst.st.st_dev, dst.st.st_ino)):
                    raise Fail(ERROR_ACCESS_DENIED, f"{dst.name} is open: a file in use cannot be replaced")
            src_db, src_key = ntfs.locate(src.host)
            own_tree = os.path.exists(src.host + b"/" + ntfs.STORE_NAME.encode())
            try:
                os.rename(src.host, dst.host)
            except FileNotFoundError:
                raise Fail(ERROR_PATH_NOT_FOUND, f"the folder of {dst.name} does not exist") from None
            except OSError as exc:
                if exc.errno == 18 and flags & MOVEFILE_COPY_ALLOWED and not stat.S_ISDIR(src_st.st_mode):
                    shutil.copy2(src.host, dst.host, follow_symlinks=False)
                    os.unlink(src.host)
                elif exc.errno == 18:
                    raise Fail(ERROR_NOT_SAME_DEVICE, "moving between volumes needs MOVEFILE_COPY_ALLOWED") from None
                elif exc.errno == 22:
                    raise Fail(ERROR_SHARING_VIOLATION, "a folder cannot move into itself") from None
                else:
                    raise
            self._added(dst.parent, os.path.basename(dst.host))
            self._names.pop(src.parent, None)
            ntfs.forget_locations()
            if not own_tree:
                self._move_metadata(src_db, src_key, dst.host)
            for handle in self.opens.values():
                if handle.host == src.host or handle.host.startswith(src.host + b"/"):
                    handle.host = dst.host + handle.host[len(src.host):]

    def _move_metadata(self, src_db: Path, src_key: str, dest: bytes) -> None:
        dst_db, dst_key = ntfs.locate(dest)
        if dst_db == src_db:
            # The shared connection: a private one would wait, holding self.lock, for a burst
            # of a lease's journal that needs self.lock to end.
            ntfs.shared_store(src_db).rename(src_key, dst_key)
            return
        old = NtfsStore(src_db, src_key)
        new = ntfs.shared_view(dest)
        try:
            new.remove("")
            for rel, meta in list(old.items()):
                new.put(rel, meta)
                for name, data in old.streams(rel):
                    new.put_stream(rel, name, data)
            old.remove("")
        finally:
            old.close()

    # -- attributes and listings -------------------------------------------------------------------

    def attributes(self, path: Optional[str]) -> list[int]:
        """[attributes, creation, access, write, size] without following a final reparse point."""
        res, res_st = self._existing(path)
        attributes, times, _rp = file_meta(res.host, res_st)
        size = 0 if stat.S_ISDIR(res_st.st_mode) else res_st.st_size
        return [attributes, times[0], times[1], times[2], size]

    def set_attributes(self, pid: int, path: Optional[str], value: int) -> None:
        res, res_st = self._existing(path)
        view = ntfs.shared_view(res.host)
        meta = view.get("") or FileMeta()
        self._check_access(self.tokens.of(pid), meta.security, FILE_WRITE_ATTRIBUTES, False)
        current, _t, reparse = file_meta(res.host, res_st, view)
        keep = current & (FILE_ATTRIBUTE_DIRECTORY | FILE_ATTRIBUTE_REPARSE_POINT)
        new = value & SETTABLE_ATTRIBUTES if value != FILE_ATTRIBUTE_NORMAL else 0
        meta.attributes = (new | keep) or FILE_ATTRIBUTE_NORMAL
        view.put("", meta)

    def find(self, pid: int, pattern: Optional[str], directories_only: bool) -> list[bytes]:
        """FindFirstFileExW: the matching entries, packed for the client (``.`` and ``..`` too)."""
        if not pattern:
            raise Fail(ERROR_PATH_NOT_FOUND, "empty pattern")
        cut = max(pattern.rfind("\\"), pattern.rfind("/"))
        folder_text, wildcard = (pattern[:cut] or pattern[:cut + 1], pattern[cut + 1:]) if cut >= 0 else ("", pattern)
        if not any(c in wildcard for c in "*?"):
            res, res_st = self._existing(pattern)
            return [_pack(res.name, res_st, res.host)]
        if folder_text.endswith(":"):
            folder_text += "\\"
        res, _ = self.resolve(folder_text, follow=True)
        if res.st is None or not stat.S_ISDIR(res.st.st_mode):
            raise Fail(ERROR_PATH_NOT_FOUND, f"{res.name} is not a folder")
        folder = res.host
        view = ntfs.shared_view(folder)
        meta = view.get("")
        self._check_access(self.tokens.of(pid), meta.security if meta else None, FILE_READ_DATA, True)
        rows = view.children("")
        out = []
        at_root = folder.rstrip(b"/") in (os.fsencode(self.root).rstrip(b"/"), b"") or \
            os.path.basename(folder) == ntfs.SANDBOX_VOLUME.encode()
        if not at_root:
            out.append(_pack(".", res.st, folder, view))
            parent = os.path.dirname(folder)
            out.append(_pack("..", os.lstat(parent), parent))
        match = _wildcard(wildcard)
        for entry in sorted(os.scandir(folder), key=lambda e: e.name):
            if is_internal(entry.name):
                continue
            name = rel_from_host(entry.name)
            if not match(name):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # deleted while listed: a listing is no snapshot on NTFS either
            if directories_only and not stat.S_ISDIR(st.st_mode):
                continue
            child_meta = rows.get(name.lower())
            out.append(_pack_meta(name, st, entry.path, child_meta))
        if not out:
            raise Fail(ERROR_FILE_NOT_FOUND, f"nothing in {rel_from_host(folder)} matches {wildcard!r}")
        return out

    def disk_free(self, path: Optional[str]) -> list[int]:
        res, _ = self.resolve(path)
        where = res.host if res.st is not None else res.parent
        st = os.statvfs(where)
        return [st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize, st.f_bfree * st.f_frsize]

    # -- backup read -----------------------------------------------------------------------------------

    def backup_metadata(self, hid: int, pid: int, process_security: bool) -> tuple[bytes, bytes, int]:
        """For BackupRead: (streams before the data, streams after it, whether there is data)."""
        with self.lock:
            handle = self.opens.get(hid)
        if handle is None or handle.pid != pid:
            raise Fail(ERROR_INVALID_HANDLE, "not an open file")
        st = os.lstat(handle.host)
        view = ntfs.shared_view(handle.host)
        meta = view.get("")
        _attributes, _times, reparse = file_meta(handle.host, st, view)
        head = io.BytesIO()
        writer = BackupWriter(head)
        if process_security and meta is not None and meta.security is not None:
            if not handle.access & READ_CONTROL:
                raise Fail(ERROR_ACCESS_DENIED, "reading the security descriptor needs READ_CONTROL")
            security = meta.security
            if not handle.access & ACCESS_SYSTEM_SECURITY:
                security = _without_sacl(security)
            writer.security(security)
        if meta is not None and meta.eas is not None:
            writer.eas(meta.eas)
        if reparse is not None:
            writer.reparse(reparse)
        tail = io.BytesIO()
        tail_writer = BackupWriter(tail)
        for name, data in view.streams(""):
            tail_writer.alternate(name, len(data), io.BytesIO(data))
        has_data = int(not handle.directory and reparse is None and stat.S_ISREG(st.st_mode))
        return head.getvalue(), tail.getvalue(), has_data

    # -- bookkeeping -----------------------------------------------------------------------------------

    def close_all(self, owner: Any) -> None:
        """A client went away: its file handles close (without the metadata it never sent)."""
        with self.lock:
            mine = [h.id for h in self.opens.values() if h.owner is owner]
        for hid in mine:
            self.close(hid)

    def open_count(self, pid: Optional[int] = None) -> int:
        with self.lock:
            return sum(1 for h in self.opens.values() if pid is None or h.pid == pid)

    def forget_tree(self, host: bytes) -> None:
        """Someone (the daemon's layer code) removed or moved a tree: drop cached names."""
        with self.lock:
            for key in [k for k in self._names if k == host or k.startswith(host + b"/")]:
                self._names.pop(key, None)
        ntfs.forget_locations()


def _join(folder: bytes, name: str) -> bytes:
    return folder.rstrip(b"/") + b"/" + name.encode("utf-8", "surrogatepass")


def _has_children(host: bytes) -> bool:
    try:
        return any(not is_internal(n) for n in os.listdir(host))
    except OSError:
        return False


def _conflict(opens: list[OpenFile], access: int, share: int, stream: Optional[str]) -> bool:
    """Whether a new open (``access``, ``share``) clashes with those already open on the file."""
    for o in opens:
        if (o.stream or "").lower() != (stream or "").lower() and not (access & DELETE or o.access & DELETE):
            continue  # another stream of the file: only deletion concerns every stream
        if access & _DATA_READ and not o.share & FILE_SHARE_READ:
            return True
        if access & _DATA_WRITE and not o.share & FILE_SHARE_WRITE:
            return True
        if access & DELETE and not o.share & FILE_SHARE_DELETE:
            return True
        if o.access & _DATA_READ and not share & FILE_SHARE_READ:
            return True
        if o.access & _DATA_WRITE and not share & FILE_SHARE_WRITE:
            return True
        if o.access & DELETE and not share & FILE_SHARE_DELETE:
            return True
    return False


def _without_sacl(security: bytes) -> bytes:
    try:
        sd = SecurityDescriptor.from_bytes(security)
    except SecurityError:
        return security
    if sd.sacl is None:
        return security
    return attrs.evolve(sd, sacl=None, control=sd.control & ~0x0010).to_bytes()


def _wildcard(pattern: str) -> Callable[[str], bool]:
    if pattern in ("*", "*.*"):
        return lambda name: True
    regex = re.compile(fnmatch.translate(pattern), re.IGNORECASE)
    return lambda name: regex.match(name) is not None


def _pack_meta(name: str, st: os.stat_result, host: Any, meta: Optional[FileMeta]) -> bytes:
    directory = stat.S_ISDIR(st.st_mode)
    attributes, (creation, access_t, write, _change), reparse = describe(host, st, meta)
    size = 0 if directory or reparse is not None else st.st_size
    encoded = name.encode("utf-16-le", "surrogatepass")
    return struct.pack("<IqqqqIH", attributes, creation, access_t, write, size,
                       reparse_tag(reparse) if reparse else 0, len(encoded) // 2) + encoded


def _pack(name: str, st: os.stat_result, host: bytes, view: Optional[NtfsStore] = None) -> bytes:
    return _pack_meta(name, st, host, (view or ntfs.shared_view(host)).get(""))
