"""Windows FILETIME (100 ns ticks since 1601-01-01 UTC) <-> tar PAX time strings.

All arithmetic is on integers: a float would lose the last digits of a nanosecond time
(layer-format.md 1.3, "Python note"). FILETIME keeps 100 ns, so PAX nanoseconds lose their
last two digits on import, exactly as on Windows.
"""

from __future__ import annotations

from typing import Optional

__all__ = ["EPOCH_AS_FILETIME", "filetime_to_pax", "pax_to_filetime", "filetime_to_unix_ns",
           "unix_ns_to_filetime", "filetime_seconds"]

#: 1970-01-01 as a FILETIME.
EPOCH_AS_FILETIME = 116444736000000000


def filetime_to_unix_ns(filetime: int) -> int:
    return (filetime - EPOCH_AS_FILETIME) * 100


def unix_ns_to_filetime(ns: int) -> int:
    # Truncate toward zero, as the Windows tools do for pre-1970 times too.
    ticks = abs(ns) // 100
    return (ticks if ns >= 0 else -ticks) + EPOCH_AS_FILETIME


def filetime_seconds(filetime: int) -> int:
    """Whole seconds since 1970 (floor), for the ustar mtime field."""
    return filetime_to_unix_ns(filetime) // 1_000_000_000


def filetime_to_pax(filetime: int) -> str:
    """``"secs"`` or ``"secs.frac"`` with trailing zeros dropped; negatives use PAX's sign rule."""
    secs, nsecs = divmod(filetime_to_unix_ns(filetime), 1_000_000_000)
    if nsecs == 0:
        return str(secs)
    sign = ""
    if secs < 0:
        sign = "-"
        secs = -(secs + 1)
        nsecs = 1_000_000_000 - nsecs
    return f"{sign}{secs}.{nsecs:09d}".rstrip("0")


#: a FILETIME spans about 58,000 years (12 digits of seconds): longer is no time (and Python
#: refuses to convert integers of more than 4,300 digits at all)
_MAX_SECONDS_DIGITS = 20


def pax_to_filetime(text: str) -> Optional[int]:
    """Parse a PAX time; ``None`` when it is not one."""
    text = text.strip()
    negative = text.startswith("-")
    body = text[1:] if negative else text
    whole, _, frac = body.partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()) or len(whole) > _MAX_SECONDS_DIGITS:
        return None
    ns = int(whole) * 1_000_000_000 + int((frac + "000000000")[:9])
    return unix_ns_to_filetime(-ns if negative else ns)
