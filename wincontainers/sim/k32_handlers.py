"""The simulated kernel32.dll and advapi32.dll, daemon side: one handler per request.

The C side (native/kernel32.c, native/advapi32.c) does what needs no host state by itself
(I/O on the descriptors it was given, the backup stream's framing, GetLastError, the handle
values) and asks here for the rest. A reply's status is a Win32 error code (0: success); the
values that follow are each call's own. ``CloseHandle`` of a file comes one-way, carrying what
the handle changed (basic information, security, EAs, reparse data, alternate streams).
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import logging
import struct
from typing import TYPE_CHECKING, Any, Optional

import attrs

from wincontainers.sim.faults import Fail
from wincontainers.sim.leases import Lease
from wincontainers.sim.calls import Call, Reply, api
from wincontainers.sim import ntfs
from wincontainers.sim.tokens import SID_ADMINISTRATORS
from wincontainers.sim.winfs import describe, describe_stored
from wincontainers.sim.winerror import (
    ERROR_ACCESS_DENIED,
    ERROR_INVALID_HANDLE,
    ERROR_INVALID_PARAMETER,
    ERROR_NOT_ALL_ASSIGNED,
    PROCESS_QUERY_INFORMATION,
    PROCESS_QUERY_LIMITED_INFORMATION,
    STILL_ACTIVE,
    TOKEN_ADJUST_PRIVILEGES,
    TOKEN_QUERY,
)

if TYPE_CHECKING:
    from wincontainers.sim.service import Service

__all__: list[str] = []

log = logging.getLogger("wincontainers.sim.kernel32")

TOKEN_PRIVILEGES_CLASS = 3
TOKEN_ELEVATION_TYPE_CLASS = 18
TOKEN_ELEVATION_CLASS = 20


@attrs.define
class ProcessRef:
    """What OpenProcess opened: the process, pinned by its start time (a pid can be reused)."""

    pid: int
    started: Optional[int]
    access: int


@attrs.define
class TokenRef:
    pid: int
    access: int


def _start_time(pid: int) -> Optional[int]:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    if fields[0] == b"Z":
        return None
    return int(fields[19])


def _own_handle(svc: Service, call: Call, hid: int, kinds: tuple[str, ...], refusal: str) -> Any:
    """The service handle ``hid`` of one of ``kinds``, opened by the calling process;
    ERROR_INVALID_HANDLE (with ``refusal``) for anything else."""
    with svc.lock:
        h = svc.handles.get(int(hid))
    if h is None or h.kind not in kinds or h.conn.pid != call.pid:
        raise Fail(ERROR_INVALID_HANDLE, refusal)
    return h


# == files ======================================================================================


@api("kernel32", "CreateFileW", "suuuu", raw=True)
def create_file(svc: Service, call: Call, path: Optional[str], access: int, share: int, disposition: int,
                flags: int) -> Reply:
    handle, fd, info, existed = svc.files.create_file(call.pid, call.conn.owner, path, access, share, disposition, flags,
                                                      svc.new_id)
    return Reply(outs=[handle.id, int(existed), *info], fds=[fd])


@api("kernel32", "CloseHandle", "qbubbbb", raw=True)
def close_file(svc: Service, call: Call, hid: int, basic: Optional[bytes], wrote: int, security: Optional[bytes],
               eas: Optional[bytes], reparse: Optional[bytes], streams: Optional[bytes]) -> Reply:
    svc.files.close(int(hid), basic, bool(wrote), security, eas, reparse, _streams(streams))
    return Reply()


def _streams(blob: Optional[bytes]) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = []
    pos = 0
    data = blob or b""
    while pos + 2 <= len(data):
        (n,) = struct.unpack_from("<H", data, pos)
        pos += 2
        name = data[pos:pos + 2 * n].decode("utf-16-le", "surrogatepass")
        pos += 2 * n
        (size,) = struct.unpack_from("<I", data, pos)
        pos += 4
        out.append((name, data[pos:pos + size]))
        pos += size
    return out


@api("kernel32", "CloseKernelHandle", "q", raw=True)
def close_kernel_handle(svc: Service, call: Call, hid: int) -> Reply:
    _own_handle(svc, call, hid, ("token", "pid"), "not an open handle of this process")
    svc.close_handle(int(hid))
    return Reply()


@api("kernel32", "SetFileDisposition", "qub", raw=True)
def set_disposition(svc: Service, call: Call, hid: int, delete: int, basic: Optional[bytes]) -> Reply:
    svc.files.set_disposition(int(hid), call.pid, bool(delete), basic)
    return Reply()


@api("kernel32", "BackupReadInfo", "qu", raw=True)
def backup_read_info(svc: Service, call: Call, hid: int, process_security: int) -> Reply:
    head, tail, has_data = svc.files.backup_metadata(int(hid), call.pid, bool(process_security))
    return Reply(outs=[head, tail, has_data])


@api("kernel32", "CreateDirectoryW", "su", raw=True)
def create_directory(svc: Service, call: Call, path: Optional[str], wants_lease: int) -> Reply:
    """The folder; when kernel32 asks, a lease on it (see leases.py): its id, host path and page."""
    host = svc.files.create_directory(call.pid, path)
    granted = svc.leases.grant(call.pid, call.conn.owner, host) if wants_lease else None
    if granted is None:
        return Reply(outs=[0])
    lease_id, page = granted
    return Reply(outs=[lease_id, host], fds=[page])


# -- what kernel32 did itself in a leased folder, one-way and in order (see leases.py) -----------


@api("kernel32", "JournalRing", "", raw=True)
def journal_ring(svc: Service, call: Call) -> Reply:
    """The ring of the caller's journal connection (leases.JournalRing): its size and memory."""
    try:
        ring = call.conn.open_ring()
    except ValueError:
        raise Fail(ERROR_INVALID_PARAMETER, "one journal ring per connection")
    return Reply(outs=[ring.SIZE], fds=[ring.fd])


