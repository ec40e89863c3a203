"""Pull and push between simulated hosts' image stores and Debian's docker-registry.

The acceptance of the registries issue: an image built on one simulated host is pushed, removed
there, pulled into a fresh store on another simulated host, and runs; its digests are the same
end to end. Its Windows base layer stays home (non-distributable, as Docker leaves Windows base
layers) unless asked, and the other host has its own identical copy.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterator

import pytest

from wincontainers import Host, errors
from wincontainers.build.builder import build
from wincontainers.images.distribution import Registry
from wincontainers.images.transfer import NONDISTRIBUTABLE, choose_platform
from tests.conftest import SimulatedHost
from tests.conftest import ROOT
from tests.test_distribution import start_registry


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from start_registry(tmp_path_factory.mktemp("pull-push-registry"))


@pytest.fixture
def other_host(tmp_path: Path) -> Iterator[Host]:
    """Another simulated Server 2019 host, fresh: nothing pulled, nothing built."""
    sim = SimulatedHost("ws2019", tmp_path / "other").start()
    try:
        with Host.open(sim="ws2019", root=sim.root) as host:
            yield host
    finally:
        sim.stop()


@pytest.mark.simulator("a simulated Server 2019 host and a local registry")
def test_an_image_built_here_is_pushed_pulled_elsewhere_and_runs(
        registry: str, sim_roots: dict[str, SimulatedHost], other_host: Host) -> None:
    sim = sim_roots["ws2019"].start()
    with Host.open(sim="ws2019", root=sim.root) as here:
        name = f"{registry}/wc/hello:1"
        built = build(here, ROOT / "examples" / "dockerfiles" / "hello", tags=[name], output=lambda _t: None).image
        try:
            with pytest.raises(errors.NotSupported, match="allow-nondistributable"):  # the host's OS layer: asked
                here.images.push(name)
            assert Registry(registry).tags("wc/hello") == [] if _has_repo(registry) else True
            pushed = here.images.push(name, allow_nondistributable=True)
            manifest = Registry(registry).manifest("wc/hello", "1")
            assert manifest.digest == pushed == built.manifest_digest  # the store's manifest, byte for byte
            assert manifest.document["layers"][0]["mediaType"] not in NONDISTRIBUTABLE
            assert here.images.push(name, allow_nondistributable=True) == pushed  # again: nothing new
        finally:
            here.images.remove(name, force=True)
            here.images.cache_clear()
            here.images.gc()
    totals: list[tuple[int, int]] = []
    layers: dict[str, tuple[int, int]] = {}
    pulled = other_host.images.pull(name, progress=lambda done, files: totals.append((done, files)),
                                    layer_progress=lambda digest, done, size: layers.__setitem__(digest, (done, size)))
    assert pulled.id == built.id and pulled.manifest_digest == pushed  # the same digests end to end
    downloaded = [d for d in manifest.document["layers"] if d["digest"] in layers]
    assert downloaded and all(layers[d["digest"]] == (d["size"], d["size"]) for d in downloaded)
    assert totals[-1] == (sum(d["size"] for d in downloaded), len(downloaded))  # bytes, then layers done
    assert [t[0] for t in totals] == sorted(t[0] for t in totals)  # a running total never goes back
    assert other_host.images.inspect(name)["Id"] == built.id
    command = json.loads(json.dumps(pulled.config["config"]["Cmd"]))
    result = other_host.containers.run(name, command)
    assert result.returncode == 0 and b"hello from the image" in result.stdout
    again = other_host.images.pull(name)  # all there: nothing downloaded
    assert again.id == pulled.id


def test_pull_refuses_what_it_cannot_use(registry: str, other_host: Host) -> None:
    with pytest.raises(errors.WincontainersError, match="MANIFEST_UNKNOWN|answered 404"):
        other_host.images.pull(f"{registry}/wc/absent:1")
    assert other_host.images.list() == [] or all("absent" not in str(t) for i in other_host.images.list()
                                                 for t in i.tags)


def test_an_index_gives_the_image_of_the_hosts_build() -> None:
    index = {"manifests": [
        {"digest": "sha256:" + "1" * 64, "platform": {"os": "windows", "architecture": "amd64",
                                                      "os.version": "10.0.17763.1000"}},
        {"digest": "sha256:" + "2" * 64, "platform": {"os": "windows", "architecture": "amd64",
                                                      "os.version": "10.0.17763.2000"}},
        {"digest": "sha256:" + "3" * 64, "platform": {"os": "windows", "architecture": "amd64",
                                                      "os.version": "10.0.14393.5000"}},
        {"digest": "sha256:" + "4" * 64, "platform": {"os": "linux", "architecture": "amd64"}},
    ]}
    assert choose_platform(index, 17763)["digest"] == "sha256:" + "2" * 64  # the same build, newest revision
    assert choose_platform(index, 14393)["digest"] == "sha256:" + "3" * 64
    with pytest.raises(errors.NotFound) as info:
        choose_platform(index, 20348)
    assert "10.0.17763.2000" in str(info.value) and "Hyper-V" in str(info.value)
    assert choose_platform(index, 20348, hyperv=True)["digest"] == "sha256:" + "2" * 64  # a VM runs an older one
    assert choose_platform(index, 17763, os_version="10.0.14393")["digest"] == "sha256:" + "3" * 64


def _has_repo(registry: str) -> bool:
    try:
        Registry(registry).tags("wc/hello")
    except errors.WincontainersError:
        return False
    return True


@pytest.mark.simulator("runs the CLI or an example with --sim")
def test_the_cli_pushes_pulls_and_logs_in(registry: str, sim_roots: dict[str, SimulatedHost], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.conftest import cli
    from tests.test_distribution import PASSWORD, USER

    sim = sim_roots["ws2019"].start()
    name = f"{registry}/wc/cli:1"
    with Host.open(sim="ws2019", root=sim.root) as here:
        build(here, ROOT / "examples" / "dockerfiles" / "hello", tags=[name], output=lambda _t: None)
    refused = cli("push", name, sim=sim)
    assert refused.returncode == 1 and b"--allow-nondistributable" in refused.stderr
    pushed = cli("push", "--allow-nondistributable", name, sim=sim)
    assert pushed.returncode == 0, pushed.stderr
    digest = pushed.stdout.decode().split("Digest: ")[1].strip()
    assert cli("rmi", name, sim=sim).returncode == 0
    pulled = cli("pull", name, sim=sim)
    assert pulled.returncode == 0 and f"Digest: {digest}".encode() in pulled.stdout, pulled.stderr
    done = cli("run", "--rm", name, sim=sim)
    assert done.returncode == 0 and b"hello from the image" in done.stdout, done.stderr
    assert cli("rmi", name, sim=sim).returncode == 0
    with Host.open(sim="ws2019", root=sim.root) as here:
        here.images.cache_clear()
        here.images.gc()

    htpasswd = tmp_path / "htpasswd"
    import subprocess

    htpasswd.write_text(subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], check=True, capture_output=True,
                                       text=True).stdout)
    for basic in start_registry(tmp_path / "basic", htpasswd=htpasswd):
        monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
        wrong = cli("login", "-u", USER, "--password-stdin", basic, sim=sim, input=b"nope\n")
        assert wrong.returncode == 1 and b"login" in wrong.stderr
        ok = cli("login", "-u", USER, "--password-stdin", basic, sim=sim, input=PASSWORD.encode() + b"\n")
        assert ok.returncode == 0 and b"Login Succeeded" in ok.stdout, ok.stderr
        assert basic in json.loads((tmp_path / "docker" / "config.json").read_text())["auths"]
        assert cli("logout", basic, sim=sim).stdout.startswith(b"Removing login credentials")
        assert json.loads((tmp_path / "docker" / "config.json").read_text())["auths"] == {}


@pytest.mark.simulator("a simulated Server 2019 host and a local registry")
def test_a_mirror_serves_any_registry_name(registry: str, sim_roots: dict[str, SimulatedHost],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """WINCONTAINERS_REGISTRY_MIRRORS sends mcr.microsoft.com's traffic to the local registry:
    the image keeps the name real Dockerfiles use."""
    from wincontainers.images.transfer import mirrors_from_env

    sim = sim_roots["ws2019"].start()
    monkeypatch.setenv("WINCONTAINERS_REGISTRY_MIRRORS", f"mcr.microsoft.com={registry}; docker.io={registry}")
    assert mirrors_from_env() == {"mcr.microsoft.com": registry, "docker.io": registry}
    name = "mcr.microsoft.com/wc/mirrored:1"
    with Host.open(sim="ws2019", root=sim.root) as here:
        built = build(here, ROOT / "examples" / "dockerfiles" / "hello", tags=[name], output=lambda _t: None).image
        try:
            digest = here.images.push(name, allow_nondistributable=True)
            assert Registry(registry).manifest("wc/mirrored", "1").digest == digest  # it went to the mirror
            here.images.remove(name, force=True)
            pulled = here.images.pull(name)
            assert pulled.id == built.id and [str(t) for t in pulled.tags] == [name]
        finally:
            for image in here.images.list():
                here.images.remove(image.id, force=True, prune=False)
            here.images.cache_clear()
            here.images.gc()
    monkeypatch.setenv("WINCONTAINERS_REGISTRY_MIRRORS", "no-equals-sign")
    with pytest.raises(errors.BadInput, match="domain=host"):
        mirrors_from_env()
    config = sim.root / "registries.json"  # the config file, under the environment's
    config.write_text(json.dumps({"mirrors": {"mcr.microsoft.com": "127.0.0.1:1", "quay.io": registry}}))
    monkeypatch.setenv("WINCONTAINERS_REGISTRIES", str(config))
    monkeypatch.setenv("WINCONTAINERS_REGISTRY_MIRRORS", f"mcr.microsoft.com={registry}")
    assert mirrors_from_env() == {"mcr.microsoft.com": registry, "quay.io": registry}
    config.write_text(json.dumps({"mirrors": ["not", "an", "object"]}))
    with pytest.raises(errors.BadInput, match="domain -> host"):
        mirrors_from_env()


@pytest.mark.simulator("a simulated Server 2019 host and a local registry")
def test_from_pulls_what_the_store_lacks_and_names_real_dockerfiles_use(
        registry: str, sim_roots: dict[str, SimulatedHost], other_host: Host, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """FROM mcr.microsoft.com/windows/servercore:ltsc2019 is the host's own OS image on a 2019
    host; a FROM of an image only a registry has is pulled first (and again with pull=True);
    one nobody has fails with both reasons."""
    from tests.test_distribution import _free_port

    monkeypatch.setenv("WINCONTAINERS_REGISTRY_MIRRORS", f"team.example={registry};nowhere.example=127.0.0.1:{_free_port()}")
    sim = sim_roots["ws2019"].start()
    with Host.open(sim="ws2019", root=sim.root) as here:
        app = tmp_path / "app"
        app.mkdir()
        (app / "Dockerfile").write_text('FROM mcr.microsoft.com/windows/servercore:ltsc2019\n'
                                        'RUN echo base> base.txt\nCMD ["cmd", "/S", "/C", "type base.txt"]\n')
        base = build(here, app, tags=["team.example/wc/base:1"], output=lambda _t: None).image
        try:
            here.images.push("team.example/wc/base:1", allow_nondistributable=True)
        finally:
            here.images.remove("team.example/wc/base:1", force=True)
            here.images.cache_clear()
            here.images.gc()
    child = tmp_path / "child"
    child.mkdir()
    (child / "Dockerfile").write_text('FROM team.example/wc/base:1\nRUN echo child> child.txt\n')
    said: list[str] = []
    result = build(other_host, child, tags=["child:1"], output=said.append)
    assert any("Pulling team.example/wc/base:1" in line for line in said)
    assert result.image.diff_ids[:len(base.diff_ids)] == base.diff_ids
    assert other_host.containers.run("child:1", 'cmd /S /C "type base.txt & type child.txt"').stdout == \
        b"base\r\nchild\r\n"
    said.clear()
    build(other_host, child, tags=["child:1"], output=said.append, pull=True)  # pulled again, nothing new
    assert any("Pulling" in line for line in said)
    (child / "Dockerfile").write_text("FROM nowhere.example/wc/missing:1\n")
    with pytest.raises(errors.NotFound) as info:
        build(other_host, child, output=lambda _t: None)
    assert "pulling it failed" in str(info.value) and "nowhere.example" in str(info.value)


@pytest.mark.simulator("a simulated Server 2019 host and a local registry")
def test_a_second_repository_gets_the_blobs_by_mount_and_pull_can_be_awaited(
        registry: str, sim_roots: dict[str, SimulatedHost], other_host: Host) -> None:
    import asyncio

    from wincontainers.images import transfer

    sim = sim_roots["ws2019"].start()
    with Host.open(sim="ws2019", root=sim.root) as here:
        first, second = f"{registry}/wc/mount-a:1", f"{registry}/wc/mount-b:1"
        build(here, ROOT / "examples" / "dockerfiles" / "hello", tags=[first], output=lambda _t: None)
        try:
            one = transfer.push(here.images, first, allow_nondistributable=True)
            blobs = one.uploaded + one.mounted + one.present  # (earlier tests' pushes are mounted from too)
            assert one.uploaded >= 2 and blobs >= 4
            two = transfer.push(here.images, first, second, allow_nondistributable=True)  # known to be in wc/mount-a
            assert two.uploaded == 0 and two.mounted == blobs
            assert two.manifest_digest == one.manifest_digest
        finally:
            for image in here.images.list():
                here.images.remove(image.id, force=True, prune=False)
            here.images.cache_clear()
            here.images.gc()
    pulled = asyncio.run(other_host.images.pull_async(second))
    assert pulled.manifest_digest == one.manifest_digest


def test_a_foreign_layer_comes_from_its_urls_only_when_allowed(registry: str, other_host: Host,
                                                              tmp_path: Path) -> None:
    """A non-distributable layer the host does not have (another build's base layer), named
    by a URL of its own: refused by default, fetched from the URL and checked when allowed."""
    import hashlib
    import http.server
    import threading

    from wincontainers.images.distribution import DOCKER_MANIFEST, Manifest
    from tests.test_hyperv import other_build_base

    tar = other_build_base(14393)
    diff_id = "sha256:" + hashlib.sha256(tar).hexdigest()
    served: list[str] = []

    class Blob(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - the http.server convention
            served.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(len(tar)))
            self.end_headers()
            self.wfile.write(tar)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Blob)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        config = json.dumps({"architecture": "amd64", "os": "windows", "os.version": "10.0.14393.1",
                             "config": {"Cmd": ["cmd"]}, "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
        (tmp_path / "config").write_bytes(config)
        remote = Registry(registry)
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        remote.push_blob("wc/foreign", config_digest, tmp_path / "config")
        # as Microsoft publishes Windows base images: a Docker manifest, the base layer foreign
        doc = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
               "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config_digest,
                          "size": len(config)},
               "layers": [{"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar", "digest": diff_id,
                           "size": len(tar), "urls": [f"http://127.0.0.1:{server.server_address[1]}/base.tar"]}]}
        data = json.dumps(doc).encode()
        remote.push_manifest("wc/foreign", "1",
                             Manifest(DOCKER_MANIFEST, data, "sha256:" + hashlib.sha256(data).hexdigest()))
        with pytest.raises(errors.NotFound, match="not distributable"):
            other_host.images.pull(f"{registry}/wc/foreign:1")
        assert served == []
        image = other_host.images.pull(f"{registry}/wc/foreign:1", platform="10.0.14393", allow_nondistributable=True)
        assert served == ["/base.tar"] and image.diff_ids == (diff_id,)
        assert image.manifest["layers"][0]["urls"]  # the registry's manifest, as it is
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.simulator("a simulated Server 2019 host and a local registry")
def test_a_2019_base_is_refused_on_2016_naming_the_build_and_hyperv(sim_roots: dict[str, SimulatedHost],
                                                                     tmp_path: Path) -> None:
    sim = sim_roots["2016"].start()
    (tmp_path / "Dockerfile").write_text("FROM mcr.microsoft.com/windows/servercore:ltsc2019\nRUN echo x\n")
    with Host.open(sim="2016", root=sim.root) as host:
        with pytest.raises(errors.NotSupported) as info:
            build(host, tmp_path, output=lambda _t: None)
        text = str(info.value)
        assert "17763" in text and "14393" in text and "--isolation hyperv" in text, text
        assert host.images.resolve("mcr.microsoft.com/windows/servercore:ltsc2016").os_version == "10.0.14393.0"
        assert list(host.records.all()) == []


@pytest.mark.simulator("a simulated Server 2019 host and a local registry")
def test_skopeo_copies_what_we_pushed_and_we_pull_what_skopeo_pushed(
        registry: str, sim_roots: dict[str, SimulatedHost], other_host: Host, tmp_path: Path) -> None:
    import shutil
    import subprocess

    skopeo = shutil.which("skopeo")
    assert skopeo, "skopeo is needed (.ci/run installs the Debian package)"

    def run(*args: str) -> None:
        done = subprocess.run([skopeo, *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (args, done.stderr)

    sim = sim_roots["ws2019"].start()
    name = f"{registry}/wc/ours:1"
    with Host.open(sim="ws2019", root=sim.root) as here:
        built = build(here, ROOT / "examples" / "dockerfiles" / "hello", tags=[name], output=lambda _t: None).image
        try:
            here.images.push(name, allow_nondistributable=True)
        finally:
            for image in here.images.list():
                here.images.remove(image.id, force=True, prune=False)
            here.images.cache_clear()
            here.images.gc()
    layout = tmp_path / "layout"
    run("copy", "--src-tls-verify=false", f"docker://{name}", f"oci:{layout}:1")  # what we pushed, read by skopeo
    index = json.loads((layout / "index.json").read_text())
    copied = json.loads((layout / "blobs" / "sha256" / index["manifests"][0]["digest"].split(":")[1]).read_text())
    assert copied["config"]["digest"] == built.id and len(copied["layers"]) == len(built.diff_ids)
    theirs = f"{registry}/wc/theirs:1"
    run("copy", "--dest-tls-verify=false", f"oci:{layout}:1", f"docker://{theirs}")  # pushed by skopeo
    pulled = other_host.images.pull(theirs)
    assert pulled.id == built.id and pulled.diff_ids == built.diff_ids
    result = other_host.containers.run(theirs, pulled.config["config"]["Cmd"])
    assert result.returncode == 0 and b"hello from the image" in result.stdout
