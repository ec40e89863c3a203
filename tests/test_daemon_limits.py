"""The simulator's service bounds what a client may ask: message size, connections, bad input."""

from __future__ import annotations

import json
import mmap
import os
import socket
import struct
import time
from pathlib import Path
from typing import Iterator

import pytest

from wincontainers.errors import HcsUnavailable
from tests.conftest import SimulatedHost, skip_module_without_simulator

skip_module_without_simulator()
pytestmark = pytest.mark.simulator("the simulator's own service limits")

from wincontainers.sim import wire
from wincontainers.sim.daemon import MAX_CONNECTIONS
from wincontainers.sim.leases import JournalRing


@pytest.fixture
def lone_sim(tmp_path: Path) -> Iterator[SimulatedHost]:
    """A host of its own: these tests look at its log and its memory."""
    sim = SimulatedHost("ws2019", tmp_path / "host").start()
    yield sim
    sim.stop()


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def _connect(sim: SimulatedHost) -> socket.socket:

    for _ in range(1000):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(10)
        try:
            sock.connect(str(sim.socket_path))
            return sock
        except BlockingIOError:  # the listen backlog is full: the service is still accepting
            sock.close()
            time.sleep(0.01)
    raise TimeoutError("the service accepts no connection")


def _hung_up(sock: socket.socket) -> bool:
    """Whether the service closed this connection without a word. Closed with what the client
    sent after the fault still unread (the ring is read before its bell), the close is a reset."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def _log(sim: SimulatedHost) -> str:
    return (sim.root / "daemon" / "daemon.log").read_text(errors="replace")


def test_a_huge_length_prefix_is_cut_off_not_buffered(lone_sim: SimulatedHost) -> None:
    pid = int(lone_sim.control({"op": "ping"})["pid"])
    before = _rss_kib(pid)
    for first in (b"", b"Q"):  # as the first message, and after a hello-less start
        sock = _connect(lone_sim)
        sent = 0
        with pytest.raises(OSError):  # the service hangs up long before 400 MiB
            sock.sendall(struct.pack("<I", 0xFFFFFFFF) + first)
            block = b"\0" * (1 << 20)
            for _ in range(400):
                sock.sendall(block)
                sent += len(block)
            sock.recv(1)
            if not sock.recv(1):
                raise ConnectionResetError("closed")
        sock.close()
        assert sent < 200 << 20
    assert _rss_kib(pid) - before < 64 << 10
    assert lone_sim.control({"op": "ping"})["pid"] == pid  # still serving
    assert "Traceback" not in _log(lone_sim)


def test_bad_control_messages_get_an_error_reply(lone_sim: SimulatedHost) -> None:
    for body in (b"not json", b"[]", b'{"op": 5}', b'{"op": "inject"}', b"\xff\xfe"):
        sock = _connect(lone_sim)
        try:
            wire.send_message(sock, b"J" + body)
            reply = wire.recv_message(sock)
        finally:
            sock.close()
        assert reply is not None, body
        answer = json.loads(reply[0][1:])
        assert answer["ok"] is False and answer["error"], (body, answer)
    assert lone_sim.control({"op": "ping"})["pid"]
    assert "Traceback" not in _log(lone_sim)


def test_a_garbage_request_closes_only_its_connection(lone_sim: SimulatedHost) -> None:
    sock = _connect(lone_sim)
    try:
        wire.send_message(sock, b"Hgarbage")
        assert _hung_up(sock)
    finally:
        sock.close()
    assert lone_sim.control({"op": "ping"})["pid"]
    assert "Traceback" not in _log(lone_sim)


def test_connections_over_the_limit_are_refused_then_served_again(lone_sim: SimulatedHost) -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < MAX_CONNECTIONS + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, MAX_CONNECTIONS + 256), hard))
    held = [_connect(lone_sim) for _ in range(MAX_CONNECTIONS)]
    extra = _connect(lone_sim)
    try:
        try:
            got = extra.recv(1)
        except ConnectionResetError:
            got = b""
        assert got == b"", "the service hangs up on a connection over the limit"
        with pytest.raises((OSError, HcsUnavailable)):  # a control connection is one more
            lone_sim.control({"op": "ping"})
    finally:
        extra.close()
        for sock in held:
            sock.close()

    deadline = time.monotonic() + 10
    while True:
        try:
            assert lone_sim.control({"op": "ping"})["pid"]
            break
        except Exception:  # noqa: BLE001 - the closed connections are still being let go
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    assert "refusing connections" in _log(lone_sim)


def _journal_connection(sim: SimulatedHost) -> tuple[socket.socket, mmap.mmap]:
    """A raw kernel32 connection that asked for its journal ring, and the ring's memory."""
    sock = _connect(sim)
    wire.send_message(sock, b"H" + b"".join(wire.encode_value(v) for v in ("kernel32", sim.profile.name, os.getpid())))
    name = b"JournalRing"
    wire.send_message(sock, b"Q" + struct.pack("<QH", 1, len(name)) + name + struct.pack("<H", 0))
    answer = wire.recv_message(sock)
    assert answer is not None and answer[0][:1] == b"R" and len(answer[1]) == 1, answer
    try:
        return sock, mmap.mmap(answer[1][0], JournalRing.SIZE)
    finally:
        os.close(answer[1][0])


