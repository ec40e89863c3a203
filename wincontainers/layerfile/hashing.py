"""SHA-256 beside the copy: a layer's diff ID hashed in a thread of its own.

A layer import or export moves every byte of the tar once, and the diff ID needs every byte
hashed once. Inline, the hash (about 0.5 s per GiB) adds to the copy; in a thread it runs beside
it, since hashlib releases the GIL while it hashes a large buffer. Pieces are handed over in
batches of at least 1 MiB (handing over a 512-byte tar header would cost more than hashing it),
through a bounded queue, so at most a few MiB wait at any time. A stream under one batch in all
never starts the thread.
"""

from __future__ import annotations

import hashlib
import queue
import threading
from typing import Any, Optional

__all__ = ["BackgroundSha256"]

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
