"""The rules a layer tar's names break by themselves (``validate_name``): no context needed.

Windows refuses what POSIX tars allow: a drive or UNC path, '..', a DOS device name (CON,
NUL.txt, COM1), a trailing dot or space, characters such as '?' or '|', a component over 255
characters. The checker (:mod:`wincontainers.layerfile.validate`) adds what needs the rest of
the layer; the tree copy of a build step uses these rules alone. Every entry of a layer is
checked, so the common case (a plain ASCII name) takes a short way, its folder's findings
remembered.
"""

from __future__ import annotations

import functools
import re

from wincontainers.layerfile.tarstream import remembered

__all__ = ["namespace_problems", "shown", "validate_name"]

_RESERVED = re.compile(r"\A(CON|PRN|AUX|NUL|COM[0-9\u00b9\u00b2\u00b3]|LPT[0-9\u00b9\u00b2\u00b3]|CONIN\$|CONOUT\$)\Z", re.I)
_INVALID_CHARS = re.compile(r'[<>"|?*\x00-\x1f]')
_NAMESPACES = ("Files", "Hives", "UtilityVM")
_LEGACY_MAX_PATH = 259  # C:\ + path + NUL = 260
_MAX_PATH = 32767
_MAX_COMPONENT = 255
_DRIVE = re.compile(r"[A-Za-z]:")


def shown(path: str) -> str:
    """A path for people: in double quotes, as it is (backslashes single), with only what
    would not print escaped."""
    out = []
    for ch in path:
        if ch == '"':
            out.append('\\"')
        elif ch.isprintable() and not 0xDC80 <= ord(ch) <= 0xDCFF:
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}")
    return '"' + "".join(out) + '"'


def validate_name(name: str) -> list[tuple[str, str]]:
    """Rules a tar name breaks, as ``(rule, message)``: the checks that need no context."""
    if name.isascii() and "\\" not in name and ":" not in name and not name.startswith("/"):
        framed = "/" + name + "/"
        if "/./" not in framed and "/../" not in framed and "//" not in framed:
            return _plain_name_problems(name)
    return _name_problems(name)


def _plain_name_problems(name: str) -> list[tuple[str, str]]:
    """``_name_problems`` of a name known to be ASCII, relative, without '\\', ':', '.', '..' or
    empty components: its length, and its components' own problems, the folder's remembered
    (a layer's names share their folders)."""
    problems: list[tuple[str, str]] = []
    units = len(name)
    if units + 3 > _MAX_PATH:
        problems.append(("path-too-long", f"the path is {units} UTF-16 units long"))
    elif name.startswith("Files/") and units - len("Files/") + 3 > _LEGACY_MAX_PATH:
        windows = name[6:].replace("/", "\\")
        problems.append(("long-path", f"C:\\{windows} is {units - 3} characters long"))
    folder, _, last = name.rpartition("/")
    if folder:
        problems.extend(_folder_problems(folder))
    problems.extend(_component_problems(last))
    return problems


@remembered(maxsize=1024, limit=1024)
def _folder_problems(folder: str) -> tuple[tuple[str, str], ...]:
    return tuple(problem for part in folder.split("/") for problem in _component_problems(part))


def _name_problems(name: str) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if not name:
        return [("dot-component", "the name is empty")]
    if "\\" in name:
        if name.startswith(("\\\\?\\", "\\??\\", "\\\\.\\")) or name.startswith("\\\\"):
            problems.append(("unc-path", "the name is a UNC or NT device path"))
        problems.append(("backslash", "the name contains '\\'"))
    if name.startswith("//"):
        problems.append(("unc-path", "the name is a UNC path"))
    elif name.startswith("/"):
        problems.append(("absolute-path", "the name is absolute"))
    if _DRIVE.match(name):
        problems.append(("drive-path", "the name starts with a drive letter"))
    parts = name.replace("\\", "/").split("/")
    if any(":" in part for part in parts[:-1]):
        problems.append(("colon", "a folder name contains ':'"))
    for i, part in enumerate(parts):
        if part == "..":
            problems.append(("path-traversal", "a path component is '..'"))
        elif part == "." or (part == "" and 0 < i < len(parts) - 1):
            problems.append(("dot-component", "a path component is '.' or empty"))
    units = len(name) if name.isascii() else len(name.encode("utf-16-le", "surrogatepass")) // 2
    if units + 3 > _MAX_PATH:
        problems.append(("path-too-long", f"the path is {units} UTF-16 units long"))
    elif name.startswith("Files/") and units - len("Files/") + 3 > _LEGACY_MAX_PATH:
        windows = name[6:].replace("/", "\\")
        problems.append(("long-path", f"C:\\{windows} is {units - 3} characters long"))
    for part in parts:
        problems.extend(_component_problems(part))
    return problems


@functools.lru_cache(maxsize=4096)
def _component_problems(part: str) -> tuple[tuple[str, str], ...]:
    """What one path component breaks by itself (the names of a layer share most of theirs:
    remembered)."""
    problems = []
    base = part.split(":", 1)[0] if ":" in part else part
    units = len(part) if part.isascii() else len(part.encode("utf-16-le", "surrogatepass")) // 2
    if units > _MAX_COMPONENT:
        problems.append(("path-too-long", f"the component {shown(part[:30])}... is longer than 255 characters"))
    stem = base.split(".", 1)[0].rstrip(" ")
    if _RESERVED.match(stem):
        problems.append(("reserved-name", f"{shown(part)} is a DOS device name"))
    if base.endswith((".", " ")) and base not in (".", ".."):
        problems.append(("trailing-dot-space", f"{shown(base)} ends with '.' or ' '"))
    if _INVALID_CHARS.search(part):
        problems.append(("invalid-character", f"{shown(part)} contains a character Windows forbids"))
    return tuple(problems)


def namespace_problems(name: str) -> list[tuple[str, str]]:
    first = name.split("/", 1)[0]
    if first in _NAMESPACES:
        if first == "UtilityVM" and name != "UtilityVM" and not (name == "UtilityVM/Files" or name.startswith("UtilityVM/Files/")):
            return [("utilityvm-layout", "only UtilityVM/Files/... may follow UtilityVM/")]
        return []
    if first.lower() in {n.lower() for n in _NAMESPACES}:
        return [("namespace-case", f"the top folder is spelled {shown(first)}")]
    return [("outside-namespace", f"the top folder {shown(first)} is not Files, Hives or UtilityVM")]
