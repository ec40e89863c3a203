"""Folders and files of the simulated host that only its user may touch.

A simulated host keeps its disk, its daemon's socket and log, and the DLLs it loads under folders
of the user's choosing (``--root``, ``/tmp`` for long socket paths, the build cache). In a
folder another user owns or may write to, that user could plant a link where the daemon opens
its log, swap a DLL, or read the layers. So each such folder must be the user's own, a real
folder (not a link) that nobody else may write; a folder the simulator makes is private
(0700), and one it owns already is made private. Files it opens there are opened without
following links.
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import os
import stat
from pathlib import Path
from typing import IO

from wincontainers.errors import BadInput

__all__ = ["private_folder", "open_private"]


def private_folder(path: Path, what: str) -> Path:
    """Make ``path`` (and missing parents) or check it: this user's own folder, not a link,
    writable by nobody else; it is made private (0700). Raises :class:`BadInput` otherwise."""
    try:
        os.makedirs(path.parent, exist_ok=True)
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise BadInput(f"cannot make the {what} {path}: {exc.strerror}") from None
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise BadInput(f"the {what} {path} is a symbolic link; use a real folder of your own")
    if not stat.S_ISDIR(st.st_mode):
        raise BadInput(f"the {what} {path} is not a folder")
    if st.st_uid != os.getuid():
        raise BadInput(f"the {what} {path} belongs to another user (uid {st.st_uid}); use a folder of your own")
    if st.st_mode & 0o022:
        raise BadInput(f"the {what} {path} may be written by other users (mode {stat.S_IMODE(st.st_mode):o}); "
                       "use a folder only you can write")
    if stat.S_IMODE(st.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path


def open_private(path: Path, mode: str = "ab") -> IO[bytes]:
    """Open (creating, 0600) a file of a private folder without following a link at its name."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    flags |= os.O_APPEND if "a" in mode else os.O_TRUNC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        raise BadInput(f"cannot open {path}: {exc.strerror} (a link there is not followed)") from None
    return os.fdopen(fd, mode)
