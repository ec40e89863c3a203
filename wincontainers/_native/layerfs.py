"""File operations on layer folders: Windows semantics, per platform.

Importing and exporting layers needs what plain file I/O cannot do on Windows: BackupWrite and
BackupRead (security descriptors, EAs, reparse data, streams), the four FILETIMEs, hard links,
and long (``\\\\?\\``) paths. :func:`open_folder` returns a :class:`LayerFolder` for one folder
tree; relative paths use ``/``.

- On Windows the calls are Win32 (kernel32 through ctypes), with backup semantics; the caller
  must hold SeBackupPrivilege/SeRestorePrivilege (see :func:`oshandle.enable_privileges`).
- Elsewhere the folder belongs to the simulated host, whose NTFS metadata lives in a store next
  to the files (:mod:`wincontainers.sim.ntfs`); names keep lone UTF-16 surrogates (WTF-8 on disk).
"""

from __future__ import annotations

import io
import os
import sys
from pathlib import Path
from typing import IO, Any, Optional, Protocol

import attrs

__all__ = ["LayerFolder", "EntryRead", "Times", "open_folder", "is_file", "volume_folder"]

Times = tuple[Optional[int], Optional[int], Optional[int], Optional[int]]  # creation, access, write, change


@attrs.frozen
class EntryRead:
    """One file or directory as BackupRead gives it."""

    attributes: int
    times: Times
    stream: IO[bytes]
    directory: bool
    file_id: tuple[int, int]
    links: int


class LayerFolder(Protocol):
    root: Path

    def exists(self, rel: str) -> bool: ...

    def is_dir(self, rel: str) -> bool: ...

    def listdir(self, rel: str) -> list[str]: ...

    def mkdir(self, rel: str) -> None: ...

    def open_write(self, rel: str) -> IO[bytes]: ...

    def open_read(self, rel: str) -> IO[bytes]: ...

    def file_id(self, rel: str) -> tuple[tuple[int, int], int]: ...

    def write_entry(self, rel: str, *, directory: bool, attributes: int, stream: IO[bytes], times: Times) -> None: ...

    def write_stream(self, rel: str, stream: str, size: int, data: Any) -> None: ...

    def read_entry(self, rel: str) -> EntryRead: ...

    def set_times(self, rel: str, times: Times) -> None: ...

    def get_times(self, rel: str) -> Times: ...

    def hardlink(self, rel: str, target_root: Path, target_rel: str) -> None:
        """``rel`` becomes another name of ``target_rel`` in the folder tree ``target_root``
        (this tree or a parent layer's)."""

    def remove(self, rel: str) -> None: ...

    def close(self) -> None: ...


def open_folder(root: Path) -> LayerFolder:
    """The folder ``root`` (created if missing) with Windows file semantics."""
    root.mkdir(parents=True, exist_ok=True)
    if sys.platform == "win32":
        return _Win32Folder(root)
    return _SimFolder(root)


def is_file(root: Path, rel: str) -> bool:
    """Whether ``rel`` (``/``-separated, any Windows name) is a file in the tree ``root``."""
    if sys.platform == "win32":
        return os.path.isfile(_win32_path(root, rel))
    return os.path.isfile(_sim("ntfs").host_path(root, rel))


def volume_folder(mount_path: str, layer_folder: Path) -> Path:
    """Where a prepared sandbox's files can be read and written with ordinary file calls.

    On Windows that is the volume path GetLayerMountPath gave (``\\\\?\\Volume{...}\\``); on
    the simulated host, the folder that plays the volume inside the sandbox layer.
    """
    if sys.platform == "win32":
        return Path(mount_path)
    return Path(layer_folder) / str(_sim("storage").SANDBOX_VOLUME)


def _win32_path(root: Path, rel: str) -> str:
    """``\\\\?\\`` + the absolute path: no length limit, no name rewriting."""
    text = os.path.abspath(root)
    base = text if text.startswith("\\\\?\\") else (
        "\\\\?\\UNC\\" + text[2:] if text.startswith("\\\\") else "\\\\?\\" + text)
    return base + ("\\" + rel.replace("/", "\\") if rel else "")


def _sort_key(name: str) -> tuple[str, str]:
    return (name.upper(), name)


# -- the simulated host ---------------------------------------------------------------------------


def _sim(module: str) -> Any:
    """A module of the simulated host (POSIX only; imported when a simulated folder is used)."""
    import importlib

    return importlib.import_module(f"wincontainers.sim.{module}")


