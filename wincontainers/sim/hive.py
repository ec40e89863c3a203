"""Just enough of the registry hive format (regf) to know a base image's Windows build.

Windows checks a process-isolated container's image against the host build (0xC0370101 when
they differ); the build is ``CurrentBuildNumber`` under ``Microsoft\\Windows NT\\CurrentVersion``
of the image's SOFTWARE hive. :func:`current_build` finds that value by scanning the hive's value
cells (it reads real hives as well as ours); :func:`software_hive` writes the small, valid hive
the simulated base images carry.
"""

from __future__ import annotations

import struct
from typing import Optional

__all__ = ["current_build", "software_hive", "empty_hive"]

_BASE_BLOCK = 4096
_BIN = 4096
REG_SZ = 1


def current_build(data: bytes) -> Optional[int]:
    """The ``CurrentBuildNumber`` a SOFTWARE hive holds, or None (not a hive, or no such value)."""
    if len(data) < _BASE_BLOCK + 32 or data[:4] != b"regf":
        return None
    pos = _BASE_BLOCK
    while pos + 32 <= len(data) and data[pos:pos + 4] == b"hbin":
        (size,) = struct.unpack_from("<I", data, pos + 8)
        if size < 32 or size % _BIN:
            return None
        cell = pos + 32
        while cell + 4 <= min(pos + size, len(data)):
            (raw,) = struct.unpack_from("<i", data, cell)
            length = abs(raw)
            if length < 8 or length % 8:
                break
            if raw < 0 and data[cell + 4:cell + 6] == b"vk":
                found = _build_of(data, cell + 4)
                if found is not None:
                    return found
            cell += length
        pos += size
    return None


def _build_of(data: bytes, vk: int) -> Optional[int]:
    if vk + 20 > len(data):
        return None
    name_len, size, offset, kind, flags = struct.unpack_from("<HIIIH", data, vk + 2)
    name = data[vk + 20:vk + 20 + name_len]
    text = name.decode("latin-1") if flags & 1 else name.decode("utf-16-le", "replace")
    if text.lower() != "currentbuildnumber" or kind != REG_SZ:
        return None
    if size & 0x80000000:
        raw = struct.pack("<I", offset)[: size & 0x7FFFFFFF]
    else:
        at = _BASE_BLOCK + offset + 4
        raw = data[at:at + size]
    digits = raw.decode("utf-16-le", "ignore").rstrip("\x00")
    return int(digits) if digits.isdigit() else None


class _Cells:
    """Cells of one hive bin, laid out in order (offsets relative to the first bin)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def add(self, payload: bytes) -> int:
        offset = 32 + len(self.data)
        size = (len(payload) + 4 + 7) // 8 * 8
        self.data += struct.pack("<i", -size) + payload + b"\x00" * (size - 4 - len(payload))
        return offset

    def patch(self, offset: int, at: int, value: bytes) -> None:
        start = offset - 32 + 4 + at
        self.data[start:start + len(value)] = value


def _nk(name: str, parent: int, root: bool) -> bytes:
    encoded = name.encode("ascii")
    return (b"nk" + struct.pack("<H", 0x20 | (0x4 if root else 0)) + b"\x00" * 8 + struct.pack("<I", 0)
            + struct.pack("<IIIIIIIIIIIIII", parent, 0, 0, 0xFFFFFFFF, 0xFFFFFFFF, 0, 0xFFFFFFFF, 0xFFFFFFFF,
                          0xFFFFFFFF, 0, 0, 0, 0, 0)
            + struct.pack("<HH", len(encoded), 0) + encoded)


def _hive(name: str, keys: list[str], values: dict[str, str]) -> bytes:
    """A hive whose root holds the key path ``keys``, with REG_SZ ``values`` in the deepest key."""
    cells = _Cells()
    offsets = [cells.add(_nk("ROOT", 0xFFFFFFFF, True))]
    for key in keys:
        child = cells.add(_nk(key, offsets[-1], False))
        hint = key.encode("ascii")[:4].ljust(4, b"\x00")
        listing = cells.add(b"lf" + struct.pack("<HI", 1, child) + hint)
        cells.patch(offsets[-1], 20, struct.pack("<II", 1, 0))  # one subkey
        cells.patch(offsets[-1], 28, struct.pack("<I", listing))
        offsets.append(child)
    value_cells = []
    for value_name, text in values.items():
        payload = (text + "\x00").encode("utf-16-le")
        data_cell = cells.add(payload)
        encoded = value_name.encode("ascii")
        value_cells.append(cells.add(b"vk" + struct.pack("<HIIIHH", len(encoded), len(payload), data_cell, REG_SZ, 1, 0)
                                     + encoded))
    listing = cells.add(b"".join(struct.pack("<I", v) for v in value_cells))
    cells.patch(offsets[-1], 36, struct.pack("<II", len(value_cells), listing))
    size = (32 + len(cells.data) + _BIN - 1) // _BIN * _BIN
    free = size - 32 - len(cells.data)
    body = bytes(cells.data) + (struct.pack("<i", free) + b"\x00" * (free - 4) if free else b"")
    hbin = b"hbin" + struct.pack("<III", 0, size, 0) + b"\x00" * 16 + body
    base = bytearray(_BASE_BLOCK)
    struct.pack_into("<4sIIQIIIIIII", base, 0, b"regf", 1, 1, 0, 1, 5, 0, 1, offsets[0] - 0, size, 1)
    # The root cell offset is relative to the first bin and points at the cell's size field.
    struct.pack_into("<I", base, 0x24, offsets[0])
    base[0x30:0x30 + 64] = name.encode("utf-16-le")[:64].ljust(64, b"\x00")
    checksum = 0
    for (word,) in struct.iter_unpack("<I", bytes(base[:508])):
        checksum ^= word
    struct.pack_into("<I", base, 0x1FC, checksum)
    return bytes(base) + hbin


def software_hive(build: int, product: str = "Windows Server") -> bytes:
    """A SOFTWARE hive whose ``Microsoft\\Windows NT\\CurrentVersion`` names ``build``."""
    return _hive("SOFTWARE", ["Microsoft", "Windows NT", "CurrentVersion"],
                 {"CurrentBuildNumber": str(build), "CurrentBuild": str(build), "ProductName": product})


def empty_hive(name: str) -> bytes:
    return _hive(name, [], {})
