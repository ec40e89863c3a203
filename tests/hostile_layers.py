"""A corpus of hostile layer tars, one per pitfall (layer-format.md section 4 and more).

Each case is built at run time: well-formed tars with hostile names through LayerWriter, and
malformed ones (bad bytes in names, oversized headers, broken checksums) block by block.
"""

from __future__ import annotations

import base64
import io
from typing import Any, Optional

import attrs

from wincontainers.layerfile import EntryKind, LayerEntry, LayerWriter
from wincontainers.layerfile.security import SD_SAMPLE_NO_DACL
from wincontainers.layerfile.tarstream import BLOCK, header_block, pax_record
from wincontainers.layerfile.validate import REPARSE_EXTENSION


@attrs.frozen
class Case:
    id: str
    rule: str
    tar: bytes
    check: dict[str, Any] = attrs.field(factory=dict)
    severity: str = "error"


def _d(name: str, **kw: Any) -> tuple[LayerEntry, Optional[bytes]]:
    return LayerEntry(name, EntryKind.DIRECTORY, attributes=16, **kw), None


def _f(name: str, data: bytes = b"x", **kw: Any) -> tuple[LayerEntry, Optional[bytes]]:
    return LayerEntry(name, EntryKind.FILE, size=len(data), attributes=kw.pop("attributes", 32), **kw), data


def _link(name: str, target: str, kind: EntryKind = EntryKind.SYMLINK, **kw: Any) -> tuple[LayerEntry, None]:
    return LayerEntry(name, kind, attributes=kw.pop("attributes", 1056), link_target=target, **kw), None


def _hard(name: str, target: str) -> tuple[LayerEntry, None]:
    return LayerEntry(name, EntryKind.HARDLINK, attributes=32, link_target=target), None


def _wh(name: str) -> tuple[LayerEntry, None]:
    return LayerEntry(name, EntryKind.WHITEOUT), None


def layer(*entries: tuple[LayerEntry, Optional[bytes]], hives: bool = True) -> bytes:
    out = io.BytesIO()
    with LayerWriter(out) as w:
        w.add(*_with_data(_d("Files")))
        for entry, data in entries:
            w.add(*_with_data((entry, data)))
        if hives:
            w.add(*_with_data(_d("Hives")))
    return out.getvalue()


def _with_data(pair: tuple[LayerEntry, Optional[bytes]]) -> tuple[LayerEntry, Optional[io.BytesIO]]:
    entry, data = pair
    return entry, (io.BytesIO(data) if data is not None else None)


def raw_tar(*headers: bytes) -> bytes:
    return b"".join(headers) + b"\0" * (2 * BLOCK)


def raw_file(raw_name: bytes, data: bytes = b"x", typeflag: str = "0") -> bytes:
    block = bytearray(header_block(name="", typeflag=typeflag, size=len(data), mode=0o100000, raw_name=raw_name))
    return bytes(block) + data + b"\0" * ((-len(data)) % BLOCK)


def files_dir() -> bytes:
    return header_block(name="Files", typeflag="5", mode=0o40000)


