"""Reading and writing Windows layer tars, streaming, with the diff ID computed on the way.

:class:`LayerReader` turns a tar (plain, gzip, or zstd when the ``zstandard`` package is
installed) into :class:`~wincontainers.layerfile.entry.LayerEntry` objects and data readers;
:class:`LayerWriter` writes entries exactly as hcsshim/go-winio do (PAX records sorted, Go's
header layout, the mode values of layer-format.md 1.3), so writing the same entries twice gives
the same bytes. Neither holds more than one chunk of an entry in memory.
"""

from __future__ import annotations

import base64
import binascii
import functools
import gzip
import io
import zlib
import os
from pathlib import Path
from typing import IO, Any, Callable, Iterator, Optional, Union, cast

from wincontainers.layerfile import times
from wincontainers.layerfile.entry import WHITEOUT_PREFIX, EntryKind, LayerEntry
from wincontainers.layerfile.hashing import BATCH, BackgroundSha256, FileSha256, SourceChanged
from wincontainers.layerfile.security import SecurityDescriptor, SecurityError
from wincontainers.layerfile.tarstream import (
    BLOCK,
    DEFAULT_LIMITS,
    EntryData,
    RawHeader,
    TarFormatError,
    TarLimits,
    header_block,
    iter_headers,
    pax_block,
    remembered,
    split_ustar_path,
)

__all__ = ["LayerReader", "LayerWriter", "Progress", "TarFormatError", "open_source", "LayerFormatError", "SourceChanged"]

Source = Union[str, "os.PathLike[str]", IO[bytes]]
Progress = Callable[[int, int], None]  # (bytes done, files done)

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_MAX_OCTAL_11 = 8 ** 11


class LayerFormatError(ValueError):
    """The layer cannot be read (compression, metadata that does not decode)."""


def _zstd_module() -> Any:
    try:
        import zstandard  # type: ignore[import-not-found,unused-ignore]

        return zstandard
    except ImportError:
        raise LayerFormatError(
            "the layer is zstd-compressed; install the optional dependency: pip install zstandard"
        ) from None


class _Hashing(io.RawIOBase):
    """Counts and hashes what is read through it (the uncompressed tar: its diff ID)."""

    def __init__(self, src: IO[bytes], progress: Optional[Callable[[int], None]] = None,
                 sha: "Optional[BackgroundSha256 | FileSha256]" = None) -> None:
        super().__init__()
        self.src = src
        self.sha = sha or BackgroundSha256()
        self.count = 0
        self._progress = progress

    def readable(self) -> bool:
        return True

    def _read(self, n: int) -> bytes:
        """From the source; a corrupt compressed stream is a :class:`TarFormatError`."""
        try:
            return self.src.read() if n < 0 else self.src.read(n)
        except (zlib.error, EOFError, gzip.BadGzipFile) as exc:
            raise TarFormatError(f"the compressed stream is corrupt or cut short ({exc})", self.count) from None
        except Exception as exc:  # zstandard.ZstdError, which is not imported unless zstd is used
            if type(exc).__name__ == "ZstdError":
                raise TarFormatError(f"the zstd stream is corrupt ({exc})", self.count) from None
            raise

    def readinto(self, b: Any) -> int:
        data = self._read(len(b))
        n = len(data)
        b[:n] = data
        if n:
            self.sha.update(data)
            self.count += n
            if self._progress is not None:
                self._progress(self.count)
        return n

    def read(self, n: int = -1) -> bytes:
        data = self._read(-1 if n is None else n)
        if data:
            self.sha.update(data)
            self.count += len(data)
            if self._progress is not None:
                self._progress(self.count)
        return data


def _position(f: IO[bytes]) -> Optional[int]:
    try:
        return f.tell()
    except (AttributeError, OSError, ValueError):
        return None


def open_source(source: Source) -> tuple[IO[bytes], bool]:
    """A binary file object for ``source`` and whether we opened it (and must close it)."""
    if isinstance(source, (str, os.PathLike)):
        return open(Path(source), "rb"), True
    if not hasattr(source, "read"):
        raise TypeError("a layer source is a path or a binary file object")
    return source, False


