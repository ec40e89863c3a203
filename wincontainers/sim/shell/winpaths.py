"""Windows paths over a container's root folder: ``C:\\`` is the root, names compare without case.

Paths come from scripts, so they are hostile: ``..`` stops at ``C:\\``, and a link in the
container is read as the Windows link it stands for (its target is a Windows path, resolved
inside the container again), never followed by the host into its own file system.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Mapping, Optional

from wincontainers.sim.shell.textio import CommandError

__all__ = ["ContainerFs", "DRIVE", "split_name"]

DRIVE = "C:"
_MAX_LINKS = 31  # as many reparse points as Windows follows in one path


class ContainerFs:
    """The container's C: drive and the current directory of one cmd process."""

    def __init__(self, root: Path, cwd: str = "C:\\", mounts: Optional[Mapping[str, str]] = None) -> None:
        self.root = root
        #: Mapped folders: ``users/public/data`` (lower case, ``/``) -> the host folder shown there.
        self.mounts = {k.lower().strip("/"): Path(v) for k, v in (mounts or {}).items()}
        self.cwd = DRIVE + "\\"
        self.cwd = self.full(cwd)

    def copy(self) -> "ContainerFs":
        fs = ContainerFs(self.root, "C:\\")
        fs.mounts, fs.cwd = self.mounts, self.cwd
        return fs

    def full(self, path: str) -> str:
        """The absolute Windows path (``C:\\a\\b``) of ``path`` as typed, relative to the current directory."""
        p = path.replace("/", "\\")
        if len(p) >= 2 and p[1] == ":":
            if p[:2].upper() != DRIVE:
                raise CommandError("The system cannot find the drive specified.")
            p = p[2:]
            if not p.startswith("\\"):
                p = self.cwd[2:].rstrip("\\") + "\\" + p
        elif p.startswith("\\\\"):
            raise CommandError("The network path was not found.", 53)
        elif not p.startswith("\\"):
            p = self.cwd[2:].rstrip("\\") + "\\" + p
        parts: list[str] = []
        for part in p.split("\\"):
            part = part.rstrip(" .") if part not in (".", "..") else part
            if part in ("", "."):
                continue
            if part == "..":
                if parts:
                    parts.pop()
                continue
            parts.append(part)
        return DRIVE + "\\" + "\\".join(parts)

    def host(self, path: str, *, follow_last: bool = True) -> Path:
        """The host path of ``path``; missing names keep the case they were typed in."""
        return self._host_of(self.full(path), follow_last, 0)

    def _host_of(self, full: str, follow_last: bool, depth: int) -> Path:
        parts = [p for p in full[3:].split("\\") if p]
        cur = self.root
        for i, part in enumerate(parts):
            mount = self.mounts.get("/".join(parts[:i + 1]).lower()) if self.mounts else None
            if mount is not None:
                cur = mount
                continue
            cur = _child(cur, part)
            last = i == len(parts) - 1
            if (not last or follow_last) and cur.is_symlink():
                if depth >= _MAX_LINKS:
                    raise CommandError("The name of the file cannot be resolved by the system.", 1921)
                target = os.readlink(cur)
                base = self.to_windows(cur.parent)
                linked = self._absolute_target(target, base)
                cur = self._host_of(linked, True, depth + 1)
        return cur

    def _absolute_target(self, target: str, base: str) -> str:
        t = target.replace("/", "\\")
        if t.startswith("\\??\\"):
            t = t[4:]
        if len(t) >= 2 and t[1] == ":":
            return self.full(t) if t[:2].upper() == DRIVE else DRIVE + "\\"
        if t.startswith("\\"):
            return DRIVE + "\\"  # a host path: not inside the container, so nothing is there
        return ContainerFs(self.root, base).full(t)

    def to_windows(self, host: Path) -> str:
        """``<root>/Users/x`` -> ``C:\\Users\\x``."""
        for inside, mounted in self.mounts.items():
            if host == mounted or mounted in Path(host).parents:
                tail = os.path.relpath(host, mounted)
                rel = inside.replace("/", os.sep) + ("" if tail == "." else os.sep + tail)
                return DRIVE + "\\" + rel.replace(os.sep, "\\")
        rel = os.path.relpath(host, self.root)
        if rel == ".":
            return DRIVE + "\\"
        return DRIVE + "\\" + rel.replace(os.sep, "\\")

    def is_dir(self, path: str) -> bool:
        try:
            return self.host(path).is_dir()
        except CommandError:
            return False

    def exists(self, path: str) -> bool:
        try:
            return os.path.lexists(self.host(path))
        except CommandError:
            return False

    def stat(self, path: str) -> Optional[os.stat_result]:
        try:
            return os.stat(self.host(path))
        except (OSError, CommandError):
            return None


def _child(folder: Path, name: str) -> Path:
    """``folder / name``, matching an existing entry's name without case."""
    exact = folder / name
    try:
        os.lstat(exact)
        return exact
    except OSError:
        pass
    try:
        st = os.lstat(folder)
    except OSError:
        return exact
    if not stat.S_ISDIR(st.st_mode):
        return exact
    lower = name.lower()
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.lower() == lower:
                    return folder / entry.name
    except OSError:
        pass
    return exact


def split_name(path: str) -> tuple[str, str]:
    """``C:\\a\\b.txt`` -> (``C:\\a``, ``b.txt``)."""
    head, _, tail = path.rstrip("\\").rpartition("\\")
    if not head or head.endswith(":"):
        head = DRIVE + "\\"
    return head, tail
