"""The simulator's wire format, Python side (the C side is in native/client.c; see wcsim.h).

Values are tagged: ``N`` null, ``i`` int64, ``s`` UTF-16LE string, ``b`` bytes, ``g`` GUID
(16 bytes, Windows memory layout), ``l`` list. Strings are decoded with ``surrogatepass`` so a
lone surrogate in a name survives the round trip, as it does through the real DLLs.
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import json
import socket
import struct
from typing import Any, Iterable, Optional, Sequence, Union

import attrs

__all__ = [
    "Guid",
    "dumps",
    "Request",
    "decode_values",
    "encode_value",
    "encode_response",
    "encode_event",
    "parse_hello",
    "parse_request",
    "recv_message",
    "send_message",
    "Receiver",
    "MAX_FDS",
    "MAX_MESSAGE",
    "ProtocolError",
]

MAX_FDS = 16
#: the largest message the service takes (a client's file data goes through descriptors, not
#: messages; the largest messages are documents and a closed file's alternate data streams)
MAX_MESSAGE = 64 << 20


class ProtocolError(ValueError):
    """A peer sent something that is not a message of this protocol (or is over a limit)."""


@attrs.frozen
class Guid:
    """A GUID as the 16 bytes Windows keeps in memory (Data1..Data3 little-endian)."""

    raw: bytes

    def __str__(self) -> str:
        d1, d2, d3 = struct.unpack_from("<IHH", self.raw)
        d4 = self.raw[8:]
        return f"{d1:08x}-{d2:04x}-{d3:04x}-{d4[:2].hex()}-{d4[2:].hex()}"

    @classmethod
    def parse(cls, text: str) -> Guid:
        import uuid

        u = uuid.UUID(text)
        return cls(u.bytes_le)


Value = Union[None, int, str, bytes, Guid, list]  # type: ignore[type-arg]


def dumps(obj: Any) -> str:
    """JSON as HCS returns it: UTF-16 text, so non-ASCII (even a lone surrogate) is not escaped."""
    return json.dumps(obj, ensure_ascii=False)


def encode_value(v: Any) -> bytes:
    if v is None:
        return b"N"
    if isinstance(v, bool):
        return b"i" + struct.pack("<q", int(v))
    if isinstance(v, int):
        return b"i" + struct.pack("<q", v if v < (1 << 63) else v - (1 << 64))
    if isinstance(v, str):
        data = v.encode("utf-16-le", "surrogatepass")
        return b"s" + struct.pack("<I", len(data)) + data
    if isinstance(v, (bytes, bytearray)):
        return b"b" + struct.pack("<I", len(v)) + bytes(v)
    if isinstance(v, Guid):
        return b"g" + v.raw
    if isinstance(v, (list, tuple)):
        return b"l" + struct.pack("<I", len(v)) + b"".join(encode_value(x) for x in v)
    raise TypeError(f"cannot encode {type(v).__name__} on the simulator wire")


def _decode(buf: bytes, pos: int) -> tuple[Any, int]:
    tag = buf[pos : pos + 1]
    pos += 1
    if tag == b"N":
        return None, pos
    if tag == b"i":
        return struct.unpack_from("<q", buf, pos)[0], pos + 8
    if tag in (b"s", b"b"):
        (n,) = struct.unpack_from("<I", buf, pos)
        pos += 4
        data = buf[pos : pos + n]
        if len(data) != n:
            raise ValueError("truncated value")
        pos += n
        return (data.decode("utf-16-le", "surrogatepass") if tag == b"s" else data), pos
    if tag == b"g":
        return Guid(buf[pos : pos + 16]), pos + 16
    if tag == b"l":
        (n,) = struct.unpack_from("<I", buf, pos)
        pos += 4
        items = []
        for _ in range(n):
            item, pos = _decode(buf, pos)
            items.append(item)
        return items, pos
    raise ValueError(f"bad value tag {tag!r}")


def decode_values(buf: bytes, pos: int, count: int) -> tuple[list[Any], int]:
    out = []
    for _ in range(count):
        v, pos = _decode(buf, pos)
        out.append(v)
    return out, pos


@attrs.frozen
class Request:
    oneway: bool
    id: int
    function: str
    args: list[Any]


def parse_request(payload: bytes) -> Request:
    kind = payload[:1]
    (req_id,) = struct.unpack_from("<Q", payload, 1)
    (n,) = struct.unpack_from("<H", payload, 9)
    name = payload[11 : 11 + n].decode("ascii")
    (count,) = struct.unpack_from("<H", payload, 11 + n)
    args, _ = decode_values(payload, 13 + n, count)
    return Request(oneway=kind == b"O", id=req_id, function=name, args=args)


def parse_hello(payload: bytes) -> tuple[str, str, int]:
    if payload[:1] != b"H":
        raise ValueError("expected a hello message")
    (dll, profile, pid), _ = decode_values(payload, 1, 3)
    return str(dll), str(profile), int(pid)


def encode_response(req_id: int, hresult: int, outs: Sequence[Any]) -> bytes:
    hr = hresult if hresult < (1 << 31) else hresult - (1 << 32)
    return (
        b"R" + struct.pack("<Qq", req_id, hr) + struct.pack("<H", len(outs))
        + b"".join(encode_value(v) for v in outs)
    )


def encode_event(kind: str, values: Sequence[Any]) -> bytes:
    return b"E" + kind.encode("ascii") + struct.pack("<H", len(values)) + b"".join(encode_value(v) for v in values)


def send_message(sock: socket.socket, payload: bytes, fds: Iterable[int] = ()) -> None:
    data = struct.pack("<I", len(payload)) + payload
    fds = list(fds)
    if fds:
        sent = sock.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, struct.pack(f"<{len(fds)}i", *fds))])
        if sent < len(data):
            sock.sendall(data[sent:])
    else:
        sock.sendall(data)


def _recv_exact(sock: socket.socket, n: int) -> Optional[bytes]:
    chunks = []
    while n:
        chunk = sock.recv(n)
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def recv_message(sock: socket.socket) -> Optional[tuple[bytes, list[int]]]:
    """One message and the file descriptors that came with it; ``None`` at end of stream."""
    data, fds, _flags, _addr = socket.recv_fds(sock, 4, MAX_FDS)
    if not data:
        for fd in fds:
            _close(fd)
        return None
    if len(data) < 4:
        rest = _recv_exact(sock, 4 - len(data))
        if rest is None:
            return None
        data += rest
    (n,) = struct.unpack("<I", data)
    if n > MAX_MESSAGE:
        for fd in fds:
            _close(fd)
        raise ProtocolError(f"a message of {n} bytes is over the {MAX_MESSAGE}-byte limit")
    payload = _recv_exact(sock, n) if n else b""
    if payload is None:
        return None
    return payload, list(fds)


class Receiver:
    """The service's side of a connection: whole messages out of a buffer filled by large reads,
    so a burst of calls (one-way CloseHandles, then the next call) costs one read, not two per
    message. Clients send no descriptors; any that come are closed."""

    _ANCILLARY = socket.CMSG_SPACE(MAX_FDS * 4)

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.pos = 0
        #: bytes taken off the socket so far (the service's barriers count them)
        self.received = 0

    def buffered(self) -> bool:
        """Whether a whole message waits in the buffer (no read needed for it)."""
        have = len(self.buf) - self.pos
        if have < 4:
            return False
        n: int = struct.unpack_from("<I", self.buf, self.pos)[0]
        if n > MAX_MESSAGE:
            raise ProtocolError(f"a message of {n} bytes is over the {MAX_MESSAGE}-byte limit")
        return have >= 4 + n

    def fill(self) -> bool:
        """One read of what the socket has (blocking until something); False at end of stream."""
        data, ancillary, _flags, _addr = self.sock.recvmsg(1 << 16, self._ANCILLARY)
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                for i in range(0, len(payload) - len(payload) % 4, 4):
                    _close(struct.unpack_from("<i", payload, i)[0])
        if not data:
            return False
        if self.pos:
            del self.buf[:self.pos]
            self.pos = 0
        self.buf += data
        self.received += len(data)
        return True

    def next(self) -> Optional[bytes]:
        """The next message (reading as needed), ``None`` at end of stream."""
        while not self.buffered():
            if not self.fill():
                return None
        (n,) = struct.unpack_from("<I", self.buf, self.pos)
        start = self.pos + 4
        self.pos = start + n
        return bytes(self.buf[start:self.pos])

    def consumed(self) -> int:
        """Bytes of the messages handed out so far."""
        return self.received - (len(self.buf) - self.pos)


def _close(fd: int) -> None:
    import os

    try:
        os.close(fd)
    except OSError:
        pass
