"""The client side of a detached container's monitor (``python -m wincontainers.monitor``).

HCS hands a process's stdio only to the caller that created it, and a container's main process
must outlive the script or CLI that started it. So ``start(detach=True)`` hands the container to
a small detached monitor process, the role containerd-shim and conmon play for runc: it starts
the container and its main process, holds the stdio, writes the json-file log, records the exit,
applies the restart policy and serves attach clients. This module is what every other process
uses to reach it:

- :class:`MonitorFiles`: the monitor's folder ``<state>/monitors/<id>``: ``monitor.json`` (its
  pid and attach address, written by the monitor), the log, ``attach.key`` (the attach secret:
  a client proves it can read it, HMAC challenge of :mod:`multiprocessing.connection`),
  ``stop-requested`` (``stop`` ends the restarting) and ``monitor.log`` (its own diagnostics);
- :func:`spawn`: start a monitor and wait for it to say the main process runs (or why not: the
  error comes back typed);
- :class:`AttachSession`: a connection to the monitor (output frames, stdin, resize, exit);
- :class:`RestartPolicy` and :func:`next_delay`: Docker's ``--restart`` and its back-off.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import multiprocessing.connection as mpc
import os
import re
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, Union

import attrs

from wincontainers import errors
from wincontainers._native import oshandle
from wincontainers._native import win32 as w32
from wincontainers.jsonlog import LogOptions, LogRecord, follow_log, parse_since, read_log
from wincontainers.statefiles import StateFiles, read_optional_json

log = logging.getLogger("wincontainers.containers")

__all__ = ["RestartPolicy", "next_delay", "MonitorFiles", "spawn", "AttachSession", "MAX_FRAME",
           "FIRST_DELAY", "MAX_DELAY", "RESET_AFTER"]

#: Docker's restart back-off: 100 ms, doubled after each restart ...
FIRST_DELAY = 0.1
#: ... at most a minute ...
MAX_DELAY = 60.0
#: ... and back to 100 ms once the container ran for 10 seconds.
RESET_AFTER = 10.0
#: The largest message either side accepts (a frame of output is at most 64 KiB).
MAX_FRAME = 1 << 20
#: How long ``spawn`` waits for the monitor to report that the main process runs.
SPAWN_TIMEOUT = 120.0


@attrs.frozen
class RestartPolicy:
    """``--restart``: ``no``, ``on-failure[:N]`` (N retries, 0: no limit), ``always``,
    ``unless-stopped``. ``always`` and ``unless-stopped`` differ only when the host restarts."""

    name: str = "no"
    max_retries: int = 0

    @classmethod
    def parse(cls, text: Optional[str]) -> "RestartPolicy":
        value = (text or "no").strip()
        m = re.fullmatch(r"(no|always|unless-stopped|on-failure)(?::([0-9]{1,6}))?", value)
        if m is None or (m.group(2) is not None and m.group(1) != "on-failure"):
            raise errors.BadInput(f"--restart {text!r}: no, on-failure[:max-retries], always or unless-stopped")
        return cls(m.group(1), int(m.group(2) or 0))

    def __str__(self) -> str:
        return f"{self.name}:{self.max_retries}" if self.name == "on-failure" and self.max_retries else self.name

    def wants_restart(self, exit_code: Optional[int], restarts: int) -> bool:
        """Whether a container that exited with ``exit_code`` after ``restarts`` restarts again
        (a stop asked for by the user is checked by the caller)."""
        if self.name in ("always", "unless-stopped"):
            return True
        if self.name == "on-failure":
            return exit_code != 0 and (self.max_retries == 0 or restarts < self.max_retries)
        return False


def next_delay(previous: Optional[float], ran: float) -> float:
    """The wait before the next restart, Docker's way."""
    if previous is None or ran >= RESET_AFTER:
        return FIRST_DELAY
    return min(previous * 2, MAX_DELAY)


