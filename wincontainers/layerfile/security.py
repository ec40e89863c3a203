"""Security descriptors: the self-relative SECURITY_DESCRIPTOR of ``MSWINDOWS.rawsd``, and SDDL.

Layers carry the raw bytes (``rawsd``) and wincontainers passes them through untouched; this
module parses them to show and check them (``SecurityDescriptor.to_sddl()``), builds them, and
reads the legacy ``MSWINDOWS.sd`` SDDL form (MS-DTYP 2.4.6, 2.5.1).
"""

from __future__ import annotations

import re
import struct
from typing import Mapping, Optional

import attrs

__all__ = ["Sid", "Ace", "Acl", "SecurityDescriptor", "SecurityError", "SD_SAMPLE_NO_DACL"]

SE_OWNER_DEFAULTED = 0x0001
SE_GROUP_DEFAULTED = 0x0002
SE_DACL_PRESENT = 0x0004
SE_DACL_DEFAULTED = 0x0008
SE_SACL_PRESENT = 0x0010
SE_DACL_AUTO_INHERIT_REQ = 0x0100
SE_SACL_AUTO_INHERIT_REQ = 0x0200
SE_DACL_AUTO_INHERITED = 0x0400
SE_SACL_AUTO_INHERITED = 0x0800
SE_DACL_PROTECTED = 0x1000
SE_SACL_PROTECTED = 0x2000
SE_SELF_RELATIVE = 0x8000

#: The descriptor third-party Windows layer builders give added files: O:BUG:BU, no DACL.
SD_SAMPLE_NO_DACL = "AQAAgBQAAAAkAAAAAAAAAAAAAAABAgAAAAAABSAAAAAhAgAAAQIAAAAAAAUgAAAAIQIAAA=="


class SecurityError(ValueError):
    """A malformed security descriptor or SDDL string."""


_SID_ALIASES: Mapping[str, str] = {
    "WD": "S-1-1-0", "CO": "S-1-3-0", "CG": "S-1-3-1", "OW": "S-1-3-4", "NU": "S-1-5-2",
    "IU": "S-1-5-4", "SU": "S-1-5-6", "AN": "S-1-5-7", "ED": "S-1-5-9", "PS": "S-1-5-10",
    "AU": "S-1-5-11", "RC": "S-1-5-12", "SY": "S-1-5-18", "LS": "S-1-5-19", "NS": "S-1-5-20",
    "BA": "S-1-5-32-544", "BU": "S-1-5-32-545", "BG": "S-1-5-32-546", "PU": "S-1-5-32-547",
    "AO": "S-1-5-32-548", "SO": "S-1-5-32-549", "PO": "S-1-5-32-550", "BO": "S-1-5-32-551",
    "RE": "S-1-5-32-552", "RU": "S-1-5-32-554", "RD": "S-1-5-32-555", "NO": "S-1-5-32-556",
    "AC": "S-1-15-2-1", "LW": "S-1-16-4096", "ME": "S-1-16-8192", "HI": "S-1-16-12288",
    "SI": "S-1-16-16384",
}
_ALIAS_OF_SID = {v: k for k, v in _SID_ALIASES.items()}

_ACE_TYPES = {"A": 0, "D": 1, "AU": 2, "AL": 3, "ML": 0x11}
_ACE_TYPE_NAMES = {v: k for k, v in _ACE_TYPES.items()}
_ACE_FLAGS = {"OI": 0x1, "CI": 0x2, "NP": 0x4, "IO": 0x8, "ID": 0x10, "SA": 0x40, "FA": 0x80}
_FILE_RIGHTS = {"FA": 0x1F01FF, "FR": 0x120089, "FW": 0x120116, "FX": 0x1200A0}
_GENERIC_RIGHTS = {"GA": 0x10000000, "GX": 0x20000000, "GW": 0x40000000, "GR": 0x80000000,
                   "SD": 0x10000, "RC": 0x20000, "WD": 0x40000, "WO": 0x80000}
