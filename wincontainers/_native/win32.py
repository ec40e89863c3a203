"""kernel32 and advapi32 through cffi: files with backup semantics, folders, links, processes,
the process token.

This is the library's one Win32 code path. On Windows the DLLs come from System32; on the
simulated host from the simulator's system directory, whose ``kernel32.dll``/``advapi32.dll``
implement the same functions with Windows' rules. Every prototype is declared in
:mod:`wincontainers._native.cdefs` and checked by ``check-cdefs`` against the mingw-w64 headers.

A failed call raises :class:`Win32Error` (or a subclass a caller can branch on) naming the call,
the path and the Win32 error; the code comes from ``GetLastError`` right after the call (cffi keeps
each thread's last error from one call to the next, on Windows and on the simulator alike).

Why one file: it is the library's one Win32 binding; every call goes through the same last-error
capture and error classes, which is what makes failures name the call and the path.
"""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence, Union

import attrs
from cffi import FFI

from wincontainers import errors
from wincontainers._native import cdefs

__all__ = [
    "Win32", "Win32File", "BackupReader", "BackupWriter", "Win32Error", "PathNotFound", "AccessDenied", "PrivilegeNotHeld", "SharingViolation",
    "AlreadyExists", "DirectoryNotEmpty", "FindData", "BasicInfo", "long_path", "WIN32_ERRORS",
    "FILE_ATTRIBUTE_READONLY", "FILE_ATTRIBUTE_DIRECTORY", "FILE_ATTRIBUTE_REPARSE_POINT", "FILE_ATTRIBUTE_NORMAL",
]

# -- constants (winnt.h, winbase.h, fileapi.h) ----------------------------------------------------

GENERIC_READ, GENERIC_WRITE = 0x80000000, 0x40000000
DELETE, READ_CONTROL, WRITE_DAC, WRITE_OWNER = 0x10000, 0x20000, 0x40000, 0x80000
SYNCHRONIZE, ACCESS_SYSTEM_SECURITY = 0x100000, 0x01000000
FILE_READ_DATA, FILE_WRITE_DATA, FILE_WRITE_EA = 0x1, 0x2, 0x10
FILE_READ_ATTRIBUTES, FILE_WRITE_ATTRIBUTES = 0x80, 0x100
FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_SHARE_DELETE = 1, 2, 4
FILE_SHARE_ALL = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE
CREATE_NEW, CREATE_ALWAYS, OPEN_EXISTING, OPEN_ALWAYS = 1, 2, 3, 4
FILE_FLAG_BACKUP_SEMANTICS, FILE_FLAG_OPEN_REPARSE_POINT = 0x02000000, 0x00200000
FILE_FLAG_DELETE_ON_CLOSE = 0x04000000
FILE_ATTRIBUTE_READONLY, FILE_ATTRIBUTE_DIRECTORY = 0x1, 0x10
FILE_ATTRIBUTE_NORMAL, FILE_ATTRIBUTE_REPARSE_POINT = 0x80, 0x400
INVALID_FILE_ATTRIBUTES = 0xFFFFFFFF
MOVEFILE_REPLACE_EXISTING, MOVEFILE_WRITE_THROUGH = 0x1, 0x8
SYMBOLIC_LINK_FLAG_DIRECTORY = 0x1
FILE_BASIC_INFO_CLASS, FILE_STANDARD_INFO_CLASS, FILE_DISPOSITION_INFO_CLASS = 0, 1, 4
FILE_ATTRIBUTE_TAG_INFO_CLASS, FILE_ID_INFO_CLASS = 9, 0x12
PROCESS_QUERY_LIMITED_INFORMATION, STILL_ACTIVE = 0x1000, 259
TOKEN_QUERY, TOKEN_ADJUST_PRIVILEGES = 0x8, 0x20
SE_PRIVILEGE_ENABLED = 0x2
#: GetStdHandle's DWORD(-10), DWORD(-11); console modes of wincon.h
STD_INPUT_HANDLE, STD_OUTPUT_HANDLE = 0xFFFFFFF6, 0xFFFFFFF5
ENABLE_PROCESSED_INPUT, ENABLE_LINE_INPUT, ENABLE_ECHO_INPUT = 0x1, 0x2, 0x4
ENABLE_VIRTUAL_TERMINAL_INPUT, ENABLE_VIRTUAL_TERMINAL_PROCESSING = 0x200, 0x4
TOKEN_ELEVATION = 20

ERROR_FILE_NOT_FOUND, ERROR_PATH_NOT_FOUND, ERROR_ACCESS_DENIED = 2, 3, 5
ERROR_NO_MORE_FILES, ERROR_SHARING_VIOLATION, ERROR_FILE_EXISTS = 18, 32, 80
ERROR_INVALID_PARAMETER, ERROR_DIR_NOT_EMPTY, ERROR_ALREADY_EXISTS = 87, 145, 183
ERROR_NOT_ALL_ASSIGNED, ERROR_PRIVILEGE_NOT_HELD = 1300, 1314