class MonitorFiles:
    """The files of one container's monitor."""

    def __init__(self, files: StateFiles, state_dir: Path, container_id: str) -> None:
        self.files = files
        self.container_id = container_id
        self.folder = state_dir / "monitors" / container_id
        self.log = self.folder / f"{container_id}-json.log"
        self.state = self.folder / "monitor.json"
        self.key = self.folder / "attach.key"
        self.stop_marker = self.folder / "stop-requested"
        self.diagnostics = self.folder / "monitor.log"

    def exists(self) -> bool:
        return self.files.is_dir(self.folder)

    def read_state(self) -> Optional[dict[str, Any]]:
        """What the monitor wrote about itself (pid, address, whether it ended), or None."""
        try:
            doc = read_optional_json(self.files, self.state)
        except errors.DamagedRecord:
            return None
        return doc if isinstance(doc, dict) else None

    def status(self) -> str:
        """``none`` (never started detached), ``starting``, ``running``, ``ended`` or ``dead``
        (killed, or gone without saying so: its container is unmonitored)."""
        return self.status_of(self.read_state())

    def status_of(self, state: Optional[dict[str, Any]]) -> str:
        """The status (see :meth:`status`) that one reading of the state file gives: a caller
        that also needs the reading's other fields takes both from the same reading, so a
        monitor that ends in between cannot make them disagree."""
        if state is None:
            return "starting" if self.exists() else "none"
        if state.get("ended"):
            return "ended"
        pid = state.get("pid")
        if isinstance(pid, int) and self.files.win32.process_alive(pid):
            return "running"
        return "dead"

    def pid(self) -> Optional[int]:
        pid = (self.read_state() or {}).get("pid")
        return pid if isinstance(pid, int) else None

    def request_stop(self) -> None:
        """Tell the monitor the next exit is a stop asked for (no restart)."""
        if self.exists():
            self.files.write(self.stop_marker, b"")

    def stop_requested(self) -> bool:
        return self.files.exists(self.stop_marker)

    def prepare(self) -> None:
        """A fresh folder for a new monitor: the stop request and state of an old one cleared,
        the log kept (``docker start`` appends to it), a new attach key."""
        self.files.makedirs(self.folder)
        oshandle.make_private(self.folder)
        self.files.remove(self.stop_marker)
        self.files.remove(self.state)
        self.files.write(self.key, secrets.token_bytes(32))
        oshandle.make_private(self.key)

    def log_records(self, options: LogOptions, *, stdout: bool = True, stderr: bool = True,
                    tail: Optional[int] = None, since: Union[float, str, None] = None,
                    follow: bool = False) -> Iterator[LogRecord]:
        """The log's records (see ``Container.log_records``); checks its arguments first."""
        if not self.exists():
            raise errors.InvalidState(
                "logs", subject=f"container {self.container_id[:12]}",
                message="it was never started detached, so no log was kept",
                hint="its output went to the caller that started it; start it with start(detach=True) (run -d)")
        if tail is not None and (not isinstance(tail, int) or isinstance(tail, bool) or tail < 0):
            raise errors.BadInput("tail is a number of lines, 0 or more")
        since_ns = None if since is None else (int(since * 1e9) if isinstance(since, (int, float))
                                               else parse_since(since))
        streams = {name for name, wanted in (("stdout", stdout), ("stderr", stderr)) if wanted}
        return self._records(options, streams, tail, since_ns, follow)

    def _records(self, options: LogOptions, streams: set[str], tail: Optional[int], since_ns: Optional[int],
                 follow: bool) -> Iterator[LogRecord]:
        win32 = self.files.win32
        snapshot = read_log(win32, self.log, options)

        def wanted(record: LogRecord) -> bool:
            return record.stream in streams and (since_ns is None or record.time_ns >= since_ns)

        kept = [r for r in snapshot.records if wanted(r)]
        if tail is not None:
            kept = kept[len(kept) - tail:] if tail else []
        yield from kept
        if follow:
            def running() -> bool:
                return self.status() == "running"

            yield from (r for r in follow_log(win32, self.log, running, after=snapshot) if wanted(r))

    def finish(self, timeout: float = 15.0) -> None:
        """The container stopped for good (it is being removed): let the monitor record the exit
        and end, then remove the folder and the log."""
        deadline = time.monotonic() + timeout
        while self.status() in ("running", "starting") and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.status() == "running":
            log.warning("the monitor of container %s (pid %s) did not end; its folder is left: %s",
                        self.container_id[:12], self.pid(), self.folder)
            return
        try:
            self.remove()
        except OSError as exc:
            log.warning("could not remove the monitor folder %s: %s", self.folder, exc)

    def remove(self) -> None:
        """Delete the folder (the container is being removed; its monitor has ended)."""
        if not self.exists():
            return
        for entry in self.files.entries(self.folder):
            self.files.remove(self.folder / entry.name)
        try:
            self.files.win32.remove_directory(w32.long_path(self.folder))
        except w32.PathNotFound:
            pass


