"""A detached container's output in Docker's json-file format, with size-based rotation.

One JSON object per line: ``{"log": "text\\r\\n", "stream": "stdout", "time": "<RFC 3339, ns>"}``,
so ``docker logs``-style tools and log shippers that read Docker's files read ours. Output is cut
at line ends (a partial line is held until its end comes, 16 KiB have gathered, or the stream
ends), as Docker's copier does.

Rotation follows ``--log-opt max-size=10m --log-opt max-file=3``: when the file would pass
``max-size`` it becomes ``<log>.1`` (older ones shift up, the oldest is dropped); with
``max-file=1`` the file is emptied instead. Files are opened through kernel32 with every share
mode, so a reader following the log (``logs -f``) never stops the monitor from rotating it on
Windows, and a reader notices a rotation by the file id changing under the name.

Everything read back is treated as hostile: a line longer than :data:`MAX_LINE`, or one that is
not a record, is skipped (and counted), never raised.
"""

from __future__ import annotations

import calendar
import json
import logging
import re
import secrets
import threading
import time
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

import attrs

from wincontainers.errors import BadInput
from wincontainers._native import win32 as w32

log = logging.getLogger("wincontainers.containers")

__all__ = ["LogOptions", "LogRecord", "LogSnapshot", "JsonLogWriter", "read_log", "follow_log", "parse_since", "format_time",
           "MAX_LINE"]

#: Docker's copier cuts a line without end at 16 KiB.
PARTIAL_LIMIT = 16 * 1024
#: The longest record line a reader accepts (a 16 KiB chunk escapes to at most 6 times that).
MAX_LINE = 128 * 1024
_SIZE = re.compile(r"\A([0-9]+)([kmg]?)b?\Z", re.IGNORECASE)
_TIME = re.compile(r"\A(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?Z\Z")


