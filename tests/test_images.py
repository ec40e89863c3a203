"""The image store, host and Docker images as FROM, and commit, on every simulator profile."""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Iterator

import pytest

from wincontainers import Host, errors
from wincontainers.build.commits import CommitFailed, commit
from wincontainers.images import chain_id, parse_reference
from wincontainers.images.config import derive_config
from wincontainers.images.reference import ReferenceError_
from tests.conftest import SimulatedHost
from tests.test_layerfile import example_entries, write
from tests.test_layers import base_layer
from tests.conftest import cli

INJECTED = 0x8000FFFF


@pytest.fixture
def store_host(host: Host) -> Iterator[Host]:
    """A host whose image store and layers are emptied after the test."""
    yield host
    for record in list(host.records.all()):
        container = host.containers.get(record.id)
        container.remove(force=True)
    for image in host.images.list():
        host.images.remove(image.id, force=True, prune=False)
    host.images.gc()
    assert host.images.fsck().clean


def _app_image(host: Host, tag: str = "app:1.0"):  # type: ignore[no-untyped-def]
    store = host.images
    base = store.resolve("windowsservercore")
    tar = store.new_temp_file(".tar")
    tar.write_bytes(write(example_entries()))
    with store.lease() as lease:
        layer = store.add_layer(tar, store.get_layer(base.top_chain_id), lease=lease)  # type: ignore[arg-type]
        config = derive_config(base.config, diff_id=layer.diff_id, created_by="test layer")
        return store.add(config, store.layer_chain(base) + [layer], tags=[tag])


def test_references_normalize_like_docker() -> None:
    assert str(parse_reference("windowsservercore")) == "docker.io/library/windowsservercore:latest"
    assert parse_reference("app:1.0").familiar == "app:1.0"
    ref = parse_reference("mcr.microsoft.com/windows/nanoserver:ltsc2022")
    assert (ref.domain, ref.path, ref.tag, ref.familiar) == (
        "mcr.microsoft.com", "windows/nanoserver", "ltsc2022", "mcr.microsoft.com/windows/nanoserver:ltsc2022")
    assert parse_reference("localhost:5000/a/b").domain == "localhost:5000"
    pinned = parse_reference("app@sha256:" + "a" * 64)
    assert pinned.tag is None and pinned.digest == "sha256:" + "a" * 64
    for bad in ("App", "app:", "app:-x", "a//b", "", " app", "app@sha256:zz"):
        with pytest.raises(ReferenceError_):
            parse_reference(bad)


def test_chain_ids_match_the_reference_example() -> None:
    diffs = ["sha256:c18686406f96b263d986714a2d88add06ea9ddbb3e52fb936222711da7d9d395",
             "sha256:ab796afc7ed7e8762e69f652a7b4a524915e8737908d20a080273f8be7258ca7",
             "sha256:049a461e786e684452fbfb9f67950e795f32e4ff8dc406421b27d8aa3c5800b0"]
    assert chain_id(diffs[:2]) == "sha256:f8336ba419eefd084b3863a26ff29b80d016ce5ed2c2f7c0318df9c6345ff194"
    assert chain_id(diffs) == "sha256:29559a4b4ca60468dfd9d3d831534350795e052bdc3c925aa4674a872bfeecb1"


def test_host_os_images_are_images(store_host: Host) -> None:
    store = store_host.images
    base = store.resolve("windowsservercore")
    exported = io.BytesIO()
    store_host.layers.export_tar(store.layer_folders(base)[0], exported)
    assert base.diff_ids == ("sha256:" + hashlib.sha256(exported.getvalue()).hexdigest(),)
    assert {"windowsservercore:latest"} <= set(base.repo_tags) and base.config["os"] == "windows"
    assert base.os_version and base.os_version.startswith("10.0.")
    assert store.get(base.short_id) == base and store.resolve("windowsservercore") == base
    assert store.layer_folders(base) == [str(i.path) for i in store_host.base_images() if i.name.lower() ==
                                         "windowsservercore"]
    record = store.get_layer(base.top_chain_id)  # type: ignore[arg-type]
    assert record is not None and not record.owned  # the host's folder is borrowed, never removed


