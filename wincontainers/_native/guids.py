"""GUIDs between Python and memory: a :class:`uuid.UUID` (or its text, or its 16 bytes in
Windows' order) as a ``GUID *`` for a call, and an out ``GUID`` back as a :class:`uuid.UUID`.

Windows lays a GUID out as Data1 (4 bytes), Data2 and Data3 (2 each), little-endian, then
Data4's 8 bytes as they are: ``uuid.UUID(bytes_le=...)``'s order.
"""

from __future__ import annotations

import struct
import uuid
from typing import Any, Callable, Union

from cffi import FFI

__all__ = ["guid_cdata", "guid_reader", "make_uuid", "uuid_layout_is_known"]

_GUID_LE = struct.Struct("<IHH8s")  # a GUID in memory: Data1-3 little-endian, Data4 as bytes
_GUID_BE = struct.Struct(">IHH8s")  # the same fields as a UUID's 16 big-endian bytes
_new_object, _set_field, _UUID, _UNKNOWN_SAFETY = object.__new__, object.__setattr__, uuid.UUID, uuid.SafeUUID.unknown


def _uuid_of_int(value: int) -> uuid.UUID:
    """``uuid.UUID(int=value)`` for 0 <= value < 2**128, made as the standard library makes one
    internally (Python 3.14's ``UUID._from_int``). Why: the constructor's keyword parsing and
    checks cost a microsecond, more than the rest of what the binding adds to a call that
    returns a GUID (NameToGuid, made for every layer a container uses)."""
    made = _new_object(_UUID)
    _set_field(made, "int", value)
    _set_field(made, "is_safe", _UNKNOWN_SAFETY)
    return made


def uuid_layout_is_known() -> bool:
    """Whether :func:`_uuid_of_int` makes what the constructor makes on this Python."""
    sample = 0x00112233_4455_6677_8899_AABBCCDDEEFF
    proper = uuid.UUID(int=sample)
    try:
        made = _uuid_of_int(sample)
        return made == proper and str(made) == str(proper) and hash(made) == hash(proper)
    except (AttributeError, TypeError):
        return False


#: a UUID from its 128-bit value: the constructor wherever UUID is laid out otherwise
make_uuid: Callable[[int], uuid.UUID] = _uuid_of_int if uuid_layout_is_known() else (lambda v: uuid.UUID(int=v))


def guid_reader(ffi: FFI) -> Callable[[Any], uuid.UUID]:
    """The reader of an out ``GUID *`` cell of ``ffi``: ``uuid.UUID(bytes_le=...)`` of its 16
    bytes, in half the constructor's time."""
    buffer, swap, fields, make = ffi.buffer, _GUID_BE.pack, _GUID_LE.unpack, make_uuid

    def read_guid(cell: Any) -> uuid.UUID:
        return make(int.from_bytes(swap(*fields(buffer(cell, 16))), "big"))
    return read_guid


def guid_cdata(ffi: FFI, value: Union[str, uuid.UUID, bytes]) -> Any:
    """``value`` (a UUID, its text, or its 16 bytes in Windows' order) as a new ``GUID *``."""
    if isinstance(value, str):
        value = uuid.UUID(value)
    raw = value.bytes_le if isinstance(value, uuid.UUID) else bytes(value)
    if len(raw) != 16:
        raise ValueError("a GUID has 16 bytes")
    g = ffi.new("GUID *")
    ffi.memmove(g, raw, 16)
    return g
