"""The simulator daemon: the "vmcompute service" of the simulated host.

It listens on a Unix socket. Client DLLs (native/client.c) connect with a hello naming the DLL
and profile, then send calls; each call is dispatched to its handler in
:mod:`wincontainers.sim.handlers` (blocking ones on their own thread), and the reply, plus any
file descriptors (process stdio, consoles), goes back on the same socket together with
notifications and operation completions. Control connections (JSON) drive the test controls.

Like the real service it outlives its clients: containers keep running when the client process
exits, and the handles of a vanished client are closed for it.

Why one file: the wire protocol (hello, calls, replies with descriptors, events, completions) and
the dispatch that orders them on a connection are one state machine.
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import argparse
import fcntl
import json
import logging
import os
import select
import signal
import socket
import struct
import termios
import threading
import time
import traceback
from pathlib import Path
from typing import Any, Optional, Sequence

from wincontainers.sim.wire import dumps
from wincontainers.sim import ntfs, wire
from wincontainers.sim.faults import Fail
from wincontainers.sim.private import open_private, private_folder
from wincontainers.sim import sandbox
from wincontainers.sim.profiles import PROFILES
from wincontainers.sim.calls import HANDLERS, PENDING, Api, Call, Reply, close_fd
from wincontainers.sim.leases import JournalRing
from wincontainers.sim.service import Service

__all__ = ["Daemon", "main"]

log = logging.getLogger("wincontainers.sim.daemon")

E_NOTIMPL = 0x80004001
E_UNEXPECTED = 0x8000FFFF
E_ABORT = 0x80004004
E_ACCESSDENIED = 0x80070005
HCS_E_ACCESS_DENIED = 0x8037011B

_WIN32_GROUPS = frozenset({"kernel32", "advapi32"})
_OK = Reply()
#: kernel32 calls that look at files other processes may have just closed
_SEES_FILES = frozenset({
    "CreateFileW", "FindFirstFileExW", "GetFileAttributesW", "MoveFileExW", "DeleteFileW", "RemoveDirectoryW",
    "CreateHardLinkW", "CreateDirectoryW", "SetFileAttributesW",
})

#: the path arguments of kernel32 calls (for the leases: leases.py), and the calls that only read
_PATH_ARGS = {
    "CreateFileW": (0,), "FindFirstFileExW": (0,), "GetFileAttributesW": (0,), "MoveFileExW": (0, 1),
    "DeleteFileW": (0,), "RemoveDirectoryW": (0,), "CreateHardLinkW": (0, 1), "CreateSymbolicLinkW": (0,),
    "CreateDirectoryW": (0,), "SetFileAttributesW": (0,),
}
_READS = frozenset({"FindFirstFileExW", "GetFileAttributesW"})
#: what kernel32 tells one-way of its work in a leased folder
_JOURNAL = frozenset({"LeaseMkdir", "LeaseClose", "LeaseDelete"})
MAX_CONNECTIONS = 512  # open client connections (each has a thread); a process holds a few
_JOURNAL_NAP = 0.002  # seconds a lease's journal connection waits for more entries after a burst
#: HCS calls' arguments they only read (ImportLayer's source folder), and those they fill before
#: they return (ExportLayer's folder): see leases.py
_HCS_READS = {"ImportLayer": frozenset({2}), "HcsImportLayer": frozenset({1})}
_HCS_FILLS = {"ExportLayer": frozenset({2}), "HcsExportLayer": frozenset({1})}
_current = threading.local()

_GEN2_COMPLETIONS = {
    "HcsStartComputeSystem": "SystemStartCompleted",
    "HcsPauseComputeSystem": "SystemPauseCompleted",
    "HcsResumeComputeSystem": "SystemResumeCompleted",
}


def _group(dll: str) -> str:
    return dll.lower().removesuffix(".dll")


class Win32Session:
    """What kernel32 and advapi32 handles belong to: a client process, not one of its
    connections (each thread has its own). It ends, closing them, with its last connection."""

    gen = 2

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.handles: set[int] = set()
        self.connections = 0


class Connection:
    """One client connection (one simulated DLL instance in one process, or for kernel32 and
    advapi32 one thread of it)."""

    def __init__(self, daemon: "Daemon", sock: socket.socket) -> None:
        self.daemon = daemon
        self.service = daemon.service
        self.sock = sock
        self.send_lock = threading.Lock()
        self.dll = ""
        self.profile = ""
        self.pid = 0
        self.gen = 0
        self.handles: set[int] = set()
        self.ops: dict[int, dict[str, Any]] = {}
        self.ops_lock = threading.Lock()
        self.closed = False
        #: who owns the handles this connection opens: itself, or its process's Win32Session
        self.owner: Any = self
        # Barrier bookkeeping (see Daemon.barrier): bytes taken off the socket, bytes handled.
        self.io_lock = threading.Lock()
        self.progress = threading.Condition()
        self.consumed = 0
        self.done = 0
        self.in_barrier = False
        #: set by a barrier to end a lease journal's nap early (see serve)
        self.wake = threading.Event()
        #: a lease journal's ring (kernel32 asks for one: JournalRing), the bytes of it applied
        #: (under ``progress``), and the socket pair a barrier wakes its connection with (socket
        #: objects: once closed, a late ring fails rather than write into a reused descriptor)
        self.ring: Optional[JournalRing] = None
        self.ring_taken = 0
        self.ring_bell: Optional[tuple[socket.socket, socket.socket]] = None

    # -- sending ------------------------------------------------------------------------------

    def send(self, payload: bytes, fds: list[int] = ()) -> bool:  # type: ignore[assignment]
        with self.send_lock:
            if self.closed:
                return False
            try:
                wire.send_message(self.sock, payload, fds)
                return True
            except OSError:
                return False

    def send_event(self, kind: str, values: list[Any], fds: list[int] = ()) -> None:  # type: ignore[assignment]
        self.send(wire.encode_event(kind, values), list(fds))

    # -- gen3 operations ----------------------------------------------------------------------

    def open_op(self, op_id: int) -> None:
        with self.ops_lock:
            self.ops[op_id] = {"done": False}

    def close_op(self, op_id: int) -> None:
        with self.ops_lock:
            self.ops.pop(op_id, None)

    def cancel_op(self, op_id: int) -> None:
        # HCS keeps running the work and discards its result; the waiter learns E_ABORT.
        self.complete_op(op_id, E_ABORT, dumps({"Error": E_ABORT - (1 << 32), "ErrorMessage": "canceled"}),
                         None, [], None, None)

    def complete_op(
        self,
        op_id: int,
        hr: int,
        result: Optional[str],
        procinfo: Optional[int],
        fds: list[int],
        system: Optional[int],
        process: Optional[int],
    ) -> None:
        with self.ops_lock:
            op = self.ops.get(op_id)
            if op is None or op["done"]:
                op = None
            else:
                op["done"] = True
        try:
            if op is not None:
                hr = hr - (1 << 32) if hr & 0x80000000 else hr
                self.send_event("C", [op_id, hr, result, procinfo, system, process], fds)
        finally:
            for fd in fds:
                close_fd(fd)

    # -- serving --------------------------------------------------------------------------------

    def serve(self) -> None:
        burst: Optional[ntfs.CommitGroup] = None  # a lease's journal applied with one commit
        try:
            first = wire.recv_message(self.sock)
            if first is None:
                return
            payload, fds = first
            for fd in fds:
                close_fd(fd)
            if payload[:1] == b"J":
                self.serve_control(payload)
                return
            self.dll, self.profile, self.pid = wire.parse_hello(payload)
            if self.profile not in PROFILES or (self.daemon.profile and self.profile != self.daemon.profile):
                log.warning("refusing a %s client of profile %s: this host is %s", self.dll, self.profile,
                            self.daemon.profile)
                return
            self.service.networks(self.profile)  # the host's NAT exists before anyone asks for it
            group = _group(self.dll)
            self.gen = 3 if group in ("computecore", "computestorage", "computenetwork") else (
                1 if self.profile == "tp3" else 2
            )
            counted = self.daemon.register(self)
            poller = select.poll()
            poller.register(self.sock, select.POLLIN)
            receiver = wire.Receiver(self.sock)
            grouped = 0  # journal messages in the burst
            journaling = False  # a lease's journal connection (see leases.py)
            while True:
                if self.ring is not None and not receiver.buffered():
                    self.wait_with_ring(poller)
                if counted and not receiver.buffered():
                    # Barriers count what was taken off the socket: take it under the lock, once
                    # it is there. kernel32 calls come in bursts: look for the next one a little
                    # before sleeping (a wake-up costs more than the call on a virtual machine).
                    # Nobody waits for a lease's journal: after a burst its connection naps
                    # (a barrier wakes it), so the next entries pile up on the socket and are
                    # applied together, and the sender wakes nobody (a wake-up per entry cost
                    # the client more than the entry). When a nap finds nothing, it sleeps.
                    if journaling:
                        self.wake.wait(_JOURNAL_NAP)
                        self.wake.clear()
                    else:
                        deadline = time.perf_counter() + 0.0002
                        while not poller.poll(0) and time.perf_counter() < deadline:
                            pass
                    poller.poll()
                    with self.io_lock:
                        alive = receiver.fill()
                        self.consumed = receiver.received
                    if not alive:
                        break
                message = receiver.next()
                if message is None:
                    break
                payload = message
                req = wire.parse_request(payload) if payload[:1] in (b"Q", b"O") else None
                journal = req is not None and req.oneway and req.function in _JOURNAL
                journaling = journaling or journal
                if burst is not None and not journal:
                    burst.close()  # other calls may use stores through connections of their own
                    burst = None
                if journal and burst is None:
                    # A burst of a lease's journal is applied with one commit per store (a row or
                    # two per file); what was handled counts for barriers once it is committed.
                    burst, grouped = ntfs.CommitGroup(), 0
                if req is not None:
                    self.dispatch(req)
                if burst is not None:
                    grouped += 1
                    if grouped < 256 and receiver.buffered():
                        continue
                    burst.close()
                    burst = None
                if counted:
                    with self.progress:
                        self.done = receiver.consumed()
                        self.progress.notify_all()
        except OSError:
            pass
        except (ValueError, struct.error) as exc:  # wire.ProtocolError included: not our protocol
            log.warning("closing a connection (pid %s) that sent a bad message: %s", self.pid or "?", exc)
        finally:
            if burst is not None:
                burst.close()
            if self.ring is not None:
                try:  # what the process put in its ring before it ended, killed or not, counts
                    self.take_ring()
                except (ValueError, struct.error) as exc:
                    log.warning("pid %s: its journal ring is not readable: %s", self.pid or "?", exc)
            with self.progress:
                self.done = self.consumed = self.ring_taken = 1 << 62
                self.progress.notify_all()
            self.close()

    # -- a lease journal's ring -------------------------------------------------------------------

    def open_ring(self) -> JournalRing:
        """The ring of this connection, made once (its descriptor is sent, then closed)."""
        if self.ring is not None:
            raise ValueError("this connection has its journal ring already")
        self.ring_bell = socket.socketpair()
        for end in self.ring_bell:
            end.setblocking(False)
        self.ring = JournalRing()
        return self.ring

    def wait_with_ring(self, poller: Any) -> None:  # a select.poll (POSIX only)
        """Apply the ring's entries whenever rung (by the client: a message on the socket; by a
        barrier: the socket pair), until the socket has something to read."""
        assert self.ring_bell is not None
        bell = self.ring_bell[0]
        poller.register(bell, select.POLLIN)
        try:
            while True:
                self.take_ring()
                ready = {fd for fd, _ in poller.poll()}
                if bell.fileno() in ready:
                    try:
                        bell.recv(4096)
                    except BlockingIOError:
                        pass
                if self.sock.fileno() in ready:
                    return
        finally:
            poller.unregister(bell)

    def take_ring(self) -> None:
        """Apply what the ring holds, a commit per store per 256 entries; barriers count it then."""
        ring = self.ring
        assert ring is not None
        while True:
            entries, end = ring.take(256)
            if not entries:
                return
            group = ntfs.CommitGroup()
            try:
                for payload in entries:
                    req = wire.parse_request(payload) if payload[:1] == b"O" else None
                    if req is None or req.function not in _JOURNAL:
                        raise wire.ProtocolError("a journal ring holds only one-way journal entries")
                    self.dispatch(req)
            finally:
                group.close()
            self.service.leases.taken_from_ring(len(entries))
            ring.advance(end)
            with self.progress:
                self.ring_taken = end
                self.progress.notify_all()

    def ring_rung(self) -> None:
        """A barrier wants the ring taken (the socket pair wakes wait_with_ring)."""
        if self.ring_bell is not None:
            try:
                self.ring_bell[1].send(b"!")
            except OSError:  # full: it is awake already; closed: it has ended
                pass

    def close(self) -> None:
        with self.send_lock:
            self.closed = True
        owner = self.daemon.leave_session(self) if isinstance(self.owner, Win32Session) else self
        if owner is not None:
            self.service.leases.forget(owner)
            self.service.files.close_all(owner)
            for hid in sorted(owner.handles, reverse=True):
                self.service.close_handle(hid)
        with self.ops_lock:
            self.ops.clear()
        try:
            self.sock.close()
        except OSError:
            pass
        if self.ring_bell is not None:
            for end in self.ring_bell:
                end.close()
        if self.ring is not None:
            self.ring.close()
        self.daemon.forget(self)

    def dispatch(self, req: wire.Request) -> None:
        _current.conn = self
        group = _group(self.dll)
        handler = HANDLERS.get((group, req.function)) or HANDLERS.get(("any", req.function))
        win32 = group in _WIN32_GROUPS
        if win32 and handler is not None and not self.service.faults.rules:
            self.run_win32(handler, req)
            return
        if not win32:
            self.service.log_call(self.pid, req.function)
        if handler is None:
            if not req.oneway:
                self.reply(req, None, Reply(E_NOTIMPL, doc=None), [])
            return
        inputs, wants = handler.split(req.args)
        if not win32:
            self.service.log_documents(self.pid, req.function, inputs)
        held: list[Any] = []
        if self.service.leases:
            if win32:
                self.touch_leases(req)
            else:
                held = self.service.leases.touched_by_call(self._paths_of(handler, inputs), self.pid,
                                                           _HCS_READS.get(req.function, frozenset()),
                                                           _HCS_FILLS.get(req.function, frozenset()))
        if not req.oneway and (not win32 or req.function in _SEES_FILES):
            # What other connections sent before this call (a file closed one-way by kernel32,
            # say) must be done before it runs, as on Windows where CloseHandle is synchronous.
            self.daemon.barrier(self)
        call = Call(conn=self, function=req.function, wants=wants)
        if "o" in handler.fmt:
            call.op = int(req.args[handler.fmt.index("o")] or 0)
        fault = self.service.faults.match_call(req.function, self.dll, self.pid)
        if handler.blocking or (fault is not None and fault.delay > 0):
            threading.Thread(target=self.run, args=(handler, req, call, inputs, fault, held), daemon=True).start()
        else:
            self.run(handler, req, call, inputs, fault, held)

    def run_win32(self, handler: Api, req: wire.Request) -> None:
        """kernel32/advapi32 without fault rules: the call, its answer, nothing else (they come by
        the thousand during a layer import)."""
        if self.service.leases:
            self.touch_leases(req)
        if not req.oneway and req.function in _SEES_FILES:
            self.daemon.barrier(self)
        call = Call(conn=self, function=req.function, wants=[])
        try:
            reply = handler.func(self.service, call, *req.args) or _OK
        except Fail as f:
            reply = Reply(f.hresult)
        except Exception as exc:  # a bug in the simulator: a failure the caller sees, not a hang
            log.error("handler %s failed:\n%s", req.function, traceback.format_exc())
            reply = Reply(0x1F, doc=repr(exc))  # ERROR_GEN_FAILURE
        try:
            if not req.oneway:
                self.send(wire.encode_response(req.id, reply.hr, reply.outs), reply.fds)
        finally:
            for fd in reply.fds:
                close_fd(fd)

    def touch_leases(self, req: wire.Request) -> None:
        """A kernel32 call with paths: the leases it reaches are settled first (leases.py)."""
        hosts = []
        for index in _PATH_ARGS.get(req.function, ()):
            path = req.args[index] if index < len(req.args) else None
            if req.function == "FindFirstFileExW" and isinstance(path, str):
                # the folder listed: a pattern (``*``) is no name, and would touch nothing
                cut = max(path.rfind("\\"), path.rfind("/"))
                path = path[:cut] if cut > 0 else path
            try:
                base, comps, _stream = self.service.files.parse(path, allow_stream=True)
            except (Fail, IndexError, TypeError):
                continue
            hosts.append(base.rstrip(b"/") + b"/" + "/".join(comps).encode("utf-8", "surrogatepass"))
        if hosts:
            self.service.leases.touched(hosts, self.pid, read_only=req.function in _READS)

    def _paths_of(self, handler: Api, inputs: list[Any]) -> list[Any]:
        """An HCS call's arguments as paths: a DriverInfo and a layer id (gen2) make the layer's
        folder; the DriverInfo's home folder itself is not what the call works on."""
        values = list(inputs)
        if handler.fmt.startswith("ds") and len(values) >= 2:
            try:
                values.append(str(self.service.storage.layer_path(values[0], values[1])))
            except Exception:  # a bad DriverInfo: the handler will say so
                pass
        return [None if letter == "d" else v for letter, v in zip(handler.fmt, values)] + values[len(handler.fmt):]

    def run(self, handler: Api, req: wire.Request, call: Call, inputs: list[Any], fault: Any,
            held: Sequence[Any] = ()) -> None:
        reply: Optional[Reply] = None
        if handler.group not in _WIN32_GROUPS and handler.group != "any" and not req.oneway \
                and not handler.is_void and not self.service.tokens.elevated(self.pid):
            # HCS serves administrators only (hcs-api.md pitfall 13).
            hr = HCS_E_ACCESS_DENIED if self.gen == 3 and handler.group != "computenetwork" else E_ACCESSDENIED
            reply = Reply(hr, doc=_error_doc(hr, "the caller is not an elevated administrator"))
        if reply is None and fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.hresult is not None and not handler.is_void:
                message = f"{req.function} failed by the simulator's fault injection"
                if fault.mode == "async" and req.function in _GEN2_COMPLETIONS and self.gen == 2:
                    reply = self._async_failure(handler, call, inputs, fault.hresult, message)
                else:
                    reply = Reply(fault.hresult, doc=_error_doc(fault.hresult, message))
        if reply is None:
            try:
                reply = handler.func(self.service, call, *inputs) or Reply()
            except Fail as f:
                reply = Reply(f.hresult, doc=_error_doc(f.hresult, f.message))
            except Exception as exc:  # a bug in the simulator: report it like HCS would, keep serving
                log.error("handler %s failed:\n%s", req.function, traceback.format_exc())
                reply = Reply(E_UNEXPECTED, doc=_error_doc(E_UNEXPECTED, f"simulator error: {exc!r}"))
        if held:  # before the answer: the caller's next look into the folder must see what the call made
            self.service.leases.release(held)
        failed = reply.hr & 0x80000000 and reply.hr != PENDING
        if call.op is not None and failed and not call.completed:
            call.complete(reply.hr, reply.doc)
        if not req.oneway:
            self.reply(req, handler, reply, reply.fds)
        for fd in reply.fds:
            close_fd(fd)
        if reply.after is not None and not failed:
            try:
                reply.after()
            except Exception:
                log.error("completion of %s failed:\n%s", req.function, traceback.format_exc())

    def _async_failure(self, handler: Api, call: Call, inputs: list[Any], hr: int, message: str) -> Reply:
        target = self.service.handles.get(int(inputs[0] or 0))
        name = _GEN2_COMPLETIONS[call.function]
        doc = _error_doc(hr, message)

        def fail_later() -> None:
            if target is not None:
                self.service.notify([target], name, hr, doc)

        return Reply(PENDING, after=fail_later)

    def reply(self, req: wire.Request, handler: Optional[Api], reply: Reply, fds: list[int]) -> None:
        outs = list(reply.outs)
        if handler is not None and not handler.raw:
            n = handler.out_count
            if reply.hr & 0x80000000 and reply.hr != PENDING:
                outs = [None] * n
            if handler.doc:
                outs = (outs + [None] * n)[: n - 1] + [reply.doc]
            else:
                outs = (outs + [None] * n)[:n]
        self.send(wire.encode_response(req.id, reply.hr, outs), fds)

    # -- control --------------------------------------------------------------------------------

    def serve_control(self, first: bytes) -> None:
        payload: Optional[bytes] = first
        while payload is not None:
            request: Any = None
            try:
                request = json.loads(payload[1:].decode("utf-8"))
                if not isinstance(request, dict) or not isinstance(request.get("op"), str):
                    raise ValueError("a control message is a JSON object with an 'op' string")
                result = self.daemon.control(request)
                answer = {"ok": True, "result": result}
            except Exception as exc:
                answer = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            self.send(b"J" + dumps(answer).encode("utf-8"))
            if isinstance(request, dict) and request.get("op") == "shutdown":
                self.daemon.stop()
                return
            msg = wire.recv_message(self.sock)
            if msg is None:
                return
            payload, fds = msg
            for fd in fds:
                close_fd(fd)