#: code -> (name, system message) for the errors these calls return.
WIN32_ERRORS: Mapping[int, tuple[str, str]] = {
    1: ("ERROR_INVALID_FUNCTION", "Incorrect function."),
    2: ("ERROR_FILE_NOT_FOUND", "The system cannot find the file specified."),
    3: ("ERROR_PATH_NOT_FOUND", "The system cannot find the path specified."),
    5: ("ERROR_ACCESS_DENIED", "Access is denied."),
    6: ("ERROR_INVALID_HANDLE", "The handle is invalid."),
    8: ("ERROR_NOT_ENOUGH_MEMORY", "Not enough memory resources are available to process this command."),
    13: ("ERROR_INVALID_DATA", "The data is invalid."),
    17: ("ERROR_NOT_SAME_DEVICE", "The system cannot move the file to a different disk drive."),
    18: ("ERROR_NO_MORE_FILES", "There are no more files."),
    21: ("ERROR_NOT_READY", "The device is not ready."),
    24: ("ERROR_BAD_LENGTH", "The program issued a command but the command length is incorrect."),
    31: ("ERROR_GEN_FAILURE", "A device attached to the system is not functioning."),
    32: ("ERROR_SHARING_VIOLATION", "The process cannot access the file because it is being used by another process."),
    38: ("ERROR_HANDLE_EOF", "Reached the end of the file."),
    50: ("ERROR_NOT_SUPPORTED", "The request is not supported."),
    53: ("ERROR_BAD_NETPATH", "The network path was not found."),
    80: ("ERROR_FILE_EXISTS", "The file exists."),
    87: ("ERROR_INVALID_PARAMETER", "The parameter is incorrect."),
    112: ("ERROR_DISK_FULL", "There is not enough space on the disk."),
    122: ("ERROR_INSUFFICIENT_BUFFER", "The data area passed to a system call is too small."),
    123: ("ERROR_INVALID_NAME", "The filename, directory name, or volume label syntax is incorrect."),
    145: ("ERROR_DIR_NOT_EMPTY", "The directory is not empty."),
    183: ("ERROR_ALREADY_EXISTS", "Cannot create a file when that file already exists."),
    206: ("ERROR_FILENAME_EXCED_RANGE", "The filename or extension is too long."),
    267: ("ERROR_DIRECTORY", "The directory name is invalid."),
    1300: ("ERROR_NOT_ALL_ASSIGNED", "Not all privileges or groups referenced are assigned to the caller."),
    1307: ("ERROR_INVALID_OWNER", "This security ID may not be assigned as the owner of this object."),
    1313: ("ERROR_NO_SUCH_PRIVILEGE", "A specified privilege does not exist."),
    1314: ("ERROR_PRIVILEGE_NOT_HELD", "A required privilege is not held by the client."),
    1920: ("ERROR_CANT_ACCESS_FILE", "The file cannot be accessed by the system."),
    1921: ("ERROR_CANT_RESOLVE_FILENAME", "The name of the file cannot be resolved by the system."),
}

_HINTS: Mapping[int, str] = {
    5: "the file is read-only, in use, or its security descriptor refuses this account; layer work needs an "
       "elevated administrator with SeBackupPrivilege and SeRestorePrivilege enabled.",
    21: "on the simulated host this means its service is not running (`wincontainers sim status`).",
    32: "another handle has the file open without sharing it; close that handle (or wait for it) and retry.",
    145: "remove what the folder holds first.",
    206: "the path is longer than MAX_PATH; the \\\\?\\ form has no such limit.",
    1314: "run elevated: an administrator's token holds SeBackupPrivilege, SeRestorePrivilege and "
          "SeSecurityPrivilege, which layer import and export need.",
    1920: "a reparse point Windows cannot follow is on the way (a WSL/LX symlink or a container placeholder).",
}


class Win32Error(errors.HcsError):
    """A kernel32/advapi32 call failed.

    Attributes (besides :class:`~wincontainers.errors.HcsError`'s): ``code`` (the Win32 error),
    ``name`` (``"ERROR_ACCESS_DENIED"``), ``path`` (the file or folder, when there is one).
    ``hresult`` is the same error as an HRESULT (``0x8007xxxx``).
    """

    def __init__(self, call: str, code: int, path: Optional[str] = None, *, hint: Optional[str] = None,
                 message: Optional[str] = None) -> None:
        self.code = code
        self.name, text = WIN32_ERRORS.get(code, (f"ERROR_{code}", f"Win32 error {code}."))
        self.path = path
        super().__init__(call, 0x80070000 | (code & 0xFFFF) if code else 0, subject=path,
                         ids=(path,) if path else (), message=message or text,
                         hint=hint if hint is not None else _HINTS.get(code))

    def __str__(self) -> str:
        where = f"{self.operation} {self.path}" if self.path else self.operation
        text = f"{self.context}: {where} failed:" if self.context else f"{where} failed:"
        text += f" {self.name} ({self.code}) {self.system_message.rstrip('.')}."
        if self.hint:
            text += f" Hint: {self.hint}"
        return text


class PathNotFound(Win32Error, errors.NotFound):
    """ERROR_FILE_NOT_FOUND / ERROR_PATH_NOT_FOUND."""


class AccessDenied(Win32Error, errors.AccessDenied):
    """ERROR_ACCESS_DENIED: read-only, protected by its DACL, or deleted meanwhile."""


class PrivilegeNotHeld(AccessDenied):
    """A privilege the work needs is not held (not elevated) or could not be enabled."""


class SharingViolation(Win32Error, errors.InvalidState):
    """ERROR_SHARING_VIOLATION: another handle has the file open without sharing it."""


class AlreadyExists(Win32Error, errors.AlreadyExists):
    """ERROR_FILE_EXISTS / ERROR_ALREADY_EXISTS."""


class DirectoryNotEmpty(Win32Error, errors.InvalidState):
    """ERROR_DIR_NOT_EMPTY."""