def test_tags_rmi_gc_and_fsck(store_host: Host) -> None:
    store = store_host.images
    image = _app_image(store_host)
    assert store.get("app:1.0") == image and store.get("docker.io/library/app:1.0") == image
    assert store.get(image.id[7:19]) == image and store.get(image.manifest_digest) == image
    store.tag("app:1.0", "other/app:v2")
    assert set(store.get("app:1.0").repo_tags) == {"app:1.0", "other/app:v2"}
    top = store.get_layer(image.top_chain_id)  # type: ignore[arg-type]
    assert top is not None and top.owned and Path(top.folder).is_dir()  # type: ignore[arg-type]
    assert store.read_blob(top.blob) == write(example_entries())  # type: ignore[arg-type]
    assert store.fsck(deep=True).summary() == "clean"
    with store_host.containers.create("app:1.0", name="user") as c:
        with pytest.raises(errors.InvalidState):
            store.remove(image.id)  # tagged twice
        assert store.remove("other/app:v2") == ["Untagged: other/app:v2"]
        with pytest.raises(errors.InvalidState) as used:
            store.remove("app:1.0")
        assert "user" in str(used.value) or c.id[:12] in str(used.value)
    assert store.remove("app:1.0")[-1] == f"Deleted: {image.id}"
    assert not store.exists("app:1.0") and not Path(top.folder).exists()  # type: ignore[arg-type]
    assert not store.has_blob(top.blob)  # type: ignore[arg-type]
    assert store.fsck().clean and store.fsck().garbage == ()


def test_fsck_finds_what_is_broken(store_host: Host) -> None:
    store = store_host.images
    image = _app_image(store_host)
    record = store.get_layer(image.top_chain_id)  # type: ignore[arg-type]
    assert record is not None
    blob = store.blob_path(record.blob)  # type: ignore[arg-type]
    data = blob.read_bytes()
    blob.write_bytes(data + b"x")
    assert any("does not hash" in e for e in store.fsck(deep=True).errors)
    blob.unlink()
    assert any("missing" in e for e in store.fsck().errors)
    blob.write_bytes(data)
    (store.blobs_dir / ("0" * 64)).write_bytes(b"stray")
    report = store.fsck()
    assert report.clean and any("not referenced" in g for g in report.garbage)
    assert "0" * 64 in " ".join(store.gc().blobs)


def test_commit_refuses_a_running_container_and_stop_restart(store_host: Host) -> None:
    with store_host.containers.create("windowsservercore", name="committed") as c:
        c.start()
        assert c.run('cmd /S /C "mkdir app && echo v1> app\\v.txt && rd /s /q Users"').returncode == 0
        before = list(store_host.images.list())
        with pytest.raises(errors.InvalidState) as refused:
            commit(c, "app:1")
        assert "stop=True" in str(refused.value) and c.status == "running"
        assert store_host.images.list() == before
        image = commit(c, "app:1", stop=True, restart=True, message="first", author="me",
                       changes=['CMD ["cmd", "/S", "/C", "type v.txt"]', "ENV GREETING=hi", "WORKDIR /app",
                                "EXPOSE 80"])
        assert c.status == "running"
        assert image.container_config["WorkingDir"] == "C:\\app"
        assert "GREETING=hi" in image.container_config["Env"] and "80/tcp" in image.container_config["ExposedPorts"]
        assert image.history[-1]["comment"] == "first" and image.config["author"] == "me"
        c.stop()
        second = commit(c, "app:2")  # stopped: no flags needed
        assert c.status == "exited" and second.diff_ids[:-1] == store_host.images.resolve("windowsservercore").diff_ids
        with pytest.raises(errors.BadInput):
            commit(c, "x", changes=["RUN echo no"])
    # The image's own command (its CMD, in its WORKDIR), as Docker runs it when none is given.
    assert store_host.containers.run("app:1").stdout == b"v1 \r\n"  # echo v1> f && ... wrote the space
    assert store_host.containers.run("app:1", "echo replaced", entrypoint="cmd /c").stdout == b"replaced\r\n"
    records_before = list(store_host.records.all())
    with pytest.raises(errors.BadInput, match="no ENTRYPOINT or CMD"):  # bare layers have no config
        store_host.containers.run([store_host.base_images()[0].path])
    assert list(store_host.records.all()) == records_before  # refused before anything was made
    with store_host.containers.create("app:1", "ping -t localhost") as child:
        child.start()
        out = child.run('cmd /S /C "type v.txt & echo %GREETING% & dir /b C:\\ | find /c "Users""').stdout
        assert out.split() == [b"v1", b"hi", b"0"]
        child.stop()
    with store_host.containers.create("app:1") as default:  # its CMD is no bare shell: it runs, as in Docker
        assert default.record.command == 'cmd /S /C "type v.txt"'
        default.start()
        assert default.wait(30).exit_code == 0
    with store_host.containers.create("app:1", image_command=False) as idle:  # asked: no main process
        assert idle.record.command is None
    with store_host.containers.create("windowsservercore") as shell:  # only an interactive shell: not run
        assert shell.record.command is None