class _SimFolder:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.store: Any = _sim("ntfs").NtfsStore.at(root)
        self._batch: Any = self.store.batch()
        self._batch.__enter__()

    def _p(self, rel: str) -> bytes:
        return bytes(_sim("ntfs").host_path(self.root, rel))

    def exists(self, rel: str) -> bool:
        return os.path.lexists(self._p(rel))

    def is_dir(self, rel: str) -> bool:
        return os.path.isdir(self._p(rel))

    def listdir(self, rel: str) -> list[str]:
        ntfs = _sim("ntfs")
        names = [str(ntfs.rel_from_host(n)) for n in os.listdir(self._p(rel))]
        return sorted((n for n in names if not n.startswith(ntfs.STORE_NAME)), key=_sort_key)

    def mkdir(self, rel: str) -> None:
        os.makedirs(self._p(rel), exist_ok=True)

    def open_write(self, rel: str) -> IO[bytes]:
        return open(self._p(rel), "xb")

    def open_read(self, rel: str) -> IO[bytes]:
        return open(self._p(rel), "rb")

    def file_id(self, rel: str) -> tuple[tuple[int, int], int]:
        st = os.lstat(self._p(rel))
        return (st.st_dev, st.st_ino), st.st_nlink

    def write_entry(self, rel: str, *, directory: bool, attributes: int, stream: IO[bytes], times: Times) -> None:
        _sim("layerio").apply_backup(self.store, self.root, rel, directory=directory, attributes=attributes,
                                     stream=stream, times=times)

    def write_stream(self, rel: str, stream: str, size: int, data: Any) -> None:
        payload = data.read(size)
        if len(payload) != size:
            raise OSError(f"stream {rel}:{stream} ended early")
        self.store.put_stream(rel, stream, payload)

    def read_entry(self, rel: str) -> EntryRead:
        attributes, times, stream, directory = _sim("layerio").backup_of(self.store, self.root, rel)
        file_id, links = self.file_id(rel)
        return EntryRead(attributes, times, stream, directory, file_id, links)

    def set_times(self, rel: str, times: Times) -> None:
        self.store.update(rel, creation=times[0], access=times[1], write=times[2], change=times[3])
        if times[2] is not None:
            ns = (times[2] - 116444736000000000) * 100
            acc = ((times[1] - 116444736000000000) * 100) if times[1] is not None else ns
            try:
                os.utime(self._p(rel), ns=(acc, ns), follow_symlinks=False)
            except (OSError, NotImplementedError, ValueError):
                pass

    def get_times(self, rel: str) -> Times:
        meta = self.store.get(rel)
        if meta is None:
            return (None, None, None, None)
        return (meta.creation, meta.access, meta.write, meta.change)

    def hardlink(self, rel: str, target_root: Path, target_rel: str) -> None:
        ntfs = _sim("ntfs")
        os.link(ntfs.host_path(target_root, target_rel), self._p(rel))
        # The metadata belongs to the file, not the name: take it from the target's store.
        if Path(target_root) == self.root:
            meta, streams = self.store.get(target_rel), self.store.streams(target_rel)
        else:
            with ntfs.NtfsStore.at(target_root) as other:
                meta, streams = other.get(target_rel), other.streams(target_rel)
        if meta is not None:
            self.store.put(rel, meta)
        for name, data in streams:
            self.store.put_stream(rel, name, data)

    def remove(self, rel: str) -> None:
        import shutil

        path = self._p(rel)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.unlink(path)
        self.store.remove(rel)
        self.store.add_tombstone(rel)  # in a diff layer a deletion hides the parents' file

    def close(self) -> None:
        if self._batch is not None:
            self._batch.__exit__(None, None, None)
            self._batch = None  # type: ignore[assignment]
        self.store.close()


# -- Windows ---------------------------------------------------------------------------------------

