"""One entry of a Windows layer tar, with its Windows metadata decoded."""

from __future__ import annotations

import enum
from typing import Optional

import attrs

from wincontainers.layerfile.attributes import FileAttributes

__all__ = ["EntryKind", "LayerEntry", "WHITEOUT_PREFIX"]

WHITEOUT_PREFIX = ".wh."


class EntryKind(enum.Enum):
    DIRECTORY = "directory"
    FILE = "file"
    STREAM = "stream"  # an alternate data stream, named <file>:<stream>
    SYMLINK = "symlink"
    JUNCTION = "junction"  # a symlink entry with MSWINDOWS.mountpoint
    HARDLINK = "hardlink"
    WHITEOUT = "whiteout"  # <dir>/.wh.<name>: <dir>/<name> is deleted
    OTHER = "other"  # devices, FIFOs, GNU sparse...: not part of a Windows layer


@attrs.define
class LayerEntry:
    """An entry; times are FILETIME ticks, ``None`` when the tar did not carry them."""

    name: str
    kind: EntryKind
    size: int = 0
    attributes: Optional[int] = None
    creation_time: Optional[int] = None
    last_access_time: Optional[int] = None
    last_write_time: Optional[int] = None
    change_time: Optional[int] = None
    security: Optional[bytes] = None
    xattrs: dict[str, bytes] = attrs.field(factory=dict)
    link_target: Optional[str] = None
    mode: int = 0
    typeflag: str = ""
    #: the name's bytes as stored, and what was wrong with decoding them (None = valid UTF-8)
    raw_name: bytes = b""
    name_error: Optional[str] = None
    #: PAX records not turned into fields above (kept for checks and round trips)
    pax_extra: dict[str, str] = attrs.field(factory=dict)
    #: the legacy SDDL record, when the tar used MSWINDOWS.sd
    sddl: Optional[str] = None
    header_size: int = 0  # bytes of PAX and tar headers in front of the data

    @property
    def effective_attributes(self) -> int:
        """What Windows will see: the tar's attributes, or the defaults hcsshim applies."""
        if self.attributes is not None:
            return self.attributes
        if self.kind is EntryKind.DIRECTORY:
            return FileAttributes.DIRECTORY
        return 0

    @property
    def is_directory_link(self) -> bool:
        return self.kind in (EntryKind.SYMLINK, EntryKind.JUNCTION) and bool(
            self.effective_attributes & FileAttributes.DIRECTORY
        )

    @property
    def stream_owner(self) -> str:
        """For an alternate data stream ``Files/a.txt:s``: ``Files/a.txt``."""
        head, _, base = self.name.rpartition("/")
        main = base.split(":", 1)[0]
        return f"{head}/{main}" if head else main

    @property
    def stream_name(self) -> str:
        """For ``Files/a.txt:Zone.Identifier`` (or ``...:Zone.Identifier:$DATA``): ``Zone.Identifier``."""
        base = self.name.rpartition("/")[2]
        stream = base.split(":", 1)[1] if ":" in base else ""
        return stream[: -len(":$DATA")] if stream.endswith(":$DATA") else stream

    @property
    def whiteout_target(self) -> str:
        """For ``Files/dir/.wh.name``: ``Files/dir/name``."""
        head, _, base = self.name.rpartition("/")
        target = base[len(WHITEOUT_PREFIX):]
        return f"{head}/{target}" if head else target

    @property
    def times(self) -> tuple[Optional[int], Optional[int], Optional[int], Optional[int]]:
        return (self.creation_time, self.last_access_time, self.last_write_time, self.change_time)
