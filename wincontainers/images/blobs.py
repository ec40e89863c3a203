"""The image store's content-addressed blobs (``blobs/sha256/<hex>``), its temporary files
(``tmp/``, named after the writing process so a gc knows a dead writer's), and the store's write
lock, which every change to a blob, the index or a layer record is made under."""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import threading
from pathlib import Path
from typing import IO, Any, Iterator, Optional, Union

from wincontainers import errors
from wincontainers._native import oshandle
from wincontainers.images.model import digest_of, file_digest, hex_of
from wincontainers.layerfile.hashing import BackgroundSha256

__all__ = ["StoreLock", "Blobs", "fsync_dir", "TeeReader", "BlobWriteFailed", "compression_of"]


class StoreLock:
    """The store's write lock: a file lock across processes, a mutex across this process's
    threads; a thread holding it may take it again."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._owner = threading.local()  # how deep this thread is in held()
        self._threads = threading.Lock()  # the file lock is the process's; threads take turns

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        depth = getattr(self._owner, "depth", 0)
        if depth:
            self._owner.depth = depth + 1
            try:
                yield
            finally:
                self._owner.depth = depth
            return
        with self._threads:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                oshandle.lock_file(fd)
                self._owner.depth = 1
                try:
                    yield
                finally:
                    self._owner.depth = 0
                    oshandle.unlock_file(fd)
            finally:
                os.close(fd)


class Blobs:
    """Blobs by digest. A blob's name is its digest, so it is never replaced while read: it is
    written in ``tmp/``, fsynced and renamed into place. Whether a blob is "already there" is
    decided under the lock, as gc decides what to delete."""

    def __init__(self, folder: Path, tmp_dir: Path, lock: StoreLock) -> None:
        self.folder = folder
        self.tmp_dir = tmp_dir
        self.lock = lock

    def path(self, digest: str) -> Path:
        return self.folder / hex_of(digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def read(self, digest: str) -> bytes:
        try:
            return self.path(digest).read_bytes()
        except FileNotFoundError:
            raise errors.NotFound("read", subject=f"blob {digest}", message="the blob is not in the store",
                                  hint="`wincontainers image fsck` checks the store") from None

    def put(self, data: bytes) -> str:
        """Store ``data``; its digest. The caller keeps it from a gc (a lease, or the index
        written under the same lock)."""
        digest = digest_of(data)
        with self.lock.held():
            if not self.has(digest):
                self._write(self.path(digest), data)
        return digest

    def put_file(self, path: Union[str, "os.PathLike[str]"], digest: Optional[str] = None) -> str:
        """Move a finished file into the blobs (hashing it unless ``digest`` is known)."""
        if digest is None:
            digest = file_digest(Path(path))
        target = self.path(digest)
        with open(path, "rb+") as f:
            os.fsync(f.fileno())
        with self.lock.held():  # a gc deleting the same blob right now must not win over the move
            if target.exists():
                os.unlink(path)
                return digest
            os.replace(path, target)
        fsync_dir(target.parent)
        return digest

    def temp_fd(self, suffix: str = "") -> tuple[int, str]:
        """A new file in ``tmp/`` (open descriptor, name), named after this process."""
        return tempfile.mkstemp(prefix=f"{os.getpid()}-", suffix=suffix, dir=self.tmp_dir)

    def temp_file(self, suffix: str = "") -> Path:
        fd, name = self.temp_fd(suffix)
        os.close(fd)
        return Path(name)

    def _write(self, path: Path, data: bytes) -> None:
        fd, tmp = self.temp_fd()
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable (POSIX; NTFS journals renames itself)."""
    if os.name == "nt":
        return  # Windows cannot open a directory for fsync; rename is durable there with NTFS journaling
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


_MAGIC = {b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd"}


def compression_of(head: bytes) -> str:
    """"gzip", "zstd" or "none", from a stream's first four bytes."""
    return next((kind for magic, kind in _MAGIC.items() if head.startswith(magic)), "none")


class BlobWriteFailed(Exception):
    """Writing the blob failed (``error``: the OSError, a full disk for one). Not an OSError on
    purpose: raised from inside a read, it must not pass for a tar that cannot be read."""

    def __init__(self, error: OSError) -> None:
        super().__init__(str(error))
        self.error = error


class TeeReader(io.RawIOBase):
    """Reads ``source`` and writes every byte read to ``out``: a layer imported from an
    archive's member becomes its blob in the same pass, with no copy made first.

    :attr:`compression` is known from the first bytes; a compressed stream's bytes are hashed
    as they pass (:meth:`digest`), since its blob digest is not the diff ID the import computes.
    """

    def __init__(self, source: IO[bytes], out: IO[bytes]) -> None:
        super().__init__()
        self.source = source
        self.out = out
        #: the source's name (an archive member's), for messages about the layer
        self.name = getattr(source, "name", None)
        self.compression: Optional[str] = None
        self._sha: Optional[BackgroundSha256] = None
        self._head = b""

    def readable(self) -> bool:
        return True

    def _passed(self, data: bytes) -> None:
        if data:
            try:
                self.out.write(data)
            except OSError as exc:  # the blob's disk, not the tar: the reader must not take it for a bad tar
                raise BlobWriteFailed(exc) from exc
        if self.compression is None:  # the first bytes decide; until then they wait here
            self._head += data
            if len(self._head) >= 4 or not data:
                self.compression = compression_of(self._head[:4])
                if self.compression != "none":
                    self._sha = BackgroundSha256()
                    self._sha.update(self._head)
                self._head = b""
        elif self._sha is not None and data:
            self._sha.update(data)

    def read(self, n: int = -1) -> bytes:
        data = self.source.read() if n is None or n < 0 else self.source.read(n)
        self._passed(data)
        return data

    def readinto(self, b: Any) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        """Whatever the reader left of the source (the end of a compressed stream) goes to ``out``."""
        while self.read(1 << 20):
            pass

    def digest(self) -> str:
        """``sha256:`` of every byte passed (a compressed stream only)."""
        if self._sha is None:
            raise ValueError("only a compressed stream is hashed here; an uncompressed one's digest is its diff ID")
        return "sha256:" + self._sha.hexdigest()

    def close(self) -> None:
        if self._sha is not None:
            self._sha.close()
        super().close()
