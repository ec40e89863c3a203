"""Processes in containers, shaped like :mod:`subprocess`.

:class:`Process` is Popen-like: ``stdin``/``stdout``/``stderr`` file objects, ``wait``,
``poll``, ``returncode``, ``communicate``, ``kill``, ``send_signal``, plus ``resize`` for
consoles. Output is never lost: std handles are taken when the process is created, stdin
always exists, and background pumps drain stdout/stderr to end-of-file into buffers (or
forward them, for ``run(capture_output=False)``), so a process cannot block on a full pipe and
``wait()`` reports the exit only after the output is complete. When the process has exited
and its output is drained, its HCS handles are released without waiting for ``close()``.
"""

from __future__ import annotations

import codecs
import io
import logging
import signal as _signal
import subprocess
import threading
import time
import weakref
from collections import deque
from typing import IO, Any, AsyncIterator, Callable, Optional, Sequence, Union, cast

import attrs

from wincontainers import aio, errors
from wincontainers.aio import Signal
from wincontainers.display import RichDisplay, Shown
from wincontainers._native.oshandle import handle_to_file
from wincontainers.driver.base import ProcessRef

log = logging.getLogger("wincontainers.processes")

__all__ = [
    "Process",
    "CompletedProcess",
    "TimeoutExpired",
    "CalledProcessError",
    "list2cmdline",
    "stream_sink",
    "SIGNALS",
]

Command = Union[str, Sequence[str]]

#: HcsSignalProcess names, and the POSIX-style numbers they are reachable by.
SIGNALS = {
    "CtrlC": "CtrlC",
    "CtrlBreak": "CtrlBreak",
    "CtrlClose": "CtrlClose",
    "CtrlLogOff": "CtrlLogOff",
    "CtrlShutdown": "CtrlShutdown",
    int(_signal.SIGINT): "CtrlC",
    int(getattr(_signal, "SIGBREAK", 21)): "CtrlBreak",
    int(getattr(_signal, "SIGQUIT", 3)): "CtrlBreak",
    int(getattr(_signal, "SIGHUP", 1)): "CtrlClose",
}


class TimeoutExpired(subprocess.TimeoutExpired):
    """A wait on a container process timed out (same class family as subprocess's)."""


class CalledProcessError(subprocess.CalledProcessError):
    """``run(check=True)`` and the process exited non-zero."""


@attrs.frozen
class CompletedProcess(RichDisplay):
    """What :meth:`Container.run` returns, like :class:`subprocess.CompletedProcess`."""

    args: Command
    returncode: int
    stdout: Any = None
    stderr: Any = None

    def check_returncode(self) -> None:
        if self.returncode:
            raise CalledProcessError(self.returncode, self.args, self.stdout, self.stderr)

    def _shown_(self) -> Shown:
        text = "".join(_as_text(s) for s in (self.stdout, self.stderr) if s)
        return Shown("Completed process", _command_text(self.args), state="ok" if self.returncode == 0 else "failed",
                     fields=(("exit code", self.returncode),), text=text)


def _command_text(args: Command) -> str:
    return args if isinstance(args, str) else list2cmdline(args)


def _as_text(output: Any) -> str:
    """Output for people: bytes decoded (UTF-8, replacing what is not), CRLF as LF."""
    text = output.decode("utf-8", "replace") if isinstance(output, (bytes, bytearray)) else str(output)
    return text.replace("\r\n", "\n")


def list2cmdline(args: Sequence[str]) -> str:
    """Join arguments into one Windows command line (MSVC quoting rules, as subprocess does)."""
    return subprocess.list2cmdline(list(args))


class _Pipe(io.RawIOBase):
    """The readable end a pump fills: blocks until data or end of file."""

    def __init__(self) -> None:
        super().__init__()
        self._cond = threading.Condition()
        self._chunks: deque[bytes] = deque()
        self._eof = False
        self._arrival = Signal()
        self.total = 0

    def readable(self) -> bool:
        return True

    def feed(self, data: bytes) -> None:
        with self._cond:
            self._chunks.append(data)
            self.total += len(data)
            self._cond.notify_all()
            arrival, self._arrival = self._arrival, Signal()
        arrival.set()

    def finish(self) -> None:
        with self._cond:
            self._eof = True
            self._cond.notify_all()
            arrival = self._arrival
        arrival.set()

    def arrival(self) -> Signal:
        """Set when data or the end arrives (already set when some is waiting): what an
        asyncio reader awaits instead of blocking in :meth:`readinto`."""
        with self._cond:
            if self._chunks or self._eof:
                ready = Signal()
                ready.set()
                return ready
            return self._arrival

    def read_now(self) -> Optional[bytes]:
        """What is buffered now, without waiting: ``b""`` when nothing yet, None at the end."""
        with self._cond:
            if self._chunks:
                data = b"".join(self._chunks)
                self._chunks.clear()
                return data
            return None if self._eof else b""

    def readinto(self, b: Any) -> int:
        with self._cond:
            while not self._chunks and not self._eof:
                self._cond.wait()
            if not self._chunks:
                return 0
            chunk = self._chunks[0]
            n = min(len(b), len(chunk))
            b[:n] = chunk[:n]
            if n == len(chunk):
                self._chunks.popleft()
            else:
                self._chunks[0] = chunk[n:]
            return n

    def drain(self) -> bytes:
        """Everything buffered (after end of file: everything the process wrote)."""
        with self._cond:
            data = b"".join(self._chunks)
            self._chunks.clear()
            return data