@api("kernel32", "JournalBell", "", raw=True)
def journal_bell(svc: Service, call: Call) -> Reply:
    """The client's ring is filling: the connection takes it before reading on (Connection.serve)."""
    return Reply()


def _leased_path(svc: Service, call: Call, lease_id: int, rel: Optional[bytes]) -> Optional[tuple[Lease, bytes]]:
    """Lease ``lease_id`` of the caller and the host path of ``rel`` in it ("" is the folder itself)."""
    lease = svc.leases.get(lease_id, call.pid)
    text = (rel or b"").decode("ascii", "replace")
    parts = text.split("\\") if text else []
    if lease is None or any(p in ("", ".", "..") or "/" in p or "\0" in p for p in parts):
        log.warning("pid %d: a journal entry for lease %s and %r does not fit it; ignored", call.pid, lease_id, text)
        return None
    return lease, lease.path_of(text)


@api("kernel32", "LeaseMkdir", "qb", raw=True)
def lease_mkdir(svc: Service, call: Call, lease_id: int, rel: Optional[bytes]) -> Reply:
    found = _leased_path(svc, call, lease_id, rel)
    if found is not None:
        svc.files.folder_made(found[1])
        svc.leases.journaled()
    return Reply()


@api("kernel32", "LeaseClose", "qqbuqbubbbb", raw=True)
def lease_close(svc: Service, call: Call, lease_id: int, hid: int, rel: Optional[bytes], created: int, ino: int,
                basic: Optional[bytes], wrote: int, security: Optional[bytes], eas: Optional[bytes],
                reparse: Optional[bytes], streams: Optional[bytes]) -> Reply:
    found = _leased_path(svc, call, lease_id, rel)
    if found is not None:
        svc.files.leased_close(found[1], int(ino), bool(created), basic, bool(wrote), security, eas, reparse,
                               _streams(streams))
        svc.leases.journaled()
    return Reply()


@api("kernel32", "LeaseDelete", "qbu", raw=True)
def lease_delete(svc: Service, call: Call, lease_id: int, rel: Optional[bytes], directory: int) -> Reply:
    found = _leased_path(svc, call, lease_id, rel)
    if found is not None:
        lease, host = found
        svc.files.leased_delete(host, bool(directory))
        svc.leases.journaled()
        if not rel:  # the leased folder itself: the lease ends with it
            svc.leases.end(lease)
    return Reply()


