"""The Win32 backup stream (what BackupRead returns and BackupWrite takes), streaming.

A backup stream is a sequence of WIN32_STREAM_ID headers (20 packed bytes plus a UTF-16 name),
each followed by its data, with no padding (layer-format.md 1.9). :class:`BackupWriter` writes
one with data copied from file objects in chunks; :class:`BackupReader` walks one, handing out
each stream's data as a bounded reader, so a large file never sits in memory.
"""

from __future__ import annotations

import enum
import errno
import io
import os
import stat
import struct
from typing import IO, Iterator, Optional, Protocol

import attrs

__all__ = [
    "StreamId",
    "StreamAttributes",
    "StreamHeader",
    "BackupWriter",
    "BackupReader",
    "BackupError",
    "encode_streams",
    "decode_streams",
    "streams_in",
    "copy_exact",
    "write_all",
    "read_up_to",
    "KERNEL_COPY_MIN",
    "Readable",
]

HEADER = struct.Struct("<IIqI")  # dwStreamId, dwStreamAttributes, Size, dwStreamNameSize
CHUNK = 1 << 20


class StreamId(enum.IntEnum):
    INVALID = 0
    DATA = 1
    EA_DATA = 2
    SECURITY_DATA = 3
    ALTERNATE_DATA = 4
    LINK = 5
    PROPERTY_DATA = 6
    OBJECT_ID = 7
    REPARSE_DATA = 8
    SPARSE_BLOCK = 9
    TXFS_DATA = 10
    GHOSTED_FILE_EXTENTS = 11


class StreamAttributes(enum.IntFlag):
    NORMAL = 0
    MODIFIED_WHEN_READ = 1
    CONTAINS_SECURITY = 2
    CONTAINS_PROPERTIES = 4
    SPARSE = 8
    CONTAINS_GHOSTED_FILE_EXTENTS = 0x10


class Readable(Protocol):
    """Anything with ``read(n)``: files, tar entry data, bounded readers."""

    def read(self, n: int = -1, /) -> bytes: ...


class BackupError(ValueError):
    """A malformed backup stream."""


@attrs.frozen
class StreamHeader:
    id: int
    size: int
    name: str = ""
    attributes: int = 0


#: below this, one read and one write cost less than finding out whether the kernel can copy
KERNEL_COPY_MIN = 64 << 10
_copy_file_range = getattr(os, "copy_file_range", None)  # Linux; elsewhere data goes through user space


def copy_exact(src: Readable, dst: IO[bytes], size: int) -> None:
    """Copy exactly ``size`` bytes; a short source is an error.

    When both ends are regular files of this OS (and ``src`` is a file or a backup stream's data
    read from one), the kernel copies them (``copy_file_range``: no trip through user space, and
    a reflink where the file system shares extents); anything else (tar entry data, a Win32
    handle) goes in chunks.
    """
    if size >= KERNEL_COPY_MIN and _copy_file_range is not None and _kernel_copy(src, dst, size):
        return
    remaining = size
    while remaining:
        chunk = src.read(min(CHUNK, remaining))
        if not chunk:
            raise BackupError(f"source ended {remaining} bytes early")
        write_all(dst, chunk)
        remaining -= len(chunk)


def write_all(dst: IO[bytes], data: "bytes | bytearray | memoryview") -> None:
    """All of ``data``: an unbuffered file may take less than it is given (a writer that
    returns None took it all)."""
    written = dst.write(data)
    if written is None or written >= len(data):
        return
    view = memoryview(data)
    while written < len(view):
        more = dst.write(view[written:])
        if not more:
            raise OSError(f"write took {written} of {len(view)} bytes")
        written += more


def _regular_fd(f: object) -> Optional[int]:
    try:
        fd = f.fileno()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
        return None
    try:
        return fd if stat.S_ISREG(os.fstat(fd).st_mode) else None
    except OSError:
        return None


def _kernel_copy(src: Readable, dst: IO[bytes], size: int) -> bool:
    """``copy_exact`` by ``copy_file_range``; False (nothing copied) when it cannot be used."""
    base = src.src if isinstance(src, _Bounded) else src
    if isinstance(src, _Bounded) and src.remaining != size:
        return False
    in_fd, out_fd = _regular_fd(base), _regular_fd(dst)
    if in_fd is None or out_fd is None:
        return False
    try:
        dst.flush()
        src_at, dst_at = base.tell(), dst.tell()  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False
    done = 0
    while done < size:
        try:
            n = _copy_file_range(in_fd, out_fd, size - done, src_at + done, dst_at + done)  # type: ignore[misc]
        except OSError as exc:
            if done == 0 and exc.errno in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.EBADF):
                return False  # not between these two: the chunked copy does it
            raise
        if n <= 0:
            raise BackupError(f"source ended {size - done} bytes early")
        done += n
    # Explicit offsets moved neither descriptor: the file objects are moved past the data.
    base.seek(src_at + size)  # type: ignore[attr-defined]
    dst.seek(dst_at + size)
    if isinstance(src, _Bounded):
        src.remaining = 0
    return True