def corpus() -> list[Case]:
    lx_symlink = bytes.fromhex("1d0000a0") + b"\x08\x00\x00\x00" + b"\x02\x00\x00\x00usr/bin"
    bad_sd = LayerEntry("Files/bad-sd.txt", EntryKind.FILE, size=1, attributes=32, security=b"\x02\x00garbage")
    big_sd = LayerEntry("Files/big-sd.txt", EntryKind.FILE, size=1, attributes=32,
                        security=base64.b64decode(SD_SAMPLE_NO_DACL) + b"\0" * 70000)
    lx = LayerEntry("Files/usr-bin-vi", EntryKind.FILE, size=0, attributes=0x420,
                    pax_extra={REPARSE_EXTENSION: base64.b64encode(lx_symlink).decode()})
    huge_pax = b"".join(pax_record(f"k{i}", "v" * 1000) for i in range(2200))
    x_header = header_block(name="", typeflag="x", size=len(huge_pax), raw_name=b"PaxHeaders.0/Files")
    broken = bytearray(files_dir())
    broken[148:156] = b"0000000\0"
    return [
        Case("dotdot-into-hives", "path-traversal", layer(_f("Files/../Hives/escaped.txt"))),
        Case("dotdot-first", "path-traversal", layer(_f("../Hives/x"))),
        Case("absolute", "absolute-path", layer(_f("/Files/x"))),
        Case("drive", "drive-path", layer(_f("C:/Windows/x"))),
        Case("unc", "unc-path", layer(_f("//server/share/x"))),
        Case("nt-prefix", "unc-path", layer(_f("\\\\?\\C:\\x"))),
        Case("backslash", "backslash", layer(_f("Files\\..\\x"))),
        Case("dot", "dot-component", layer(_f("Files/./x"))),
        Case("outside", "outside-namespace", layer(_f("Windows/System32/evil.dll"))),
        Case("case-namespace", "namespace-case", layer(_f("files/x"))),
        Case("utilityvm", "utilityvm-layout", layer(_d("UtilityVM"), _f("UtilityVM/Other"))),
        Case("utilityvm-order", "utilityvm-order", layer(_d("UtilityVM"), _d("UtilityVM/Files"), _f("Files/late")),
             severity="warning"),
        Case("utilityvm-no-bcd", "utilityvm-bcd", layer(_d("UtilityVM"), _d("UtilityVM/Files"),
                                                        _f("UtilityVM/Files/x.dll"), hives=False),
             check={"base": True}, severity="warning"),
        Case("reserved", "reserved-name", layer(_f("Files/CON"))),
        Case("reserved-ext", "reserved-name", layer(_f("Files/nul.txt"))),
        Case("reserved-superscript", "reserved-name", layer(_f("Files/COM\u00b9"))),
        Case("reserved-space", "reserved-name", layer(_f("Files/COM1 .log"))),
        Case("trailing-dot-space", "trailing-dot-space", layer(_f("Files/a. "))),
        Case("invalid-char", "invalid-character", layer(_f("Files/a?b"))),
        Case("colon-folder", "colon", layer(_d("Files/a:b"), _f("Files/a:b/c"))),
        Case("case-collision", "case-collision", layer(_f("Files/Readme"), _f("Files/README"))),
        Case("duplicate", "duplicate", layer(_f("Files/x"), _f("Files/x"))),
        Case("parent-missing", "parent-missing", layer(_f("Files/dir/x"))),
        Case("orphan-stream", "orphan-stream", layer(_f("Files/a"), _f("Files/b"), (LayerEntry(
            "Files/a:s", EntryKind.STREAM, size=1), b"s"))),
        Case("stream-type", "stream-type", layer(_d("Files/dir"), (LayerEntry(
            "Files/dir::$INDEX_ALLOCATION", EntryKind.STREAM, size=1), b"s"))),
        Case("stream-name", "stream-name", layer(_f("Files/a"), (LayerEntry(
            "Files/a:bad\\name", EntryKind.STREAM, size=1), b"s"))),
        Case("component-too-long", "path-too-long", layer(_f("Files/" + "n" * 300))),
        Case("long-path", "long-path", layer(*_deep(300)), severity="warning"),
        Case("not-utf8", "invalid-utf8", raw_tar(files_dir(), raw_file(b"Files/caf\xe9.txt"))),
        Case("not-utf16", "invalid-utf16", raw_tar(files_dir(), raw_file(b"Files/\xed\xa0\x80.txt")), severity="warning"),
        Case("hardlink-dotdot", "hardlink-escape", layer(_hard("Files/x", "Files/../../Windows/x"))),
        Case("hardlink-absolute", "hardlink-escape", layer(_hard("Files/x", "/etc/passwd"))),
        Case("hardlink-namespace", "hardlink-cross-namespace", layer(_f("Files/y"), _hard("Hives/x", "Files/y"))),
        Case("hardlink-missing", "hardlink-missing-target", layer(_hard("Files/x", "Files/nowhere")),
             check={"base": True}),
        Case("hardlink-to-link", "hardlink-to-link", layer(_link("Files/l", "target"), _hard("Files/x", "Files/l"))),
        Case("symlink-unc", "symlink-outside", layer(_link("Files/l", "\\\\server\\share"))),
        Case("symlink-drive", "symlink-outside", layer(_link("Files/l", "D:\\data"))),
        Case("through-link", "through-link", layer(_link("Files/x", "C:\\Windows", EntryKind.JUNCTION,
                                                           attributes=1040), _f("Files/x/evil.dll"))),
        Case("lx-symlink", "unsupported-reparse", layer((lx, b""))),
        Case("reparse-as-file", "reparse-as-file", layer(_f("Files/vi", attributes=0x420))),
        Case("whiteout-hives", "whiteout-outside-files", layer(_wh("Hives/.wh.System_Delta"))),
        Case("opaque-whiteout", "opaque-whiteout", layer(_d("Files/dir"), _wh("Files/dir/.wh..wh..opq"))),
        Case("empty-whiteout", "empty-whiteout", layer(_wh("Files/.wh."))),
        Case("whiteout-in-base", "whiteout-in-base", layer(_wh("Files/.wh.x"), hives=False), check={"base": True}),
        Case("bad-sd", "bad-security-descriptor", layer((bad_sd, b"x"))),
        Case("oversized-sd", "oversized-metadata", layer((big_sd, b"x"))),
        Case("fifo", "unsupported-entry", raw_tar(files_dir(), raw_file(b"Files/fifo", b"", typeflag="6"))),
        Case("oversized-header", "malformed-tar",
             raw_tar(x_header, huge_pax + b"\0" * ((-len(huge_pax)) % BLOCK), files_dir())),
        Case("bad-checksum", "malformed-tar", raw_tar(bytes(broken))),
        Case("recycle-bin", "recycle-bin", layer(_d("Files/$Recycle.Bin"), _f("Files/$Recycle.Bin/$RXYZ.txt")),
             severity="warning"),
        Case("posix-symlink", "posix-symlink", layer(_link("Files/l", "/usr/bin/vim")), severity="warning"),
        Case("symlink-escape", "symlink-escape", layer(_link("Files/l", "..\\..\\..\\x")), severity="warning"),
    ]