class _Stdin(io.RawIOBase):
    """The process's stdin: closing it tells HCS too; after exit writes raise BrokenPipeError."""

    def __init__(self, native: IO[bytes], on_close: Callable[[], None]) -> None:
        super().__init__()
        self._native: Optional[IO[bytes]] = native
        self._on_close = on_close
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        native = self._native
        if native is None:
            if self.closed:
                raise ValueError("write to closed stdin")
            raise BrokenPipeError(32, "the process has exited")
        return native.write(b) or 0

    def close(self) -> None:
        if self.closed:
            return
        with self._lock:
            native, self._native = self._native, None
            if native is not None:
                try:
                    self._on_close()
                finally:
                    _quiet_close(native)
        super().close()

    def detach_native(self) -> None:
        """The process exited: release the handle, keep the object usable for error reporting."""
        with self._lock:
            native, self._native = self._native, None
        if native is not None:
            _quiet_close(native)


def _quiet_close(f: Any) -> None:
    try:
        f.close()
    except OSError:
        pass


class Process(RichDisplay):
    """A process running in a container (create it with :meth:`Container.exec`)."""

    #: How long to wait for end-of-file on stdout/stderr after the process exited (a grandchild
    #: that inherited the pipe can keep it open).
    eof_grace = 5.0

    def __init__(
        self,
        ref: ProcessRef,
        args: Command,
        *,
        tty: bool,
        text: bool = False,
        encoding: Optional[str] = None,
        errors_: Optional[str] = None,
        stdout_sink: Optional[Callable[[bytes], None]] = None,
        stderr_sink: Optional[Callable[[bytes], None]] = None,
        keep_stdin: bool = True,
        on_exit: Optional[Callable[["Process"], None]] = None,
        subject: str = "",
        echo: Optional[tuple[Callable[[bytes], None], Callable[[bytes], None]]] = None,
    ) -> None:
        self._ref = ref
        self.args = args
        self.pid = ref.pid
        self.tty = tty
        self.subject = subject or f"process {ref.pid}"
        self.returncode: Optional[int] = None
        self._done = Signal()  # exited and its output drained (what wait() and wait_async() await)
        self._exited = threading.Event()
        self._lock = threading.Lock()
        self._closed = False
        self._on_exit = on_exit
        self._error: Optional[errors.HcsError] = None
        self._text = text or encoding is not None or errors_ is not None
        stdin_h, stdout_h, stderr_h = ref.take_stdio()

        self._stdin_raw: Optional[_Stdin] = None
        self.stdin: Optional[IO[Any]] = None
        if stdin_h is not None:
            raw = _Stdin(handle_to_file(stdin_h, "wb"), self._close_stdin_native)
            self._stdin_raw = raw
            if keep_stdin:
                self.stdin = self._wrap_writer(raw, encoding, errors_)
            else:
                raw.close()

        self._pumps: list[threading.Thread] = []
        self._stdout_pipe, self.stdout = self._output(stdout_h, stdout_sink, encoding, errors_, "stdout",
                                                      echo[0] if echo else None)
        self._stderr_pipe, self.stderr = self._output(stderr_h, stderr_sink, encoding, errors_, "stderr",
                                                      echo[1] if echo else None)
        self._finalizer = weakref.finalize(self, _release, ref)
        self._monitor = threading.Thread(target=self._watch, name=f"wc-wait-{self.pid}", daemon=True)
        self._monitor.start()

    def __repr__(self) -> str:
        return f"<Process pid={self.pid} returncode={self.returncode} args={self.args!r}>"

    def _shown_(self) -> Shown:
        code = self.poll()
        return Shown("Process", str(self.pid), state="running" if code is None else "exited",
                     fields=(("command", _command_text(self.args)), ("exit code", code), ("tty", "yes" if self.tty else "no")))

    # -- streams ---------------------------------------------------------------------------------

    def _wrap_writer(self, raw: _Stdin, encoding: Optional[str], errors_: Optional[str]) -> IO[Any]:
        if self._text:
            return io.TextIOWrapper(io.BufferedWriter(raw), encoding=encoding or "utf-8", errors=errors_,
                                    write_through=True)
        return cast(IO[Any], raw)  # unbuffered: a write reaches the process at once

    def _output(
        self, handle: Optional[int], sink: Optional[Callable[[bytes], None]], encoding: Optional[str],
        errors_: Optional[str], name: str, echo: Optional[Callable[[bytes], None]] = None,
    ) -> tuple[Optional[_Pipe], Optional[IO[Any]]]:
        if handle is None:
            return None, None
        native = handle_to_file(handle, "rb")
        pipe = None if sink is not None else _Pipe()
        target = sink if sink is not None else pipe.feed  # type: ignore[union-attr]
        if echo is not None:
            kept = target

            def target(data: bytes) -> None:
                echo(data)
                kept(data)
        thread = threading.Thread(target=_pump, args=(native, target, pipe), name=f"wc-{name}-{self.pid}", daemon=True)
        thread.start()
        self._pumps.append(thread)
        if pipe is None:
            return None, None
        reader: IO[Any] = io.BufferedReader(pipe)
        if self._text:
            reader = io.TextIOWrapper(reader, encoding=encoding or "utf-8", errors=errors_)
        return pipe, reader

    def _close_stdin_native(self) -> None:
        if not self._exited.is_set():
            try:
                self._ref.close_stdin()
            except errors.HcsError:
                pass

    # -- exit --------------------------------------------------------------------------------------

    def _watch(self) -> None:
        code: Optional[int] = None
        try:
            while code is None and not self._closed:
                code = self._ref.wait(5.0)
        except errors.HcsError as exc:
            if not self._closed:
                self._error = exc  # waiting failed: wait() reports it instead of an exit code
        self._exited.set()
        deadline = time.monotonic() + self.eof_grace
        for t in self._pumps:
            t.join(max(0.0, deadline - time.monotonic()))
        if self._stdin_raw is not None:
            self._stdin_raw.detach_native()
        with self._lock:
            self.returncode = code if code is not None else (self.returncode if self.returncode is not None else -1)
        self._done.set()
        self._release_handles()
        if self._on_exit is not None:
            try:
                self._on_exit(self)
            except Exception:  # the caller's callback, on our thread: reported, not raised here
                log.exception("the on_exit callback of process %s raised", self.pid)

    def _release_handles(self) -> None:
        self._finalizer()

    def poll(self) -> Optional[int]:
        """The exit code once the process has exited and its output is drained, else ``None``."""
        return self.returncode if self._done.is_set() else None

    def wait(self, timeout: Optional[float] = None) -> int:
        """Wait for the exit (and the end of its output); raises :class:`TimeoutExpired`."""
        _check_timeout(timeout)
        if not self._done.wait(timeout):
            raise TimeoutExpired(self.args, timeout or 0.0)
        if self._error is not None:
            raise self._error
        assert self.returncode is not None
        return self.returncode

    def communicate(self, input: Any = None, timeout: Optional[float] = None) -> tuple[Any, Any]:
        """Send ``input``, close stdin, wait; returns ``(stdout, stderr)`` like Popen.communicate."""
        _check_timeout(timeout)
        self._send_input(input)
        self.wait(timeout)
        out = self._read_all(self._stdout_pipe, self.stdout)
        err = self._read_all(self._stderr_pipe, self.stderr)
        return out, err

    # -- asyncio -----------------------------------------------------------------------------------

    async def wait_async(self, timeout: Optional[float] = None) -> int:
        """:meth:`wait`, awaited: woken by the exit (no thread waits); raises
        :class:`TimeoutExpired`. Cancelling the wait leaves the process running."""
        _check_timeout(timeout)
        if not await aio.wait_signal(self._done, timeout):
            raise TimeoutExpired(self.args, timeout or 0.0)
        return self.wait(0)

    async def communicate_async(self, input: Any = None, timeout: Optional[float] = None) -> tuple[Any, Any]:
        """:meth:`communicate`, awaited: ``input`` is written on the shared pool (a full pipe
        blocks a writer), then the exit is awaited and the output returned."""
        _check_timeout(timeout)
        if input is None:
            self._send_input(None)  # closing stdin does not block
        else:
            await aio.call_blocking(self._send_input, input)
        await self.wait_async(timeout)
        return self._read_all(self._stdout_pipe, self.stdout), self._read_all(self._stderr_pipe, self.stderr)

    async def stdout_lines(self) -> AsyncIterator[Any]:
        """Its output line by line as it comes (``async for line in proc.stdout_lines()``):
        ``str`` in text mode (newlines as ``\\n``), else ``bytes``; each line keeps its end.
        It reads what :attr:`stdout` would: do not read both."""
        pipe = self._stdout_pipe
        if pipe is None:
            raise errors.BadInput("stdout_lines() needs stdout as a pipe: exec without stdout_sink, and not a tty "
                                  "whose output went elsewhere")
        wrapper = self.stdout
        decoder = (codecs.getincrementaldecoder(getattr(wrapper, "encoding", None) or "utf-8")(
            getattr(wrapper, "errors", None) or "strict") if self._text else None)
        pending = b""
        while True:
            chunk = pipe.read_now()
            if chunk is None:
                break
            if not chunk:
                await aio.wait_signal(pipe.arrival())
                continue
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield self._line(line + b"\n", decoder)
        if pending:
            yield self._line(pending, decoder, final=True)

    @staticmethod
    def _line(data: bytes, decoder: Any, final: bool = False) -> Any:
        if decoder is None:
            return data
        return decoder.decode(data, final).replace("\r\n", "\n")

    def _send_input(self, input: Any) -> None:
        """Write ``input`` (if any) and close stdin: what communicate does first."""
        if self.stdin is not None and not self.stdin.closed:
            if input is not None:
                try:
                    self.stdin.write(input)
                    self.stdin.flush()
                except BrokenPipeError:
                    pass
            self.stdin.close()
        elif input is not None:
            raise errors.BadInput("communicate(input=...) needs the process's stdin")

    def _read_all(self, pipe: Optional[_Pipe], stream: Optional[IO[Any]]) -> Any:
        if pipe is None or stream is None:
            return None
        data = stream.read()
        return data

    # -- control ---------------------------------------------------------------------------------

    def kill(self) -> None:
        """Terminate the process (TerminateProcess; an exited process is not an error)."""
        if not self._exited.is_set():
            self._ref.terminate()

    terminate = kill

    def send_signal(self, sig: Union[int, str]) -> None:
        """Send a console control event: ``"CtrlC"``, ``"CtrlBreak"``, ... or ``signal.SIGINT`` etc.

        ``signal.SIGTERM`` / ``SIGKILL`` terminate the process, as Popen does on Windows.
        """
        if sig in (_signal.SIGTERM, getattr(_signal, "SIGKILL", 9)):
            self.kill()
            return
        name = SIGNALS.get(sig) if not isinstance(sig, str) else SIGNALS.get(sig, None)
        if name is None:
            raise errors.BadInput(f"unsupported signal {sig!r}; use one of CtrlC, CtrlBreak, CtrlClose, "
                                  "CtrlLogOff, CtrlShutdown")
        if not self._exited.is_set():
            self._ref.signal(name)

    def resize(self, height: int, width: int) -> None:
        """Resize the console of a process started with ``tty=True``."""
        if not self.tty:
            raise errors.BadInput("resize() needs a console: start the process with tty=True")
        if height <= 0 or width <= 0 or height > 0xFFFF or width > 0xFFFF:
            raise errors.BadInput("console height and width must be between 1 and 65535")
        if not self._exited.is_set():
            self._ref.resize(height, width)

    def close(self) -> None:
        """Release everything: streams and HCS handles (the process keeps running if it runs)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        for stream in (self.stdin, self.stdout, self.stderr):
            if stream is not None:
                _quiet_close(stream)
        self._finalizer()

    def __enter__(self) -> "Process":
        return self

    def __exit__(self, *exc: object) -> None:
        if self.stdin is not None:
            _quiet_close(self.stdin)
        try:
            if exc[0] is None:
                self.wait()
        finally:
            self.close()


def stream_sink(stream: Any) -> Callable[[bytes], None]:
    """A sink writing output bytes to a text stream such as ``sys.stdout`` (its buffer when it
    has one; else decoded as UTF-8, a character split across two reads kept whole: a Jupyter
    cell's stream has no buffer)."""
    target = getattr(stream, "buffer", None)
    decoder = codecs.getincrementaldecoder("utf-8")("replace")

    def write(data: bytes) -> None:
        if target is not None:
            target.write(data)
            target.flush()
        else:
            stream.write(decoder.decode(data))
            stream.flush()

    return write


def _pump(native: IO[bytes], target: Callable[[bytes], None], pipe: Optional[_Pipe]) -> None:
    try:
        while True:
            try:
                data = native.read(65536)
            except OSError:  # EIO from a console whose process ended
                break
            if not data:
                break
            target(data)
    finally:
        _quiet_close(native)
        if pipe is not None:
            pipe.finish()


def _release(ref: ProcessRef) -> None:
    try:
        ref.close()
    except Exception as exc:  # noqa: BLE001 - a finalizer must not raise; it says so instead
        log.warning("closing a process handle failed (it may stay open until exit): %s", exc)


def _check_timeout(timeout: Optional[float]) -> None:
    if timeout is not None and timeout < 0:
        raise errors.BadInput("timeout must not be negative")