@api("kernel32", "LeaseListing", "q", raw=True)
def lease_listing(svc: Service, call: Call, lease_id: int) -> Reply:
    """What a leased folder holds, after an HCS call filled it: (generation, entries); a
    generation of 0 says the lease is over."""
    lease = svc.leases.get(lease_id, call.pid)
    listed = svc.leases.listing(lease, describe, _stored, describe_stored) if lease is not None else None
    if listed is None:
        return Reply(outs=[0, b""])
    return Reply(outs=list(listed))


def _stored(root: bytes) -> dict[bytes, Any]:
    """The metadata kept for the tree ``root`` (leased: one store), by lower-case relative path
    (WTF-8, '/' between names)."""
    return ntfs.shared_view(root).below()


@api("kernel32", "LeaseSettle", "q", raw=True)
def lease_settle(svc: Service, call: Call, lease_id: int) -> Reply:
    """kernel32 needs the daemon for a handle it opened itself (or wants the lease's slot back):
    the lease ends, its open handles become the daemon's."""
    lease = svc.leases.get(lease_id, call.pid)
    if lease is not None:
        svc.leases.settle(lease)
    return Reply()


@api("kernel32", "RemoveDirectoryW", "s", raw=True)
def remove_directory(svc: Service, call: Call, path: Optional[str]) -> Reply:
    svc.files.remove_directory(call.pid, path)
    return Reply()


@api("kernel32", "DeleteFileW", "s", raw=True)
def delete_file(svc: Service, call: Call, path: Optional[str]) -> Reply:
    svc.files.delete_file(call.pid, path)
    return Reply()


@api("kernel32", "CreateHardLinkW", "ss", raw=True)
def create_hard_link(svc: Service, call: Call, new: Optional[str], existing: Optional[str]) -> Reply:
    svc.files.create_hard_link(call.pid, new, existing)
    return Reply()


@api("kernel32", "CreateSymbolicLinkW", "ssu", raw=True)
def create_symbolic_link(svc: Service, call: Call, link: Optional[str], target: Optional[str], flags: int) -> Reply:
    svc.files.create_symbolic_link(call.pid, link, target, flags)
    return Reply()


@api("kernel32", "MoveFileExW", "ssu", raw=True)
def move_file(svc: Service, call: Call, source: Optional[str], dest: Optional[str], flags: int) -> Reply:
    svc.files.move(call.pid, source, dest, flags)
    return Reply()


@api("kernel32", "GetFileAttributesW", "s", raw=True)
def get_file_attributes(svc: Service, call: Call, path: Optional[str]) -> Reply:
    return Reply(outs=svc.files.attributes(path))


@api("kernel32", "SetFileAttributesW", "su", raw=True)
def set_file_attributes(svc: Service, call: Call, path: Optional[str], value: int) -> Reply:
    svc.files.set_attributes(call.pid, path, value)
    return Reply()


@api("kernel32", "FindFirstFileExW", "su", raw=True)
def find_first_file(svc: Service, call: Call, pattern: Optional[str], directories_only: int) -> Reply:
    entries = svc.files.find(call.pid, pattern, bool(directories_only))
    return Reply(outs=[len(entries), b"".join(entries)])


@api("kernel32", "GetDiskFreeSpaceExW", "s", raw=True)
def disk_free(svc: Service, call: Call, path: Optional[str]) -> Reply:
    return Reply(outs=svc.files.disk_free(path))


# == processes ====================================================================================


@api("kernel32", "OpenProcess", "uuu", raw=True)
def open_process(svc: Service, call: Call, access: int, inherit: int, pid: int) -> Reply:
    started = _start_time(pid) if pid > 0 else None
    if started is None:
        raise Fail(ERROR_INVALID_PARAMETER, f"no process {pid}")
    if svc.tokens.is_foreign(pid) and pid != call.pid:
        raise Fail(ERROR_ACCESS_DENIED, f"process {pid} belongs to another account")
    handle = svc.new_handle("pid", ProcessRef(pid, started, access), call.conn.owner)
    return Reply(outs=[handle.id])


