"""Folder leases: a process's kernel32 works alone in a folder it has just made.

A layer import writes tens of thousands of small files into a folder of its own (a staging
folder, or the layer written in place). Asking the daemon to create each one costs a round trip
of the socket and of the Python handler, several times what the file costs on disk. Yet while
nobody else has looked into that folder, every answer is known in advance: a new name in it is
free unless this process made it, and nothing but this process's own handles can conflict.

So a folder made with CreateDirectoryW is leased to the process that made it (when its kernel32
asks, for a path it can match). Inside it the process's kernel32 creates folders and files,
opens, lists and deletes what it made itself, on the host, then tells the daemon one-way, in
order, in its journal (a ring of shared memory: JournalRing): what it made or deleted, and at
CloseHandle what the handle changed. Anything else inside the folder (an unusual name, another
disposition, a file whose DACL would have to be read) goes to the daemon as before.

The lease ends the moment anybody else touches the folder: another process's kernel32, this
process asking the daemon for anything but a read, an HCS call naming the folder (ImportLayer
only reads its source folder: the lease survives it), or a path through a reparse point. Before
that call runs, the daemon settles the lease on a page of memory both sides map:

* the page's state goes to SETTLING: kernel32 starts no further local call (it waits for the
  verdict), and the daemon waits until the page's busy count, raised by kernel32 around each
  local call, is zero;
* the daemon then waits for the journal (the barrier every file call already uses), so what
  the process did is applied, exactly as if each call had come to it;
* handles kernel32 still holds open locally are adopted from the page's slots, with their
  share modes: from now on they conflict, close and are cleaned up like any other;
* the state becomes REVOKED (or ACTIVE again after a read that keeps the lease).

A lease is a private arrangement of the simulator: what any caller sees (names, errors, share
violations, metadata) is what it would see without one.
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import json
import logging
import mmap
import os
import stat
import struct
import threading
import time
from typing import Any, Callable, Iterable, Optional

import attrs

from .wire import ProtocolError

__all__ = ["JournalRing", "Lease", "Leases", "PAGE_SIZE", "SLOTS"]

log = logging.getLogger("wincontainers.sim.leases")

# The page both sides map (kernel32.c declares the same layout).
PAGE_SIZE = 8192
_HEAD = struct.Struct("<IIII")  # state, busy, privileges, generation (of what the folder holds)
_NAME_LENGTH = struct.Struct("<H")  # a listing's entry: its name's length, its name (ASCII, '\\' between names)
_ENTRY = struct.Struct("<BIqqqqBB")  # a listing's entry after its name: dir, attributes, times, SD, reparse
_SLOT = struct.Struct("<QIIIII")  # handle id, access, share, flags, directory, length of rel
SLOT_SIZE = 512
SLOTS = 15
_SLOT_REL = SLOT_SIZE - _SLOT.size
ACTIVE, SETTLING, REVOKED = 0, 1, 2

MAX_PER_PROCESS = 16


class JournalRing:
    """The memory a process's kernel32 puts its journal entries in (kernel32.c: the ring).

    A lease's journal is one-way: sending each entry on the socket cost the client a system
    call per file, twice per file of a diff import (its close, then its deletion with the
    staging folder). In the ring an entry costs a copy. The daemon takes the entries at every
    barrier, when the client rings (once per 64 KiB, so the ring seldom fills), and when the
    connection ends, so an idle or killed client loses nothing it had put there.

    The head holds two counters of bytes: written (by the client, published after the entry)
    and taken (by the daemon, after applying). The client is not trusted: a head or an entry
    that does not fit is a protocol error and ends the connection.
    """

    HEAD = 64
    DATA = 1 << 20
    SIZE = HEAD + DATA
    _COUNTERS = struct.Struct("<QQ")

    def __init__(self) -> None:
        fd = os.memfd_create("wcsim-journal", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, self.SIZE)
            self.memory = mmap.mmap(fd, self.SIZE)
        except BaseException:
            os.close(fd)
            raise
        #: the descriptor to send to the client (the sender closes it)
        self.fd = fd
        self.taken = 0

    def written(self) -> int:
        """What the client says it has put in (unchecked: see take); what was taken once the
        ring is closed (a barrier may ask as its connection ends)."""
        try:
            return int(self._COUNTERS.unpack_from(self.memory, 0)[0])
        except ValueError:  # closed
            return self.taken

    def take(self, limit: int) -> tuple[list[bytes], int]:
        """Up to ``limit`` whole entries after what was taken, and where they end (call
        ``advance`` with it once they are applied)."""
        written, at = self.written(), self.taken
        if not at <= written <= at + self.DATA:
            raise ProtocolError(f"a journal ring says {written} bytes were written, {at} taken")
        entries: list[bytes] = []
        while at < written and len(entries) < limit:
            (size,) = struct.unpack("<I", self._read(at, 4)) if written - at >= 4 else (1 << 32,)
            if 4 + size > min(written - at, self.DATA // 2):
                raise ProtocolError(f"a journal ring's entry of {size} bytes does not fit it")
            entries.append(self._read(at + 4, size))
            at += 4 + size
        return entries, at

    def advance(self, to: int) -> None:
        self.taken = to
        struct.pack_into("<Q", self.memory, 8, to)

    def close(self) -> None:
        self.memory.close()

    def _read(self, at: int, n: int) -> bytes:
        start = self.HEAD + at % self.DATA
        first = min(n, self.SIZE - start)
        data = self.memory[start:start + first]
        return data if first == n else data + self.memory[self.HEAD:self.HEAD + n - first]


@attrs.define(eq=False)
class Lease:
    id: int
    pid: int
    owner: Any
    host: bytes
    folded: bytes  # ``host`` in lower case, for comparisons (Windows names ignore case)
    page: mmap.mmap
    lock: threading.Lock = attrs.field(factory=threading.Lock)
    ended: bool = False

    def set_state(self, state: int) -> None:
        struct.pack_into("<I", self.page, 0, state)

    def busy(self) -> int:
        return int(_HEAD.unpack_from(self.page, 0)[1])

    def generation(self) -> int:
        return int(_HEAD.unpack_from(self.page, 0)[3])

    def set_generation(self, generation: int) -> None:
        struct.pack_into("<I", self.page, 12, generation & 0xFFFFFFFF)

    def slots(self) -> Iterable[tuple[int, int, int, int, bool, str]]:
        """(id, access, share, flags, directory, rel) of the handles kernel32 holds open here
        (kernel32's own ids: bit 46, the lease id, a counter; the daemon's never reach bit 46)."""
        for i in range(SLOTS):
            at = _HEAD.size + i * SLOT_SIZE
            hid, access, share, flags, directory, length = _SLOT.unpack_from(self.page, at)
            if hid and length <= _SLOT_REL:
                rel = bytes(self.page[at + _SLOT.size:at + _SLOT.size + length]).decode("ascii", "replace")
                yield hid, access, share, flags, bool(directory), rel

    def path_of(self, rel: str) -> bytes:
        return self.host + b"/" + rel.replace("\\", "/").encode("ascii")


def _fold(path: bytes) -> bytes:
    return path.rstrip(b"/").lower()


def _overlaps(a: bytes, b: bytes) -> bool:
    """Whether one of two folded host paths is the other or lies below it."""
    return a == b or a.startswith(b + b"/") or b.startswith(a + b"/")


class Leases:
    """The leases of one simulated host. Thread-safe."""

    def __init__(self, privileges_of: Callable[[int], int]) -> None:
        self._privileges_of = privileges_of
        self.lock = threading.Lock()
        self._by_id: dict[int, Lease] = {}
        self._next = 1
        #: grants on (a control can stop them, to compare what callers see with and without)
        self.enabled = True
        #: what happened: granted, settled (each time the daemon caught up), adopted (handles),
        #: journal (entries applied), ring (those of them taken from a JournalRing), listings
        self.counts = dict.fromkeys(("granted", "settled", "adopted", "journal", "ring", "listings"), 0)
        #: waits until the other kernel32 connections have handled what they had sent (set by
        #: the daemon: the journal of a lease is one of them)
        self.barrier: Callable[[], None] = lambda: None
        #: registers a handle kernel32 opened locally (set by the service: WinFs.adopt)
        self.adopt: Callable[[Lease, int, int, int, int, bool, str], None] = lambda *a: None

    def __bool__(self) -> bool:
        return bool(self._by_id)

    def get(self, lease_id: int, pid: int) -> Optional[Lease]:
        with self.lock:
            lease = self._by_id.get(int(lease_id))
        return lease if lease is not None and lease.pid == pid and not lease.ended else None

    # -- granting -------------------------------------------------------------------------------

    def grant(self, pid: int, owner: Any, host: bytes) -> Optional[tuple[int, int]]:
        """A lease on the new folder ``host`` for ``pid``: (lease id, descriptor of its page), or
        None (one lease inside or around another, or too many for one process)."""
        folded = _fold(host)
        with self.lock:
            mine = sum(1 for lease in self._by_id.values() if lease.pid == pid)
            if not self.enabled or mine >= MAX_PER_PROCESS or any(_overlaps(folded, lease.folded) for lease in self._by_id.values()):
                return None
            lease_id = self._next
            self._next += 1
        fd = os.memfd_create("wcsim-lease", os.MFD_CLOEXEC)
        try:
            os.ftruncate(fd, PAGE_SIZE)
            page = mmap.mmap(fd, PAGE_SIZE)
        except BaseException:
            os.close(fd)
            raise
        _HEAD.pack_into(page, 0, ACTIVE, 0, self._privileges_of(pid), 0)
        lease = Lease(lease_id, pid, owner, host.rstrip(b"/"), folded, page)
        with self.lock:
            self._by_id[lease_id] = lease
            self.counts["granted"] += 1  # under the lock already
        log.debug("lease %d: %s for pid %d", lease_id, host, pid)
        return lease_id, fd

    def journaled(self) -> None:
        self._count("journal")

    def taken_from_ring(self, entries: int) -> None:
        self._count("ring", entries)

    def _count(self, what: str, n: int = 1) -> None:
        with self.lock:
            self.counts[what] += n

    def stats(self) -> dict[str, Any]:
        """The counts, whether grants are on, and the leases held now."""
        with self.lock:
            active = [{"id": lease.id, "pid": lease.pid, "folder": os.fsdecode(lease.host)}
                      for lease in self._by_id.values()]
        return {**self.counts, "enabled": self.enabled, "active": active}

    def privileges_changed(self, pid: int) -> None:
        """The token of ``pid`` changed: its leases' pages show the new privileges."""
        with self.lock:
            mine = [lease for lease in self._by_id.values() if lease.pid == pid]
        bits = self._privileges_of(pid)
        for lease in mine:
            with lease.lock:
                if not lease.ended:  # an ended lease's page is unmapped
                    struct.pack_into("<I", lease.page, 8, bits)

    # -- ending ---------------------------------------------------------------------------------

    def touched(self, hosts: Iterable[bytes], pid: Optional[int], *, read_only: bool = False,
                keeps: bool = False) -> None:
        """Someone is about to use ``hosts``: settle the leases they fall in (or around).

        ``pid`` None is the daemon itself (an HCS call, a path through a link). A read by the
        lease's own process needs nothing (what it has sent is applied by the barrier every
        file call waits for); ``keeps``: a read by HCS (ImportLayer's source), after which the
        lease goes on. Anything else ends the lease.
        """
        if not self._by_id:
            return
        for lease in self._meeting([_fold(h) for h in hosts if h]):
            if read_only and pid == lease.pid:
                continue
            self.settle(lease, keep=keeps)

    def touched_by_call(self, inputs: list[Any], pid: int, reads: frozenset[int],
                        writes: frozenset[int]) -> list[Lease]:
        """An HCS call of process ``pid``: every path among its arguments (JSON documents
        included) settles the leases it meets. Arguments in ``reads`` are only read by the call
        (the lease goes on); a lease of ``pid`` met by an argument in ``writes``, which the call
        fills before it returns (ExportLayer's folder), is held through the call: the caller
        gives it back with :meth:`release`, and kernel32 then learns what the folder holds."""
        held: list[Lease] = []
        if not self._by_id:
            return held
        for index, value in enumerate(inputs):
            for lease in self._meeting([_fold(p) for p in _paths_in(value)]):
                if index in writes and lease.pid == pid:
                    if self.settle(lease, keep=True, hold=True):
                        held.append(lease)
                else:
                    self.settle(lease, keep=index in reads)
        return held

    def _meeting(self, folded: list[bytes]) -> list[Lease]:
        """The leases whose folders are, hold or lie in one of the ``folded`` paths."""
        with self.lock:
            return [lease for lease in self._by_id.values() if any(_overlaps(f, lease.folded) for f in folded)]

    def release(self, held: Iterable[Lease]) -> None:
        """The call that held these leases is over: what their folders hold is new to kernel32."""
        for lease in held:
            with lease.lock:
                if not lease.ended:
                    lease.set_generation(lease.generation() + 1)
                    lease.set_state(ACTIVE)

    def settle(self, lease: Lease, *, keep: bool = False, hold: bool = False) -> bool:
        """Bring the daemon up to date with ``lease``; end it unless ``keep`` (with ``hold``, it
        stays SETTLING until :meth:`release`). Returns whether the lease goes on."""
        with lease.lock:
            if lease.ended:
                return False
            lease.set_state(SETTLING)
            self._count("settled")
            # kernel32 raises busy, then reads the state: once the state is visible to it (a
            # store reaches the other CPU in nanoseconds), a call that missed it shows as busy.
            time.sleep(0.0002)
            deadline = time.monotonic() + 10.0
            while lease.busy() and time.monotonic() < deadline:
                time.sleep(0.00005)
            if lease.busy():
                log.warning("lease %d: kernel32 of pid %d stayed busy; ending it anyway", lease.id, lease.pid)
            self.barrier()
            if keep:
                if not hold:
                    lease.set_state(ACTIVE)
                return True
            self._adopt_and_end(lease)
            return False

    def listing(self, lease: Lease, describe: Callable[[bytes, os.stat_result, Any], tuple[int, Any, Any]],
                metadata: Callable[[bytes], dict[bytes, Any]],
                stored_only: Callable[[bool, Any], Optional[tuple[int, Any, Any]]]) -> Optional[tuple[int, bytes]]:
        """What the leased folder holds, for kernel32 to know it again after a call held the
        lease: (generation, packed entries), or None (the lease ended: a name kernel32 cannot
        handle, or the folder is gone). ``describe`` gives what Windows shows of an entry from
        its lstat and stored metadata; ``stored_only`` the same without a stat, where the store
        holds all it needs (what an export wrote: a stat each was most of a listing's time)."""
        if not self.settle(lease, keep=True, hold=True):
            return None
        try:
            out = bytearray()
            stored = metadata(lease.host)
            skip = len(lease.host) + 1
            for host, directory, link in _walk(lease.host):
                rel = host[skip:]
                if not rel.isascii():  # kernel32 keeps ASCII names only
                    self._abandon(lease)
                    return None
                meta = stored.get(rel.lower())  # ASCII: bytes fold as the store's keys do
                shown = None if link else stored_only(directory, meta)
                if shown is None:
                    st = os.lstat(host)
                    directory = stat.S_ISDIR(st.st_mode)
                    shown = describe(host, st, meta)
                attributes, times, reparse = shown
                out += _NAME_LENGTH.pack(len(rel)) + rel.replace(b"/", b"\\")
                out += _ENTRY.pack(int(directory), attributes, *times,
                                   int(bool(meta is not None and meta.security)), int(reparse is not None))
        except OSError:
            self._abandon(lease)
            return None
        with lease.lock:
            if lease.ended:
                return None
            lease.set_state(ACTIVE)
            self._count("listings")
            return lease.generation(), bytes(out)

    def _abandon(self, lease: Lease) -> None:
        with lease.lock:
            if not lease.ended:
                self._adopt_and_end(lease)

    def _adopt_and_end(self, lease: Lease) -> None:
        """The handles kernel32 holds open in the lease become the daemon's; the lease ends."""
        for hid, access, share, flags, directory, rel in list(lease.slots()):
            try:
                self.adopt(lease, hid, access, share, flags, directory, rel)
                self._count("adopted")
            except OSError as exc:
                log.info("lease %d: handle %x on %s is gone: %s", lease.id, hid, rel, exc)
        self._end(lease)

    def end(self, lease: Lease) -> None:
        """The leased folder or its holder is gone: the lease ends with nothing to settle."""
        with lease.lock:
            if not lease.ended:
                self._end(lease)

    def _end(self, lease: Lease) -> None:
        lease.set_state(REVOKED)
        lease.ended = True
        with self.lock:
            self._by_id.pop(lease.id, None)
        lease.page.close()  # kernel32 keeps its own mapping until its last local handle closes
        log.debug("lease %d ended", lease.id)

    def forget(self, owner: Any) -> None:
        """The process that held leases is gone: they end (nothing is left to settle)."""
        with self.lock:
            mine = [lease for lease in self._by_id.values() if lease.owner is owner]
        for lease in mine:
            self.end(lease)