_RIGHT_NAMES = {v: k for k, v in _FILE_RIGHTS.items()}


@attrs.frozen
class Sid:
    """A security identifier (``S-1-5-32-544``)."""

    authority: int
    subauthorities: tuple[int, ...]
    revision: int = 1

    def __str__(self) -> str:
        auth = str(self.authority) if self.authority < 2**32 else f"0x{self.authority:012X}"
        return "S-{}-{}".format(self.revision, "-".join([auth, *map(str, self.subauthorities)]))

    def to_bytes(self) -> bytes:
        return (struct.pack("<BB", self.revision, len(self.subauthorities)) + self.authority.to_bytes(6, "big")
                + b"".join(struct.pack("<I", s) for s in self.subauthorities))

    @classmethod
    def from_bytes(cls, buf: bytes, offset: int = 0) -> tuple["Sid", int]:
        if len(buf) - offset < 8:
            raise SecurityError("truncated SID")
        revision, count = buf[offset], buf[offset + 1]
        size = 8 + 4 * count
        if revision != 1 or count > 15 or len(buf) - offset < size:
            raise SecurityError("malformed SID")
        authority = int.from_bytes(buf[offset + 2:offset + 8], "big")
        subs = struct.unpack_from(f"<{count}I", buf, offset + 8)
        return cls(authority, tuple(subs), revision), size

    @classmethod
    def parse(cls, text: str) -> "Sid":
        """From ``S-1-...`` or an SDDL alias (``BA``, ``SY``...)."""
        text = _SID_ALIASES.get(text.upper(), text) if len(text) == 2 else text
        m = re.fullmatch(r"S-1-(\d+|0x[0-9A-Fa-f]{12})((?:-\d+){0,15})", text)
        if not m:
            raise SecurityError(f"not a SID: {text!r}")
        auth = int(m.group(1), 0)
        subs = tuple(int(x) for x in m.group(2).split("-")[1:])
        if auth >= 2**48 or any(s >= 2**32 for s in subs):
            raise SecurityError(f"SID value out of range: {text!r}")
        return cls(auth, subs)

    def sddl(self) -> str:
        return _ALIAS_OF_SID.get(str(self), str(self))


@attrs.frozen
class Ace:
    """An access control entry. Standard (allow/deny/audit/alarm/label) ACEs are decoded;
    any other type keeps its body bytes so the ACL round-trips."""

    type: int
    flags: int
    mask: int = 0
    sid: Optional[Sid] = None
    body: bytes = b""

    def to_bytes(self) -> bytes:
        body = struct.pack("<I", self.mask) + self.sid.to_bytes() if self.sid is not None else self.body
        size = 4 + len(body)
        pad = (-size) % 4
        return struct.pack("<BBH", self.type, self.flags, size + pad) + body + b"\0" * pad

    @classmethod
    def from_bytes(cls, buf: bytes, offset: int) -> tuple["Ace", int]:
        if len(buf) - offset < 4:
            raise SecurityError("truncated ACE")
        ace_type, flags, size = struct.unpack_from("<BBH", buf, offset)
        if size < 4 or len(buf) - offset < size:
            raise SecurityError("ACE size out of range")
        if ace_type in _ACE_TYPE_NAMES and size >= 16:
            (mask,) = struct.unpack_from("<I", buf, offset + 4)
            sid, sid_size = Sid.from_bytes(buf[:offset + size], offset + 8)
            if 8 + sid_size == size or (8 + sid_size) <= size:
                return cls(ace_type, flags, mask, sid), size
        return cls(ace_type, flags, body=bytes(buf[offset + 4:offset + size])), size

    def sddl(self) -> str:
        if self.sid is None or self.type not in _ACE_TYPE_NAMES:
            raise SecurityError(f"ACE type {self.type} has no SDDL form here")
        flags = "".join(n for n, bit in _ACE_FLAGS.items() if self.flags & bit)
        rights = _RIGHT_NAMES.get(self.mask) or f"0x{self.mask:x}"
        return f"({_ACE_TYPE_NAMES[self.type]};{flags};{rights};;;{self.sid.sddl()})"