if sys.platform == "win32":
    import ctypes
    from ctypes import wintypes

    _k32 = ctypes.WinDLL("kernel32", use_last_error=True)
    _INVALID_HANDLE = wintypes.HANDLE(-1).value
    _GENERIC_READ, _GENERIC_WRITE = 0x80000000, 0x40000000
    _WRITE_DAC, _WRITE_OWNER, _READ_CONTROL, _DELETE = 0x40000, 0x80000, 0x20000, 0x10000
    _ACCESS_SYSTEM_SECURITY = 0x01000000
    _FILE_WRITE_ATTRIBUTES, _FILE_READ_ATTRIBUTES = 0x100, 0x80
    _SHARE_ALL = 0x1 | 0x2 | 0x4
    _CREATE_NEW, _OPEN_EXISTING = 1, 3
    _BACKUP_SEMANTICS, _OPEN_REPARSE_POINT = 0x02000000, 0x00200000
    _FILE_BASIC_INFO, _FILE_STANDARD_INFO, _FILE_ID_INFO = 0, 1, 0x12
    _ERROR_ALREADY_EXISTS = 183

    class _BasicInfo(ctypes.Structure):
        _fields_ = [("CreationTime", ctypes.c_int64), ("LastAccessTime", ctypes.c_int64),
                    ("LastWriteTime", ctypes.c_int64), ("ChangeTime", ctypes.c_int64),
                    ("FileAttributes", wintypes.DWORD)]

    class _StandardInfo(ctypes.Structure):
        _fields_ = [("AllocationSize", ctypes.c_int64), ("EndOfFile", ctypes.c_int64),
                    ("NumberOfLinks", wintypes.DWORD), ("DeletePending", wintypes.BOOLEAN),
                    ("Directory", wintypes.BOOLEAN)]

    class _IdInfo(ctypes.Structure):
        _fields_ = [("VolumeSerialNumber", ctypes.c_uint64), ("FileId", ctypes.c_ubyte * 16)]

    def _check(ok: Any, what: str, path: str) -> None:
        if not ok:
            raise ctypes.WinError(ctypes.get_last_error(), f"{what} {path}")

    class _Handle:
        def __init__(self, path: str, access: int, disposition: int) -> None:
            h = _k32.CreateFileW(path, access, _SHARE_ALL, None, disposition,
                                 _BACKUP_SEMANTICS | _OPEN_REPARSE_POINT, None)
            if h == _INVALID_HANDLE or h is None:
                raise ctypes.WinError(ctypes.get_last_error(), f"CreateFileW {path}")
            self.h = h
            self.path = path

        def close(self) -> None:
            if self.h is not None:
                _k32.CloseHandle(self.h)
                self.h = None

    class _BackupStream(io.RawIOBase):
        """BackupRead as a readable stream (bProcessSecurity=TRUE)."""

        def __init__(self, handle: _Handle) -> None:
            super().__init__()
            self.handle = handle
            self.ctx = ctypes.c_void_p(0)

        def readable(self) -> bool:
            return True

        def readinto(self, b: Any) -> int:
            n = wintypes.DWORD(0)
            buf = (ctypes.c_char * len(b)).from_buffer(b)
            _check(_k32.BackupRead(self.handle.h, buf, len(b), ctypes.byref(n), False, True,
                                   ctypes.byref(self.ctx)), "BackupRead", self.handle.path)
            return int(n.value)

        def close(self) -> None:
            if self.handle.h is not None:
                n = wintypes.DWORD(0)
                _k32.BackupRead(self.handle.h, None, 0, ctypes.byref(n), True, True, ctypes.byref(self.ctx))
                self.handle.close()
            super().close()

    class _Win32Folder:
        def __init__(self, root: Path) -> None:
            self.root = root

        def _p(self, rel: str) -> str:
            return _win32_path(self.root, rel)

        def exists(self, rel: str) -> bool:
            return os.path.lexists(self._p(rel))

        def is_dir(self, rel: str) -> bool:
            return os.path.isdir(self._p(rel))

        def listdir(self, rel: str) -> list[str]:
            return sorted(os.listdir(self._p(rel)), key=_sort_key)

        def mkdir(self, rel: str) -> None:
            os.makedirs(self._p(rel), exist_ok=True)

        def open_write(self, rel: str) -> IO[bytes]:
            return open(self._p(rel), "xb")

        def open_read(self, rel: str) -> IO[bytes]:
            return open(self._p(rel), "rb")

        def file_id(self, rel: str) -> tuple[tuple[int, int], int]:
            h = _Handle(self._p(rel), _FILE_READ_ATTRIBUTES, _OPEN_EXISTING)
            try:
                ident, std = _IdInfo(), _StandardInfo()
                _check(_k32.GetFileInformationByHandleEx(h.h, _FILE_ID_INFO, ctypes.byref(ident),
                                                         ctypes.sizeof(ident)), "FileIdInfo", h.path)
                _check(_k32.GetFileInformationByHandleEx(h.h, _FILE_STANDARD_INFO, ctypes.byref(std),
                                                         ctypes.sizeof(std)), "FileStandardInfo", h.path)
                return (int(ident.VolumeSerialNumber), int.from_bytes(bytes(ident.FileId), "little")), int(
                    std.NumberOfLinks)
            finally:
                h.close()

        def write_entry(self, rel: str, *, directory: bool, attributes: int, stream: IO[bytes],
                        times: Times) -> None:
            path = self._p(rel)
            if directory and not _k32.CreateDirectoryW(path, None):
                if ctypes.get_last_error() != _ERROR_ALREADY_EXISTS:
                    raise ctypes.WinError(ctypes.get_last_error(), f"CreateDirectoryW {path}")
            access = _GENERIC_WRITE | _WRITE_DAC | _WRITE_OWNER | _ACCESS_SYSTEM_SECURITY | _FILE_WRITE_ATTRIBUTES
            h = _Handle(path, access, _OPEN_EXISTING if directory else _CREATE_NEW)
            ctx = ctypes.c_void_p(0)
            written = wintypes.DWORD(0)
            try:
                while True:
                    chunk = stream.read(1 << 20)
                    if not chunk:
                        break
                    _check(_k32.BackupWrite(h.h, chunk, len(chunk), ctypes.byref(written), False, True,
                                            ctypes.byref(ctx)), "BackupWrite", path)
                _k32.BackupWrite(h.h, None, 0, ctypes.byref(written), True, True, ctypes.byref(ctx))
                self._set_basic(h, times, attributes)
            finally:
                h.close()

        def write_stream(self, rel: str, stream: str, size: int, data: Any) -> None:
            import shutil

            with open(self._p(rel) + ":" + stream, "xb") as out:
                shutil.copyfileobj(data, out, 1 << 20)  # type: ignore[misc]

        def _set_basic(self, h: _Handle, times: Times, attributes: int) -> None:
            info = _BasicInfo(*(t or 0 for t in times), attributes)
            _check(_k32.SetFileInformationByHandle(h.h, _FILE_BASIC_INFO, ctypes.byref(info), ctypes.sizeof(info)),
                   "SetFileInformationByHandle", h.path)

        def read_entry(self, rel: str) -> EntryRead:
            file_id, links = self.file_id(rel)
            h = _Handle(self._p(rel), _GENERIC_READ | _READ_CONTROL | _ACCESS_SYSTEM_SECURITY, _OPEN_EXISTING)
            info = _BasicInfo()
            _check(_k32.GetFileInformationByHandleEx(h.h, _FILE_BASIC_INFO, ctypes.byref(info), ctypes.sizeof(info)),
                   "GetFileInformationByHandleEx", h.path)
            times = (int(info.CreationTime), int(info.LastAccessTime), int(info.LastWriteTime), int(info.ChangeTime))
            attributes = int(info.FileAttributes)
            return EntryRead(attributes, times, io.BufferedReader(_BackupStream(h), 1 << 20),
                             bool(attributes & 0x10), file_id, links)

        def set_times(self, rel: str, times: Times) -> None:
            h = _Handle(self._p(rel), _FILE_WRITE_ATTRIBUTES | _FILE_READ_ATTRIBUTES, _OPEN_EXISTING)
            try:
                current = _BasicInfo()
                _check(_k32.GetFileInformationByHandleEx(h.h, _FILE_BASIC_INFO, ctypes.byref(current),
                                                         ctypes.sizeof(current)), "GetFileInformationByHandleEx",
                       h.path)
                self._set_basic(h, times, 0)  # 0 leaves the attributes as they are
            finally:
                h.close()

        def get_times(self, rel: str) -> Times:
            h = _Handle(self._p(rel), _FILE_READ_ATTRIBUTES, _OPEN_EXISTING)
            try:
                info = _BasicInfo()
                _check(_k32.GetFileInformationByHandleEx(h.h, _FILE_BASIC_INFO, ctypes.byref(info),
                                                         ctypes.sizeof(info)), "GetFileInformationByHandleEx", h.path)
                return (int(info.CreationTime), int(info.LastAccessTime), int(info.LastWriteTime),
                        int(info.ChangeTime))
            finally:
                h.close()

        def hardlink(self, rel: str, target_root: Path, target_rel: str) -> None:
            _check(_k32.CreateHardLinkW(self._p(rel), _win32_path(target_root, target_rel), None),
                   "CreateHardLinkW", self._p(rel))

        def remove(self, rel: str) -> None:
            path = self._p(rel)
            if not os.path.lexists(path):
                return  # a tombstone for a parent's file: nothing of ours to delete
            if os.path.isdir(path) and not os.path.islink(path):
                import shutil

                shutil.rmtree(path)
            else:
                _check(_k32.DeleteFileW(path), "DeleteFileW", path)

        def close(self) -> None:
            pass