def _paths_in(value: Any) -> Iterable[bytes]:
    """Host paths among an HCS call's arguments: absolute paths, alone or in a JSON document."""
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("{", "["):
            try:
                yield from _paths_in(json.loads(text))
            except ValueError:
                pass
            return
        if text.startswith("\\\\?\\"):
            text = text[4:]
        if text.startswith("/"):
            yield os.fsencode(os.path.normpath(text))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _paths_in(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _paths_in(item)


def _walk(root: bytes) -> Iterable[tuple[bytes, bool, bool]]:
    """Every entry below ``root`` (host path, a folder?, a host link?) in ``os.walk``'s order,
    top down: a folder's subfolders (sorted; links to folders among them, not entered), then
    its files (sorted), then each subfolder's in turn. One scandir per folder and no stat: the
    kinds come with the names."""
    pending = [root]
    while pending:
        top = pending.pop()
        dirs: list[tuple[bytes, bytes, bool, bool]] = []
        files: list[tuple[bytes, bytes, bool]] = []
        with os.scandir(top) as it:
            for entry in it:
                if entry.name.startswith(b".wcsim-"):
                    continue
                link = entry.is_symlink()
                try:
                    grouped_as_dir = entry.is_dir()  # as os.walk groups them: through links
                except OSError:
                    grouped_as_dir = False
                if grouped_as_dir:
                    dirs.append((entry.name, entry.path, not link, link))
                else:
                    files.append((entry.name, entry.path, link))
        dirs.sort()
        files.sort()
        for _name, path, real, link in dirs:
            yield path, real, link
        for _name, path, link in files:
            yield path, False, link
        pending.extend(path for _name, path, real, _link in reversed(dirs) if real)