def spawn(files: MonitorFiles, host_arguments: Sequence[str], *, timeout: float = SPAWN_TIMEOUT) -> dict[str, Any]:
    """Start the monitor of ``files.container_id`` and wait until it reports that the container
    and its main process run (returns what it said: ``pid``, ``main_pid``); the error it met
    otherwise, typed as in the monitor. The monitor outlives this process."""
    files.prepare()
    command = [sys.executable, "-m", "wincontainers.monitor", *host_arguments, files.container_id]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with open(files.diagnostics, "ab") as stderr:  # the monitor's tracebacks, if it has any
        proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr,
                                env=env, **oshandle.detached_process_options())
    # Reap it when it ends, so a monitor that ended is not a zombie that looks alive.
    threading.Thread(target=proc.wait, name=f"wc-monitor-{proc.pid}", daemon=True).start()
    line: list[bytes] = []
    reader = threading.Thread(target=lambda: line.append(proc.stdout.readline(MAX_FRAME) if proc.stdout else b""),
                              daemon=True)
    reader.start()
    reader.join(timeout)
    if proc.stdout is not None and not reader.is_alive():
        proc.stdout.close()
    if not line or not line[0].strip():
        if reader.is_alive():
            proc.kill()
            raise errors.MonitorError(f"the monitor of container {files.container_id[:12]} did not report within "
                                      f"{timeout:.0f} s; it was killed. Its diagnostics: {files.diagnostics}")
        raise errors.MonitorError(f"the monitor of container {files.container_id[:12]} ended before it started the "
                                  f"container: {_tail(files.diagnostics)}")
    try:
        doc = json.loads(line[0])
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise errors.MonitorError(f"the monitor of container {files.container_id[:12]} said something unexpected: "
                                  f"{line[0][:200]!r}")
    if isinstance(doc.get("error"), dict):
        raise errors.from_document(doc["error"])
    return doc


def _tail(path: Path, size: int = 2000) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - size))
            text = f.read().decode("utf-8", "replace").strip()
    except OSError:
        return "(no diagnostics)"
    return text.splitlines()[-1] if text else "(no diagnostics)"