_ERROR_CLASSES: Mapping[int, type[Win32Error]] = {
    ERROR_FILE_NOT_FOUND: PathNotFound, ERROR_PATH_NOT_FOUND: PathNotFound, ERROR_ACCESS_DENIED: AccessDenied,
    ERROR_SHARING_VIOLATION: SharingViolation, ERROR_FILE_EXISTS: AlreadyExists, ERROR_ALREADY_EXISTS: AlreadyExists,
    ERROR_DIR_NOT_EMPTY: DirectoryNotEmpty, ERROR_PRIVILEGE_NOT_HELD: PrivilegeNotHeld,
}


def win32_error(call: str, code: int, path: Optional[str] = None, **kwargs: Any) -> Win32Error:
    return _ERROR_CLASSES.get(code, Win32Error)(call, code, path, **kwargs)


def long_path(path: Union[str, "os.PathLike[str]"]) -> str:
    """The ``\\\\?\\`` form of an absolute path: no MAX_PATH limit, no name rewriting.

    ``C:\\x`` becomes ``\\\\?\\C:\\x``, ``\\\\server\\share`` ``\\\\?\\UNC\\server\\share``; a path
    already in that form (or a ``\\\\?\\Volume{...}`` path) stays. On the simulated host a POSIX
    path ``/a/b`` becomes ``\\\\?\\/a/b``.
    """
    text = os.fspath(path)
    if text.startswith("\\\\?\\"):
        return text
    text = os.path.abspath(text)
    if text.startswith("\\\\"):
        return "\\\\?\\UNC\\" + text[2:]
    return "\\\\?\\" + text


def join(base: str, rel: str) -> str:
    """``base`` (a Win32 path) and a ``/``-separated relative path, with ``\\`` between names."""
    if not rel:
        return base
    sep = "" if base.endswith(("\\", "/")) else "\\"
    return base + sep + rel.replace("/", "\\")


@attrs.frozen
class BasicInfo:
    """FILE_BASIC_INFO: the four FILETIMEs and the attributes."""

    creation: int
    access: int
    write: int
    change: int
    attributes: int

    @property
    def times(self) -> tuple[int, int, int, int]:
        return (self.creation, self.access, self.write, self.change)


@attrs.frozen
class FindData:
    """One entry of a folder listing (FindFirstFileExW/FindNextFileW)."""

    name: str
    attributes: int
    creation: int
    access: int
    write: int
    size: int
    reparse_tag: int

    @property
    def is_dir(self) -> bool:
        return bool(self.attributes & FILE_ATTRIBUTE_DIRECTORY)

    @property
    def is_reparse_point(self) -> bool:
        return bool(self.attributes & FILE_ATTRIBUTE_REPARSE_POINT)


_FFI = FFI()

#: one file for :meth:`Win32.write_whole_files`: (path, CreateFileW's disposition, its bytes,
#: its times as FILETIME integers (creation, access, write, change; None: left as they are),
#: its attributes (0: left as they are))
WholeFile = tuple[str, int, bytes, Sequence[Optional[int]], int]
#: one file from :meth:`Win32.read_whole_files`: (its times (creation, access, write, change), its
#: number of links, (volume serial number, file id), its bytes)
WholeRead = tuple[tuple[int, int, int, int], int, tuple[int, int], bytes]


def _new(ctype: str, init: Any = None) -> Any:
    """A new cdata (typed ``Any``: cffi's stubs cannot know a struct's fields)."""
    return _FFI.new(ctype, init)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else value.decode("utf-8", "surrogateescape")

_FFI.cdef(cdefs.TYPES + cdefs.WIN32_TYPES + cdefs.prototypes("kernel32.dll", 3) + cdefs.prototypes("advapi32.dll", 3))
_INVALID = _FFI.cast("HANDLE", -1)
_LOADED: dict[str, tuple[Any, Any]] = {}
_LOADED_LOCK = threading.Lock()


def _open(system_dir: Optional[Path]) -> tuple[Any, Any]:
    """kernel32 and advapi32 from ``system_dir`` (None: the loader's own, Windows only), kept for
    the life of the process."""
    key = str(system_dir) if system_dir is not None else ""
    with _LOADED_LOCK:
        found = _LOADED.get(key)
        if found is None:
            if system_dir is None:
                found = (_FFI.dlopen("kernel32.dll"), _FFI.dlopen("advapi32.dll"))
            else:
                found = (_FFI.dlopen(str(system_dir / "kernel32.dll")), _FFI.dlopen(str(system_dir / "advapi32.dll")))
            _LOADED[key] = found
        return found


#: "FILE_BASIC_INFO" -> (its pointer type, its size): parsed once, not on every query
_INFO_TYPES: dict[str, tuple[Any, int]] = {}


def _info_buffer(ctype: str) -> tuple[Any, int]:
    """A new zeroed ``ctype`` and its size, for Get/SetFileInformationByHandle."""
    found = _INFO_TYPES.get(ctype)
    if found is None:
        found = _INFO_TYPES[ctype] = (_FFI.typeof(ctype + " *"), _FFI.sizeof(ctype))
    return _FFI.new(found[0]), found[1]


