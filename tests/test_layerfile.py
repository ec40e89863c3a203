"""The Windows layer tar codecs against the reference vectors, and round trips."""

from __future__ import annotations

import base64
import gzip
import io
import shutil
import subprocess
import tarfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wincontainers.layerfile import EntryKind, LayerEntry, LayerReader, LayerWriter, SecurityDescriptor, times
from wincontainers.layerfile.backup import BackupReader, BackupWriter, StreamId
from wincontainers.layerfile.ea import decode_eas, encode_eas
from wincontainers.layerfile.reparse import decode_reparse, encode_reparse
from wincontainers.layerfile.security import SD_SAMPLE_NO_DACL, Sid
from tests.conftest import DATA

SD_B64 = ("AQAElBQAAAAkAAAAAAAAADAAAAABAgAAAAAABSAAAAAgAgAAAQEAAAAAAAUSAAAAAgBMAAMAAAAAAxQA/wEfAAEBAAAAAAAFEgAAAAA"
          "DGAD/AR8AAQIAAAAAAAUgAAAAIAIAAAADGACpABIAAQIAAAAAAAUgAAAAIQIAAA==")
SD_B = base64.b64decode(SD_B64)
CREATED = times.pax_to_filetime("1694228065.1097447")
WRITTEN = times.pax_to_filetime("1694228070.5")


# -- primitive vectors (layer-format.md 1.6-1.11) -----------------------------------------------

@pytest.mark.parametrize("filetime,pax", [
    (132537600001234567, "1609286400.1234567"),
    (133000000000000000, "1655526400"),
    (133387016651097447, "1694228065.1097447"),
])
def test_filetime_pax_vectors(filetime: int, pax: str) -> None:
    assert times.filetime_to_pax(filetime) == pax
    assert times.pax_to_filetime(pax) == filetime


@given(st.integers(0, 2**63 - 1))
def test_filetime_round_trip(filetime: int) -> None:
    assert times.pax_to_filetime(times.filetime_to_pax(filetime)) == filetime


def test_pax_nanoseconds_lose_two_digits_like_windows() -> None:
    assert times.filetime_to_pax(times.pax_to_filetime("1694228065.123456789")) == "1694228065.1234567"


def test_security_descriptor_samples() -> None:
    b = SecurityDescriptor.from_bytes(SD_B)
    assert len(SD_B) == 124
    assert b.to_sddl() == "O:BAG:SYD:PAI(A;OICI;FA;;;SY)(A;OICI;FA;;;BA)(A;OICI;0x1200a9;;;BU)"
    assert b.control == 0x9404
    assert b.to_bytes() == SD_B
    assert SecurityDescriptor.from_sddl(b.to_sddl()).to_bytes() == SD_B
    a = SecurityDescriptor.from_base64(SD_SAMPLE_NO_DACL)
    assert a.to_sddl() == "O:BUG:BU" and a.dacl is None
    assert base64.b64encode(SecurityDescriptor.from_sddl("O:BUG:BU").to_bytes()).decode() == SD_SAMPLE_NO_DACL
    assert str(Sid.parse("BA")) == "S-1-5-32-544"


sids = st.builds(Sid, st.integers(0, 2**48 - 1), st.lists(st.integers(0, 2**32 - 1), max_size=6).map(tuple))


@given(owner=st.none() | sids, group=st.none() | sids, masks=st.lists(st.tuples(st.sampled_from([0, 1]),
       st.integers(0, 0x1F), st.integers(0, 2**32 - 1), sids), max_size=4), protected=st.booleans())
def test_security_descriptors_round_trip_bytes_and_sddl(owner: Sid | None, group: Sid | None,
                                                       masks: list[tuple[int, int, int, Sid]], protected: bool) -> None:
    from wincontainers.layerfile.security import Ace, Acl

    sd = SecurityDescriptor(owner, group, Acl(tuple(Ace(t, f, m, s) for t, f, m, s in masks)),
                            control=0x8000 | (0x1000 if protected else 0))
    raw = sd.to_bytes()
    parsed = SecurityDescriptor.from_bytes(raw)
    assert parsed.to_bytes() == raw
    assert SecurityDescriptor.from_sddl(parsed.to_sddl()).to_bytes() == raw


