"""SHA-256 beside the copy: a layer's diff ID hashed in a thread of its own.

A layer import or export moves every byte of the tar once, and the diff ID needs every byte
hashed once. Inline, the hash (about 0.5 s per GiB) adds to the copy; in a thread it runs beside
it, since hashlib releases the GIL while it hashes a large buffer. Pieces are handed over in
batches of at least 1 MiB (handing over a 512-byte tar header would cost more than hashing it),
through a bounded queue, so at most a few MiB wait at any time. A stream under one batch in all
never starts the thread.

A plain file has a better way (:class:`FileSha256`): the thread reads the same bytes from the
file itself, behind the reader. The copy then never waits for the hash (the hash is slower than
a copy), so the import's later work (ImportLayer) runs while the hash catches up.
"""

from __future__ import annotations

import hashlib
import io
import os
import queue
import stat
import threading
from typing import IO, Any, Optional

__all__ = ["BackgroundSha256", "FileSha256", "SourceChanged"]

#: pieces are gathered up to this size before they are handed to the thread
BATCH = 1 << 20
#: batches that may wait for the thread (the memory the hash may hold: about this many MiB)
QUEUE_DEPTH = 4


class BackgroundSha256:
    """``update()`` from one thread, then ``hexdigest()``; ``close()`` when it may not be asked
    for (both end the thread)."""

    def __init__(self) -> None:
        self._sha = hashlib.sha256()
        self._small = bytearray()
        self._queue: Optional["queue.Queue[Optional[bytes]]"] = None
        self._thread: Optional[threading.Thread] = None
        self._digest: Optional[str] = None

    def update(self, data: Any) -> None:
        """Add ``data`` (bytes are handed over as they are; a mutable buffer is copied first)."""
        if self._digest is not None:
            raise ValueError("the hash is already finished")
        size = len(data)
        if size < BATCH:
            self._small += data
            if len(self._small) >= BATCH:
                self._hand(bytes(self._small))
                self._small.clear()
            return
        if self._small:
            self._hand(bytes(self._small))
            self._small.clear()
        self._hand(data if type(data) is bytes else bytes(data))

    def _hand(self, piece: bytes) -> None:
        if self._thread is None:
            self._queue = queue.Queue(QUEUE_DEPTH)
            self._thread = threading.Thread(target=self._run, name="wincontainers-sha256", daemon=True)
            self._thread.start()
        assert self._queue is not None
        self._queue.put(piece)

    def _run(self) -> None:
        assert self._queue is not None
        update = self._sha.update
        while True:
            piece = self._queue.get()
            if piece is None:
                return
            update(piece)

    def _stop(self) -> None:
        if self._thread is not None:
            assert self._queue is not None
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def hexdigest(self) -> str:
        """The digest of everything given (it finishes the hash; later calls return it again)."""
        if self._digest is None:
            self._stop()
            self._sha.update(self._small)
            self._small.clear()
            self._digest = self._sha.hexdigest()
        return self._digest

    def close(self) -> None:
        """End the thread (an abandoned read or write): the hash is finished with what it was
        given, so a digest asked for later is still that of everything given."""
        self.hexdigest()


class SourceChanged(ValueError):
    """The file a layer was read from changed while it was read: its digest cannot be known."""


def _identity(st: os.stat_result) -> tuple[int, int, int, int, int]:
    # ctime too: on POSIX nobody can set it back, as a write time can be
    return st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


class FileSha256:
    """The SHA-256 of bytes a reader takes from a regular file, from ``start`` on, hashed by a
    thread that reads them again from its own opening of the file.

    ``update(data)`` only says that the reader took the next ``len(data)`` bytes: the thread may
    hash up to there, and it never hashes past. The file must stay as it was: :meth:`hexdigest`
    raises :class:`SourceChanged` when its size or times moved (as any tool that reads
    a file twice, we trust an unchanged file to hold the same bytes). Made with :meth:`of`,
    which returns None for anything but a regular file it can open again as the same file.
    """

    def __init__(self, second: io.FileIO, start: int, first_fd: int) -> None:
        self._file = second
        self._first_fd = first_fd
        self._before = _identity(os.fstat(first_fd))
        self._sha = hashlib.sha256()
        self._taken = 0  # bytes the reader took: the thread hashes up to here
        self._final = False
        self._waiting = False
        self._failure: Optional[BaseException] = None
        self._digest: Optional[str] = None
        self._ready = threading.Condition()
        second.seek(start)
        self._thread = threading.Thread(target=self._run, name="wincontainers-sha256-file", daemon=True)
        self._thread.start()

    @classmethod
    def of(cls, path: "str | os.PathLike[str]", first: IO[bytes], start: int) -> Optional["FileSha256"]:
        """For ``first``, a file object opened from ``path`` that the reader reads from
        ``start`` on; None when ``path`` is not that same regular file."""
        try:
            fd = first.fileno()
            st = os.fstat(fd)
            second = open(path, "rb", buffering=0)
        except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both
            return None
        try:
            again = os.fstat(second.fileno())
            if not (stat.S_ISREG(again.st_mode) and _identity(st) == _identity(again)):
                second.close()
                return None
            return cls(second, start, fd)
        except BaseException:
            second.close()
            raise

    def update(self, data: Any) -> None:
        """The reader took the next ``len(data)`` bytes."""
        with self._ready:
            self._taken += len(data)
            if self._waiting:
                self._ready.notify()

    def _run(self) -> None:
        buf = bytearray(BATCH)
        view = memoryview(buf)
        done = 0
        try:
            while True:
                with self._ready:
                    while done >= self._taken and not self._final:
                        self._waiting = True
                        self._ready.wait()
                    self._waiting = False
                    limit = self._taken
                if done >= limit:
                    return  # final, and all hashed
                n = self._file.readinto(view[: min(BATCH, limit - done)])
                if not n:
                    raise SourceChanged("the file ended before the bytes read from it")
                self._sha.update(view[:n])
                done += n
        except BaseException as exc:  # reported by hexdigest
            self._failure = exc

    def _finish(self) -> None:
        """Let the thread hash what was taken, and end it (once)."""
        if self._file.closed:
            return
        with self._ready:
            self._final = True
            self._ready.notify()
        self._thread.join()
        self._file.close()

    def hexdigest(self) -> str:
        """The digest of every byte the reader took (it finishes the hash; later calls return
        it again)."""
        if self._digest is None:
            self._finish()
            if self._failure is None:
                try:
                    same = _identity(os.fstat(self._first_fd)) == self._before
                except OSError:
                    same = False
                if not same:
                    self._failure = SourceChanged("the file changed while it was read")
            if self._failure is not None:
                if isinstance(self._failure, SourceChanged):
                    raise self._failure
                raise SourceChanged(f"the file could not be read again to hash it ({self._failure})")
            self._digest = self._sha.hexdigest()
        return self._digest

    def close(self) -> None:
        """End the thread at once (an abandoned read): a digest not yet taken is then unknown."""
        if not self._file.closed:
            with self._ready:
                self._taken = -1  # nothing more to hash
            self._finish()
            if self._failure is None:  # no digest was taken: the file is closed once one is
                self._failure = SourceChanged("the hash was abandoned before the end of the file")
