"""Reparse points: REPARSE_DATA_BUFFER for symlinks and junctions (MS-FSCC 2.1.2).

In the tar a reparse point is a symlink entry whose link name is the buffer's *print name*;
``MSWINDOWS.mountpoint`` marks a junction. Only these two tags can travel in a layer: any
other tag (WSL/LX symlinks, dedup, cloud files, WCI placeholders...) stops an export and
breaks an import.
"""

from __future__ import annotations

import struct
from typing import Mapping

import attrs

__all__ = [
    "IO_REPARSE_TAG_SYMLINK",
    "IO_REPARSE_TAG_MOUNT_POINT",
    "SYMLINK_FLAG_RELATIVE",
    "ReparsePoint",
    "encode_reparse",
    "decode_reparse",
    "OTHER_TAGS",
    "ReparseError",
]

IO_REPARSE_TAG_SYMLINK = 0xA000000C
IO_REPARSE_TAG_MOUNT_POINT = 0xA0000003
SYMLINK_FLAG_RELATIVE = 1

#: Tags a layer cannot carry, with what they are (for explanations in reports).
OTHER_TAGS: Mapping[int, str] = {
    0xA000001D: "WSL/LX symlink (IO_REPARSE_TAG_LX_SYMLINK, written by WSL, Cygwin with winsymlinks:native and MSYS2)",
    0x80000023: "Unix domain socket (IO_REPARSE_TAG_AF_UNIX)",
    0x80000024: "WSL FIFO (IO_REPARSE_TAG_LX_FIFO)",
    0x80000025: "WSL character device (IO_REPARSE_TAG_LX_CHR)",
    0x80000026: "WSL block device (IO_REPARSE_TAG_LX_BLK)",
    0x80000013: "deduplicated file (IO_REPARSE_TAG_DEDUP)",
    0x80000018: "container placeholder (IO_REPARSE_TAG_WCI)",
    0x8000001B: "app execution alias (IO_REPARSE_TAG_APPEXECLINK)",
    0x9000001A: "cloud file placeholder (IO_REPARSE_TAG_CLOUD)",
    0x80000017: "Windows Overlay Filter file (IO_REPARSE_TAG_WOF)",
}


class ReparseError(ValueError):
    """A malformed or unsupported reparse buffer."""


@attrs.frozen
class ReparsePoint:
    target: str  # the print name, as the tar carries it
    junction: bool = False
    relative: bool = False
    substitute: str = ""

    @property
    def tag(self) -> int:
        return IO_REPARSE_TAG_MOUNT_POINT if self.junction else IO_REPARSE_TAG_SYMLINK


def _substitute(target: str) -> tuple[str, bool]:
    """NT substitute name for a link target, and whether it is relative (hcsshim's rules)."""
    t = target.replace("/", "\\")
    if t.startswith("\\\\?\\"):
        return "\\??\\" + t[4:], False
    if t.startswith("\\\\"):
        return "\\??\\UNC\\" + t[2:], False
    if len(t) >= 3 and t[1] == ":" and t[2] == "\\" and t[0].isalpha():
        return "\\??\\" + t, False
    return t, True


def encode_reparse(target: str, junction: bool = False) -> bytes:
    substitute, relative = _substitute(target)
    print_name = target.replace("/", "\\")
    sub_b = substitute.encode("utf-16-le", "surrogatepass")
    prn_b = print_name.encode("utf-16-le", "surrogatepass")
    path = sub_b + b"\0\0" + prn_b + b"\0\0"
    names = struct.pack("<HHHH", 0, len(sub_b), len(sub_b) + 2, len(prn_b))
    if junction:
        body = names + path
        tag = IO_REPARSE_TAG_MOUNT_POINT
    else:
        body = names + struct.pack("<I", SYMLINK_FLAG_RELATIVE if relative else 0) + path
        tag = IO_REPARSE_TAG_SYMLINK
    if len(body) > 0xFFFF:
        raise ReparseError("link target too long for a reparse buffer")
    return struct.pack("<IHH", tag, len(body), 0) + body


def decode_reparse(buf: bytes) -> ReparsePoint:
    if len(buf) < 8:
        raise ReparseError("reparse buffer shorter than its header")
    tag, length, _ = struct.unpack_from("<IHH", buf)
    if tag not in (IO_REPARSE_TAG_SYMLINK, IO_REPARSE_TAG_MOUNT_POINT):
        what = OTHER_TAGS.get(tag, "unknown reparse point")
        raise ReparseError(f"unsupported reparse tag 0x{tag:08X}: {what}")
    if 8 + length > len(buf) or length < 8:
        raise ReparseError("reparse buffer length does not match its header")
    sub_off, sub_len, prn_off, prn_len = struct.unpack_from("<HHHH", buf, 8)
    junction = tag == IO_REPARSE_TAG_MOUNT_POINT
    if junction:
        flags, start = 0, 16
    else:
        if length < 12:
            raise ReparseError("symlink reparse buffer too short")
        (flags,) = struct.unpack_from("<I", buf, 16)
        start = 20
    end = 8 + length
    def name(off: int, n: int) -> str:
        if start + off + n > end:
            raise ReparseError("reparse name outside the buffer")
        return buf[start + off:start + off + n].decode("utf-16-le", "surrogatepass")
    return ReparsePoint(
        target=name(prn_off, prn_len), junction=junction,
        relative=bool(flags & SYMLINK_FLAG_RELATIVE), substitute=name(sub_off, sub_len),
    )


def reparse_tag(buf: bytes) -> int:
    """The tag of any reparse buffer (0 when it is too short)."""
    return struct.unpack_from("<I", buf)[0] if len(buf) >= 4 else 0