def test_backup_stream_worked_example() -> None:
    out = io.BytesIO()
    w = BackupWriter(out)
    w.security(SD_B)
    w.data(7, io.BytesIO(b"hello\r\n"))
    zone = b"[ZoneTransfer]\r\nZoneId=3\r\n"
    w.alternate("Zone.Identifier", len(zone), io.BytesIO(zone))
    data = out.getvalue()
    assert len(data) == 261
    assert data[:20] == bytes.fromhex("03000000 00000000 7c00000000000000 00000000".replace(" ", ""))
    assert data[144:164] == bytes.fromhex("01000000000000000700000000000000 00000000".replace(" ", ""))
    assert data[171:191] == bytes.fromhex("04000000000000001a000000000000002c000000")
    streams = [(h.id, h.name, body.read()) for h, body in BackupReader(io.BytesIO(data))]
    assert streams == [(StreamId.SECURITY_DATA, "", SD_B), (StreamId.DATA, "", b"hello\r\n"),
                       (StreamId.ALTERNATE_DATA, ":Zone.Identifier:$DATA", zone)]


def test_a_backup_streams_data_between_files_is_copied_by_the_kernel(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import os

    from wincontainers.layerfile import backup

    if backup._copy_file_range is None:
        pytest.skip("this platform has no copy_file_range (the chunked copy is tested everywhere)")
    calls = []
    real = backup._copy_file_range

    def counted(*args):  # type: ignore[no-untyped-def]
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(backup, "_copy_file_range", counted)
    payload = os.urandom(3 * backup.KERNEL_COPY_MIN + 17)
    stream = tmp_path / "stream"
    with open(stream, "wb") as f:
        w = BackupWriter(f)
        w.security(SD_B)
        w.data(len(payload), io.BytesIO(payload))
        w.alternate("s", 3, io.BytesIO(b"ads"))
    with open(stream, "rb") as f, open(tmp_path / "out", "wb") as out:
        out.write(b"head")
        seen = []
        for header, body in BackupReader(f):
            if header.id == StreamId.DATA:
                backup.copy_exact(body, out, header.size)
                out.write(b"tail")  # the writer's position moved past the copied data
            else:
                seen.append(body.read())  # the reader's position too
    assert calls, "the kernel copy was not used"
    assert (tmp_path / "out").read_bytes() == b"head" + payload + b"tail"
    assert seen == [SD_B, b"ads"]
    # A source shorter than it says is an error, not a short file.
    (tmp_path / "short").write_bytes(payload[:backup.KERNEL_COPY_MIN])
    with open(tmp_path / "short", "rb") as f, open(tmp_path / "out2", "wb") as out, \
            pytest.raises(backup.BackupError, match="early"):
        backup.copy_exact(f, out, len(payload))
    # Anything that is not an OS file (tar entry data, a Win32 handle) goes in chunks.
    calls.clear()
    sink = io.BytesIO()
    backup.copy_exact(io.BytesIO(payload), sink, len(payload))
    assert sink.getvalue() == payload and not calls


@pytest.mark.parametrize("sizes", [[], [5], [512] * 5000, [3 << 20], [100, 2 << 20, 7, 1 << 20, 513] * 3])
def test_the_background_hash_is_the_hash_of_what_it_was_given(sizes: list[int]) -> None:
    import hashlib
    import os

    from wincontainers.layerfile.hashing import BackgroundSha256

    pieces = [os.urandom(n) for n in sizes]
    ours, want = BackgroundSha256(), hashlib.sha256()
    for piece in pieces:
        if len(piece) % 2:
            ours.update(piece)
        else:  # a mutable buffer, reused by its owner once handed over: what counts is what it held
            buffer = bytearray(piece)
            ours.update(buffer)
            buffer[:] = bytes(len(buffer))
        want.update(piece)
    assert ours.hexdigest() == want.hexdigest() == ours.hexdigest()
    ours.close()  # after the digest: nothing changes
    assert ours.hexdigest() == want.hexdigest()
    with pytest.raises(ValueError):
        ours.update(b"more")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.integers(0, 3 << 20), st.integers(0, 5000), st.lists(st.integers(1, 1 << 21), max_size=6))
