"""Tar at the byte level: a streaming header parser with limits, and a header writer.

Our own rather than :mod:`tarfile`: the reader must see the raw name bytes (to report names
that are not UTF-8 or not UTF-16), cap the size of PAX headers before reading them (a hostile
tar could ask for gigabytes), and never buffer entry data; the writer must produce exactly what
Go's ``archive/tar`` (used by hcsshim/go-winio) writes, so exports are byte-identical.
"""

from __future__ import annotations

import functools
import struct
import zlib
from typing import IO, Any, Callable, Iterator, Mapping, Optional, TypeVar

import attrs

from wincontainers.layerfile.backup import read_up_to

__all__ = [
    "BLOCK",
    "TarFormatError",
    "RawHeader",
    "EntryData",
    "iter_headers",
    "pax_record",
    "header_block",
    "block_sum",
    "split_ustar_path",
    "MAX_PAX_SIZE",
    "MAX_NAME_SIZE",
    "TarLimits",
    "DEFAULT_LIMITS",
    "remembered",
]

BLOCK = 512
MAX_PAX_SIZE = 1 << 20  # Go's limit too (CVE-2022-2879)
MAX_NAME_SIZE = 65536
_ZERO = b"\0" * BLOCK


@attrs.frozen
class TarLimits:
    """What a tar may ask of its reader; a tar beyond one is refused with :class:`TarFormatError`.

    ``max_extended_header``: the PAX and GNU long-name headers of one entry together (and the
    global PAX records), in bytes; ``max_entries``: entries in the tar; ``max_total_size``: bytes
    of the uncompressed tar. The defaults hold the largest Windows base images several times over;
    a caller with a larger layer passes its own.
    """

    max_extended_header: int = MAX_PAX_SIZE
    max_entries: int = 500_000
    max_total_size: int = 256 << 30

    def __attrs_post_init__(self) -> None:
        for field in ("max_extended_header", "max_entries", "max_total_size"):
            if getattr(self, field) <= 0:
                raise ValueError(f"TarLimits.{field} must be positive")


DEFAULT_LIMITS = TarLimits()


class TarFormatError(ValueError):
    """The stream is not a well-formed tar (or breaks a safety limit)."""

    def __init__(self, message: str, offset: int, entry: Optional[str] = None) -> None:
        super().__init__(f"{message} (at byte {offset})")
        self.offset = offset
        #: the entry the problem is in, when its name was read
        self.entry = entry


@attrs.define
class RawHeader:
    name: bytes
    linkname: bytes
    typeflag: str
    size: int
    mode: int
    mtime: int
    pax: dict[str, bytes]
    offset: int  # where the entry's first header starts
    header_size: int  # PAX + long-name blocks + the header itself


