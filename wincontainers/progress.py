"""Progress for long work, taken one way everywhere: ``progress=True | callable | tqdm bar``.

Every method that takes ``progress`` (layer import and export, image add, save and load,
commit, build) accepts the same values:

- ``None`` or ``False``: nothing;
- ``True``: a tqdm bar. In Jupyter it is tqdm's notebook widget when ipywidgets is installed,
  and a plain text bar otherwise (tqdm's notebook bar without ipywidgets sticks at zero and
  warns). Without tqdm there is no bar, silently apart from one INFO record on the
  ``wincontainers.progress`` logger: ``pip install 'wincontainers[progress]'`` brings it;
- a callable ``f(bytes_done, files_done)``: called as the counts move;
- a tqdm bar (or anything with ``update(n)`` and ``n``): advanced by the bytes done; the caller owns it
  and closes it.

An operation made of several steps (a build commits layers; save writes several) reports
one running total: the counts a callable or a bar sees never go back. The steps share it
through :func:`progress_for`, which a step given an operation's :class:`Progress` joins
instead of starting its own.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import sys
import threading
from typing import Any, Callable, Iterator, Optional, Union

from wincontainers import errors

__all__ = ["ProgressLike", "Progress", "progress_for", "open_progress", "operation_progress", "check_progress"]

log = logging.getLogger("wincontainers.progress")

#: what a ``progress=`` argument may be (see the module docstring)
ProgressLike = Union[None, bool, Callable[[int, int], None], Any]

_warned_no_tqdm = [False]


class Progress:
    """One operation's progress: the sum of its steps, reported to a callable and/or a bar.

    Passed on as ``progress=`` to the steps, it is joined rather than replaced. Thread-safe:
    steps may run in parallel.
    """

    def __init__(self, callback: Optional[Callable[[int, int], None]] = None, bar: Any = None,
                 owns_bar: bool = False) -> None:
        self._callback = callback
        self._bar = bar
        self._owns_bar = owns_bar
        self._lock = threading.Lock()
        self.bytes_done = 0
        self.files_done = 0

    def __call__(self, bytes_done: int, files_done: int) -> None:
        """Report absolute counts for the whole operation (never lower than before)."""
        self.advance(max(0, bytes_done - self.bytes_done), max(0, files_done - self.files_done))

    def advance(self, nbytes: int, files: int = 0) -> None:
        """Add ``nbytes`` and ``files`` to the running totals."""
        with self._lock:
            self.bytes_done += nbytes
            self.files_done += files
            done, count = self.bytes_done, self.files_done
        if self._bar is not None and nbytes:
            self._bar.update(nbytes)
        if self._callback is not None:
            self._callback(done, count)

    def expect(self, nbytes: Optional[int]) -> None:
        """A step of ``nbytes`` is coming: the bar's total grows by it (when the size is known)."""
        if self._bar is None or not nbytes:
            return
        with self._lock:
            current = getattr(self._bar, "total", None) or 0
            try:
                self._bar.total = current + nbytes
                self._bar.refresh()
            except (AttributeError, TypeError):
                pass

    def step(self, total: Optional[int] = None) -> Callable[[int, int], None]:
        """A step's reporter: it counts from zero; this adds what it moves to the totals."""
        self.expect(total)
        last = [0, 0]

        def report(bytes_done: int, files_done: int) -> None:
            nbytes, files = max(0, bytes_done - last[0]), max(0, files_done - last[1])
            last[0], last[1] = max(last[0], bytes_done), max(last[1], files_done)
            if nbytes or files:
                self.advance(nbytes, files)

        return report

    def close(self) -> None:
        """Close the bar this made (a caller's bar stays the caller's)."""
        if self._bar is not None and self._owns_bar:
            self._bar.close()


def _in_notebook() -> bool:
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # an IPython too broken to ask: not a notebook we can draw in
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


def _new_bar(total: Optional[int], desc: str) -> Any:
    """A tqdm bar fit for where this runs, or None without tqdm."""
    try:
        if _in_notebook() and importlib.util.find_spec("ipywidgets") is not None:
            from tqdm.notebook import tqdm  # type: ignore[import-untyped,unused-ignore]
        else:
            from tqdm.std import tqdm  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        if not _warned_no_tqdm[0]:
            _warned_no_tqdm[0] = True
            log.info("progress=True shows no bar: tqdm is not installed (pip install 'wincontainers[progress]')")
        return None
    return tqdm(total=total or None, unit="B", unit_scale=True, unit_divisor=1024, desc=desc or None,
                leave=False, file=sys.stderr, dynamic_ncols=True)


def _is_bar(progress: Any) -> bool:
    """A tqdm bar, or anything that advances like one (``update(n)``, ``n``)."""
    return hasattr(progress, "update") and hasattr(progress, "n") and not isinstance(progress, type)


def check_progress(progress: ProgressLike) -> None:
    """Refuse (:class:`~wincontainers.errors.BadInput`) what ``progress=`` cannot be, before
    any work starts."""
    if progress is None or isinstance(progress, (bool, Progress)) or callable(progress) or _is_bar(progress):
        return
    raise errors.BadInput(
        f"progress is True, False, a callable f(bytes_done, files_done) or a tqdm bar, not {progress!r}")


def open_progress(progress: ProgressLike, *, total: Optional[int] = None, desc: str = "") -> Optional[Progress]:
    """The :class:`Progress` an operation reports to, or None for no progress.

    A :class:`Progress` given is returned as it is (the caller's operation owns it).
    """
    check_progress(progress)
    if progress is None or progress is False:
        return None
    if isinstance(progress, Progress):
        return progress
    if progress is True:
        bar = _new_bar(total, desc)
        return Progress(bar=bar, owns_bar=True) if bar is not None else None
    if _is_bar(progress):
        result = Progress(bar=progress)
        result.expect(total)
        return result
    return Progress(callback=progress)


@contextlib.contextmanager
def progress_for(progress: ProgressLike, *, total: Optional[int] = None,
                 desc: str = "") -> Iterator[Optional[Callable[[int, int], None]]]:
    """The reporter for one step of work: ``(bytes done, files done)`` counted from zero.

    Given an operation's :class:`Progress`, the step joins it; otherwise the step is the whole
    operation and its bar (made here) is closed when it ends.
    """
    if isinstance(progress, Progress):
        yield progress.step(total)
        return
    opened = open_progress(progress, total=total, desc=desc)
    if opened is None:
        yield None
        return
    try:
        yield opened.step()
    finally:
        opened.close()


@contextlib.contextmanager
def operation_progress(progress: ProgressLike, *, desc: str = "") -> Iterator[Optional[Progress]]:
    """The :class:`Progress` of an operation of several steps, passed to each as ``progress=``.

    One bar for the whole operation (closed at its end when made here), one running total.
    """
    opened = open_progress(progress, desc=desc)
    try:
        yield opened
    finally:
        if opened is not None and opened is not progress:
            opened.close()
