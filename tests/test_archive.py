"""docker-save archives and OCI layouts: written, read back, read by skopeo, on every profile."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Iterator

import pytest

from wincontainers import Host, errors
from wincontainers.images.archive import inspect_archive, load, save
from wincontainers.images.store import ImageStore
from wincontainers.layers import LayerRejected
from tests.conftest import SimulatedHost
from tests.conftest import ROOT, DATA, cli

FIXTURES = DATA / "layers"
EXAMPLE = ROOT / "examples" / "dockerfiles" / "multistage"


@pytest.fixture
def other_store(host: Host, tmp_path: Path) -> Iterator[ImageStore]:
    """A second, empty image store on the same host (what another machine would have)."""
    store = host.image_store(tmp_path / "other-store")
    yield store
    for image in store.list():
        store.remove(image.id, force=True, prune=False)
    store.gc()
    report = store.fsck()
    assert report.clean and report.garbage == (), report.summary()


def _members(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


def test_fixture_archives_are_understood() -> None:
    (foreign,) = inspect_archive(FIXTURES / "ggcr-docker-save-foreign-layer.tar")
    assert foreign.tags == ("gcr.io/foo/bar:latest",) and foreign.layers_present == (True, True)
    assert foreign.foreign[0] is None and foreign.foreign[1]["urls"] == ["example.com"]  # type: ignore[index]
    (omitted,) = inspect_archive(FIXTURES / "ggcr-docker-save-foreign-layer-omitted.tar")
    assert omitted.layers_present == (True, False) and omitted.foreign[1]["size"] == 701  # type: ignore[index]
    (v25,) = inspect_archive(FIXTURES / "ggcr-docker25-save-hello-world.tar")  # manifests: null, RepoTags: null
    assert v25.tags == () and v25.layers_present == (True,) and v25.config["architecture"] == "arm64"


@pytest.mark.simulator("the simulator's call log")
def test_a_linux_image_is_refused_and_leaves_nothing(other_store: ImageStore, sim: SimulatedHost) -> None:
    sim.calls(clear=True)
    with pytest.raises(LayerRejected) as info:
        load(other_store, FIXTURES / "ggcr-docker25-save-hello-world.tar")
    assert "outside-namespace" in info.value.report.rules() or info.value.report.errors
    assert other_store.list() == [] and other_store.fsck().clean
    # Checked while read, and refused before any of it reached the layer API.
    assert not {"ImportLayer", "HcsImportLayer", "ProcessBaseImage"} & set(sim.calls()), sim.calls()


def test_save_is_deterministic_and_survives_load_and_save(built: Host, other_store: ImageStore,
                                                          tmp_path: Path) -> None:
    store = built.images
    first = save(store, ["ms:1"], tmp_path / "a.tar")
    assert save(store, ["ms:1"], tmp_path / "b.tar").read_bytes() == first.read_bytes()
    members = _members(first)
    manifest = json.loads(members["manifest.json"])
    image = store.get("ms:1")
    assert manifest[0]["RepoTags"] == ["ms:1"]
    assert manifest[0]["Layers"] == [f"blobs/sha256/{d[7:]}" for d in image.diff_ids]
    for diff in image.diff_ids:  # every layer is the uncompressed tar named by its diff ID
        import hashlib

        assert "sha256:" + hashlib.sha256(members[f"blobs/sha256/{diff[7:]}"]).hexdigest() == diff
    index = json.loads(members["index.json"])
    assert index["manifests"][0]["annotations"]["io.containerd.image.name"] == "docker.io/library/ms:1"
    assert json.loads(members["repositories"]) == {"ms": {"1": image.diff_ids[-1][7:]}}

    result = load(other_store, first)
    (loaded,) = result.images
    assert loaded.id == image.id and loaded.repo_tags == ["ms:1"] and result.layers_imported == len(image.diff_ids)
    again = save(other_store, ["ms:1"], tmp_path / "again.tar")
    assert again.read_bytes() == first.read_bytes()  # same layer digests, same bytes
    with built.containers.create(other_store.layer_folders(loaded)) as c:
        c.start()
        assert c.run('cmd /S /C "type app\\app.exe"').stdout == b"compiled\r\n"
        c.stop()


def test_oci_layouts_folder_and_tar(built: Host, other_store: ImageStore, tmp_path: Path) -> None:
    store = built.images
    folder = save(store, ["ms:1"], tmp_path / "layout", format="oci")
    assert (folder / "oci-layout").is_file() and json.loads((folder / "index.json").read_text())["manifests"]
    archive = save(store, ["ms:1"], tmp_path / "layout.tar", format="oci")
    assert "manifest.json" not in _members(archive)
    (from_folder,) = load(other_store, folder).images
    (from_tar,) = load(other_store, archive).images
    assert from_folder.id == from_tar.id == store.get("ms:1").id


def test_skopeo_reads_and_writes_what_we_read(built: Host, other_store: ImageStore, tmp_path: Path) -> None:
    skopeo = shutil.which("skopeo")
    assert skopeo, "skopeo is needed (.ci/run installs the Debian package)"
    store = built.images
    archive = save(store, ["ms:1"], tmp_path / "ms.tar")
    layout = save(store, ["ms:1"], tmp_path / "oci", format="oci")
    image = store.get("ms:1")

    def run(*args: str) -> str:
        done = subprocess.run([skopeo, *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (args, done.stderr)
        return done.stdout

    for ref in (f"docker-archive:{archive}", f"oci:{layout}:1"):
        info = json.loads(run("inspect", ref))
        assert info["Os"] == "windows" and info["Layers"] == list(image.diff_ids)
        config = json.loads(run("inspect", "--config", ref))
        assert config["rootfs"] == image.config["rootfs"] and config["config"]["Cmd"] == ["echo ready"]
        assert len(config["history"]) == len(image.history)
    run("copy", f"docker-archive:{archive}", f"oci:{tmp_path / 'from-archive'}:1")
    run("copy", f"oci:{layout}:1", f"docker-archive:{tmp_path / 'from-oci.tar'}:ms:1")
    (a,) = load(other_store, tmp_path / "from-archive", repository="ms").images
    # skopeo converts a Docker config to an OCI one on this copy (new bytes, new ID): same layers.
    assert a.diff_ids == image.diff_ids and a.container_config == image.container_config
    assert "ms:1" in a.repo_tags
    (b,) = load(other_store, tmp_path / "from-oci.tar").images
    assert b.id == image.id and b.repo_tags == ["ms:1"]  # the config went through untouched


def test_foreign_layers_are_kept_as_references(built: Host, other_store: ImageStore, tmp_path: Path) -> None:
    store = built.images
    archive = save(store, ["ms:1"], tmp_path / "ms.tar")
    image = store.get("ms:1")
    base_diff = image.diff_ids[0]
    descriptor = {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "size": 1234,
                  "digest": "sha256:" + "f" * 64, "urls": ["https://example.invalid/base.tar.gz"]}
    members = _members(archive)
    manifest = json.loads(members["manifest.json"])
    manifest[0]["LayerSources"] = {base_diff: descriptor}
    members["manifest.json"] = json.dumps(manifest).encode()
    del members[f"blobs/sha256/{base_diff[7:]}"]  # as Windows images were saved before 2023
    sparse = tmp_path / "sparse.tar"
    with tarfile.open(sparse, "w") as tar:
        for name, data in sorted(members.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (referenced,) = inspect_archive(sparse)
    assert referenced.layers_present[0] is False and referenced.foreign[0] == descriptor
    result = load(other_store, sparse)
    assert result.foreign_layers == len(image.diff_ids)  # the base is absent, the rest rests on it
    (loaded,) = result.images
    assert loaded.id == image.id
    with pytest.raises(Exception) as not_here:
        other_store.layer_folders(loaded)
    assert "foreign" in str(not_here.value)
    resaved = save(other_store, ["ms:1"], tmp_path / "resaved.tar")
    again = json.loads(_members(resaved)["manifest.json"])
    assert again[0]["LayerSources"] == {base_diff: descriptor}
    assert again[0]["Layers"] == manifest[0]["Layers"]
    # A host that has the base layer imports the rest normally.
    other_store.remove("ms:1", force=True)
    other_store.resolve("windowsservercore")
    (runnable,) = load(other_store, sparse).images
    assert len(other_store.layer_folders(runnable)) == len(image.diff_ids)


def test_save_and_load_commands(built: Host, tmp_path: Path) -> None:
    saved = cli("save", "ms:1", host=built)
    assert saved.returncode == 0 and saved.stdout[:512].startswith(b"oci-layout")
    (tmp_path / "ms.tar").write_bytes(saved.stdout)
    assert cli("rmi", "ms:1", host=built).returncode == 0
    built.images.cache_clear()
    built.images.gc()
    loaded = cli("load", host=built, input=saved.stdout)
    assert loaded.returncode == 0 and loaded.stdout == b"Loaded image: ms:1\n", loaded.stderr
    out = cli("save", "--format", "oci", "-o", str(tmp_path / "oci"), "ms:1", host=built)
    assert out.returncode == 0 and (tmp_path / "oci" / "index.json").exists()
    bad = cli("load", "-i", str(tmp_path / "nope.tar"), host=built)
    assert bad.returncode == 1 and b"nope.tar" in bad.stderr


def test_save_never_deletes_what_it_did_not_write(built: Host, tmp_path: Path) -> None:
    store = built.images
    folder = tmp_path / "precious"
    folder.mkdir()
    (folder / "thesis.txt").write_bytes(b"years of work")
    with pytest.raises(errors.BadInput, match="not empty"):
        save(store, ["ms:1"], folder, format="oci")
    with pytest.raises(errors.BadInput, match="not empty"):
        save(store, ["ms:1"], folder, format="oci", overwrite=True)
    with pytest.raises(errors.BadInput, match="is a folder"):
        save(store, ["ms:1"], folder)
    assert (folder / "thesis.txt").read_bytes() == b"years of work"
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"not an archive")
    with pytest.raises(errors.BadInput, match="not an archive saved by wincontainers"):
        save(store, ["ms:1"], notes)
    assert notes.read_bytes() == b"not an archive"
    save(store, ["ms:1"], notes, overwrite=True)  # asked for
    assert "manifest.json" in _members(notes)
    save(store, ["ms:1"], notes)  # ours now: replaced as docker save -o replaces its file
    layout = tmp_path / "layout"
    save(store, ["ms:1"], layout, format="oci")
    with pytest.raises(errors.BadInput, match="already holds an OCI layout"):
        save(store, ["ms:1"], layout, format="oci")
    save(store, ["ms:1"], layout, format="oci", overwrite=True)
    assert (layout / "index.json").is_file()
    squatter = tmp_path / "x.tar.partial"  # what the old code removed without asking
    squatter.write_bytes(b"someone else's")
    save(store, ["ms:1"], tmp_path / "x.tar")
    assert squatter.read_bytes() == b"someone else's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["layout", "notes.txt", "precious", "x.tar", "x.tar.partial"]
    run = cli("save", "-o", str(folder), "ms:1", host=built)
    assert run.returncode != 0 and b"folder" in run.stderr
    assert (folder / "thesis.txt").read_bytes() == b"years of work"


def test_another_stores_gc_leaves_this_stores_layers(built: Host, other_store: ImageStore, tmp_path: Path) -> None:
    """Each store collects only the layer folders it made: a second store's gc once destroyed
    every folder of the host's store (both marked theirs with the same owner)."""
    store = built.images
    other_store.load(save(store, ["ms:1"], tmp_path / "a.tar"))
    for image in other_store.list():
        other_store.remove(image.id, force=True, prune=False)
    assert other_store.gc().layers  # it collected its own
    assert store.fsck().clean  # and nothing of the host's store
    assert all(Path(r.folder).exists() for r in store.layer_chain(store.get("ms:1")) if r.folder)
    assert built.image_store(store.root) is store  # the host's store is one object, one owner


@pytest.mark.parametrize("compression", ["none", "gzip"])
def test_a_layer_read_from_a_stream_is_imported_and_kept_in_one_pass(other_store: ImageStore,
                                                                      compression: str) -> None:
    # What load does with an archive's member: the stream is read once, imported while checked,
    # and its bytes become the blob (a compressed one keeps its own digest and media type).
    import gzip
    import hashlib

    from tests.test_layers import base_layer

    plain = base_layer()
    raw = gzip.compress(plain, mtime=0) if compression == "gzip" else plain
    reads = []

    class Once(io.BytesIO):
        def read(self, n: "int | None" = -1) -> bytes:  # type: ignore[override]
            data = super().read(n)
            reads.append(len(data))
            return data

    with other_store.lease() as lease:
        record = other_store.add_layer(Once(raw), None, lease=lease)
    assert sum(reads) == len(raw)  # every byte read once
    assert record.diff_id == "sha256:" + hashlib.sha256(plain).hexdigest()
    assert record.blob == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert other_store.blob_path(record.blob).read_bytes() == raw
    assert record.media_type.endswith("+gzip") == (compression == "gzip")