def _oneway(name: str, *args: object) -> bytes:
    raw = name.encode("ascii")
    return (b"O" + struct.pack("<QH", 7, len(raw)) + raw + struct.pack("<H", len(args))
            + b"".join(wire.encode_value(a) for a in args))


@pytest.mark.parametrize("bad", ["ahead", "behind", "long entry", "not a journal entry"])
def test_a_journal_ring_that_does_not_add_up_closes_only_its_connection(lone_sim: SimulatedHost, bad: str) -> None:
    """The ring is the client's memory: the service checks every count and entry it reads there."""
    sock, ring = _journal_connection(lone_sim)
    try:
        entry = _oneway("CreateDirectoryW", "C:\\x", 0) if bad == "not a journal entry" else _oneway("LeaseMkdir", 1, b"a")
        written = {"ahead": JournalRing.DATA + 8, "behind": 4 + len(entry)}.get(bad, 4 + len(entry))
        length = 0x7FFFFFF0 if bad == "long entry" else len(entry)
        ring[JournalRing.HEAD:JournalRing.HEAD + 4 + len(entry)] = struct.pack("<I", length) + entry
        struct.pack_into("<QQ", ring, 0, written, 0)
        if bad == "behind":  # taken is the service's: a client that says it wrote less than that
            wire.send_message(sock, _oneway("JournalBell"))
            time.sleep(0.2)
            struct.pack_into("<Q", ring, 0, 2)
        wire.send_message(sock, _oneway("JournalBell"))
        assert _hung_up(sock)
    finally:
        sock.close()
        ring.close()
    assert lone_sim.control({"op": "ping"})["pid"]
    log = _log(lone_sim)
    assert "Traceback" not in log
    assert "journal ring" in log


def test_a_journal_ring_entry_for_a_lease_not_held_is_ignored(lone_sim: SimulatedHost) -> None:
    sock, ring = _journal_connection(lone_sim)
    try:
        before = lone_sim.leases()["ring"]  # (asking takes every ring: before the entry is in)
        entry = _oneway("LeaseMkdir", 12345, b"made")
        ring[JournalRing.HEAD:JournalRing.HEAD + 4 + len(entry)] = struct.pack("<I", len(entry)) + entry
        struct.pack_into("<Q", ring, 0, 4 + len(entry))
        wire.send_message(sock, _oneway("JournalBell"))
        for _ in range(100):
            if struct.unpack_from("<Q", ring, 8)[0] == 4 + len(entry):
                break
            time.sleep(0.02)
        assert struct.unpack_from("<Q", ring, 8)[0] == 4 + len(entry), "the service did not take the entry"
        assert lone_sim.leases()["ring"] == before + 1
    finally:
        sock.close()
        ring.close()
    assert "does not fit it; ignored" in _log(lone_sim)