def decompressed(raw: IO[bytes]) -> tuple[IO[bytes], str]:
    """``raw`` read through gzip or zstd when it starts with their magic; and which it was."""
    buffered: Any = raw if hasattr(raw, "peek") else io.BufferedReader(cast(Any, raw))
    head = buffered.peek(4)[:4]
    if head.startswith(_GZIP_MAGIC):
        return cast(IO[bytes], gzip.GzipFile(fileobj=buffered, mode="rb")), "gzip"
    if head == _ZSTD_MAGIC:
        return _zstd_module().ZstdDecompressor().stream_reader(buffered, read_across_frames=True), "zstd"
    return buffered, "none"


def _decode_name(raw: bytes) -> tuple[str, Optional[str]]:
    """A tar name as Windows will see it, and what is wrong with it (None when valid UTF-8).

    WTF-8 (a UTF-16 surrogate encoded like a character) is how a Windows name holding an
    unpaired surrogate is carried; it decodes to that name exactly, and :func:`_encode_name`
    writes the same bytes back. Anything else that is not UTF-8 keeps its bytes as escapes.
    """
    try:
        return raw.decode("utf-8"), None
    except UnicodeDecodeError:
        pass
    try:
        wide = raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "surrogateescape"), "is not valid UTF-8"
    # A pair encoded as two surrogates is one character to Windows.
    name = wide.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    return name, "encodes an unpaired UTF-16 surrogate (WTF-8): the name is not valid UTF-16"


def _encode_name(name: str) -> bytes:
    """UTF-8, with unpaired surrogates as WTF-8 (the inverse of :func:`_decode_name`)."""
    return name.encode("utf-8", "surrogatepass")


def _pax_time(pax: dict[str, bytes], key: str) -> Optional[int]:
    value = pax.get(key)
    if value is None:
        return None
    return _filetime_of(value)


@remembered(maxsize=4096, limit=64)  # a real time value is at most about 30 characters
def _filetime_of(value: bytes) -> Optional[int]:
    """A PAX time record's value as a FILETIME."""
    return times.pax_to_filetime(value.decode("ascii", "replace"))


@remembered(maxsize=256, limit=4096)
def _raw_security(value: bytes) -> bytes:
    """MSWINDOWS.rawsd decoded; raises binascii.Error when it is not base64."""
    return base64.b64decode(value, validate=True)