def test_the_file_hash_is_the_hash_of_the_bytes_the_reader_took(tmp_path, size: int, start: int,  # type: ignore[no-untyped-def]
                                                                  reads: list[int]) -> None:
    """FileSha256 hashes the file again, from ``start``, exactly as far as the reader took it:
    never further, whatever the reads' sizes (batches of the thread and reads do not line up)."""
    import hashlib
    import os

    from wincontainers.layerfile.hashing import FileSha256

    path = tmp_path / "layer.tar"
    path.write_bytes(os.urandom(size))
    start = min(start, size)
    with open(path, "rb") as f:
        f.seek(start)
        ours = FileSha256.of(path, f, start)
        assert ours is not None
        want = hashlib.sha256()
        for n in reads:
            data = f.read(n)
            ours.update(data)
            want.update(data)
        assert ours.hexdigest() == want.hexdigest() == ours.hexdigest()


def test_the_file_hash_refuses_a_file_that_changed_or_another_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os

    from wincontainers.layerfile.hashing import FileSha256, SourceChanged

    path, other = tmp_path / "layer.tar", tmp_path / "other.tar"
    path.write_bytes(b"x" * 10_000)
    other.write_bytes(b"x" * 10_000)
    with open(path, "rb") as f:
        assert FileSha256.of(other, f, 0) is None  # not the file the reader reads: no second opening
        ours = FileSha256.of(path, f, 0)
        assert ours is not None
        ours.update(f.read(4000))
        os.utime(path, ns=(1, 1))  # a write time set back, and the change time moved
        with pytest.raises(SourceChanged, match="changed while it was read"):
            ours.hexdigest()
    with open(path, "rb") as f:
        ours = FileSha256.of(path, f, 0)
        assert ours is not None
        ours.update(f.read(4000))
        ours.close()  # abandoned: no digest of part of the file passes for the whole
        with pytest.raises(SourceChanged, match="abandoned"):
            ours.hexdigest()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.text(st.characters(blacklist_characters="=\x00", blacklist_categories=("Cs",)),
                                  min_size=1, max_size=12),  # keys are read as UTF-8 (a lone surrogate is not)
                          st.binary(max_size=40)), max_size=6),
       st.integers(0, 400), st.binary(max_size=3))
def test_pax_records_parse_the_same_by_lines_and_by_lengths(records, cut, noise) -> None:  # type: ignore[no-untyped-def]
    from wincontainers.layerfile import tarstream

    data = b"".join(tarstream.pax_record(k, v.decode("latin-1")) for k, v in records)
    want = {}
    for k, v in records:
        want[k] = v.decode("latin-1").encode("utf-8")
    assert tarstream._parse_pax(data, 0) == want
    # Whatever the bytes, the quick parse never disagrees with the careful one.
    for mangled in (data[:cut], data[:cut] + noise + data[cut:], data + b"\0" * (cut % 5)):
        try:
            careful = tarstream._parse_pax_by_lengths(mangled, 0)
        except tarstream.TarFormatError:
            careful = None
        try:
            quick = tarstream._parse_pax(mangled, 0)
        except tarstream.TarFormatError:
            quick = None
        assert quick == careful


def test_remembered_values_are_short_ones_only() -> None:
    # A layer's repeated times and descriptors are parsed once; a hostile tar's long values
    # (a PAX record may hold a MiB) are computed each time and never kept.
    from wincontainers.layerfile import codec

    before = codec._filetime_of.cache_info().currsize  # type: ignore[attr-defined]
    for i in range(20):
        assert codec._filetime_of(f"{i}.".encode() + b"0" * 100_000) is not None
    assert codec._filetime_of.cache_info().currsize == before  # type: ignore[attr-defined]
    assert codec._filetime_of(b"1553000000.5") == codec._filetime_of(b"1553000000.5")
    assert codec._filetime_of.cache_info().currsize == before + 1 or before == 4096  # type: ignore[attr-defined]
    long_key = "k" * 600
    assert tarstream_record(long_key, "v") == tarstream_record(long_key, "v")


def tarstream_record(key: str, value: str) -> bytes:
    from wincontainers.layerfile import tarstream

    before = tarstream.pax_record.cache_info().currsize  # type: ignore[attr-defined]
    record = tarstream.pax_record(key, value)
    assert tarstream.pax_record.cache_info().currsize == before  # over the limit: not kept
    return record


