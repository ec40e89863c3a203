"""The simulator's service bounds what a client may ask: message size, connections, bad input."""

from __future__ import annotations

import json
import socket
import struct
from pathlib import Path
from typing import Iterator

import pytest

from wincontainers.errors import HcsUnavailable
from tests.conftest import SimulatedHost, skip_module_without_simulator

skip_module_without_simulator()
pytestmark = pytest.mark.simulator("the simulator's own service limits")

from wincontainers.sim import wire
from wincontainers.sim.daemon import MAX_CONNECTIONS


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
    import time

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
        assert sock.recv(1) == b""
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
    import time

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