def entry_from_header(raw: RawHeader) -> LayerEntry:
    """Decode one tar header into a layer entry (raises LayerFormatError for bad metadata)."""
    name, name_error = _decode_name(raw.name)
    typeflag = raw.typeflag
    is_dir_name = name.endswith("/")
    if is_dir_name and typeflag == "5":
        name = name.rstrip("/") or name
    pax = raw.pax
    base = name.rpartition("/")[2]
    if typeflag == "5":
        kind = EntryKind.DIRECTORY
    elif typeflag in ("0", "7"):
        if base.startswith(WHITEOUT_PREFIX):
            kind = EntryKind.WHITEOUT
        elif ":" in base:
            kind = EntryKind.STREAM
        else:
            kind = EntryKind.FILE
    elif typeflag == "2":
        kind = EntryKind.JUNCTION if "MSWINDOWS.mountpoint" in pax else EntryKind.SYMLINK
    elif typeflag == "1":
        kind = EntryKind.HARDLINK
    else:
        kind = EntryKind.OTHER
    entry = LayerEntry(
        name=name, kind=kind, size=raw.size, mode=raw.mode, typeflag=typeflag, raw_name=raw.name,
        name_error=name_error, header_size=raw.header_size,
    )
    if raw.linkname:
        entry.link_target, link_error = _decode_name(raw.linkname)
        if link_error and not entry.name_error:
            entry.name_error = f"link target {link_error}"
    attr = pax.get("MSWINDOWS.fileattr")
    if attr is not None:
        try:
            entry.attributes = int(attr) & 0xFFFFFFFF
        except ValueError:
            raise LayerFormatError(f"{name}: MSWINDOWS.fileattr is not a number: {attr!r}") from None
    rawsd = pax.get("MSWINDOWS.rawsd")
    if rawsd is not None:
        try:
            entry.security = _raw_security(rawsd)
        except binascii.Error:
            raise LayerFormatError(f"{name}: MSWINDOWS.rawsd is not base64") from None
    elif "MSWINDOWS.sd" in pax:
        entry.sddl = pax["MSWINDOWS.sd"].decode("utf-8", "replace")
        try:
            entry.security = SecurityDescriptor.from_sddl(entry.sddl).to_bytes()
        except SecurityError as exc:
            raise LayerFormatError(f"{name}: MSWINDOWS.sd: {exc}") from None
    for key, value in pax.items():
        if key.startswith("MSWINDOWS.xattr."):
            try:
                entry.xattrs[key[len("MSWINDOWS.xattr."):]] = base64.b64decode(value, validate=True)
            except binascii.Error:
                raise LayerFormatError(f"{name}: {key} is not base64") from None
        elif key not in _KNOWN_PAX:
            entry.pax_extra[key] = value.decode("utf-8", "replace")
    entry.creation_time = _pax_time(pax, "LIBARCHIVE.creationtime")
    entry.last_access_time = _pax_time(pax, "atime")
    entry.change_time = _pax_time(pax, "ctime")
    mtime = _pax_time(pax, "mtime")
    entry.last_write_time = mtime if mtime is not None else times.unix_ns_to_filetime(raw.mtime * 1_000_000_000)
    return entry


_KNOWN_PAX = frozenset({
    "MSWINDOWS.fileattr", "MSWINDOWS.rawsd", "MSWINDOWS.sd", "MSWINDOWS.mountpoint", "LIBARCHIVE.creationtime",
    "atime", "ctime", "mtime", "path", "linkpath", "size", "uid", "gid", "uname", "gname",
})


class LayerReader:
    """Iterate a layer tar: ``for entry, data in reader`` (read ``data`` before the next step).

    After the iteration, :attr:`diff_id` is ``sha256:`` of the whole uncompressed tar.

    ``opened_from``: the path of the file ``source`` was opened from. The diff ID of a plain
    tar is then hashed from the file, by a thread that reads it again behind the reader
    (:class:`~wincontainers.layerfile.hashing.FileSha256`): the reader never waits for the hash,
    which pays when work follows the read that the hash can overlap (a diff import's
    ImportLayer); with nothing after it, the second read only costs. :attr:`diff_id` raises
    :class:`~wincontainers.layerfile.hashing.SourceChanged` when the file changed meanwhile.
    """

    def __init__(self, source: Source, *, progress: Optional[Progress] = None,
                 limits: TarLimits = DEFAULT_LIMITS, opened_from: "Optional[str | os.PathLike[str]]" = None) -> None:
        self._raw, self._owned = open_source(source)
        self._progress = progress
        self._files = 0
        start = _position(self._raw) if opened_from is not None else None  # before decompressed() reads ahead
        stream, self.compression = decompressed(self._raw)
        sha = None
        if opened_from is not None and start is not None and self.compression == "none":
            sha = FileSha256.of(opened_from, self._raw, start)
        self._hashing = _Hashing(stream, self._report if progress else None, sha)
        self._limits = limits
        self._done = False

    def _report(self, count: int) -> None:
        if self._progress is not None:
            self._progress(count, self._files)

    def __enter__(self) -> "LayerReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._hashing.sha.close()
        if self._owned:
            self._raw.close()

    def __iter__(self) -> Iterator[tuple[LayerEntry, EntryData]]:
        for raw, data in iter_headers(self._hashing, self._limits):  # type: ignore[arg-type]
            yield entry_from_header(raw), data
            self._files += 1
        while self._hashing.read(1 << 20):  # the rest (end blocks, padding) belongs to the diff ID
            pass
        self._done = True
        self._report(self._hashing.count)

    def entries(self) -> Iterator[LayerEntry]:
        """Entries only (their data is skipped)."""
        for entry, _data in self:
            yield entry

    @property
    def diff_id(self) -> str:
        if not self._done:
            raise RuntimeError("the diff ID is known once the whole layer has been read")
        return "sha256:" + self._hashing.sha.hexdigest()

    @property
    def bytes_read(self) -> int:
        return self._hashing.count