def test_a_pax_time_of_thousands_of_digits_is_no_time_not_a_crash() -> None:
    from wincontainers.layerfile.tarstream import header_block, pax_block

    tar = pax_block("Files", {"atime": "1" * 100_000}) + header_block(name="Files", typeflag="5") + b"\0" * 1024
    (entry,) = LayerReader(io.BytesIO(tar)).entries()
    assert entry.last_access_time is None
    assert times.pax_to_filetime("9" * 21) is None and times.pax_to_filetime("1553000000.5") is not None


def test_reparse_vectors() -> None:
    link = encode_reparse("..\\target")
    assert len(link) == 60
    assert link[:20] == bytes.fromhex("0c0000a0340000000000120014001200 01000000".replace(" ", ""))
    assert link[20:] == "..\\target\0..\\target\0".encode("utf-16-le")
    junction = encode_reparse("C:\\ProgramData", junction=True)
    assert len(junction) == 84
    assert junction[:16] == bytes.fromhex("030000a04c0000000000240026001c00")
    assert junction[16:] == "\\??\\C:\\ProgramData\0C:\\ProgramData\0".encode("utf-16-le")
    assert decode_reparse(link).relative and decode_reparse(link).target == "..\\target"
    assert decode_reparse(junction).junction and decode_reparse(junction).substitute == "\\??\\C:\\ProgramData"


def test_ea_vector() -> None:
    buf = encode_eas([("foo", b"bar"), ("fizz", b"buzz")])
    assert buf.hex() == "1000000000030300666f6f0062617200" "000000000004040066697a7a0062757a7a000000"
    assert decode_eas(buf) == [("foo", b"bar"), ("fizz", b"buzz")]


# -- the example entries E1-E5 (layer-format.md 1.15) ----------------------------------------


def example_entries() -> list[tuple[LayerEntry, bytes | None]]:
    zone = b"[ZoneTransfer]\r\nZoneId=3\r\n"
    t = dict(creation_time=CREATED, last_access_time=WRITTEN, last_write_time=WRITTEN, change_time=WRITTEN)
    return [
        (LayerEntry("Files", EntryKind.DIRECTORY, attributes=16, creation_time=CREATED, last_access_time=CREATED,
                    last_write_time=CREATED, change_time=CREATED, security=SD_B), None),
        (LayerEntry("Files/Program Files", EntryKind.DIRECTORY, attributes=16, security=SD_B, **t), None),
        (LayerEntry("Files/Program Files/App", EntryKind.DIRECTORY, attributes=16, security=SD_B, **t), None),
        (LayerEntry("Files/Program Files/App/app.txt", EntryKind.FILE, size=7, attributes=32, security=SD_B, **t),
         b"hello\r\n"),
        (LayerEntry("Files/Program Files/App/app.txt:Zone.Identifier", EntryKind.STREAM, size=len(zone),
                    last_access_time=WRITTEN, last_write_time=WRITTEN, change_time=WRITTEN), zone),
        (LayerEntry("Files/Program Files/App/copy.txt", EntryKind.HARDLINK, attributes=32,
                    link_target="Files/Program Files/App/app.txt", **t), None),
        (LayerEntry("Files/ProgramData", EntryKind.DIRECTORY, attributes=16, security=SD_B, **t), None),
        (LayerEntry("Files/ProgramData/link", EntryKind.SYMLINK, attributes=1040, link_target="..\\target",
                    security=SD_B, **t), None),
        (LayerEntry("Files/Data", EntryKind.JUNCTION, attributes=1040, link_target="C:\\ProgramData", security=SD_B,
                    **t), None),
        (LayerEntry("Files/Windows/Temp/.wh.old.log", EntryKind.WHITEOUT, last_write_time=None), None),
        (LayerEntry("Hives", EntryKind.DIRECTORY, attributes=16, creation_time=WRITTEN, last_access_time=WRITTEN,
                    last_write_time=WRITTEN, change_time=WRITTEN), None),
        (LayerEntry("Hives/Software_Delta", EntryKind.FILE, size=8, attributes=32, creation_time=WRITTEN,
                    last_access_time=WRITTEN, last_write_time=WRITTEN, change_time=WRITTEN), b"regf\0\0\0\0"),
    ]