def _error_doc(hr: int, message: str) -> str:
    signed = hr - (1 << 32) if hr & 0x80000000 else hr
    return dumps({"Error": signed, "ErrorMessage": message, "ErrorEvents": [{"Message": message}]})


class Daemon:
    """Accept loop plus the control API."""

    def __init__(self, root: Path, socket_path: Path, *, profile: str = "", elevated: bool = True) -> None:
        self.root = root
        self.socket_path = socket_path
        self.profile = profile
        self.service = Service(root, socket_path, elevated=elevated)
        if profile in PROFILES:
            self.service.version = PROFILES[profile].version
        self.connections: set[Connection] = set()
        self.refused = 0  # connections refused at the limit (MAX_CONNECTIONS)
        self.win32_connections: set[Connection] = set()
        self.sessions: dict[int, Win32Session] = {}
        self.lock = threading.Lock()
        self.listener: Optional[socket.socket] = None
        self.stopping = threading.Event()
        self.started = time.time()
        self.service.leases.barrier = lambda: self.barrier(getattr(_current, "conn", None))

    def forget(self, conn: Connection) -> None:
        with self.lock:
            self.connections.discard(conn)
            self.win32_connections.discard(conn)
            others = any(c.pid == conn.pid for c in self.connections)
        if not others and conn.pid:
            self.service.tokens.forget(conn.pid)

    def register(self, conn: Connection) -> bool:
        """A client said hello: kernel32 and advapi32 connections join their process's session,
        and kernel32 ones take part in barriers (returns whether)."""
        group = _group(conn.dll)
        if group not in _WIN32_GROUPS:
            return False
        with self.lock:
            session = self.sessions.get(conn.pid)
            if session is None:
                session = self.sessions[conn.pid] = Win32Session(conn.pid)
            session.connections += 1
            conn.owner = session
            if group == "kernel32":
                self.win32_connections.add(conn)
        return group == "kernel32"

    def leave_session(self, conn: Connection) -> Optional[Win32Session]:
        """``conn`` closed: its session when that was the process's last connection (to be
        closed), else None."""
        with self.lock:
            session = conn.owner
            session.connections -= 1
            if session.connections > 0:
                return None
            if self.sessions.get(conn.pid) is session:
                del self.sessions[conn.pid]
            return session  # type: ignore[no-any-return]

    def barrier(self, caller: Optional[Connection], timeout: float = 2.0) -> None:
        """Wait until every other kernel32 connection has handled what it had received so far.

        A client's one-way messages (a file's CloseHandle with the metadata it wrote) are on
        their socket before the client's next call leaves on another socket, so taking what
        was queued at this moment is enough. A connection itself waiting in a barrier is
        skipped (two of them would wait for each other).
        """
        with self.lock:
            others = [c for c in self.win32_connections if c is not caller and not c.in_barrier]
        if not others:
            return
        if caller is not None:
            caller.in_barrier = True
        try:
            deadline = time.monotonic() + timeout
            for conn in others:
                conn.wake.set()
                # (what the client says it wrote: no more than the ring holds counts)
                ring = min(conn.ring.written(), conn.ring_taken + JournalRing.DATA) if conn.ring is not None else 0
                if ring > conn.ring_taken:
                    conn.ring_rung()
                with conn.io_lock:
                    try:
                        queued = struct.unpack("i", fcntl.ioctl(conn.sock.fileno(), termios.FIONREAD, b"\0" * 4))[0]
                    except (OSError, ValueError):  # closed meanwhile (ValueError: fd already -1)
                        continue
                    target = conn.consumed + queued
                with conn.progress:
                    while conn.done < target or conn.ring_taken < ring:
                        left = deadline - time.monotonic()
                        if left <= 0 or conn.in_barrier or conn.closed:
                            break
                        conn.progress.wait(left)
        finally:
            if caller is not None:
                caller.in_barrier = False

    def serve_forever(self) -> None:
        private_folder(self.socket_path.parent, "simulated host's socket folder")
        try:
            self.socket_path.unlink()
        except FileNotFoundError:
            pass
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.socket_path))
        os.chmod(self.socket_path, 0o600)
        listener.listen(128)
        self.listener = listener
        while not self.stopping.is_set():
            try:
                sock, _ = listener.accept()
            except OSError:
                break
            with self.lock:
                full = len(self.connections) >= MAX_CONNECTIONS
            if full:  # a thread each: refused rather than let a runaway client exhaust the service
                if not self.refused:
                    log.warning("refusing connections: %d are open (the limit)", MAX_CONNECTIONS)
                self.refused += 1
                sock.close()
                continue
            conn = Connection(self, sock)
            with self.lock:
                self.connections.add(conn)
            threading.Thread(target=conn.serve, name="wcsim-conn", daemon=True).start()

    def stop(self) -> None:
        if self.stopping.is_set():
            return
        self.stopping.set()
        self.service.shutdown_all()
        if self.listener is not None:
            try:
                self.listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.listener.close()
        with self.lock:
            conns = list(self.connections)
        for conn in conns:
            try:
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        try:
            self.socket_path.unlink()
        except FileNotFoundError:
            pass

    def control(self, request: dict[str, Any]) -> Any:
        op = request.get("op")
        svc = self.service
        if op == "ping":
            return {"pid": os.getpid(), "root": str(self.root), "started": self.started,
                    "clients": len(self.connections), "profile": self.profile,
                    "confinement": sandbox.confinement(),
                    "user": "admin" if svc.tokens.default_elevated else "standard"}
        if op == "shutdown":
            return {"pid": os.getpid()}
        if op == "inject":
            return svc.faults.add_fault(
                request["function"], request.get("hresult"), request.get("delay", 0.0), request.get("nth", 1),
                request.get("count", 1), request.get("pid"), request.get("dll"), request.get("mode", "return"),
            )
        if op == "drop":
            return svc.faults.add_drop(request["notification"], request.get("nth", 1), request.get("count", 1),
                                       request.get("pid"))
        if op == "clear_faults":
            svc.faults.clear()
            return None
        if op == "faults":
            return svc.faults.to_json()
        if op == "ignore_shutdown":
            target = str(request.get("system", "*")).lower()
            with svc.lock:
                for system in svc.systems.values():
                    if target in ("*", system.id.lower()):
                        system.ignore_shutdown = bool(request.get("enabled", True))
            return None
        if op == "hyperv":
            with svc.lock:
                if request.get("installed") is not None:
                    svc.hyperv_installed = bool(request["installed"])
                if request.get("boot_delay") is not None:
                    svc.vm_boot_delay = max(0.0, float(request["boot_delay"]))
                return {"installed": svc.hyperv_installed, "boot_delay": svc.vm_boot_delay}
        if op == "leases":
            self.barrier(None)  # the journal sent so far counts
            if request.get("enabled") is not None:
                self.service.leases.enabled = bool(request["enabled"])
            return self.service.leases.stats()
        if op == "handles":
            return svc.open_handles(request.get("pid"))
        if op == "objects":
            if request.get("profile") in PROFILES:  # as a host of that profile sees them: its NAT included
                svc.networks(str(request["profile"]))
            return svc.objects()
        if op == "calls":
            pid = request.get("pid")
            with svc.lock:
                calls = list(svc.call_log.get(pid, [])) if pid is not None else {
                    str(k): list(v) for k, v in svc.call_log.items()
                }
                if request.get("clear") and pid is not None:
                    svc.call_log.pop(pid, None)
            return calls
        if op == "documents":
            pid = int(request.get("pid") or 0)
            with svc.lock:
                sent = list(svc.document_log.get(pid, []))
                if request.get("clear"):
                    svc.document_log.pop(pid, None)
            return sent
        if op == "misuse":
            with svc.lock:
                return {str(k): list(v) for k, v in svc.misuse.items()}
        if op == "processes":
            found = svc.systems.get(str(request.get("system", "")).lower())
            if found is None:
                raise KeyError(f"no compute system {request.get('system')!r}")
            return found.process_list()
        if op == "network":
            return svc.network_of(str(request.get("system", "")))
        if op == "set_user":
            svc.tokens.set_user(int(request["pid"]), request.get("user", "admin") == "admin")
            return None
        if op == "foreign":
            svc.tokens.mark_foreign(int(request["pid"]), bool(request.get("foreign", True)))
            return None
        raise ValueError(f"unknown control operation {op!r}")


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m wincontainers.sim.daemon", description="simulated vmcompute service")
    ap.add_argument("--root", required=True, type=Path)
    ap.add_argument("--socket", required=True, type=Path)
    ap.add_argument("--profile", default="", help="the Windows build this host is (clients of others are refused)")
    ap.add_argument("--user", choices=("admin", "standard"), default="admin",
                    help="whether client processes run as an elevated administrator or a standard user")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    daemon = Daemon(args.root.resolve(), args.socket, profile=args.profile, elevated=args.user == "admin")

    def on_signal(signum: int, frame: Any) -> None:
        threading.Thread(target=daemon.stop, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    pid_file = args.root / "daemon" / "daemon.pid"
    private_folder(args.root, "simulated host's root")
    private_folder(pid_file.parent, "simulated host's daemon folder")
    private_folder(Path(args.socket).parent, "simulated host's socket folder")
    with open_private(pid_file, "wb") as f:
        f.write(str(os.getpid()).encode())
    log.info("simulated HCS service for %s listening on %s", args.root, args.socket)
    try:
        daemon.serve_forever()
    finally:
        daemon.stop()
        try:
            if pid_file.read_text().strip() == str(os.getpid()):
                pid_file.unlink()
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