@api("kernel32", "GetExitCodeProcess", "q", raw=True)
def exit_code(svc: Service, call: Call, hid: int) -> Reply:
    ref: ProcessRef = _own_handle(svc, call, hid, ("pid",), "not a process handle of this process").obj
    if not ref.access & (PROCESS_QUERY_INFORMATION | PROCESS_QUERY_LIMITED_INFORMATION):
        raise Fail(ERROR_ACCESS_DENIED, "the handle lacks PROCESS_QUERY_(LIMITED_)INFORMATION")
    alive = _start_time(ref.pid) == ref.started
    return Reply(outs=[STILL_ACTIVE if alive else 0])


# == tokens (advapi32) ==============================================================================


@api("advapi32", "OpenProcessToken", "qu", raw=True)
def open_process_token(svc: Service, call: Call, process: int, access: int) -> Reply:
    pid = call.pid
    if process:
        h = _own_handle(svc, call, process, ("pid",), "not a process handle")
        if h.obj.pid != call.pid:
            raise Fail(ERROR_ACCESS_DENIED, "the simulated host opens only the caller's own token")
        pid = h.obj.pid
    handle = svc.new_handle("token", TokenRef(pid, int(access)), call.conn.owner)
    return Reply(outs=[handle.id])


def _token(svc: Service, call: Call, hid: int, need: int) -> TokenRef:
    ref: TokenRef = _own_handle(svc, call, hid, ("token",), "not a token handle").obj
    if need and not ref.access & need:
        raise Fail(ERROR_ACCESS_DENIED, "the token handle lacks the access this needs")
    return ref


@api("advapi32", "AdjustTokenPrivileges", "qub", raw=True)
def adjust_token_privileges(svc: Service, call: Call, hid: int, disable_all: int, changes: Optional[bytes]) -> Reply:
    ref = _token(svc, call, hid, TOKEN_ADJUST_PRIVILEGES)
    data = changes or b""
    wanted = [(struct.unpack_from("<I", data, i)[0], struct.unpack_from("<I", data, i + 8)[0])
              for i in range(0, len(data) - 11, 12)]
    previous, all_assigned = svc.tokens.of(ref.pid).adjust(bool(disable_all), wanted)
    svc.leases.privileges_changed(ref.pid)
    blob = b"".join(struct.pack("<IiI", luid, 0, attributes) for luid, attributes in previous)
    return Reply(0 if all_assigned else ERROR_NOT_ALL_ASSIGNED, outs=[len(previous), blob])


@api("advapi32", "GetTokenInformation", "qu", raw=True)
def get_token_information(svc: Service, call: Call, hid: int, info_class: int) -> Reply:
    ref = _token(svc, call, hid, TOKEN_QUERY)
    token = svc.tokens.of(ref.pid)
    if info_class == TOKEN_ELEVATION_CLASS:
        blob = struct.pack("<I", int(token.elevated))
    elif info_class == TOKEN_ELEVATION_TYPE_CLASS:
        blob = struct.pack("<I", 2 if token.elevated else 3)  # TokenElevationTypeFull / Limited
    elif info_class == TOKEN_PRIVILEGES_CLASS:
        privileges = token.privilege_list()
        blob = struct.pack("<I", len(privileges)) + b"".join(struct.pack("<IiI", luid, 0, a) for luid, a in privileges)
    else:
        raise Fail(ERROR_INVALID_PARAMETER, f"token information class {info_class} is not simulated")
    return Reply(outs=[blob])


@api("advapi32", "CheckTokenMembership", "qb", raw=True)
def check_token_membership(svc: Service, call: Call, hid: int, sid: Optional[bytes]) -> Reply:
    pid = _token(svc, call, hid, TOKEN_QUERY).pid if hid else call.pid
    if not sid:
        raise Fail(ERROR_INVALID_PARAMETER, "no SID")
    token = svc.tokens.of(pid)
    member = bytes(sid) in token.groups
    if bytes(sid) == SID_ADMINISTRATORS and not token.elevated:
        member = False  # deny-only in a filtered (UAC) token
    return Reply(outs=[int(member)])