class EntryData:
    """The current entry's data; reading past its end returns nothing."""

    def __init__(self, stream: "_Stream", size: int, name: Optional[str] = None) -> None:
        self._stream = stream
        self.remaining = size
        self.name = name

    def read(self, n: int = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        n = self.remaining if n is None or n < 0 else min(n, self.remaining)
        data = self._stream.read(n)
        if len(data) < n:
            raise TarFormatError("the tar ends inside an entry's data", self._stream.offset, self.name)
        self.remaining -= len(data)
        return data

    def readinto(self, b: bytearray) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def skip(self) -> None:
        while self.read(1 << 20):
            pass


class _Stream:
    """The tar's bytes, read ahead a MiB at a time. A layer of small files asks for six small
    pieces per entry (extended header, its records, padding, header, data, padding), and each
    read through the source's layers (decompression, hashing, progress) cost more than its
    bytes; a piece of 64 KiB or more goes straight to the source, with no copy."""

    READ_AHEAD = 1 << 20
    DIRECT = 1 << 16

    def __init__(self, src: IO[bytes]) -> None:
        self.src = src
        self.offset = 0
        self._buf = b""
        self._pos = 0

    def read(self, n: int) -> bytes:
        pos = self._pos
        end = pos + n
        if end <= len(self._buf):  # nearly always
            self._pos = end
            self.offset += n
            return self._buf[pos:end]
        have = self._buf[pos:]
        self._buf, self._pos = b"", 0
        need = n - len(have)
        if need >= self.DIRECT:
            data = read_up_to(self.src, need)
            data = have + data if have else data
        else:  # need > 0: the buffer ran out before ``end``
            more = read_up_to(self.src, self.READ_AHEAD)
            data = have + more[:need]
            if len(more) > need:
                self._buf, self._pos = more, need
        self.offset += len(data)
        return data


def _number(field: bytes, what: str, offset: int) -> int:
    if field[:1] and field[0] & 0x80:  # GNU base-256
        value = int.from_bytes(field[1:], "big")
        if field[0] & 0x40:
            value -= 1 << (8 * len(field[1:]))
        return value
    text = field.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise TarFormatError(f"bad {what} field {text!r}", offset) from None


def block_sum(block: "bytes | bytearray") -> int:
    """The sum of a 512-byte block's bytes, through zlib's Adler-32, whose low half is one plus
    the sum of the bytes modulo 65521: exact for 256 bytes at a time (at most 65280). A header's
    checksum is this sum; iterating the bytes in Python cost a layer of small files more."""
    view = memoryview(block)
    return (zlib.adler32(view[:256]) & 0xFFFF) + (zlib.adler32(view[256:]) & 0xFFFF) - 2


def _checksum_ok(block: bytes) -> bool:
    stored = block[148:156].split(b"\0", 1)[0].strip(b" ")
    try:
        want = int(stored, 8)
    except ValueError:
        return False
    unsigned = block_sum(block) - sum(block[148:156]) + 8 * 32
    if want == unsigned:
        return True
    # Some old tars summed signed chars.
    high = sum(1 for b in block[:148] if b > 127) + sum(1 for b in block[156:] if b > 127)
    return want == unsigned - 256 * high


def _parse_pax(data: bytes, offset: int) -> dict[str, bytes]:
    """The records of a PAX header: ``"<length> <key>=<value>\n"``, ``<length>`` counting the
    whole record (a value may hold a newline, so the lengths decide)."""
    records = _plain_pax(data)
    if records is not None:
        return records
    return _parse_pax_by_lengths(data, offset)


def _plain_pax(data: bytes) -> Optional[dict[str, bytes]]:
    """The common case, quickly: no value holds a newline, so the lines are the records; None
    when a line is not the record its length says (the careful parse decides)."""
    lines = data.rstrip(b"\0").split(b"\n")
    if lines.pop() != b"":
        return None
    records: dict[str, bytes] = {}
    for line in lines:
        length, space, record = line.partition(b" ")
        key, eq, value = record.partition(b"=")
        if not (eq and length.isdigit() and int(length) == len(line) + 1):
            return None
        records[key.decode("utf-8", "replace")] = value
    return records


def _parse_pax_by_lengths(data: bytes, offset: int) -> dict[str, bytes]:
    records: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        if data[pos:pos + 1] == b"\0":
            break
        space = data.find(b" ", pos)
        if space < 0:
            raise TarFormatError("malformed PAX record (no length)", offset)
        try:
            length = int(data[pos:space])
        except ValueError:
            raise TarFormatError("malformed PAX record length", offset) from None
        end = pos + length
        if length <= 0 or end > len(data) or data[end - 1:end] != b"\n":
            raise TarFormatError("malformed PAX record", offset)
        key, eq, value = data[space + 1:end - 1].partition(b"=")
        if not eq:
            raise TarFormatError("PAX record without '='", offset)
        records[key.decode("utf-8", "replace")] = value
        pos = end
    return records


def iter_headers(src: IO[bytes], limits: TarLimits = DEFAULT_LIMITS) -> Iterator[tuple[RawHeader, EntryData]]:
    """Entries of a tar stream; each entry's data must be read (or skipped) before the next."""
    stream = _Stream(src)
    global_pax: dict[str, bytes] = {}
    global_size = 0
    current: Optional[EntryData] = None
    current_size = 0
    entries = 0
    while True:
        if current is not None:
            current.skip()
            pad = (-current_size) % BLOCK
            if pad and len(stream.read(pad)) < pad:
                raise TarFormatError("the tar ends inside padding", stream.offset)
        start = stream.offset
        pax: dict[str, bytes] = dict(global_pax)
        long_name: Optional[bytes] = None
        long_link: Optional[bytes] = None
        extended = 0  # bytes of this entry's extended headers so far: chained ones add up
        while True:
            block = stream.read(BLOCK)
            if not block or block == _ZERO:
                if stream.offset - len(block) > start:  # extended headers, and no entry for them
                    raise TarFormatError("the tar ends after an extended header, before the entry it describes",
                                         stream.offset)
                return  # end of archive (a second zero block, and anything after, is not ours to check)
            if len(block) < BLOCK:
                raise TarFormatError("truncated tar header", stream.offset)
            if not _checksum_ok(block):
                raise TarFormatError("tar header checksum mismatch", stream.offset - BLOCK)
            typeflag = chr(block[156]) if block[156] else "0"
            size = _number(block[124:136], "size", stream.offset)
            if size < 0:
                raise TarFormatError("negative entry size", stream.offset)
            if typeflag in ("x", "g", "L", "K"):
                if typeflag == "g":
                    global_size += size
                else:
                    extended += size
                if max(extended, global_size) > limits.max_extended_header:
                    raise TarFormatError(
                        f"extended headers of {max(extended, global_size)} bytes"
                        f"{' (global)' if global_size > extended else ' for one entry'} are over the "
                        f"{limits.max_extended_header}-byte limit",
                        stream.offset, _described(block[0:100].split(b"\0", 1)[0]),
                    )
                data = stream.read(size)
                if len(data) < size:
                    raise TarFormatError("the tar ends inside an extended header", stream.offset)
                pad = (-size) % BLOCK
                if len(stream.read(pad)) < pad:
                    raise TarFormatError("the tar ends inside an extended header's padding", stream.offset)
                if typeflag == "x":
                    pax.update(_parse_pax(data, stream.offset))
                elif typeflag == "g":
                    global_pax.update(_parse_pax(data, stream.offset))
                    pax.update(global_pax)
                elif typeflag == "L":
                    long_name = data.rstrip(b"\0")
                else:
                    long_link = data.rstrip(b"\0")
                continue
            break
        name = block[0:100].split(b"\0", 1)[0]
        magic = block[257:263]
        if magic == b"ustar\0":
            prefix = block[345:500].split(b"\0", 1)[0]
            if prefix:
                name = prefix + b"/" + name
        if long_name is not None:
            name = long_name
        if "path" in pax:
            name = pax["path"]
        linkname = block[157:257].split(b"\0", 1)[0]
        if long_link is not None:
            linkname = long_link
        if "linkpath" in pax:
            linkname = pax["linkpath"]
        if "size" in pax:
            try:
                size = int(pax["size"])
            except ValueError:
                raise TarFormatError("bad PAX size record", stream.offset, _display(name)) from None
        if len(name) > MAX_NAME_SIZE or len(linkname) > MAX_NAME_SIZE:
            raise TarFormatError("entry name longer than 64 KiB", stream.offset, _display(name[:200]) + "...")
        header = RawHeader(
            name=name, linkname=linkname, typeflag=typeflag, size=size if typeflag not in ("1", "2", "5") else 0,
            mode=_number(block[100:108], "mode", stream.offset), mtime=_number(block[136:148], "mtime", stream.offset),
            pax=pax, offset=start, header_size=stream.offset - start,
        )
        current_size = size if typeflag not in ("1", "2", "5") else 0
        entries += 1
        if entries > limits.max_entries:
            raise TarFormatError(f"more than {limits.max_entries} entries (the limit; a caller may raise it)", start,
                                 _display(name))
        if stream.offset + current_size > limits.max_total_size:
            raise TarFormatError(f"the tar is larger than {limits.max_total_size} bytes (the limit; a caller may "
                                 "raise it)", start, _display(name))
        current = EntryData(stream, current_size, _display(name))
        yield header, current


def _display(raw: bytes) -> str:
    return raw.decode("utf-8", "replace")


def _described(raw: bytes) -> Optional[str]:
    """The entry an extended header describes, from the header's own name: Go and GNU tar name
    it ``<dir>/PaxHeaders.<n>/<name>`` (or ``PaxHeaders.<n>/<name>``); None when it says nothing."""
    text = _display(raw)
    head, sep, tail = text.rpartition("PaxHeaders.")
    if sep:
        _number_part, slash, rest = tail.partition("/")
        return (head + rest) if slash and rest else None
    return text or None


# -- writing ------------------------------------------------------------------------------------


_Fn = TypeVar("_Fn", bound=Callable[..., Any])


def remembered(maxsize: int, limit: int) -> Callable[[_Fn], _Fn]:
    """An LRU cache of ``maxsize`` results for a function of short strings or bytes: a layer's
    entries repeat their times, attributes and descriptors. A call whose arguments are longer
    than ``limit`` together is computed and not kept, so a hostile long value costs no memory."""
    def wrap(fn: _Fn) -> _Fn:
        cached = functools.lru_cache(maxsize=maxsize)(fn)

        @functools.wraps(fn)
        def call(*args: Any) -> Any:
            return cached(*args) if sum(map(len, args)) <= limit else fn(*args)

        call.cache_info = cached.cache_info  # type: ignore[attr-defined]
        return call  # type: ignore[return-value]
    return wrap


@remembered(maxsize=4096, limit=512)
def pax_record(key: str, value: str) -> bytes:
    """``"<len> <key>=<value>\\n"`` where ``<len>`` counts the whole record."""
    body = f" {key}={value}\n".encode("utf-8", "surrogatepass")
    digits = len(str(len(body)))
    if len(str(len(body) + digits)) > digits:  # the length's own digits carried it over: 98 -> 101
        digits += 1
    return str(len(body) + digits).encode() + body


def _octal(value: int, width: int) -> bytes:
    digits = format(value, "o")
    return digits.rjust(width - 1, "0").encode() + b"\0"


def split_ustar_path(name: bytes) -> Optional[tuple[bytes, bytes]]:
    """(prefix, name) so that prefix/name == name within USTAR's 155/100 bytes, or None."""
    if len(name) <= 100:
        return b"", name
    if len(name) > 256:
        return None
    i = len(name) - 1
    while i > 0:
        i = name.rfind(b"/", 0, i)
        if i <= 0:
            return None
        if i <= 155 and len(name) - i - 1 <= 100 and len(name) - i - 1 > 0:
            return name[:i], name[i + 1:]
    return None


def _ascii(s: str) -> bytes:
    if s.isascii():
        return s.encode("ascii")
    return "".join(c for c in s if ord(c) < 0x80).encode("ascii")


def header_block(
    *,
    name: str,
    typeflag: str,
    size: int = 0,
    mode: int = 0,
    mtime: int = 0,
    linkname: str = "",
    prefix: bytes = b"",
    raw_name: Optional[bytes] = None,
) -> bytes:
    """One 512-byte USTAR header as Go writes it (octal fields zero-padded, NUL-terminated)."""
    block = _USTAR.pack(
        raw_name if raw_name is not None else _ascii(name), _octal(mode, 8), _ZERO_ID, _ZERO_ID, _octal(size, 12),
        _octal(mtime, 12), b" " * 8, typeflag.encode("latin-1"), _ascii(linkname), b"ustar\0" b"00", b"", b"",
        _ZERO_ID, _ZERO_ID, prefix,
    )
    return block[:148] + _octal(block_sum(block), 7) + b" " + block[156:]


#: a USTAR header's fields, in order (``s`` cuts a longer value and pads with NULs): name,
#: mode, uid, gid, size, mtime, checksum, typeflag, linkname, magic and version, uname,
#: gname, devmajor, devminor, prefix, then 12 bytes of padding
_USTAR = struct.Struct("100s8s8s8s12s12s8sc100s8s32s32s8s8s155s12x")
_ZERO_ID = b"0000000\0"


def pax_block(name: str, records: Mapping[str, str]) -> bytes:
    """The ``x`` header (plus its padded data) Go writes in front of a PAX entry."""
    data = b"".join(pax_record(k, records[k]) for k in sorted(records))
    head, _, base = name.rpartition("/")
    xname = f"{head}/PaxHeaders.0/{base}" if head else f"PaxHeaders.0/{base}"
    block = header_block(name="", typeflag="x", size=len(data), raw_name=_ascii(xname)[:100].rstrip(b"/"))
    return block + data + b"\0" * ((-len(data)) % BLOCK)