# The entries of a layer share most of their times (ints: nothing to bound but their number).
_pax_text = functools.lru_cache(maxsize=4096)(times.filetime_to_pax)


@remembered(maxsize=256, limit=4096)
def _rawsd_text(security: bytes) -> str:
    return base64.b64encode(security).decode("ascii")


#: entries up to this size are written with one call (the rest in 1 MiB chunks)
_ONE_WRITE = 1 << 16


def _data_chunks(data: Optional[IO[bytes]], size: int, name: str) -> Iterator[bytes]:
    """Exactly ``size`` bytes of an entry's data, in pieces of up to 1 MiB (a raw stream may
    give less than asked); a short source is an error naming the entry."""
    remaining = size
    while remaining:
        assert data is not None
        chunk = data.read(min(1 << 20, remaining))
        if not chunk:
            raise ValueError(f"{name}: data ended {remaining} bytes early")
        yield chunk
        remaining -= len(chunk)


class _HashingWriter:
    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self.sha = BackgroundSha256()
        self.count = 0

    def write(self, data: bytes) -> int:
        self.sha.update(data)
        self.count += len(data)
        self.out.write(data)
        return len(data)


class LayerWriter:
    """Write a layer tar as hcsshim/go-winio would, optionally gzip- or zstd-compressed."""

    def __init__(self, dest: Union[str, "os.PathLike[str]", IO[bytes]], *, compression: str = "none",
                 level: Optional[int] = None, progress: Optional[Progress] = None) -> None:
        if isinstance(dest, (str, os.PathLike)):
            # a buffer of a hash batch: a small file's entry is a few KiB, a write of its own each
            # cost more than building it
            self._file: IO[bytes] = open(Path(dest), "wb", buffering=BATCH)
            self._owned = True
        else:
            self._file, self._owned = dest, False
        self.compression = compression
        self._compressor: Any = None
        if compression == "gzip":
            # filename "" and mtime 0: the same entries give the same bytes
            self._compressor = gzip.GzipFile(filename="", mode="wb", fileobj=self._file, mtime=0,
                                             compresslevel=6 if level is None else level)
            sink: IO[bytes] = self._compressor
        elif compression == "zstd":
            self._compressor = _zstd_module().ZstdCompressor(level=3 if level is None else level).stream_writer(
                self._file, closefd=False)
            sink = self._compressor
        elif compression == "none":
            sink = self._file
        else:
            raise ValueError(f"compression is none, gzip or zstd, not {compression!r}")
        self._out = _HashingWriter(sink)
        self._progress = progress
        self.files = 0
        self._closed = False

    def __enter__(self) -> "LayerWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def diff_id(self) -> str:
        return "sha256:" + self._out.sha.hexdigest()

    @property
    def bytes_written(self) -> int:
        return self._out.count

    def add(self, entry: LayerEntry, data: Optional[IO[bytes]] = None) -> None:
        """Append ``entry``; files and streams need ``data`` with exactly ``entry.size`` bytes."""
        records: dict[str, str] = {}
        kind = entry.kind
        ft = entry.last_write_time
        secs = times.filetime_seconds(ft) if ft is not None else 0
        mtime_field = secs if 0 <= secs < _MAX_OCTAL_11 else 0
        if kind is not EntryKind.WHITEOUT:
            if kind is not EntryKind.STREAM:
                if entry.creation_time is not None:
                    records["LIBARCHIVE.creationtime"] = _pax_text(entry.creation_time)
                records["MSWINDOWS.fileattr"] = str(entry.effective_attributes)
                if kind is EntryKind.JUNCTION:
                    records["MSWINDOWS.mountpoint"] = "1"
                if entry.security is not None and kind is not EntryKind.HARDLINK:
                    records["MSWINDOWS.rawsd"] = _rawsd_text(entry.security)
                for ea_name, value in entry.xattrs.items():
                    records[f"MSWINDOWS.xattr.{ea_name}"] = base64.b64encode(value).decode("ascii")
                for key, text in entry.pax_extra.items():  # records we do not interpret travel as they came
                    records.setdefault(key, text)
            if entry.last_access_time is not None:
                records["atime"] = _pax_text(entry.last_access_time)
            if entry.change_time is not None:
                records["ctime"] = _pax_text(entry.change_time)
            if ft is not None and (times.filetime_to_unix_ns(ft) % 1_000_000_000 or mtime_field != secs):
                records["mtime"] = _pax_text(ft)
        mode, typeflag, size = _MODES[kind], _TYPEFLAGS[kind], 0
        if kind in (EntryKind.SYMLINK, EntryKind.JUNCTION) and entry.is_directory_link:
            mode = 0o160000
        if kind in (EntryKind.FILE, EntryKind.STREAM):
            size = entry.size
            if data is None:
                raise ValueError(f"{entry.name}: a file entry needs its data")
        if size >= _MAX_OCTAL_11:
            records["size"] = str(size)
        name_bytes = _encode_name(entry.name)
        prefix = b""
        ustar_name: Optional[bytes] = None
        if kind is EntryKind.WHITEOUT:
            mtime_field = 0
            split = split_ustar_path(name_bytes) if name_bytes.isascii() else None
            if split is None:
                records["path"] = entry.name
            else:
                prefix, ustar_name = split
        elif not name_bytes.isascii() or len(name_bytes) > 100:
            records["path"] = entry.name
        link = entry.link_target or ""
        if link and (not link.isascii() or len(link.encode()) > 100):
            records["linkpath"] = link
        if kind is EntryKind.OTHER:
            raise ValueError(f"{entry.name}: {entry.typeflag!r} entries cannot be written into a Windows layer")
        out = self._out
        head = header_block(name=entry.name, typeflag=typeflag, size=size if size < _MAX_OCTAL_11 else 0,
                            mode=mode, mtime=mtime_field, linkname=link, prefix=prefix, raw_name=ustar_name)
        if records:
            head = pax_block(entry.name, records) + head
        pad = b"\0" * ((-size) % BLOCK)
        if size <= _ONE_WRITE:  # most entries: headers, data and padding hashed and written at once
            out.write(b"".join([head, *_data_chunks(data, size, entry.name), pad]))
        else:
            out.write(head)
            for chunk in _data_chunks(data, size, entry.name):
                out.write(chunk)
            out.write(pad)
        self.files += 1
        if self._progress is not None:
            self._progress(out.count, self.files)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._out.write(b"\0" * (2 * BLOCK))
        finally:
            self._out.sha.hexdigest()  # the hash thread ends with the tar
        if self._progress is not None:
            self._progress(self._out.count, self.files)
        if self._compressor is not None:
            self._compressor.close()
        if self._owned:
            self._file.close()
        else:
            self._file.flush()


_MODES = {
    EntryKind.DIRECTORY: 0o40000,
    EntryKind.FILE: 0o100000,
    EntryKind.STREAM: 0o100000,
    EntryKind.SYMLINK: 0o120000,
    EntryKind.JUNCTION: 0o120000,
    EntryKind.HARDLINK: 0o644,
    EntryKind.WHITEOUT: 0,
    EntryKind.OTHER: 0,
}
_TYPEFLAGS = {
    EntryKind.DIRECTORY: "5",
    EntryKind.FILE: "0",
    EntryKind.STREAM: "0",
    EntryKind.SYMLINK: "2",
    EntryKind.JUNCTION: "2",
    EntryKind.HARDLINK: "1",
    EntryKind.WHITEOUT: "0",
    EntryKind.OTHER: "0",
}