class AttachSession:
    """A connection to a container's monitor: ``for stream, data in session`` gives its output
    (``stdout``/``stderr``) as it comes until the main process exits (then :attr:`exit_code` is
    set) or :meth:`close`; :meth:`write` and :meth:`close_stdin` feed its stdin when attached
    with ``stdin=True``; :meth:`resize` resizes its console. ``replay=True`` first gives the
    output since the main process started (up to 1 MiB), so nothing is missed by attaching
    just after a start. A context manager."""

    def __init__(self, files: MonitorFiles, *, stdin: bool = False, replay: bool = False) -> None:
        state = files.read_state()
        status = files.status_of(state)
        if status != "running" or state is None:
            raise errors.MonitorError(_not_attachable(files, status))
        address, family = state.get("address"), state.get("family")
        if family not in ("AF_UNIX", "AF_PIPE") or not isinstance(address, str):
            raise errors.MonitorError(f"the monitor of container {files.container_id[:12]} names no attach address")
        key = files.files.read_bytes(files.key)
        try:
            self._conn = mpc.Client(address, family, authkey=key)
        except (OSError, multiprocessing.AuthenticationError, EOFError) as exc:
            # A monitor that ended after the reading closed its address: say so, not "cannot attach".
            status = files.status()
            if status != "running":
                raise errors.MonitorError(_not_attachable(files, status)) from None
            raise errors.MonitorError(f"cannot attach to container {files.container_id[:12]}: {exc}") from None
        self.container_id = files.container_id
        self.exit_code: Optional[int] = None
        self.running: Optional[bool] = None
        self._closing = False
        self._iterating = False
        self._send_lock = threading.Lock()
        self._send(b"h" + json.dumps({"stdin": bool(stdin), "replay": bool(replay)}).encode())

    def _send(self, message: bytes) -> None:
        with self._send_lock:
            try:
                self._conn.send_bytes(message)
            except (OSError, EOFError, ValueError):
                raise BrokenPipeError(f"the monitor of container {self.container_id[:12]} is gone") from None

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        return self.frames()

    def frames(self, timeout: Optional[float] = None) -> Iterator[tuple[str, bytes]]:
        """The output as it comes, until the main process exits or :meth:`close` is called
        (from any thread); :class:`TimeoutError` when ``timeout`` seconds pass first."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self._iterating = True
        try:
            while not self._closing:
                try:
                    wait = 0.25 if deadline is None else min(0.25, deadline - time.monotonic())
                    if wait <= 0:
                        raise TimeoutError(f"container {self.container_id[:12]} did not exit within {timeout} s")
                    if not self._conn.poll(wait):
                        continue
                    message = self._conn.recv_bytes(MAX_FRAME)
                except (OSError, EOFError, ValueError):
                    return
                kind, payload = message[:1], message[1:]
                if kind == b"o":
                    yield "stdout", payload
                elif kind == b"e":
                    yield "stderr", payload
                elif kind in (b"s", b"x") and self._status(payload, final=kind == b"x"):
                    return
        finally:
            self._iterating = False
            if self._closing:
                self._close_connection()

    def _status(self, payload: bytes, *, final: bool) -> bool:
        """Take a status frame; True when it says the main process is no longer running."""
        try:
            doc = json.loads(payload)
        except ValueError:
            doc = {}
        if isinstance(doc, dict):
            self.running = bool(doc.get("running"))
            code = doc.get("exit_code")
            if isinstance(code, int):
                self.exit_code = code
        return final or self.running is False

    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        """Read (and drop) output until the main process exits; its exit code (TimeoutError
        after ``timeout`` seconds)."""
        for _ in self.frames(timeout):
            pass
        return self.exit_code

    def write(self, data: bytes) -> None:
        for start in range(0, len(data), 65536):
            self._send(b"i" + bytes(data[start:start + 65536]))

    def close_stdin(self) -> None:
        self._send(b"c")

    def resize(self, height: int, width: int) -> None:
        self._send(b"r" + f"{int(height)},{int(width)}".encode())

    def close(self) -> None:
        """End the session (an iteration in another thread ends within a quarter second)."""
        self._closing = True
        if not self._iterating:
            self._close_connection()

    def _close_connection(self) -> None:
        try:
            self._conn.close()
        except OSError:
            pass

    def __enter__(self) -> "AttachSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _not_attachable(files: MonitorFiles, status: str) -> str:
    short = files.container_id[:12]
    if status == "dead":
        return (f"the monitor of container {short} (pid {files.pid()}) is gone: the container is unmonitored; "
                "its output is no longer collected (`logs` shows what was written before)")
    if status == "ended":
        return f"container {short} is not running"
    if status == "starting":
        return f"the monitor of container {short} is still starting"
    return f"container {short} was not started detached: there is nothing to attach to"