@pytest.mark.simulator("fault injection")
def test_commit_fault_injection_leaves_a_clean_store(store_host: Host, sim: SimulatedHost) -> None:
    pid = os.getpid()
    store = store_host.images
    store.resolve("windowsservercore")

    def scenario() -> tuple[object, str]:
        c = store_host.containers.create("windowsservercore", name="faulty")
        c.start()
        c.run('cmd /S /C "echo x> file.txt"')
        try:
            image = commit(c, "faulty:1", stop=True, restart=True)
            return image, c.status
        finally:
            c.remove(force=True)

    sim.calls(clear=True)
    scenario()
    store.remove("faulty:1")
    calls = sim.calls(clear=True)
    start = next(i for i, c in enumerate(calls) if "shutdown" in c.lower())
    steps = [(fn, calls[:i + 1].count(fn)) for i, fn in enumerate(calls) if i >= start and fn in (
        "ExportLayer", "HcsExportLayer", "ImportLayer", "HcsImportLayer", "UnprepareLayer", "PrepareLayer",
        "NameToGuid", "ActivateLayer", "CreateComputeSystem", "HcsCreateComputeSystem", "StartComputeSystem",
        "HcsStartComputeSystem")]
    assert any(fn.endswith("ExportLayer") for fn, _ in steps) and any(fn.endswith("ImportLayer") for fn, _ in steps)
    failures = 0
    for fn, nth in steps:
        dll = "computecore.dll" if store_host.generation == 3 and fn.startswith("Hcs") and "Layer" not in fn else None
        sim.inject(fn, INJECTED, nth=nth, pid=pid, dll=dll)
        c = store_host.containers.create("windowsservercore", name="faulty")
        try:
            c.start()
            c.run('cmd /S /C "echo x> file.txt"')
            sim.calls(clear=True)
            try:
                commit(c, "faulty:1", stop=True, restart=True)
            except CommitFailed as exc:
                failures += 1
                assert exc.step and fn in str(exc.__cause__), (fn, nth, exc)
                assert c.status == exc.container_state, (fn, nth, exc)
                assert not store.exists("faulty:1")
            else:
                store.remove("faulty:1")
        finally:
            sim.clear_faults()
            c.remove(force=True)
        report = store.fsck()
        assert report.clean and report.garbage == (), (fn, nth, report.summary())
    assert failures >= 2