def write(entries: list[tuple[LayerEntry, bytes | None]], compression: str = "none") -> bytes:
    out = io.BytesIO()
    with LayerWriter(out, compression=compression) as w:
        for entry, data in entries:
            w.add(entry, io.BytesIO(data) if data is not None else None)
    return out.getvalue()


def _headers(tar: bytes) -> list[tuple[str, str, int, bytes]]:
    """(typeflag, name, size, payload-if-x) for each header block, parsed by hand."""
    out, pos = [], 0
    while pos + 512 <= len(tar):
        block = tar[pos:pos + 512]
        if block == b"\0" * 512:
            break
        typeflag, size = chr(block[156]), int(block[124:135], 8)
        data = tar[pos + 512:pos + 512 + size] if typeflag == "x" else b""
        out.append((typeflag, block[:100].rstrip(b"\0").decode(), size, data))
        pos += 512 + (size + 511) // 512 * 512
    return out


def test_examples_are_written_exactly() -> None:
    tar = write(example_entries())
    headers = _headers(tar)
    by_name = {}
    for i, (typeflag, name, size, data) in enumerate(headers):
        if typeflag == "x":
            by_name[headers[i + 1][1]] = (name, size, data)
    sd_record = f"189 MSWINDOWS.rawsd={SD_B64}\n"
    assert by_name["Files"] == ("PaxHeaders.0/Files", 344, (
        "46 LIBARCHIVE.creationtime=1694228065.1097447\n25 MSWINDOWS.fileattr=16\n" + sd_record
        + "28 atime=1694228065.1097447\n28 ctime=1694228065.1097447\n28 mtime=1694228065.1097447\n").encode())
    name, size, data = by_name["Files/Program Files/App/app.txt"]
    assert name == "Files/Program Files/App/PaxHeaders.0/app.txt" and size == 326
    assert data.endswith(b"22 atime=1694228070.5\n22 ctime=1694228070.5\n22 mtime=1694228070.5\n")
    assert by_name["Files/Program Files/App/app.txt:Zone.Identifier"][1:] == (
        66, b"22 atime=1694228070.5\n22 ctime=1694228070.5\n22 mtime=1694228070.5\n")
    assert by_name["Files/Program Files/App/copy.txt"][1] == 137
    assert b"27 MSWINDOWS.fileattr=1040\n" in by_name["Files/ProgramData/link"][2]
    junction = by_name["Files/Data"][2]
    assert b"27 MSWINDOWS.fileattr=1040\n26 MSWINDOWS.mountpoint=1\n189 MSWINDOWS.rawsd=" in junction
    assert "Files/Windows/Temp/.wh.old.log" not in by_name  # whiteouts are plain USTAR
    # ustar fields of the main headers
    blocks = {h[1]: h for h in headers if h[0] != "x"}
    assert blocks["Files/Data"][0] == "2" and blocks["Files/Program Files/App/copy.txt"][0] == "1"
    pos = tar.index(b"Files/Program Files/App/app.txt\0")
    block = tar[pos:pos + 512]
    assert block[100:108] == b"0100000\0" and block[136:148] == b"14476757146\0" and block[257:265] == b"ustar\x0000"


def test_examples_read_back_with_their_metadata() -> None:
    entries = example_entries()
    reader = LayerReader(io.BytesIO(write(entries)))
    got = [(e, d.read()) for e, d in reader]
    assert [e.name for e, _ in got] == [e.name for e, _ in entries]
    for (want, want_data), (entry, data) in zip(entries, got):
        assert entry.kind is want.kind
        assert data == (want_data or b"")
        assert entry.attributes == want.attributes
        assert entry.security == want.security
        assert entry.link_target == want.link_target
        if want.kind is not EntryKind.WHITEOUT:
            assert entry.times == want.times
    assert reader.diff_id.startswith("sha256:")


def test_writing_twice_gives_identical_bytes_and_gzip_is_deterministic() -> None:
    entries = example_entries()
    assert write(entries) == write(entries)
    gz = write(entries, "gzip")
    assert gz == write(entries, "gzip")
    reader = LayerReader(io.BytesIO(gz))
    assert reader.compression == "gzip"
    list(reader)
    import hashlib

    assert reader.diff_id == "sha256:" + hashlib.sha256(write(entries)).hexdigest()
    assert gzip.decompress(gz) == write(entries)


