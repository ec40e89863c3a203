"""Progress for long layer work: a callback ``(bytes done, files done)``, or a tqdm bar.

``progress=True`` shows a tqdm bar (terminal or Jupyter, via ``tqdm.auto``) when tqdm is
installed, and nothing when it is not; a callable gets the counts as they move.
"""

from __future__ import annotations

from typing import Any, Callable, Optional, Union

__all__ = ["ProgressLike", "reporter"]

ProgressLike = Union[None, bool, Callable[[int, int], None]]


def reporter(progress: ProgressLike, *, total: Optional[int] = None,
             desc: str = "") -> tuple[Optional[Callable[[int, int], None]], Callable[[], None]]:
    """``(callback, close)`` for ``progress``."""
    if progress is None or progress is False:
        return None, lambda: None
    if callable(progress):
        return progress, lambda: None
    try:
        from tqdm.auto import tqdm  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return None, lambda: None
    bar: Any = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, leave=False)
    last = [0]

    def update(done: int, files: int) -> None:
        if done > last[0]:
            bar.update(done - last[0])
            last[0] = done
        bar.set_postfix(files=files, refresh=False)

    return update, bar.close