class Win32File(io.RawIOBase):
    """An open file or folder (CreateFileW), as a raw binary stream. Close it, or use it as a
    context manager; a forgotten one is closed when it is collected (IOBase's finalizer calls
    :meth:`close`, so no finalizer of our own is needed: one per file cost a layer of small
    files a measurable share of its time). Like a ``FileIO``, one is used by one thread at a time
    (its read and write count is its own)."""

    def __init__(self, api: "Win32", handle: Any, path: str) -> None:
        super().__init__()
        self.api = api
        self.handle = handle
        self.path = path
        self._open = True
        self._count: Any = None  # ReadFile's and WriteFile's count, allocated on first use

    def __repr__(self) -> str:
        return f"<Win32File {self.path!r}{' closed' if self.closed else ''}>"

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def close(self) -> None:
        """CloseHandle; closing twice is harmless."""
        if self._open:
            self._open = False
            try:
                if not self.api.k32.CloseHandle(self.handle):
                    raise self.api.error("CloseHandle", self.path)
            finally:
                super().close()
        elif not self.closed:
            super().close()

    def _h(self) -> Any:
        if not self._open:
            raise ValueError(f"{self.path} is closed")
        return self.handle

    # -- data --------------------------------------------------------------------------------

    def readinto(self, target: Any) -> int:
        view = memoryview(target).cast("B")
        if not len(view):
            return 0
        done = self._count
        if done is None:
            done = self._count = _new("DWORD *")
        buf = _FFI.from_buffer("uint8_t[]", view, require_writable=True)
        if not self.api.k32.ReadFile(self._h(), buf, min(len(view), 1 << 30), done, _FFI.NULL):
            raise self.api.error("ReadFile", self.path)
        return int(done[0])

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        done = self._count
        if done is None:
            done = self._count = _new("DWORD *")
        size = len(view)
        total = 0
        while total < size:
            part = view[total:total + (1 << 30)] if total or size > 1 << 30 else view
            if not self.api.k32.WriteFile(self._h(), _FFI.from_buffer(part), len(part), done, _FFI.NULL):
                raise self.api.error("WriteFile", self.path)
            total += int(done[0])
        return total

    def sync(self) -> None:
        """FlushFileBuffers: the data is on the disk."""
        if not self.api.k32.FlushFileBuffers(self._h()):
            raise self.api.error("FlushFileBuffers", self.path)

    def seek(self, offset: int, whence: int = 0) -> int:
        out = _new("int64_t *")
        if not self.api.k32.SetFilePointerEx(self._h(), offset, out, whence):
            raise self.api.error("SetFilePointerEx", self.path)
        return int(out[0])

    def size(self) -> int:
        out = _new("int64_t *")
        if not self.api.k32.GetFileSizeEx(self._h(), out):
            raise self.api.error("GetFileSizeEx", self.path)
        return int(out[0])

    def set_end_of_file(self) -> None:
        """SetEndOfFile at the current position."""
        if not self.api.k32.SetEndOfFile(self._h()):
            raise self.api.error("SetEndOfFile", self.path)

    # -- information -------------------------------------------------------------------------

    def _query(self, info_class: int, ctype: str) -> Any:
        """GetFileInformationByHandleEx of one class into a new ``ctype``."""
        info, size = _info_buffer(ctype)
        if not self.api.k32.GetFileInformationByHandleEx(self._h(), info_class, info, size):
            raise self.api.error("GetFileInformationByHandleEx", self.path)
        return info

    def basic_info(self) -> BasicInfo:
        info = self._query(FILE_BASIC_INFO_CLASS, "FILE_BASIC_INFO")
        return BasicInfo(_signed(info.CreationTime), _signed(info.LastAccessTime), _signed(info.LastWriteTime),
                         _signed(info.ChangeTime), int(info.FileAttributes))

    def set_basic_info(self, times: Sequence[Optional[int]] = (None, None, None, None), attributes: int = 0) -> None:
        """SetFileInformationByHandle(FileBasicInfo): ``None`` times and ``attributes=0`` leave
        those as they are."""
        info = _new("FILE_BASIC_INFO *")
        creation, access, write, change = (list(times) + [None] * 4)[:4]
        info.CreationTime = (creation or 0) & 0xFFFFFFFFFFFFFFFF
        info.LastAccessTime = (access or 0) & 0xFFFFFFFFFFFFFFFF
        info.LastWriteTime = (write or 0) & 0xFFFFFFFFFFFFFFFF
        info.ChangeTime = (change or 0) & 0xFFFFFFFFFFFFFFFF
        info.FileAttributes = attributes
        if not self.api.k32.SetFileInformationByHandle(self._h(), FILE_BASIC_INFO_CLASS, info,
                                                       _FFI.sizeof("FILE_BASIC_INFO")):
            raise self.api.error("SetFileInformationByHandle", self.path)

    def standard_info(self) -> tuple[int, int, bool]:
        """(end of file, number of links, is a folder)."""
        info = self._query(FILE_STANDARD_INFO_CLASS, "FILE_STANDARD_INFO")
        return int(info.EndOfFile), int(info.NumberOfLinks), bool(info.Directory)

    def file_id(self) -> tuple[int, int]:
        """(volume serial number, 128-bit file id): equal for two names of one file."""
        info = self._query(FILE_ID_INFO_CLASS, "FILE_ID_INFO")
        return int(info.VolumeSerialNumber), int.from_bytes(bytes(info.FileId), "little")

    def attribute_tag(self) -> tuple[int, int]:
        """(attributes, reparse tag or 0)."""
        info = self._query(FILE_ATTRIBUTE_TAG_INFO_CLASS, "FILE_ATTRIBUTE_TAG_INFO")
        return int(info.FileAttributes), int(info.ReparseTag)

    def delete_on_close(self, delete: bool = True) -> None:
        """SetFileInformationByHandle(FileDispositionInfo): removed when the last handle closes."""
        info = _new("FILE_DISPOSITION_INFO *")
        info.DeleteFile = int(delete)
        if not self.api.k32.SetFileInformationByHandle(self._h(), FILE_DISPOSITION_INFO_CLASS, info, 1):
            raise self.api.error("SetFileInformationByHandle", self.path)

    # -- backup streams ------------------------------------------------------------------------

    def backup_reader(self, process_security: bool = True) -> "BackupReader":
        return BackupReader(self, process_security)

    def backup_writer(self, process_security: bool = True) -> "BackupWriter":
        """BackupWrite as a writable stream (one context, ended by its ``close``)."""
        return BackupWriter(self, process_security)

    def backup_write(self, chunks: Any, process_security: bool = True) -> None:
        """BackupWrite every chunk of ``chunks`` (an iterable of bytes-like), then end the context."""
        writer = self.backup_writer(process_security)
        try:
            for chunk in chunks:
                writer.write(chunk)
        finally:
            writer.close()


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


