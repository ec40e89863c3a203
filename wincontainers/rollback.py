"""Undo steps of an operation in progress: run in reverse when it fails, each failure kept.

An operation that makes several objects (a container: its name, sandbox, network endpoints,
record, compute system) undoes what it made when a later step fails. An undo step that fails
itself leaves something behind: that is logged as a warning and attached to the error the caller
gets (``WincontainersError.leftovers``), never dropped.
"""

from __future__ import annotations

import logging
from typing import Callable

from wincontainers import errors

__all__ = ["Rollback"]


class Rollback:
    """``add(what, step)`` after each step that made something; ``undo(error)`` on failure."""

    def __init__(self, operation: str, log: logging.Logger) -> None:
        self.operation = operation
        self.log = log
        self.steps: list[tuple[str, Callable[[], object]]] = []

    def add(self, what: str, step: Callable[[], object]) -> None:
        """``what`` names what ``step`` undoes ("sandbox C:\\...\\<id>"), for the leftovers list."""
        self.steps.append((what, step))

    def undo(self, error: BaseException) -> tuple[str, ...]:
        """Undo every step, newest first; returns what could not be undone, which is also logged
        and, when ``error`` is ours, attached to it as ``leftovers``."""
        leftovers: list[str] = []
        for what, step in reversed(self.steps):
            try:
                step()
            except errors.NotFound:
                continue  # already gone
            except Exception as exc:  # noqa: BLE001 - every failure is kept, whatever it is
                leftovers.append(f"{what} ({type(exc).__name__}: {' '.join(str(exc).split())})")
                self.log.warning("%s failed, and undoing it failed too: %s is left behind: %s",
                                 self.operation, what, exc)
        self.steps.clear()
        if leftovers and isinstance(error, errors.WincontainersError):
            error.leftovers = tuple(error.leftovers) + tuple(leftovers)
        return tuple(leftovers)
