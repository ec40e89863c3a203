"""Hostile and damaged archives: only typed errors, bounded memory, nothing left behind.

The mutation fuzz runs in its own process (its peak memory is its own); ``python -m
tests.fuzzing layer|archive --cases N --seed S`` runs more of it (``bench/fuzz_archives.py``).
"""

from __future__ import annotations

import errno
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any, Iterator

import pytest

from wincontainers import Host, errors
from wincontainers.build.builder import build
from wincontainers.images.archive import ArchiveError, inspect_archive, load, save
from wincontainers.layerfile import check_layer
from wincontainers.layers import LayerRejected
from tests import fuzzing
from tests.conftest import ROOT

SEED = int(os.environ.get("WINCONTAINERS_FUZZ_SEED", "0"))
PEAK_LIMIT_KIB = 200 << 10


@pytest.mark.parametrize("kind", ["layer", "archive"])
def test_mutated_inputs_give_only_typed_errors(kind: str) -> None:
    run = subprocess.run([sys.executable, "-m", "tests.fuzzing", kind, "--cases", "2000", "--seed", str(SEED)],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["cases"] == 2000
    assert result["failed"] == 0, "\n".join(result["failures"][:3])
    assert result["peak_kib"] < PEAK_LIMIT_KIB, f"peak memory {result['peak_kib']} KiB"


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _tar(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, body in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return out.getvalue()


HOSTILE_ARCHIVES = {
    "not-json": _tar({"manifest.json": b"[{not json"}),
    "missing-field": _tar({"manifest.json": b"[{}]"}),
    "wrong-type": _tar({"manifest.json": b"[1, 2]"}),
    "index-cycle": fuzzing.index_cycle(),
    "symlink-cycle": fuzzing.symlink_cycle(),
    "truncated-gzip": fuzzing.gzipped_then_cut(_tar({"manifest.json": b"[]" * 5000}), __import__("random").Random(3)),
    "huge-member": fuzzing.wrong_size(_tar({"manifest.json": b"[]"}), __import__("random").Random(1)),
    "oci-index-garbage": _tar({"oci-layout": b"{}", "index.json": b'{"manifests": [{"digest": 5}]}'}),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_ARCHIVES))
def test_each_damaged_archive_is_an_archive_error(tmp_path: Path, case: str) -> None:
    path = _write(tmp_path, f"{case}.tar", HOSTILE_ARCHIVES[case])
    with pytest.raises(errors.BadInput) as info:
        inspect_archive(path)
    assert path.name in str(info.value) or "archive" in str(info.value)


@pytest.fixture
def saved(host: Host, tmp_path: Path) -> Iterator[tuple[Host, list[bytes]]]:
    build(host, ROOT / "examples" / "dockerfiles" / "multistage", tags=["fz:1"], output=lambda _t: None)
    docker = save(host.images, ["fz:1"], tmp_path / "fz-docker.tar").read_bytes()
    oci = save(host.images, ["fz:1"], tmp_path / "fz-oci.tar", format="oci").read_bytes()
    host.images.remove("fz:1")
    host.images.cache_clear()
    host.images.gc()
    yield host, [docker, oci]
    for image in host.images.list():
        host.images.remove(image.id, force=True, prune=False)
    host.images.cache_clear()
    host.images.gc()
    assert list(host.layers_root.iterdir()) == []


@pytest.mark.parametrize("profile", ["ws2019"])
def test_load_of_mutated_archives_is_typed_and_leaves_nothing(saved: tuple[Host, list[bytes]], tmp_path: Path,
                                                              profile: str) -> None:
    host, seeds = saved
    store = host.images
    before = {image.id for image in store.list()}
    loaded = 0
    for name, data in fuzzing.cases(seeds, int(os.environ.get("WINCONTAINERS_LOAD_FUZZ", "200")), SEED):
        path = _write(tmp_path, "case.tar", data)
        try:
            result = load(store, path)
        except errors.WincontainersError:
            pass
        else:
            loaded += 1
            for image in result.images:
                if image.id not in before:
                    store.remove(image.id, force=True, prune=False)
        assert list(store.tmp_dir.iterdir()) == [], f"{name}: a temporary file was left"
    store.gc()
    report = store.fsck()
    assert report.clean and report.garbage == (), report.summary()
    assert loaded < 200  # the mutations do break most archives


def test_an_oci_layout_missing_a_layer_blob_is_refused(saved: tuple[Host, list[bytes]], tmp_path: Path) -> None:
    host, seeds = saved
    oci = seeds[1]
    with tarfile.open(fileobj=io.BytesIO(oci)) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    index = json.loads(members["index.json"])
    manifest = json.loads(members["blobs/sha256/" + index["manifests"][0]["digest"][7:]])
    del members["blobs/sha256/" + manifest["layers"][-1]["digest"][7:]]
    path = _write(tmp_path, "missing-layer.tar", _tar(members))
    with pytest.raises(ArchiveError, match="missing from the archive"):
        load(host.images, path)
    assert host.images.fsck().clean


def test_a_failed_load_removes_its_temporary_file_even_when_the_disk_is_full(
        saved: tuple[Host, list[bytes]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from wincontainers.images.blobs import TeeReader

    host, seeds = saved
    path = _write(tmp_path, "docker.tar", seeds[0])
    real_init = TeeReader.__init__

    class Full:
        """The blob's file: a little gets written, then the disk is full."""

        def __init__(self, out: Any) -> None:
            self.out, self.written = out, 0

        def write(self, data: bytes) -> int:
            if self.written >= 4096:
                raise OSError(errno.ENOSPC, "No space left on device")
            self.written += len(data)
            return int(self.out.write(data))

    def init(self: TeeReader, source: Any, out: Any) -> None:
        real_init(self, source, Full(out))

    monkeypatch.setattr(TeeReader, "__init__", init)
    images, layers = host.images.list(), host.layers.list()
    with pytest.raises(errors.StorageFull):  # the store's disk, not a bad layer
        load(host.images, path)
    assert list(host.images.tmp_dir.iterdir()) == []
    assert host.images.list() == images and [layer.id for layer in host.layers.list()] == [l.id for l in layers]


def test_a_layer_tar_cut_after_an_extended_header_is_refused(host: Host) -> None:
    from tests.test_layers import base_layer

    whole = base_layer()
    headers = fuzzing._headers(whole)
    pax = next(h for h in headers if whole[h + 156:h + 157] == b"x")
    size = int(whole[pax + 124:pax + 136].split(b"\0")[0], 8)
    cut_after = pax + 512 + (size + 511) // 512 * 512  # the PAX header and its records, not its entry
    for cut in (whole[:cut_after], whole[:cut_after] + b"\0" * 1024, whole[:pax + 600]):
        report = check_layer(io.BytesIO(cut))
        assert "malformed-tar" in report.rules(), report.summary()
        with pytest.raises(LayerRejected):
            host.layers.import_tar(io.BytesIO(cut))
