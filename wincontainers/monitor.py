"""The monitor of one detached container: ``python -m wincontainers.monitor [--sim P] [--root R]
[--generation G] CONTAINER_ID``, started by ``Container.start(detach=True)`` (see
:mod:`wincontainers.monitors` for why it exists and the files it keeps).

It opens the host the way its starter did, starts the container and its main process, and
reports on its standard output, in one JSON line, that they run (or the typed error that stopped
them); then it closes that output, so the starter may exit. From then on it:

- writes the main process's output to the json-file log (:mod:`wincontainers.jsonlog`) and to
  every attach client;
- records the exit code and time (the container's record, as ``Container`` does);
- restarts the container as its ``--restart`` policy says, with Docker's back-off, unless a stop
  was asked for (``stop-requested``) or the container was removed;
- serves attach clients on a local socket (a named pipe on Windows) guarded by the attach key:
  each gets a status frame, then the output as it comes and the exit; those attached with stdin
  may write to the process, close its stdin, and resize its console.

It ends when the main process has exited for good, saying so in ``monitor.json``. Its own log
(what it did, what failed) is ``monitor.log`` beside it.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import multiprocessing.connection as mpc
import os
import queue
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import IO, Any, Optional, Sequence

from wincontainers import errors
from wincontainers._native import oshandle
from wincontainers.container import Container
from wincontainers.host import Host
from wincontainers.jsonlog import JsonLogWriter, LogOptions
from wincontainers.monitors import MAX_FRAME, MonitorFiles, RestartPolicy, next_delay
from wincontainers.process import Process

log = logging.getLogger("wincontainers.monitor")

__all__ = ["main", "Monitor"]

#: Frames queued for one attach client before it counts as stuck and is dropped (the log and
#: the other clients never wait for a slow one).
CLIENT_QUEUE = 4096
#: How much output since the last start the monitor keeps for clients that ask for a replay
#: (``start -a``: attached after the start, they still see the output from its beginning).
HISTORY = 1 << 20
#: An attach client that says nothing this long after connecting is dropped.
HELLO_TIMEOUT = 10.0


class _Client:
    """One attach connection: a sender thread drains its queue; a reader thread takes its stdin,
    close and resize requests."""

    def __init__(self, conn: Any, monitor: "Monitor") -> None:
        self.conn = conn
        self.monitor = monitor
        self.frames: "queue.Queue[Optional[bytes]]" = queue.Queue(CLIENT_QUEUE)
        self.stdin = False
        self.closed = False
        threading.Thread(target=self._send_loop, daemon=True).start()
        threading.Thread(target=self._read_loop, daemon=True).start()

    def _hello(self) -> bool:
        """The first message says what the client wants (stdin, a replay of the output so far)."""
        try:
            if not self.conn.poll(HELLO_TIMEOUT):
                return False
            message = self.conn.recv_bytes(MAX_FRAME)
            hello = json.loads(message[1:]) if message[:1] == b"h" else None
        except (OSError, EOFError, ValueError):
            return False
        if not isinstance(hello, dict):
            return False
        self.stdin = bool(hello.get("stdin"))
        self.monitor.register(self, replay=bool(hello.get("replay")))
        return True

    def offer(self, frame: Optional[bytes]) -> bool:
        """Queue a frame; False when the client is CLIENT_QUEUE frames behind (the caller drops
        it, outside its lock: closing one takes the monitor's lock)."""
        try:
            self.frames.put_nowait(frame)
            return True
        except queue.Full:
            log.warning("an attach client fell %d frames behind: dropped", CLIENT_QUEUE)
            return False

    def _send_loop(self) -> None:
        while not self.closed:
            frame = self.frames.get()
            if frame is None:
                break
            try:
                self.conn.send_bytes(frame)
            except (OSError, ValueError):
                break
        self.close()

    def _read_loop(self) -> None:
        if not self._hello():
            self.close()
            return
        while not self.closed:
            try:
                message = self.conn.recv_bytes(MAX_FRAME)
            except (OSError, EOFError, ValueError):
                break
            kind, payload = message[:1], message[1:]
            if kind in (b"i", b"c", b"r") and self.stdin:
                self.monitor.client_input(kind, payload)
        self.closed = True
        self.offer(None)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.frames.put_nowait(None)
            except queue.Full:
                pass
        try:
            self.conn.close()
        except OSError:
            pass
        self.monitor.forget(self)


class Monitor:
    """Holds one detached container (see the module's docstring)."""

    def __init__(self, host: Host, files: MonitorFiles, report: IO[bytes]) -> None:
        self.host = host
        self.files = files
        self._report: Optional[IO[bytes]] = report
        self.container: Container = host.containers.get(files.container_id)
        record = self.container.record
        self.policy = RestartPolicy.parse(record.restart_policy)
        self.writer = JsonLogWriter(host.win32, files.log, LogOptions.from_json(record.log_options))
        self.process: Optional[Process] = None
        self.clients: list[_Client] = []
        self.history: deque[bytes] = deque()
        self.history_size = 0
        self.lock = threading.Lock()
        self.running = False

    # -- output and clients ---------------------------------------------------------------------

    def output(self, stream: str, data: bytes) -> None:
        try:
            self.writer.write(stream, data)
        except OSError as exc:  # a full disk must not stop the process: the clients still get it
            log.error("writing the log failed: %s", exc)
        self.broadcast((b"o" if stream == "stdout" else b"e") + data)

    def broadcast(self, frame: bytes, *, keep: bool = True) -> None:
        """A frame to every client, in order (under the lock, as a new client's replay is); a
        client too far behind is dropped."""
        with self.lock:
            if keep:
                self.history.append(frame)
                self.history_size += len(frame)
                while self.history_size > HISTORY and len(self.history) > 1:
                    self.history_size -= len(self.history.popleft())
            behind = [client for client in self.clients if not client.offer(frame)]
            for client in behind:
                self.clients.remove(client)
        for client in behind:
            client.close()

    def register(self, client: _Client, *, replay: bool) -> None:
        """A client that said hello: the output so far first when it asked for a replay, then
        the state (so one that comes after the exit still gets the output before it)."""
        with self.lock:
            frames = [*(self.history if replay else ()), self.status_frame()]
            kept = all(client.offer(frame) for frame in frames)
            if kept:
                self.clients.append(client)
        if not kept:
            client.close()

    def status_frame(self, kind: bytes = b"s") -> bytes:
        record = self.container.record
        return kind + json.dumps({"running": self.running, "exit_code": record.exit_code,
                                  "restart_count": record.restart_count}).encode()

    def forget(self, client: _Client) -> None:
        with self.lock:
            if client in self.clients:
                self.clients.remove(client)

    def client_input(self, kind: bytes, payload: bytes) -> None:
        proc = self.process
        if proc is None or proc.stdin is None:
            return
        try:
            if kind == b"i":
                proc.stdin.write(payload)
            elif kind == b"c":
                proc.stdin.close()
            elif kind == b"r" and proc.tty:
                height, _, width = payload.decode("ascii", "replace").partition(",")
                proc.resize(int(height), int(width))
        except (OSError, ValueError, errors.WincontainersError) as exc:
            log.info("input from an attach client not delivered: %s", exc)

    def _accept(self, listener: Any) -> None:
        while True:
            try:
                conn = listener.accept()
            except multiprocessing.AuthenticationError:
                log.warning("an attach client without the key was refused")
                continue
            except (OSError, EOFError):
                return
            _Client(conn, self)  # it registers itself once it said hello

    # -- the container --------------------------------------------------------------------------

    def say(self, doc: dict[str, Any]) -> None:
        """The one line the starter waits for; then standard output is closed."""
        if self._report is None:
            return
        try:
            self._report.write(json.dumps(doc).encode() + b"\n")
            self._report.flush()
            self._report.close()
        except OSError:
            pass
        self._report = None
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)

    def run(self) -> int:
        address, family = oshandle.local_socket_address(self.files.folder, self.files.container_id)
        if family == "AF_UNIX" and os.path.exists(address):
            os.unlink(address)  # an old monitor's
        listener = mpc.Listener(address, family, authkey=self.host.files.read_bytes(self.files.key))
        if family == "AF_UNIX":
            oshandle.make_private(Path(address))
        self.host.files.write_json(self.files.state, {"pid": os.getpid(), "address": address, "family": family,
                                                      "started": time.time()})
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        try:
            return self._loop()
        finally:
            self.writer.close()
            self.host.files.write_json(self.files.state, {"pid": os.getpid(), "ended": True, "finished": time.time()})
            self._remove_if_asked()
            self.broadcast(self.status_frame(b"x"), keep=False)
            time.sleep(0.2)  # let the senders hand the last frames over
            listener.close()
            if family == "AF_UNIX" and os.path.exists(address):
                os.unlink(address)

    def _loop(self) -> int:
        delay: Optional[float] = None
        first = True
        while True:
            with self.lock:
                self.history, self.history_size = deque(), 0
            self.running = True  # from here a client waits for this run's exit, not the last one's
            try:
                self.container.reload()
                self.container.start(output=self.output, stdin=self.container.record.open_stdin)
            except BaseException as exc:
                self.running = False
                if first:
                    self.say({"error": errors.to_document(exc)})
                    return 1
                log.error("restarting container %s failed: %s", self.files.container_id[:12], exc)
                return 1
            self.process = self.container.process
            started = time.monotonic()
            if first:
                self.say({"ready": True, "pid": os.getpid(),
                          "main_pid": self.process.pid if self.process is not None else None})
                first = False
            self.broadcast(self.status_frame(), keep=False)
            try:
                self.container.wait()
            except errors.WincontainersError as exc:
                log.error("waiting for container %s failed: %s", self.files.container_id[:12], exc)
            self.writer.flush_partial()
            self.running = False
            if not self.host.records.exists(self.files.container_id):
                return 0  # removed
            self.container.reload()
            code = self.container.record.exit_code
            log.info("main process of %s exited with %s", self.files.container_id[:12], code)
            self.broadcast(self.status_frame(b"x"), keep=False)
            if self.files.stop_requested() or not self.policy.wants_restart(code, self.container.record.restart_count):
                return 0
            delay = next_delay(delay, time.monotonic() - started)
            if not self._back_off(delay):
                return 0
            self.container.update(restart_count=self.container.record.restart_count + 1)

    def _remove_if_asked(self) -> None:
        """``run -d --rm``: the container goes when it ended for good."""
        try:
            if self.host.records.exists(self.files.container_id):
                self.container.reload()
                if self.container.record.auto_remove:
                    self.container.remove(force=True)
        except errors.WincontainersError as exc:
            log.error("removing container %s (--rm) failed: %s", self.files.container_id[:12], exc)

    def _back_off(self, delay: float) -> bool:
        """Wait ``delay`` before a restart; False when a stop or removal came meanwhile."""
        self.container.update(state="restarting")
        deadline = time.monotonic() + delay
        while True:
            if self.files.stop_requested() or not self.host.records.exists(self.files.container_id):
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(0.1, left))


def _arguments(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m wincontainers.monitor",
                                     description="the monitor of one detached container (started by the library)")
    parser.add_argument("--sim")
    parser.add_argument("--root")
    parser.add_argument("--generation", type=int, choices=(1, 2, 3))
    parser.add_argument("container")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    report = sys.stdout.buffer
    args = _arguments(argv)
    try:
        host = Host.open(sim=args.sim, root=args.root, generation=args.generation)
        files = MonitorFiles(host.files, host.state_dir, args.container)
        handler = logging.FileHandler(files.diagnostics, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logging.getLogger("wincontainers").addHandler(handler)
        logging.getLogger("wincontainers").setLevel(logging.INFO)
        monitor = Monitor(host, files, report)
    except BaseException as exc:
        report.write(json.dumps({"error": errors.to_document(exc)}).encode() + b"\n")
        report.flush()
        return 1
    return monitor.run()


if __name__ == "__main__":
    sys.exit(main())