@attrs.frozen
class LogOptions:
    """``--log-opt``: ``max_size`` in bytes (None: no limit), ``max_file`` files kept (>= 1)."""

    max_size: Optional[int] = None
    max_file: int = 1

    @classmethod
    def parse(cls, items: Sequence[str]) -> "LogOptions":
        """``["max-size=10m", "max-file=3"]`` as the Docker CLI takes them; BadInput otherwise."""
        max_size: Optional[int] = None
        max_file = 1
        for item in items:
            key, sep, value = str(item).partition("=")
            if not sep:
                raise BadInput(f"--log-opt {item!r}: expected KEY=VALUE")
            if key == "max-size":
                m = _SIZE.match(value.strip())
                if not m or int(m.group(1)) <= 0:
                    raise BadInput(f"--log-opt max-size={value!r}: a positive size such as 10m, 512k or 1g")
                max_size = int(m.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[m.group(2).lower()]
            elif key == "max-file":
                if not value.isdigit() or not 1 <= int(value) <= 100:
                    raise BadInput(f"--log-opt max-file={value!r}: a whole number from 1 to 100")
                max_file = int(value)
            else:
                raise BadInput(f"--log-opt {key!r}: the json-file log takes max-size and max-file")
        if max_file > 1 and max_size is None:
            raise BadInput("--log-opt max-file needs max-size (files rotate when they reach it)")
        return cls(max_size, max_file)

    def to_json(self) -> dict[str, Optional[int]]:
        return {"max_size": self.max_size, "max_file": self.max_file}

    @classmethod
    def from_json(cls, doc: object) -> "LogOptions":
        if not isinstance(doc, dict):
            return cls()
        size, files = doc.get("max_size"), doc.get("max_file")
        return cls(size if isinstance(size, int) and size > 0 else None,
                   files if isinstance(files, int) and 1 <= files <= 100 else 1)


@attrs.frozen
class LogRecord:
    """One record: the stream (``stdout``/``stderr``), the text, and its time (ns since 1970)."""

    stream: str
    data: bytes
    time_ns: int

    @property
    def timestamp(self) -> str:
        return format_time(self.time_ns)


def format_time(time_ns: int) -> str:
    """RFC 3339 with nanoseconds, UTC, as Docker writes it."""
    seconds, fraction = divmod(time_ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{fraction:09d}Z"


def _parse_time(text: object) -> Optional[int]:
    m = _TIME.match(text) if isinstance(text, str) else None
    if m is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    try:
        seconds = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    return seconds * 1_000_000_000 + int((m.group(7) or "0").ljust(9, "0"))


def parse_since(value: str, now: Optional[float] = None) -> int:
    """``--since``: an RFC 3339 time, epoch seconds, or a duration back from now (``10m``,
    ``1h30m``, ``45s``), as ns since 1970."""
    text = str(value).strip()
    exact = _parse_time(text if text.endswith("Z") else text + "Z") if "T" in text else None
    if exact is not None:
        return exact
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
        return int(float(text) * 1_000_000_000)
    parts = re.findall(r"([0-9]+(?:\.[0-9]+)?)(ms|h|m|s)", text)
    if parts and "".join(n + u for n, u in parts) == text:
        seconds = sum(float(n) * {"h": 3600, "m": 60, "s": 1, "ms": 0.001}[u] for n, u in parts)
        return int(((now if now is not None else time.time()) - seconds) * 1_000_000_000)
    raise BadInput(f"--since {value!r}: an RFC 3339 time (2026-12-06T10:00:00Z), epoch seconds or a duration (10m)")


def _rotated(path: Path, n: int) -> Path:
    return path.with_name(f"{path.name}.{n}")


class JsonLogWriter:
    """Appends a container's output to ``path`` (the monitor's one writer; thread-safe)."""

    def __init__(self, win32: w32.Win32, path: Path, options: LogOptions = LogOptions(),
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.win32 = win32
        self.path = path
        self.options = options
        self.clock = clock
        self._lock = threading.Lock()
        self._partial: dict[str, bytes] = {"stdout": b"", "stderr": b""}
        self._file = self._open()
        self._size = self._file.seek(0, 2)

    def _open(self) -> w32.Win32File:
        return self.win32.create_file(w32.long_path(self.path), w32.GENERIC_WRITE, w32.OPEN_ALWAYS, share=w32.FILE_SHARE_ALL)

    def write(self, stream: str, data: bytes) -> None:
        """Output as it came from the process: whole lines become records at once."""
        with self._lock:
            pending = self._partial[stream] + data
            lines = pending.splitlines(keepends=True)
            keep = b""
            if lines and not lines[-1].endswith(b"\n"):  # a CR may be the first half of a CRLF
                keep = lines.pop()
            if len(keep) >= PARTIAL_LIMIT:
                lines.append(keep)
                keep = b""
            self._partial[stream] = keep
            self._emit(stream, lines)

    def flush_partial(self) -> None:
        """The stream ended: what is left of a line is a record of its own."""
        with self._lock:
            for stream, rest in self._partial.items():
                if rest:
                    self._emit(stream, [rest])
                    self._partial[stream] = b""

    def _emit(self, stream: str, lines: list[bytes]) -> None:
        if not lines:
            return
        now = format_time(self.clock())
        out = b"".join(
            json.dumps({"log": line.decode("utf-8", "replace"), "stream": stream, "time": now},
                       ensure_ascii=False).encode("utf-8") + b"\n"
            for line in lines
        )
        limit = self.options.max_size
        if limit is not None and self._size and self._size + len(out) > limit:
            self._rotate()
        self._file.write(out)
        self._size += len(out)

    def _rotate(self) -> None:
        """Shift the files up by one. The oldest is first renamed away, then deleted: a reader
        may hold it open (with every share mode), and Windows refuses to replace an open file
        but lets it be renamed and marked for deletion."""
        self._file.close()
        keep = self.options.max_file
        if keep > 1:
            oldest = _rotated(self.path, keep - 1)
            if self.win32.attributes(w32.long_path(oldest)) is not None:
                doomed = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.old")
                self.win32.move(w32.long_path(oldest), w32.long_path(doomed))
                try:
                    self.win32.delete_file(w32.long_path(doomed))
                except OSError as exc:  # the name is hidden; the next rotation leaves it be
                    log.warning("could not delete the old log %s: %s", doomed, exc)
            for n in range(keep - 1, 0, -1):
                older = self.path if n == 1 else _rotated(self.path, n - 1)
                if self.win32.attributes(w32.long_path(older)) is not None:
                    self.win32.move(w32.long_path(older), w32.long_path(_rotated(self.path, n)))
            self._file = self._open()
        else:
            self._file = self.win32.create_file(w32.long_path(self.path), w32.GENERIC_WRITE, w32.CREATE_ALWAYS,
                                                share=w32.FILE_SHARE_ALL)
        self._size = 0

    def close(self) -> None:
        with self._lock:
            self._file.close()


def _records(chunk: bytes, skipped: list[int]) -> Iterator[LogRecord]:
    for line in chunk.split(b"\n"):
        if not line.strip():
            continue
        record = _record(line)
        if record is None:
            skipped[0] += 1
        else:
            yield record


def _record(line: bytes) -> Optional[LogRecord]:
    if len(line) > MAX_LINE:
        return None
    try:
        doc = json.loads(line)
    except ValueError:
        return None
    if not isinstance(doc, dict) or doc.get("stream") not in ("stdout", "stderr") or not isinstance(doc.get("log"), str):
        return None
    when = _parse_time(doc.get("time"))
    if when is None:
        return None
    return LogRecord(doc["stream"], doc["log"].encode("utf-8", "replace"), when)


def _open_reader(win32: w32.Win32, path: Path) -> Optional[w32.Win32File]:
    try:
        return win32.create_file(w32.long_path(path), w32.GENERIC_READ, w32.OPEN_EXISTING, share=w32.FILE_SHARE_ALL)
    except w32.PathNotFound:
        return None


class _LineReader:
    """Complete lines of an open log file, from where it was last read; an overlong line is
    dropped up to its end (a hostile file cannot make the reader hold it)."""

    def __init__(self, f: w32.Win32File) -> None:
        self.file = f
        self.rest = b""
        self.dropping = False

    def read(self) -> bytes:
        out = bytearray()
        while True:
            data = self.file.read(1 << 20)
            if not data:
                break
            data = self.rest + data
            cut = data.rfind(b"\n")
            if cut < 0:
                self.rest = data
            else:
                head, self.rest = data[:cut + 1], data[cut + 1:]
                if self.dropping:
                    head = head[head.find(b"\n") + 1:]
                    self.dropping = False
                out += head
            if len(self.rest) > MAX_LINE:
                self.rest, self.dropping = b"", True
        return bytes(out)


@attrs.frozen
class LogSnapshot:
    """What :func:`read_log` found: the records, and where in the current file it stopped (so a
    follower goes on from there, missing nothing and repeating nothing)."""

    records: list[LogRecord]
    file_id: Optional[tuple[int, int]] = None
    offset: int = 0


def read_log(win32: w32.Win32, path: Path, options: LogOptions = LogOptions()) -> LogSnapshot:
    """Every record still kept, oldest first (rotated files, then the current one)."""
    skipped = [0]
    out: list[LogRecord] = []
    file_id, offset = None, 0
    for n in range(options.max_file - 1, -1, -1):
        f = _open_reader(win32, _rotated(path, n) if n else path)
        if f is None:
            continue
        with f:
            reader = _LineReader(f)
            out.extend(_records(reader.read(), skipped))
            if n == 0:
                file_id, offset = f.file_id(), f.seek(0, 1) - len(reader.rest)
    return LogSnapshot(out, file_id, offset)


def _between(win32: w32.Win32, path: Path, old: tuple[int, int], new: tuple[int, int],
             skipped: list[int]) -> Iterator[LogRecord]:
    """Two rotations came between two looks: the file that was current in between is now
    ``<log>.1``; read it whole. (A follower slower than that misses what was rotated away, as
    Docker's does: the files are gone.)"""
    middle = _open_reader(win32, _rotated(path, 1))
    if middle is None:
        return
    with middle:
        if middle.file_id() not in (old, new):
            yield from _records(_LineReader(middle).read(), skipped)


def follow_log(win32: w32.Win32, path: Path, running: Callable[[], bool], *, poll: float = 0.1,
               after: Optional[LogSnapshot] = None) -> Iterator[LogRecord]:
    """Records written after ``after`` (a :func:`read_log` snapshot; without one, from the
    start of the current file) until ``running()`` says the writer is done and nothing more came.
    A rotation (the name now names another file) is followed: the old file is read to its end,
    then the new one from its start."""
    skipped = [0]
    current = _open_reader(win32, path)
    reader = _LineReader(current) if current is not None else None
    if reader is not None and after is not None and after.file_id == reader.file.file_id():
        reader.file.seek(after.offset)
    try:
        while True:
            alive = running()  # asked before reading, so what was written before it ended is read
            if reader is not None:
                yield from _records(reader.read(), skipped)
                if reader.file.seek(0, 1) > reader.file.size():  # emptied in place (max-file=1)
                    reader.file.seek(0)
                    reader.rest = b""
            replaced = _open_reader(win32, path)
            if replaced is not None and (reader is None or replaced.file_id() != reader.file.file_id()):
                if reader is not None:
                    yield from _records(reader.read(), skipped)
                    yield from _between(win32, path, reader.file.file_id(), replaced.file_id(), skipped)
                    reader.file.close()
                reader = _LineReader(replaced)
                continue
            if replaced is not None:
                replaced.close()
            if not alive:
                return
            time.sleep(poll)
    finally:
        if reader is not None:
            reader.file.close()