def test_other_tar_readers_accept_our_output(tmp_path: object) -> None:
    tar = write(example_entries())
    with tarfile.open(fileobj=io.BytesIO(tar)) as tf:
        members = tf.getmembers()
        names = [m.name for m in members]
        assert "Files/Program Files/App/app.txt:Zone.Identifier" in names
        assert tf.getmember("Files").pax_headers["MSWINDOWS.rawsd"] == SD_B64
    assert shutil.which("tar"), "GNU tar is needed (.ci/run installs it)"
    listing = subprocess.run(["tar", "tvf", "-"], input=tar, capture_output=True, check=True).stdout
    assert b"Files/Data -> C:\\\\ProgramData" in listing  # GNU tar escapes the backslash
    assert b"copy.txt link to Files/Program Files/App/app.txt" in listing


def test_long_and_unicode_names_use_pax_path() -> None:
    long_name = "Files/" + "/".join(["d" * 60] * 5)
    uni = "Files/\u00e9t\u00e9-\U0001f600.txt"
    entries = [(LayerEntry(long_name, EntryKind.FILE, size=1, attributes=32), b"x"),
               (LayerEntry(uni, EntryKind.FILE, size=0, attributes=32), b""),
               (LayerEntry("Files/" + "w" * 140 + "/.wh.gone", EntryKind.WHITEOUT), None)]
    got = [e.name for e, _ in LayerReader(io.BytesIO(write(entries)))]
    assert got == [e.name for e, _ in entries]


def test_fixture_without_pax_records_gets_windows_defaults() -> None:
    reader = LayerReader(DATA / "layers" / "buildpacks-windows-shaped-layer-b.tar")
    entries = {e.name: e for e, _ in reader}
    assert entries["Files"].effective_attributes == 16  # directories default to FILE_ATTRIBUTE_DIRECTORY
    assert entries["Files/root/standarddir/somefile"].effective_attributes == 0
    link = entries["Files/root/symlinkdir/symlink"]
    assert link.kind is EntryKind.SYMLINK and link.link_target == "./subdir/somefile" and not link.is_directory_link
    assert link.creation_time is None and link.last_write_time is not None


names = st.text(alphabet=st.characters(blacklist_characters='/:\\<>"|?*', blacklist_categories=("Cs", "Cc")),
                min_size=1, max_size=20).filter(lambda s: s not in (".", "..") and not s.endswith((".", " ")))


@settings(suppress_health_check=[HealthCheck.too_slow], max_examples=60)
@given(
    files=st.lists(st.tuples(names, st.binary(max_size=3000), st.integers(0, 0x7FFF) | st.none(),
                             st.integers(0, 2**62), st.booleans()), max_size=8, unique_by=lambda t: t[0].lower()),
)
def test_any_entries_round_trip(files: list[tuple[str, bytes, int | None, int, bool]]) -> None:
    entries: list[tuple[LayerEntry, bytes | None]] = [(LayerEntry("Files", EntryKind.DIRECTORY, attributes=16), None)]
    for name, data, attr, ft, with_sd in files:
        entries.append((LayerEntry(f"Files/{name}", EntryKind.FILE, size=len(data), attributes=attr,
                                   creation_time=ft, last_access_time=ft, last_write_time=ft, change_time=ft,
                                   security=SD_B if with_sd else None, xattrs={"user.k": data[:10]}), data))
    tar = write(entries)
    assert tar == write(entries)
    for (want, want_data), (got, data) in zip(entries, ((e, d.read()) for e, d in LayerReader(io.BytesIO(tar)))):
        assert got.name == want.name and data == (want_data or b"")
        assert got.effective_attributes == want.effective_attributes
        assert got.security == want.security and got.xattrs == want.xattrs
        if want.last_write_time is not None:
            assert got.times == want.times


def test_block_sum_is_the_plain_byte_sum() -> None:
    """The header checksum's fast sum (Adler-32 halves) equals summing the bytes, up to the
    largest a block can hold."""
    import random

    from wincontainers.layerfile.tarstream import block_sum

    rng = random.Random(7)
    blocks = [bytes(512), b"\xff" * 512, bytes(range(256)) * 2] + [rng.randbytes(512) for _ in range(200)]
    assert [block_sum(b) for b in blocks] == [sum(b) for b in blocks]