class BackupWriter:
    """One BackupWrite context: the streams of one file, written in any number of pieces."""

    def __init__(self, file: Win32File, process_security: bool) -> None:
        self.file = file
        self.process_security = int(process_security)
        self.context = _new("void **")
        self._done = _new("DWORD *")
        self.closed = False

    def write(self, chunk: Any) -> int:
        n = len(chunk)
        if n and not self.file.api.k32.BackupWrite(self.file._h(), _FFI.from_buffer("uint8_t[]", chunk), n, self._done,
                                                   0, self.process_security, self.context):
            raise self.file.api.error("BackupWrite", self.file.path)
        return n

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            if not self.file.closed:
                self.file.api.k32.BackupWrite(self.file.handle, _FFI.NULL, 0, self._done, 1, self.process_security,
                                              self.context)


class BackupReader(io.RawIOBase):
    """BackupRead as a readable stream; closing it ends the backup context (the file stays open)."""

    def __init__(self, file: Win32File, process_security: bool) -> None:
        super().__init__()
        self.file = file
        self.process_security = int(process_security)
        self.context = _new("void **")

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        view = memoryview(target).cast("B")
        if not len(view):
            return 0
        done = _new("DWORD *")
        if not self.file.api.k32.BackupRead(self.file._h(), _FFI.from_buffer("uint8_t[]", view, require_writable=True),
                                            min(len(view), 1 << 30), done, 0, self.process_security, self.context):
            raise self.file.api.error("BackupRead", self.file.path)
        return int(done[0])

    def close(self) -> None:
        if not self.closed and not self.file.closed:
            done = _new("DWORD *")
            self.file.api.k32.BackupRead(self.file.handle, _FFI.NULL, 0, done, 1, self.process_security, self.context)
        super().close()