@attrs.frozen
class Acl:
    aces: tuple[Ace, ...] = ()
    revision: int = 2

    def to_bytes(self) -> bytes:
        body = b"".join(a.to_bytes() for a in self.aces)
        return struct.pack("<BBHHH", self.revision, 0, 8 + len(body), len(self.aces), 0) + body

    @classmethod
    def from_bytes(cls, buf: bytes, offset: int) -> "Acl":
        if len(buf) - offset < 8:
            raise SecurityError("truncated ACL")
        revision, _, size, count, _ = struct.unpack_from("<BBHHH", buf, offset)
        if revision not in (2, 4) or size < 8 or len(buf) - offset < size:
            raise SecurityError("malformed ACL header")
        aces = []
        pos = offset + 8
        end = offset + size
        for _ in range(count):
            ace, n = Ace.from_bytes(buf[:end], pos)
            aces.append(ace)
            pos += n
        return cls(tuple(aces), revision)


@attrs.frozen
class SecurityDescriptor:
    """A security descriptor; ``control`` keeps every SE_* bit it was read with."""

    owner: Optional[Sid] = None
    group: Optional[Sid] = None
    dacl: Optional[Acl] = None
    sacl: Optional[Acl] = None
    control: int = SE_SELF_RELATIVE
    sbz1: int = 0
    revision: int = 1

    @classmethod
    def from_bytes(cls, buf: bytes) -> "SecurityDescriptor":
        if len(buf) < 20:
            raise SecurityError("security descriptor shorter than its 20-byte header")
        revision, sbz1, control, o_owner, o_group, o_sacl, o_dacl = struct.unpack_from("<BBHIIII", buf)
        if revision != 1:
            raise SecurityError(f"security descriptor revision {revision} (expected 1)")
        if not control & SE_SELF_RELATIVE:
            raise SecurityError("not a self-relative security descriptor")
        for off in (o_owner, o_group, o_sacl, o_dacl):
            if off and not 20 <= off < len(buf):
                raise SecurityError("security descriptor offset points outside it")
        owner = Sid.from_bytes(buf, o_owner)[0] if o_owner else None
        group = Sid.from_bytes(buf, o_group)[0] if o_group else None
        sacl = Acl.from_bytes(buf, o_sacl) if o_sacl and control & SE_SACL_PRESENT else None
        dacl = Acl.from_bytes(buf, o_dacl) if o_dacl and control & SE_DACL_PRESENT else None
        return cls(owner, group, dacl, sacl, control, sbz1, revision)

    @classmethod
    def from_base64(cls, text: str) -> "SecurityDescriptor":
        import base64
        import binascii

        try:
            return cls.from_bytes(base64.b64decode(text, validate=True))
        except binascii.Error as exc:
            raise SecurityError(f"rawsd is not base64: {exc}") from None

    def to_bytes(self) -> bytes:
        """Self-relative form, laid out owner, group, SACL, DACL."""
        parts = []
        offsets = {"owner": 0, "group": 0, "sacl": 0, "dacl": 0}
        pos = 20
        for key, value in (("owner", self.owner), ("group", self.group), ("sacl", self.sacl), ("dacl", self.dacl)):
            if value is None:
                continue
            data = value.to_bytes()
            offsets[key] = pos
            parts.append(data)
            pos += len(data)
        control = self.control | SE_SELF_RELATIVE
        control = control | SE_DACL_PRESENT if self.dacl is not None else control & ~SE_DACL_PRESENT
        control = control | SE_SACL_PRESENT if self.sacl is not None else control & ~SE_SACL_PRESENT
        header = struct.pack("<BBHIIII", self.revision, self.sbz1, control, offsets["owner"], offsets["group"],
                             offsets["sacl"], offsets["dacl"])
        return header + b"".join(parts)

    def to_sddl(self) -> str:
        out = []
        if self.owner is not None:
            out.append("O:" + self.owner.sddl())
        if self.group is not None:
            out.append("G:" + self.group.sddl())
        if self.dacl is not None:
            out.append("D:" + _acl_flags(self.control, dacl=True) + "".join(a.sddl() for a in self.dacl.aces))
        if self.sacl is not None:
            out.append("S:" + _acl_flags(self.control, dacl=False) + "".join(a.sddl() for a in self.sacl.aces))
        return "".join(out)

    @classmethod
    def from_sddl(cls, text: str) -> "SecurityDescriptor":
        """Parse SDDL (the legacy ``MSWINDOWS.sd`` record)."""
        owner = group = None
        dacl = sacl = None
        control = SE_SELF_RELATIVE
        for key, value in _sddl_components(text.strip()):
            if key == "O":
                owner = Sid.parse(value)
            elif key == "G":
                group = Sid.parse(value)
            else:
                m = re.fullmatch(r"((?:P|AR|AI)*)((?:\([^()]*\))*)", value)
                if not m:
                    raise SecurityError(f"malformed ACL in SDDL: {value!r}")
                shift = 1 if key == "S" else 0
                for flag, bit in (("P", SE_DACL_PROTECTED), ("AR", SE_DACL_AUTO_INHERIT_REQ),
                                  ("AI", SE_DACL_AUTO_INHERITED)):
                    if flag in re.findall(r"P|AR|AI", m.group(1)):
                        control |= bit << shift
                acl = Acl(tuple(_parse_ace(a) for a in re.findall(r"\(([^()]*)\)", m.group(2))))
                if key == "D":
                    dacl = acl
                else:
                    sacl = acl
        return cls(owner, group, dacl, sacl, control)


