"""The caller's terminal during ``run -it``, ``exec -it``, ``start -ai`` and ``attach``.

- **Raw mode** through the console mode of kernel32 (``GetConsoleMode``/``SetConsoleMode``):
  no line editing, no local echo (the container's console echoes), Ctrl+C passed to the
  container as a byte. On Windows that is the console itself; the simulated host's kernel32
  keeps a console mode in the terminal's settings, so this is one code path everywhere. The
  mode found is set back on every way out (a ``with`` block), byte for byte.
- **Window size** is followed by polling (Windows has no SIGWINCH) and handed to a callback.
- **Standard input** is read with ``os.read`` on the descriptor, never through ``sys.stdin``'s
  buffer: a daemon thread blocked inside a buffered read when the interpreter exits is what made
  it abort with "Fatal Python error: _enter_buffered_busy".
- **Detach keys** (``ctrl-p,ctrl-q``) end the forwarding without closing the container's stdin.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import threading
from typing import Any, Callable, Iterator, Optional

from wincontainers import errors
from wincontainers._native import win32 as w32

__all__ = ["raw_terminal", "follow_window_size", "parse_detach_keys", "forward_input"]

#: How often the window size is looked at.
SIZE_POLL = 0.25


@contextlib.contextmanager
def raw_terminal(api: w32.Win32, enabled: bool = True) -> Iterator[bool]:
    """Raw input (and virtual terminal output) for the block; yields whether the terminal was
    changed (False when standard input is not a console, or when not ``enabled``)."""
    before_in = api.console_mode(w32.STD_INPUT_HANDLE) if enabled else None
    if before_in is None:
        yield False
        return
    before_out = api.console_mode(w32.STD_OUTPUT_HANDLE)
    raw = (before_in & ~(w32.ENABLE_PROCESSED_INPUT | w32.ENABLE_LINE_INPUT | w32.ENABLE_ECHO_INPUT)
           | w32.ENABLE_VIRTUAL_TERMINAL_INPUT)
    api.set_console_mode(w32.STD_INPUT_HANDLE, raw)
    try:
        if before_out is not None and not before_out & w32.ENABLE_VIRTUAL_TERMINAL_PROCESSING:
            api.set_console_mode(w32.STD_OUTPUT_HANDLE, before_out | w32.ENABLE_VIRTUAL_TERMINAL_PROCESSING)
        yield True
    finally:
        try:
            if before_out is not None:
                api.set_console_mode(w32.STD_OUTPUT_HANDLE, before_out)
        finally:
            api.set_console_mode(w32.STD_INPUT_HANDLE, before_in)


@contextlib.contextmanager
def follow_window_size(resize: Callable[[int, int], None], enabled: bool = True) -> Iterator[None]:
    """Call ``resize(height, width)`` now and whenever the terminal's size changes, until the
    block ends. A failed resize (the process ended) stops the following quietly."""
    if not enabled or not sys.stdout.isatty():
        yield
        return
    stop = threading.Event()

    def poll() -> None:
        last: Optional[tuple[int, int]] = None
        while not stop.is_set():
            size = shutil.get_terminal_size()
            if (size.lines, size.columns) != last:
                last = (size.lines, size.columns)
                try:
                    resize(size.lines, size.columns)
                except (errors.WincontainersError, OSError, ValueError):
                    return
            stop.wait(SIZE_POLL)

    thread = threading.Thread(target=poll, name="wc-winsize", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()


def parse_detach_keys(text: str) -> bytes:
    """Docker's ``--detach-keys``: ``ctrl-p,ctrl-q``, letters, ``ctrl-@``... as the bytes typed."""
    out = bytearray()
    for key in text.split(","):
        key = key.strip().lower()
        if key.startswith("ctrl-") and len(key) == 6 and ("a" <= key[5] <= "z" or key[5] in "@[\\]^_"):
            out.append((ord(key[5].upper()) - 0x40) & 0x1F)
        elif len(key) == 1:
            out.append(ord(key))
        else:
            raise errors.BadInput(f"--detach-keys {text!r}: keys such as ctrl-p,ctrl-q or ctrl-a,x")
    return bytes(out)


def forward_input(write: Callable[[bytes], Any], close: Callable[[], Any], *, detach_keys: bytes = b"",
                  on_detach: Callable[[], Any] = lambda: None) -> threading.Thread:
    """Copy our standard input to ``write`` until its end (then ``close``), or until the detach
    keys are typed (then ``on_detach``; the container's stdin stays open)."""

    def pump() -> None:
        held = b""
        try:
            fd = sys.stdin.fileno()
            while True:
                data = os.read(fd, 65536)
                if not data:
                    break
                if detach_keys:
                    data = held + data
                    if detach_keys in data:
                        before = data[:data.index(detach_keys)]
                        if before:
                            write(before)
                        on_detach()
                        return
                    keep = next((n for n in range(len(detach_keys) - 1, 0, -1)
                                 if data.endswith(detach_keys[:n])), 0)
                    held, data = data[len(data) - keep:] if keep else b"", data[:len(data) - keep]
                if data:
                    write(data)
        except (OSError, ValueError):
            pass
        try:
            close()
        except (OSError, ValueError, errors.WincontainersError):
            pass

    thread = threading.Thread(target=pump, name="wc-stdin", daemon=True)
    thread.start()
    return thread