class BackupWriter:
    """Writes streams in the order BackupWrite expects them from a layer entry:
    security, EAs, reparse data, data, then alternate data streams."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.written = 0

    def _header(self, stream_id: int, size: int, name: str = "", attributes: int = 0) -> None:
        raw = name.encode("utf-16-le", "surrogatepass")
        self.out.write(HEADER.pack(stream_id, attributes, size, len(raw)) + raw)
        self.written += HEADER.size + len(raw) + size

    def stream(self, stream_id: int, data: bytes, name: str = "", attributes: int = 0) -> None:
        self._header(stream_id, len(data), name, attributes)
        self.out.write(data)

    def stream_from(self, stream_id: int, size: int, source: Readable, name: str = "") -> None:
        self._header(stream_id, size, name)
        copy_exact(source, self.out, size)

    def encoded(self, streams: bytes) -> None:
        """Streams the caller encoded itself (headers and data, in this order), written as they
        are: a small entry's, in one piece."""
        self.out.write(streams)
        self.written += len(streams)

    def security(self, descriptor: bytes) -> None:
        self.stream(StreamId.SECURITY_DATA, descriptor)

    def eas(self, buffer: bytes) -> None:
        self.stream(StreamId.EA_DATA, buffer)

    def reparse(self, buffer: bytes) -> None:
        self.stream(StreamId.REPARSE_DATA, buffer)

    def data(self, size: int, source: Readable) -> None:
        self.stream_from(StreamId.DATA, size, source)

    def alternate(self, stream: str, size: int, source: Readable) -> None:
        """An alternate data stream; ``stream`` is the bare name (``Zone.Identifier``)."""
        self.stream_from(StreamId.ALTERNATE_DATA, size, source, f":{stream}:$DATA")


def read_up_to(src: Readable, n: int) -> bytes:
    """Up to ``n`` bytes, fewer only at the end (raw streams may return short reads)."""
    if n <= 0:
        return b""
    data = src.read(n)
    if len(data) >= n or not data:
        return data
    parts = [data]
    got = len(data)
    while got < n:
        more = src.read(n - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


class _Bounded:
    """Reads at most ``size`` bytes of the underlying stream."""

    def __init__(self, src: IO[bytes], size: int) -> None:
        self.src = src
        self.remaining = size

    def read(self, n: int = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        n = self.remaining if n < 0 else min(n, self.remaining)
        data = read_up_to(self.src, n)
        if len(data) < n and n:
            raise BackupError("backup stream truncated inside a stream's data")
        self.remaining -= len(data)
        return data

    def skip(self) -> None:
        while self.read(CHUNK):
            pass


class BackupReader:
    """Iterates ``(header, data)`` over a backup stream; read each ``data`` before the next step."""

    def __init__(self, src: IO[bytes]) -> None:
        self.src = src
        self._current: Optional[_Bounded] = None

    def __iter__(self) -> Iterator[tuple[StreamHeader, _Bounded]]:
        while True:
            if self._current is not None:
                self._current.skip()
            raw = read_up_to(self.src, HEADER.size)
            if not raw:
                return
            if len(raw) < HEADER.size:
                raise BackupError("truncated WIN32_STREAM_ID header")
            stream_id, attributes, size, name_size = HEADER.unpack(raw)
            if size < 0 or name_size % 2 or name_size > 65536:
                raise BackupError("malformed WIN32_STREAM_ID header")
            raw_name = read_up_to(self.src, name_size)
            if len(raw_name) < name_size:
                raise BackupError("truncated stream name")
            header = StreamHeader(stream_id, size, raw_name.decode("utf-16-le", "surrogatepass"), attributes)
            self._current = _Bounded(self.src, size)
            yield header, self._current


def streams_in(data: "bytes | memoryview") -> Iterator[tuple[StreamHeader, io.BytesIO]]:
    """``BackupReader`` of a backup stream held whole (an exported file's, mostly a few KiB):
    the same headers, data and errors, found by offset rather than read piece by piece."""
    view = memoryview(data)
    end = len(view)
    at = 0
    while at < end:
        if end - at < HEADER.size:
            raise BackupError("truncated WIN32_STREAM_ID header")
        stream_id, attributes, size, name_size = HEADER.unpack_from(view, at)
        if size < 0 or name_size % 2 or name_size > 65536:
            raise BackupError("malformed WIN32_STREAM_ID header")
        at += HEADER.size
        if end - at < name_size:
            raise BackupError("truncated stream name")
        name = bytes(view[at:at + name_size]).decode("utf-16-le", "surrogatepass") if name_size else ""
        at += name_size
        if end - at < size:
            raise BackupError("backup stream truncated inside a stream's data")
        yield StreamHeader(stream_id, size, name, attributes), io.BytesIO(view[at:at + size])
        at += size


def encode_streams(streams: list[tuple[StreamHeader, bytes]]) -> bytes:
    """A whole stream in memory (small metadata-only streams and tests)."""
    buf = io.BytesIO()
    writer = BackupWriter(buf)
    for header, data in streams:
        writer.stream(header.id, data, header.name, header.attributes)
    return buf.getvalue()


def decode_streams(data: bytes) -> list[tuple[StreamHeader, bytes]]:
    return [(h, body.read()) for h, body in streams_in(data)]