def _fake_docker_root(host: Host, root: Path) -> str:
    """A Docker data root whose windowsfilter store holds one two-layer image ``dockerapp:1.0``."""
    base = host.layers.import_tar(io.BytesIO(base_layer()))
    diff_tar = write(example_entries())
    app = host.layers.import_tar(io.BytesIO(diff_tar), parents=[base])
    windowsfilter = root / "windowsfilter"
    windowsfilter.mkdir(parents=True)
    folders = []
    for layer in (base, app):
        target = windowsfilter / layer.id
        os.replace(layer.path, target)
        folders.append(target)
    (folders[1] / "layerchain.json").write_text(json.dumps([str(folders[0])]))
    (host.layers.info_dir / f"{base.id}.json").unlink()
    (host.layers.info_dir / f"{app.id}.json").unlink()
    diff_ids = [base.diff_id, app.diff_id]
    config = json.dumps({"architecture": "amd64", "os": "windows", "os.version": "10.0.17763.0",
                         "config": {"Env": ["FROM_DOCKER=1"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    image_id = "sha256:" + hashlib.sha256(config).hexdigest()
    meta = root / "image" / "windowsfilter"
    (meta / "imagedb" / "content" / "sha256").mkdir(parents=True)
    (meta / "imagedb" / "content" / "sha256" / image_id[7:]).write_bytes(config)
    parent = None
    for i, (diff, folder) in enumerate(zip(diff_ids, folders)):
        chain = chain_id(diff_ids[:i + 1])
        entry = meta / "layerdb" / "sha256" / chain[7:]
        entry.mkdir(parents=True)
        (entry / "diff").write_text(diff)
        (entry / "cache-id").write_text(folder.name)
        (entry / "size").write_text("100")
        if parent:
            (entry / "parent").write_text(parent)
        parent = chain
    (meta / "repositories.json").write_text(json.dumps(
        {"Repositories": {"dockerapp": {"dockerapp:1.0": image_id}}}))
    return image_id


def test_docker_store_images_are_used_in_place(store_host: Host, tmp_path: Path) -> None:
    image_id = _fake_docker_root(store_host, tmp_path / "docker")
    store = store_host.images
    store.docker_root = tmp_path / "docker"
    try:
        image = store.resolve("dockerapp:1.0")
        assert image.id == image_id  # Docker's config bytes, so Docker's image ID
        folders = store.layer_folders(image)
        assert all(f.startswith(str(tmp_path / "docker" / "windowsfilter")) for f in folders)
        with store_host.containers.create("dockerapp:1.0") as c:
            c.start()
            assert c.run('cmd /S /C "echo %FROM_DOCKER% & type "Program Files\\App\\app.txt""').stdout.split() == [
                b"1", b"hello"]
            c.stop()
        context = tmp_path / "ctx"
        context.mkdir()
        (context / "Dockerfile").write_text("FROM dockerapp:1.0\nRUN echo on-docker> on.txt\n")
        from wincontainers.build import build

        built = build(store_host, context, tags=["ondocker:1"], output=lambda _t: None)
        assert built.image.diff_ids[:2] == image.diff_ids  # FROM a Docker image, its layers used in place
        store.remove("ondocker:1")
        store.cache_clear()
        store.remove("dockerapp:1.0")
        store.gc()
        assert all(Path(f).is_dir() for f in folders)  # Docker's folders are never removed
    finally:
        store.docker_root = None
        for folder in (tmp_path / "docker" / "windowsfilter").iterdir():
            store_host.driver.destroy_layer(str(folder))


def test_image_commands(store_host: Host, host: Host) -> None:
    from tests.conftest import cli

    assert cli("run", "--name", "cli-commit", "windowsservercore", "cmd", "/S", "/C", "echo hi> hi.txt",
               host=host).returncode == 0
    committed = cli("commit", "-m", "say hi", "-c", 'CMD ["cmd", "/S", "/C", "type hi.txt"]', "cli-commit", "hi:1",
                    host=host)
    assert committed.returncode == 0, committed.stderr
    image_id = committed.stdout.decode().strip()
    listing = cli("images", host=host).stdout.decode()
    assert "hi " in listing and image_id[7:19] in listing and "windowsservercore" in listing
    assert cli("images", "-q", host=host).stdout.decode().split()[0] == image_id[7:19]
    history = cli("history", "hi:1", host=host).stdout.decode()
    assert "say hi" in history and "Apply image" in history
    inspected = json.loads(cli("inspect", "hi:1", host=host).stdout)
    assert inspected[0]["Id"] == image_id and inspected[0]["Config"]["Cmd"] == ["cmd", "/S", "/C", "type hi.txt"]
    assert cli("run", "--rm", "hi:1", host=host).stdout == b"hi\r\n"
    assert cli("tag", "hi:1", "hello:latest", host=host).returncode == 0
    assert cli("rmi", "hi:1", host=host).stdout == b"Untagged: hi:1\n"
    assert cli("rm", "cli-commit", host=host).returncode == 0
    removed = cli("rmi", "hello", host=host).stdout.decode()
    assert "Untagged: hello:latest" in removed and f"Deleted: {image_id}" in removed
    missing = cli("rmi", "nope:1", host=host)
    assert missing.returncode == 1 and b"no such image" in missing.stderr
    assert cli("image", "gc", host=host).returncode == 0
    fsck = cli("image", "fsck", "--deep", host=host)
    assert fsck.returncode == 0 and fsck.stdout == b"clean\n"
    (store_host.images.blobs_dir / ("0" * 64)).write_bytes(b"x")
    manifest = store_host.images.blob_path(store_host.images.resolve("windowsservercore").manifest_digest)
    kept = manifest.read_bytes()
    manifest.unlink()
    broken = cli("image", "fsck", host=host)
    assert broken.returncode == 1 and b"missing" in broken.stdout
    manifest.write_bytes(kept)


def test_images_lists_the_host_base_images_before_their_first_use(host: Host) -> None:
    for image in host.images.list():
        host.images.remove(image.id, force=True, prune=False)
    listed = cli("images", host=host)
    assert listed.returncode == 0
    rows = [line.split() for line in listed.stdout.decode().splitlines()[1:]]
    offered = {(b.name.lower(), b.version) for b in host.base_images()}
    assert offered and {(r[0], r[1]) for r in rows if r[2] == "<host" or "<host" in " ".join(r)} == offered
    missing = cli("run", "--rm", "nosuchimage", "cmd", "/c", "echo", host=host)
    text = missing.stderr.decode()
    assert "no such image: 'nosuchimage'" in text and "windowsservercore:" in text and "image on image" not in text
    host.images.resolve("windowsservercore")  # recorded on first use: no longer listed as a host image
    assert all(b.name.lower() != "windowsservercore" for b in host.images.unregistered_host_images())
    for image in host.images.list():
        host.images.remove(image.id, force=True, prune=False)
    host.images.gc()