def _sddl_components(text: str) -> list[tuple[str, str]]:
    """``O:BAG:SYD:(...)`` -> [("O", "BA"), ("G", "SY"), ("D", "(...)")]."""
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while i < n:
        key = text[i]
        if key not in "OGDS" or text[i + 1:i + 2] != ":":
            raise SecurityError(f"unexpected SDDL text at {text[i:i + 12]!r}")
        j = i + 2
        depth = 0
        while j < n:
            c = text[j]
            if c == "(":
                depth += 1
            elif c == ")":
                depth -= 1
            elif depth == 0 and c in "OGDS" and text[j + 1:j + 2] == ":":
                break
            j += 1
        out.append((key, text[i + 2:j]))
        i = j
    return out


def _acl_flags(control: int, dacl: bool) -> str:
    shift = 0 if dacl else 1
    flags = ""
    if control & (SE_DACL_PROTECTED << shift):
        flags += "P"
    if control & (SE_DACL_AUTO_INHERIT_REQ << shift):
        flags += "AR"
    if control & (SE_DACL_AUTO_INHERITED << shift):
        flags += "AI"
    return flags


def _parse_ace(text: str) -> Ace:
    fields = text.split(";")
    if len(fields) != 6:
        raise SecurityError(f"an SDDL ACE has 6 fields: ({text})")
    type_s, flags_s, rights_s, _obj, _inh, sid_s = fields
    if type_s not in _ACE_TYPES:
        raise SecurityError(f"unsupported ACE type {type_s!r}")
    flags = 0
    for i in range(0, len(flags_s), 2):
        name = flags_s[i:i + 2]
        if name not in _ACE_FLAGS:
            raise SecurityError(f"unknown ACE flag {name!r}")
        flags |= _ACE_FLAGS[name]
    if rights_s.lower().startswith("0x"):
        mask = int(rights_s, 16)
    else:
        mask = 0
        for i in range(0, len(rights_s), 2):
            name = rights_s[i:i + 2]
            if name in _FILE_RIGHTS:
                mask |= _FILE_RIGHTS[name]
            elif name in _GENERIC_RIGHTS:
                mask |= _GENERIC_RIGHTS[name]
            else:
                raise SecurityError(f"unknown access right {name!r}")
    return Ace(_ACE_TYPES[type_s], flags, mask, Sid.parse(sid_s))