def _deep(length: int) -> list[tuple[LayerEntry, Optional[bytes]]]:
    entries: list[tuple[LayerEntry, Optional[bytes]]] = []
    path = "Files"
    while len(path) < length:
        path += "/" + "d" * 50
        entries.append(_d(path))
    entries.append(_f(path + "/file.txt"))
    return entries


def blog_layer() -> bytes:
    """What the blog's Cygwin layer looked like: an LX symlink, a hard link out of the layer,
    a $Recycle.Bin file, a 300-character path, next to ordinary content."""
    lx_symlink = bytes.fromhex("1d0000a0") + b"\x0c\x00\x00\x00" + b"\x02\x00\x00\x00" + b"vim.basic"
    deep = _deep(300)
    return layer(
        _d("Files/cygwin64"), _d("Files/cygwin64/bin"),
        _f("Files/cygwin64/bin/bash.exe", b"MZ bash"),
        (LayerEntry("Files/cygwin64/bin/vi", EntryKind.FILE, size=0, attributes=0x420,
                    pax_extra={REPARSE_EXTENSION: base64.b64encode(lx_symlink).decode()}), b""),
        _hard("Files/cygwin64/bin/sh.exe", "Files/Windows/System32/cmd.exe"),
        _d("Files/$Recycle.Bin"), _f("Files/$Recycle.Bin/$R1234.txt", b"deleted"),
        *deep,
    )
