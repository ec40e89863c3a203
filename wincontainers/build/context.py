"""The build context: ``.dockerignore``, the files a ``COPY``/``ADD`` source names, their digest.

``.dockerignore`` follows Docker: one pattern per line (``#`` comments), ``*`` and ``?`` within
one path component, ``**`` across components, ``[...]`` classes, ``!pattern`` re-includes; a
pattern that matches a directory excludes everything under it; the last matching pattern wins.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import re
import stat
from pathlib import Path
from typing import IO, Iterator, Optional, Sequence

import attrs

from wincontainers import errors

__all__ = ["DockerIgnore", "BuildContext", "ContextSource", "open_no_follow"]


def _pattern_regex(pattern: str) -> "re.Pattern[str]":
    out = []
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if pattern.startswith("**", i):
                i += 2
                if i < n and pattern[i] == "/":  # "**/" : zero or more directories
                    i += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise errors.BadInput(f".dockerignore: bad pattern {pattern!r} (unclosed [)")
            body = pattern[i + 1:end]
            if body.startswith("^") or body.startswith("!"):
                body = "^" + body[1:]
            out.append(f"[{body}]")
            i = end
        elif ch == "\\" and i + 1 < n:
            out.append(re.escape(pattern[i + 1]))
            i += 1
        else:
            out.append(re.escape(ch))
        i += 1
    return re.compile("".join(out))


class DockerIgnore:
    def __init__(self, lines: Sequence[str] = ()) -> None:
        self.patterns: list[tuple["re.Pattern[str]", bool, str]] = []
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            negative = line.startswith("!")
            if negative:
                line = line[1:].strip()
            line = line.replace("\\", "/") if os.sep == "\\" else line
            cleaned = posixpath.normpath(line).lstrip("/")
            if cleaned in ("", "."):
                continue
            self.patterns.append((_pattern_regex(cleaned), negative, cleaned))

    @classmethod
    def load(cls, path: Path) -> "DockerIgnore":
        try:
            return cls(path.read_text(encoding="utf-8-sig").splitlines())
        except FileNotFoundError:
            return cls()

    def excluded(self, rel: str) -> bool:
        """``rel``: a ``/``-separated path relative to the context root."""
        parts = rel.split("/")
        candidates = ["/".join(parts[:i + 1]) for i in range(len(parts))]
        matched = False
        for regex, negative, _text in self.patterns:
            if negative != matched:
                continue
            if any(regex.fullmatch(c) for c in candidates):
                matched = not negative
        return matched


def open_no_follow(path: Path) -> IO[bytes]:
    """Open a context file for reading; a link swapped in since it was listed is refused
    (``O_NOFOLLOW`` where the system has it), not followed out of the context."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise errors.BadInput(f"cannot read {path.name} of the build context: {exc.strerror}") from None
    return os.fdopen(fd, "rb")


@attrs.frozen
class ContextSource:
    """One file or directory to copy: its path on disk and where it goes (relative)."""

    path: Path
    target: str  # "/"-separated, relative to the destination
    directory: bool


_WILDCARD = re.compile(r"[*?\[]")


class BuildContext:
    """A folder on disk (the context) with its ``.dockerignore``."""

    def __init__(self, root: Path, ignore: Optional[DockerIgnore] = None) -> None:
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise errors.BadInput(f"the build context {root} is not a folder")
        self.ignore = ignore if ignore is not None else DockerIgnore.load(self.root / ".dockerignore")

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def _contains(self, path: Path) -> bool:
        return path == self.root or self.root in path.parents

    def _inside(self, source: str) -> Path:
        """The context path a source names: ``..`` stops at the root (as BuildKit does), a
        folder on the way may be a link only when it stays inside, and a last component that is
        a link is returned as it is (:meth:`follows` says whether copying goes through it)."""
        cleaned = posixpath.normpath("/" + source.replace("\\", "/")).lstrip("/")
        candidate = (self.root / cleaned) if cleaned not in ("", ".") else self.root
        if not self._contains(candidate.parent.resolve()) and candidate != self.root:
            raise errors.BadInput(f"COPY source {source!r} is outside the build context (a link on its way "
                                  "leads out of it)")
        return candidate

    def follows(self, path: Path) -> bool:
        """Whether copying the context path ``path`` copies what it points to: yes for anything
        but a link, and for a link whose target is inside the context; a link that leads out of
        it (or nowhere) is copied as the link itself, never followed."""
        if not path.is_symlink():
            return True
        try:
            resolved = path.resolve(strict=True)
        except (OSError, RuntimeError):  # dangling, or a loop
            return False
        return self._contains(resolved)

    def is_folder(self, path: Path) -> bool:
        """Whether a context path is copied as a folder (its contents)."""
        return self.follows(path) and path.is_dir()

    def expand(self, source: str) -> list[Path]:
        """The context paths a source names (wildcards allowed); none is an error."""
        if _WILDCARD.search(source):
            pattern = posixpath.normpath(source.replace("\\", "/")).lstrip("/")
            regex = _pattern_regex(pattern)
            found = [p for p in self._walk(self.root) if regex.fullmatch(self._rel(p))]
            if not found:
                raise errors.BadInput(f"COPY source {source!r}: no file in the build context matches")
            return sorted(found)
        path = self._inside(source)
        rel = self._rel(path) if path != self.root else ""
        present = path.is_symlink() or path.exists()
        if not present or (rel and self.ignore.excluded(rel)):
            raise errors.BadInput(f"COPY source {source!r}: not found in the build context"
                                  + (" (excluded by .dockerignore)" if present else ""))
        return [path]

    def _walk(self, top: Path) -> Iterator[Path]:
        for dirpath, dirnames, filenames in os.walk(top):
            base = Path(dirpath)
            dirnames.sort()
            keep = []
            for name in dirnames:
                path = base / name
                rel = self._rel(path)
                if not self.ignore.excluded(rel) or self._has_exception_under(rel):
                    keep.append(name)
                    if not self.ignore.excluded(rel):
                        yield path
            dirnames[:] = keep
            for name in sorted(filenames):
                path = base / name
                if not self.ignore.excluded(self._rel(path)):
                    yield path

    def _has_exception_under(self, rel: str) -> bool:
        return any(negative and text.startswith(rel + "/") for _r, negative, text in self.ignore.patterns)

    def sources(self, path: Path) -> list[ContextSource]:
        """What copying ``path`` copies: the file, or a directory's contents (not the directory
        itself), in a fixed order, .dockerignore applied."""
        if not self.is_folder(path):
            return [ContextSource(path, path.name, False)]
        out = []
        for item in self._walk(path):  # links below it are listed, never walked into
            out.append(ContextSource(item, item.relative_to(path).as_posix(), item.is_dir() and not item.is_symlink()))
        return out

    def digest(self, paths: Sequence[Path]) -> str:
        """A digest of the named files' names, kinds and contents (the build cache key)."""
        sha = hashlib.sha256()
        for path in paths:
            for source in self.sources(path):
                st = source.path.lstat()
                sha.update(f"{source.target}\0{stat.S_IFMT(st.st_mode)}\0{st.st_size}\0".encode())
                if stat.S_ISREG(st.st_mode):
                    with open_no_follow(source.path) as f:
                        while chunk := f.read(1 << 20):
                            sha.update(chunk)
                sha.update(b"\n")
        return "sha256:" + sha.hexdigest()