class Win32:
    """kernel32 and advapi32 of one system directory (System32, or a simulated host's)."""

    def __init__(self, system_dir: Optional[Path] = None) -> None:
        self.system_dir = system_dir
        self.k32, self.advapi = _open(system_dir)
        self._privileges: dict[str, bool] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Win32 {self.system_dir or 'System32'}>"

    # -- errors ---------------------------------------------------------------------------------

    def last_error(self) -> int:
        return int(self.k32.GetLastError())

    def error(self, call: str, path: Optional[str] = None, **kwargs: Any) -> Win32Error:
        """The typed error for the call that just failed on this thread."""
        return win32_error(call, self.last_error(), path, **kwargs)

    # -- files and folders ------------------------------------------------------------------------

    def create_file(self, path: str, access: int, disposition: int, *, share: int = FILE_SHARE_READ,
                    flags: int = 0, attributes: int = 0) -> Win32File:
        h = self.k32.CreateFileW(path, access, share, _FFI.NULL, disposition, flags | attributes, _FFI.NULL)
        if h == _INVALID:
            raise self.error("CreateFileW", path)
        return Win32File(self, h, path)

    def copy_file(self, source: str, dest: str, *, chunk: int = 1 << 20) -> int:
        """Copy a file's data to a new file ``dest`` (refused if it exists); returns the bytes
        copied. A partial copy is deleted. (CopyFileW is not among the declared calls: this is
        the same work through the handles this module already has.)"""
        with self.create_file(source, GENERIC_READ, OPEN_EXISTING) as src:
            out = self.create_file(dest, GENERIC_WRITE | DELETE, CREATE_NEW)
            copied = 0
            try:
                buffer = bytearray(chunk)
                view = memoryview(buffer)
                while True:
                    n = src.readinto(view)
                    if not n:
                        break
                    out.write(view[:n])
                    copied += n
            except BaseException:
                out.delete_on_close()
                out.close()
                raise
            out.close()
        return copied

    def write_whole_files(self, files: Iterable[WholeFile], access: int, *, backup_stream: bool) -> None:
        """Write each of ``files`` whole: CreateFileW with backup semantics (the reparse point
        itself), one BackupWrite of its whole backup stream (``backup_stream``, security
        included) or WriteFile of its bytes, its basic information, CloseHandle.

        Why a loop of raw calls: a layer of small files is mostly these four calls per file, and
        a file object and a backup writer per file cost more than the calls do. Done in a batch
        between runs of tar parsing, the calls also find the CPU's caches warm. The first failure
        raises, naming its call and path; the files before it stay written (a caller discards
        the whole folder)."""
        k32 = self.k32
        flags = FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT
        done = _new("DWORD *")
        context = _new("void **")
        info = _new("FILE_BASIC_INFO *")
        info_size = _FFI.sizeof("FILE_BASIC_INFO")
        for path, disposition, data, times, attributes in files:
            h = k32.CreateFileW(path, access, FILE_SHARE_READ, _FFI.NULL, disposition, flags, _FFI.NULL)
            if h == _INVALID:
                raise self.error("CreateFileW", path)
            failure: Optional[Win32Error] = None
            if data and backup_stream:
                context[0] = _FFI.NULL
                if not k32.BackupWrite(h, _FFI.from_buffer("uint8_t[]", data), len(data), done, 0, 1, context):
                    failure = self.error("BackupWrite", path)
                k32.BackupWrite(h, _FFI.NULL, 0, done, 1, 1, context)  # ends the context, even after a failure
            elif data:
                view = memoryview(data)
                while view and failure is None:
                    if not k32.WriteFile(h, _FFI.from_buffer(view), len(view), done, _FFI.NULL):
                        failure = self.error("WriteFile", path)
                    view = view[int(done[0]):]
            if failure is None:
                creation, access_time, write, change = times
                info.CreationTime = (creation or 0) & 0xFFFFFFFFFFFFFFFF
                info.LastAccessTime = (access_time or 0) & 0xFFFFFFFFFFFFFFFF
                info.LastWriteTime = (write or 0) & 0xFFFFFFFFFFFFFFFF
                info.ChangeTime = (change or 0) & 0xFFFFFFFFFFFFFFFF
                info.FileAttributes = attributes
                if not k32.SetFileInformationByHandle(h, FILE_BASIC_INFO_CLASS, info, info_size):
                    failure = self.error("SetFileInformationByHandle", path)
            if not k32.CloseHandle(h) and failure is None:
                failure = self.error("CloseHandle", path)
            if failure is not None:
                raise failure

    def read_whole_files(self, paths: Sequence[str], *, delete: bool, limit: int) -> list[Optional[WholeRead]]:
        """Read each of ``paths`` whole: CreateFileW with backup semantics (the reparse point
        itself), its basic, standard and id information, ReadFile of all of it, with ``delete``
        its deletion (FileDispositionInfo), CloseHandle. :meth:`write_whole_files`' twin, for a
        folder of small files read once (an export folder).

        A file larger than ``limit`` is neither read nor deleted: None in its place, for the
        caller to stream. The first failure raises, naming its call and path."""
        k32 = self.k32
        access = GENERIC_READ | (DELETE if delete else 0)
        share = FILE_SHARE_READ | (FILE_SHARE_DELETE if delete else 0)
        flags = FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT
        basic, basic_size = _info_buffer("FILE_BASIC_INFO")
        standard, standard_size = _info_buffer("FILE_STANDARD_INFO")
        ident, ident_size = _info_buffer("FILE_ID_INFO")
        disposition = _new("FILE_DISPOSITION_INFO *")
        disposition.DeleteFile = 1
        done = _new("DWORD *")
        out: list[Optional[WholeRead]] = []
        for path in paths:
            h = k32.CreateFileW(path, access, share, _FFI.NULL, OPEN_EXISTING, flags, _FFI.NULL)
            if h == _INVALID:
                raise self.error("CreateFileW", path)
            failure: Optional[Win32Error] = None
            read: Optional[WholeRead] = None
            if not (k32.GetFileInformationByHandleEx(h, FILE_BASIC_INFO_CLASS, basic, basic_size)
                    and k32.GetFileInformationByHandleEx(h, FILE_STANDARD_INFO_CLASS, standard, standard_size)
                    and k32.GetFileInformationByHandleEx(h, FILE_ID_INFO_CLASS, ident, ident_size)):
                failure = self.error("GetFileInformationByHandleEx", path)
            elif standard.EndOfFile <= limit:
                size = int(standard.EndOfFile)
                data = bytearray(size)
                target = _FFI.from_buffer("uint8_t[]", data, require_writable=True)
                filled = 0
                while filled < size:
                    if not k32.ReadFile(h, target + filled, size - filled, done, _FFI.NULL):
                        failure = self.error("ReadFile", path)
                        break
                    if not done[0]:
                        break  # it ended early: what there is
                    filled += int(done[0])
                if failure is None and delete and not k32.SetFileInformationByHandle(
                        h, FILE_DISPOSITION_INFO_CLASS, disposition, 1):
                    failure = self.error("SetFileInformationByHandle", path)
                if failure is None:
                    read = ((_signed(basic.CreationTime), _signed(basic.LastAccessTime), _signed(basic.LastWriteTime),
                             _signed(basic.ChangeTime)), int(standard.NumberOfLinks),
                            (int(ident.VolumeSerialNumber), int.from_bytes(bytes(ident.FileId), "little")),
                            bytes(data) if filled == size else bytes(data[:filled]))
            if not k32.CloseHandle(h) and failure is None:
                failure = self.error("CloseHandle", path)
            if failure is not None:
                raise failure
            out.append(read)
        return out

    def open_for_backup(self, path: str, access: int, disposition: int = OPEN_EXISTING, *,
                        share: int = FILE_SHARE_READ, flags: int = 0) -> Win32File:
        """A file or folder with backup semantics, the reparse point itself rather than its target."""
        return self.create_file(path, access, disposition, share=share,
                                flags=FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT | flags)

    def delete_for_backup(self, path: str) -> None:
        """Delete the file (or reparse point) ``path`` as a backup operator: opened with backup
        intent and FILE_FLAG_DELETE_ON_CLOSE, then closed (what DeleteFileW does inside, but no
        DACL can refuse it with SeRestorePrivilege enabled). A folder of entries of ours is
        emptied with it one call per entry, so no file object is made."""
        h = self.k32.CreateFileW(path, DELETE, FILE_SHARE_ALL, _FFI.NULL, OPEN_EXISTING,
                                 FILE_FLAG_BACKUP_SEMANTICS | FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_DELETE_ON_CLOSE,
                                 _FFI.NULL)
        if h == _INVALID:
            raise self.error("CreateFileW", path)
        if not self.k32.CloseHandle(h):
            raise self.error("CloseHandle", path)

    def create_directory(self, path: str, *, exist_ok: bool = False) -> bool:
        """CreateDirectoryW; returns whether it made the folder (``exist_ok``: one that exists is fine)."""
        if self.k32.CreateDirectoryW(path, _FFI.NULL):
            return True
        code = self.last_error()
        if exist_ok and code == ERROR_ALREADY_EXISTS:
            return False
        raise win32_error("CreateDirectoryW", code, path)

    def remove_directory(self, path: str) -> None:
        if not self.k32.RemoveDirectoryW(path):
            raise self.error("RemoveDirectoryW", path)

    def delete_file(self, path: str) -> None:
        if not self.k32.DeleteFileW(path):
            raise self.error("DeleteFileW", path)

    def create_hard_link(self, path: str, existing: str) -> None:
        if not self.k32.CreateHardLinkW(path, existing, _FFI.NULL):
            raise self.error("CreateHardLinkW", path)

    def create_symbolic_link(self, path: str, target: str, *, directory: bool = False) -> None:
        if not self.k32.CreateSymbolicLinkW(path, target, SYMBOLIC_LINK_FLAG_DIRECTORY if directory else 0):
            raise self.error("CreateSymbolicLinkW", path)

    def move(self, source: str, dest: str, *, replace: bool = False, write_through: bool = False) -> None:
        flags = (MOVEFILE_REPLACE_EXISTING if replace else 0) | (MOVEFILE_WRITE_THROUGH if write_through else 0)
        if not self.k32.MoveFileExW(source, dest, flags):
            raise self.error("MoveFileExW", source)

    def attributes(self, path: str) -> Optional[int]:
        """GetFileAttributesW (of a reparse point itself); ``None`` when nothing is there."""
        value = int(self.k32.GetFileAttributesW(path))
        if value != INVALID_FILE_ATTRIBUTES:
            return value
        code = self.last_error()
        if code in (ERROR_FILE_NOT_FOUND, ERROR_PATH_NOT_FOUND):
            return None
        raise win32_error("GetFileAttributesW", code, path)

    def set_attributes(self, path: str, attributes: int) -> None:
        if not self.k32.SetFileAttributesW(path, attributes):
            raise self.error("SetFileAttributesW", path)

    def listdir(self, path: str) -> list[FindData]:
        """The entries of a folder (``.`` and ``..`` left out), as FindFirstFileExW gives them."""
        data = _new("WIN32_FIND_DATAW *")
        pattern = join(path, "*")
        h = self.k32.FindFirstFileExW(pattern, 1, data, 0, _FFI.NULL, 0)
        if h == _INVALID:
            code = self.last_error()
            if code == ERROR_FILE_NOT_FOUND:
                return []
            raise win32_error("FindFirstFileExW", code, path)
        out = []
        try:
            while True:
                name = _text(_FFI.string(data.cFileName))
                if name not in (".", ".."):
                    out.append(FindData(
                        name, int(data.dwFileAttributes), _filetime(data.ftCreationTime),
                        _filetime(data.ftLastAccessTime), _filetime(data.ftLastWriteTime),
                        (int(data.nFileSizeHigh) << 32) | int(data.nFileSizeLow),
                        int(data.dwReserved0) if data.dwFileAttributes & FILE_ATTRIBUTE_REPARSE_POINT else 0))
                if not self.k32.FindNextFileW(h, data):
                    code = self.last_error()
                    if code == ERROR_NO_MORE_FILES:
                        break
                    raise win32_error("FindNextFileW", code, path)
        finally:
            self.k32.FindClose(h)
        return out

    def disk_free(self, path: str) -> tuple[int, int]:
        """(bytes free for this caller, total bytes) of the volume that holds ``path``."""
        free, total, _all = _new("uint64_t *"), _new("uint64_t *"), _new("uint64_t *")
        if not self.k32.GetDiskFreeSpaceExW(path, free, total, _all):
            raise self.error("GetDiskFreeSpaceExW", path)
        return int(free[0]), int(total[0])

    def system_directory(self) -> Path:
        buf = _new("char16_t[]", 1024)
        n = int(self.k32.GetSystemDirectoryW(buf, 1024))
        if n == 0 or n >= 1024:
            raise self.error("GetSystemDirectoryW")
        return Path(_text(_FFI.string(buf, n)))

    # -- processes ----------------------------------------------------------------------------------

    def process_alive(self, pid: int) -> bool:
        """Whether process ``pid`` still runs. A process this account may not open (another
        account's, access denied) counts as alive: only "no such process" means gone."""
        if pid <= 0:
            return False
        h = self.k32.OpenProcess(PROCESS_QUERY_LIMITED_INFORMATION, 0, pid)
        if h == _FFI.NULL:
            return self.last_error() != ERROR_INVALID_PARAMETER
        try:
            code = _new("DWORD *")
            if not self.k32.GetExitCodeProcess(h, code):
                return True
            return int(code[0]) == STILL_ACTIVE
        finally:
            self.k32.CloseHandle(h)

    def current_process_id(self) -> int:
        return int(self.k32.GetCurrentProcessId())

    # -- the console --------------------------------------------------------------------------------

    def console_mode(self, which: int) -> Optional[int]:
        """The console mode of a standard handle (``STD_INPUT_HANDLE``...); None when it is not
        a console (redirected to a file or a pipe)."""
        h = self.k32.GetStdHandle(which)
        if h == _INVALID or h == _FFI.NULL:
            return None
        mode = _new("DWORD *")
        if not self.k32.GetConsoleMode(h, mode):
            return None
        return int(mode[0])

    def set_console_mode(self, which: int, mode: int) -> None:
        h = self.k32.GetStdHandle(which)
        if h == _INVALID or not self.k32.SetConsoleMode(h, mode):
            raise self.error("SetConsoleMode")

    # -- the token ----------------------------------------------------------------------------------

    def _token(self, access: int) -> Any:
        token = _new("HANDLE *")
        if not self.advapi.OpenProcessToken(self.k32.GetCurrentProcess(), access, token):
            raise self.error("OpenProcessToken")
        return token[0]

    def enable_privileges(self, *names: str) -> dict[str, bool]:
        """Enable privileges on the process token (process-wide, hcs-api.md pitfall 13);
        returns name -> whether it is now enabled. Asked once per process and name."""
        with self._lock:
            wanted = [n for n in names if n not in self._privileges]
            if wanted:
                token = self._token(TOKEN_ADJUST_PRIVILEGES | TOKEN_QUERY)
                try:
                    for name in wanted:
                        self._privileges[name] = self._enable(token, name)
                finally:
                    self.k32.CloseHandle(token)
            return {n: self._privileges[n] for n in names}

    def _enable(self, token: Any, name: str) -> bool:
        luid = _new("LUID *")
        if not self.advapi.LookupPrivilegeValueW(_FFI.NULL, name, luid):
            raise self.error("LookupPrivilegeValueW", hint=f"{name} is not a privilege name")
        state = _new("TOKEN_PRIVILEGES *")
        state.PrivilegeCount = 1
        state.Privileges[0].Luid = luid[0]
        state.Privileges[0].Attributes = SE_PRIVILEGE_ENABLED
        if not self.advapi.AdjustTokenPrivileges(token, 0, state, 0, _FFI.NULL, _FFI.NULL):
            raise self.error("AdjustTokenPrivileges")
        # TRUE with ERROR_NOT_ALL_ASSIGNED: the token does not hold it (not elevated).
        return self.last_error() != ERROR_NOT_ALL_ASSIGNED

    def require_privileges(self, *names: str, task: str) -> None:
        """Enable ``names`` or raise :class:`PrivilegeNotHeld` naming those the token lacks."""
        missing = [n for n, on in self.enable_privileges(*names).items() if not on]
        if missing:
            raise PrivilegeNotHeld(
                "AdjustTokenPrivileges", ERROR_PRIVILEGE_NOT_HELD,
                message=f"{task} needs {_and(missing)}, which this process's token does not hold",
                hint="run elevated (as an administrator): an elevated token holds SeBackupPrivilege, "
                     "SeRestorePrivilege and SeSecurityPrivilege")

    def is_elevated(self) -> bool:
        """TokenElevation of the process token."""
        token = self._token(TOKEN_QUERY)
        try:
            value = _new("TOKEN_ELEVATION *")
            size = _new("DWORD *")
            if not self.advapi.GetTokenInformation(token, TOKEN_ELEVATION, value, _FFI.sizeof("TOKEN_ELEVATION"),
                                                   size):
                raise self.error("GetTokenInformation")
            return bool(value.TokenIsElevated)
        finally:
            self.k32.CloseHandle(token)

    def is_administrator(self) -> bool:
        """Whether the token is a member of BUILTIN\\Administrators (deny-only when not elevated)."""
        authority = _new("SID_IDENTIFIER_AUTHORITY *")
        authority.Value[5] = 5  # SECURITY_NT_AUTHORITY
        sid = _new("void **")
        if not self.advapi.AllocateAndInitializeSid(authority, 2, 32, 544, 0, 0, 0, 0, 0, 0, sid):
            raise self.error("AllocateAndInitializeSid")
        try:
            member = _new("BOOL *")
            if not self.advapi.CheckTokenMembership(_FFI.NULL, sid[0], member):
                raise self.error("CheckTokenMembership")
            return bool(member[0])
        finally:
            self.advapi.FreeSid(sid[0])


def _and(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _filetime(ft: Any) -> int:
    return (int(ft.dwHighDateTime) << 32) | int(ft.dwLowDateTime)


def system_directory() -> Optional[Path]:
    """System32 on Windows, asked of kernel32 (never from PATH); ``None`` elsewhere."""
    import sys

    if sys.platform != "win32":
        return None
    return Win32(None).system_directory()


def retry_while_shared(action: Any, *, attempts: int = 40, delay: float = 0.025) -> Any:
    """Run ``action()``, again while it fails because another handle has the file open without
    sharing it (a reader of a file being replaced): a bounded wait, then the error."""
    for attempt in range(attempts):
        try:
            return action()
        except (AccessDenied, SharingViolation):
            if attempt == attempts - 1:
                raise
            time.sleep(min(delay * (attempt + 1), 0.25))

