"""Extended attributes: the FILE_FULL_EA_INFORMATION list of a BACKUP_EA_DATA stream.

In the tar each EA is ``MSWINDOWS.xattr.<name>=<base64 value>``; the EA flags are not kept
(layer-format.md 1.11).
"""

from __future__ import annotations

import struct

__all__ = ["encode_eas", "decode_eas", "EaError"]


class EaError(ValueError):
    """A malformed extended-attribute buffer."""


def encode_eas(eas: list[tuple[str, bytes]]) -> bytes:
    """Entries padded to 4 bytes (the last one too, as go-winio writes it), each pointing at the
    next; the last entry has offset 0."""
    out = bytearray()
    for i, (name, value) in enumerate(eas):
        raw_name = name.encode("ascii")
        if not 0 < len(raw_name) <= 255 or len(value) > 0xFFFF:
            raise EaError(f"extended attribute {name!r} is too long or has an empty name")
        body = struct.pack("<BBH", 0, len(raw_name), len(value)) + raw_name + b"\0" + value
        entry_len = 4 + len(body)
        last = i == len(eas) - 1
        padded = (entry_len + 3) & ~3
        out += struct.pack("<I", 0 if last else padded) + body + b"\0" * (padded - entry_len)
    return bytes(out)


def decode_eas(buf: bytes) -> list[tuple[str, bytes]]:
    eas = []
    pos = 0
    while True:
        if len(buf) - pos < 8:
            raise EaError("truncated extended attribute entry")
        next_offset, _flags, name_len, value_len = struct.unpack_from("<IBBH", buf, pos)
        start = pos + 8
        end = start + name_len + 1 + value_len
        if end > len(buf):
            raise EaError("extended attribute entry runs past the buffer")
        name = buf[start:start + name_len].decode("ascii", "replace")
        eas.append((name, bytes(buf[start + name_len + 1:end])))
        if next_offset == 0:
            return eas
        if next_offset < end - pos:
            raise EaError("extended attribute entries overlap")
        pos += next_offset
