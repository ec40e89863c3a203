"""Pulls that fail: each gives a clear error and leaves no partial image in the store, and an
interrupted pull resumes without downloading again what it had finished.

A small proxy in front of docker-registry counts the blob bytes it serves, and can cut the
registry off mid-transfer (it dies: later connections are dropped) or corrupt what it serves.
"""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest
import urllib3

from wincontainers import Host
from wincontainers.images import transfer
from wincontainers.images.distribution import (
    DOCKER_MANIFEST,
    Manifest,
    Registry,
    RegistryAuthError,
    RegistryError,
    RegistryNotFound,
)
from wincontainers.layerfile import EntryKind, LayerEntry, LayerWriter
from tests.conftest import SimulatedHost
from tests.test_distribution import PASSWORD, USER, start_registry
from tests.test_hyperv import other_build_base

BIG = 3 * 1024 * 1024


class Proxy:
    """Forwards to the registry; counts blob bytes by path; ``budget`` cuts it off (dead) once
    that many blob bytes went out; ``corrupt`` flips a byte of every blob."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.pool = urllib3.PoolManager(retries=False)
        self.served: dict[str, int] = {}
        self.ranges: dict[str, str] = {}  # the Range a blob was last asked with
        self.budget: Optional[int] = None
        self.dead = False
        self.corrupt = False
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self, method: str) -> None:
                if proxy.dead:
                    self.close_connection = True
                    self.connection.close()
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("accept", "range", "authorization")}
                if "/blobs/" in self.path:
                    proxy.ranges[self.path] = self.headers.get("Range", "")
                answer = proxy.pool.request(method, f"http://{proxy.upstream}{self.path}", headers=headers,
                                            preload_content=False, redirect=False)
                self.send_response(answer.status)
                for key, value in answer.headers.items():
                    if key.lower() not in ("transfer-encoding", "connection", "date", "server"):
                        self.send_header(key, value)
                self.end_headers()
                blob = method == "GET" and "/blobs/sha256:" in self.path
                first = True
                for chunk in answer.stream(64 * 1024):
                    if blob:
                        if proxy.corrupt and first:
                            chunk = bytes([chunk[0] ^ 0xFF]) + chunk[1:]
                        first = False
                        if proxy.budget is not None:
                            left = proxy.budget - sum(proxy.served.values())
                            if left < len(chunk):
                                self.wfile.write(chunk[:max(0, left)])
                                proxy.served[self.path] = proxy.served.get(self.path, 0) + max(0, left)
                                proxy.dead = True  # the registry dies mid-transfer
                                self.wfile.flush()
                                self.close_connection = True
                                self.connection.shutdown(2)
                                return
                        proxy.served[self.path] = proxy.served.get(self.path, 0) + len(chunk)
                    self.wfile.write(chunk)
                answer.release_conn()

            def do_GET(self) -> None:  # noqa: N802 - the http.server convention
                self._forward("GET")

            def do_HEAD(self) -> None:  # noqa: N802
                self._forward("HEAD")

            def log_message(self, *args: Any) -> None:
                pass

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.host = f"127.0.0.1:{self.http.server_address[1]}"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


def _diff_layer(data: bytes) -> bytes:
    out = io.BytesIO()
    with LayerWriter(out) as writer:
        writer.add(LayerEntry("Files", EntryKind.DIRECTORY, attributes=0x10), None)
        writer.add(LayerEntry("Files/big.bin", EntryKind.FILE, size=len(data), attributes=0x20), io.BytesIO(data))
    return out.getvalue()


def _publish(registry: Registry, repository: str, tmp_path: Path) -> tuple[Manifest, list[tuple[str, int]]]:
    """A two-layer Windows image (a base of this build, a 3 MiB diff) in ``repository:1``."""
    layers = [other_build_base(17763), _diff_layer(os.urandom(BIG))]
    described = []
    for n, tar in enumerate(layers):
        path = tmp_path / f"layer{n}"
        path.write_bytes(tar)
        digest = "sha256:" + hashlib.sha256(tar).hexdigest()
        registry.push_blob(repository, digest, path)
        described.append((digest, len(tar)))
    config = json.dumps({"architecture": "amd64", "os": "windows", "os.version": "10.0.17763.1",
                         "config": {"Cmd": ["cmd"]},
                         "rootfs": {"type": "layers", "diff_ids": [d for d, _ in described]}}).encode()
    (tmp_path / "config").write_bytes(config)
    config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
    registry.push_blob(repository, config_digest, tmp_path / "config")
    doc = {"schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
           "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": config_digest,
                      "size": len(config)},
           "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar", "digest": d, "size": s}
                      for d, s in described]}
    data = json.dumps(doc).encode()
    manifest = Manifest(DOCKER_MANIFEST, data, "sha256:" + hashlib.sha256(data).hexdigest())
    registry.push_manifest(repository, "1", manifest)
    return manifest, described


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield from start_registry(tmp_path_factory.mktemp("failing-registry"))


@pytest.fixture
def store_host(sim_roots: dict[str, SimulatedHost]) -> Iterator[Host]:
    sim = sim_roots["ws2019"].start()
    with Host.open(sim="ws2019", root=sim.root) as host:
        before = {i.id for i in host.images.list()}
        yield host
        for image in host.images.list():
            if image.id not in before:
                host.images.remove(image.id, force=True, prune=False)
        host.images.cache_clear()
        host.images.gc()


def _no_image(host: Host, name: str) -> None:
    assert not [t for i in host.images.list() for t in i.tags if name in str(t)], "a partial image was recorded"
    report = host.images.fsck()
    assert report.clean, report.summary()


@pytest.mark.simulator("a simulated Server 2019 host and a local registry")
def test_a_registry_that_dies_mid_transfer_is_an_error_and_the_next_pull_resumes(
        upstream: str, store_host: Host, tmp_path: Path) -> None:
    manifest, layers = _publish(Registry(upstream), "wc/resumed", tmp_path)
    proxy = Proxy(upstream)
    name = f"{proxy.host}/wc/resumed:1"
    try:
        (base, base_size), (diff, diff_size) = layers
        proxy.budget = base_size + diff_size // 2 + 4096  # the base whole, half of the diff (and the config)
        with pytest.raises(RegistryError) as info:
            transfer.pull(store_host.images, name, build=17763, mirrors={}, workers=1)
        assert proxy.host in str(info.value)
        _no_image(store_host, "wc/resumed")
        got_before = dict(proxy.served)
        proxy.served.clear()
        proxy.dead, proxy.budget = False, None  # the registry is back
        result = transfer.pull(store_host.images, name, build=17763, mirrors={}, workers=1)
        assert result.manifest_digest == manifest.digest and result.downloaded == 2
        sent = {path.rsplit("/", 1)[-1]: n for path, n in proxy.served.items()}
        assert sent.get(base, 0) == 0  # finished before the cut: not downloaded again
        asked = proxy.ranges[f"/v2/wc/resumed/blobs/{diff}"]  # resumed with Range from what had come
        start = int(asked.removeprefix("bytes=").rstrip("-"))
        assert 0 < start <= got_before[f"/v2/wc/resumed/blobs/{diff}"] and sent[diff] == diff_size - start
    finally:
        proxy.close()


@pytest.mark.simulator("a simulated Server 2019 host and a local registry")
def test_a_corrupted_blob_is_an_error_and_nothing_is_kept(upstream: str, store_host: Host, tmp_path: Path) -> None:
    _publish(Registry(upstream), "wc/corrupt", tmp_path)
    proxy = Proxy(upstream)
    try:
        proxy.corrupt = True
        with pytest.raises(RegistryError, match="arrived as"):
            transfer.pull(store_host.images, f"{proxy.host}/wc/corrupt:1", build=17763, mirrors={})
        _no_image(store_host, "wc/corrupt")
        leftovers = list((store_host.images.root / "downloads").glob("*.partial"))
        assert leftovers == [], leftovers  # a wrong download is not kept to resume from
        proxy.corrupt = False
        assert transfer.pull(store_host.images, f"{proxy.host}/wc/corrupt:1", build=17763, mirrors={}).downloaded == 2
    finally:
        proxy.close()


@pytest.mark.simulator("a simulated Server 2019 host and a local registry")
def test_bad_credentials_and_unknown_names_are_clear_errors(upstream: str, store_host: Host, tmp_path: Path) -> None:
    with pytest.raises(RegistryNotFound, match="wc/never-pushed"):
        store_host.images.pull(f"{upstream}/wc/never-pushed:1")
    _publish(Registry(upstream), "wc/known", tmp_path)
    with pytest.raises(RegistryNotFound, match="MANIFEST_UNKNOWN"):
        store_host.images.pull(f"{upstream}/wc/known:2")
    htpasswd = tmp_path / "htpasswd"
    htpasswd.write_text(subprocess.run(["htpasswd", "-Bbn", USER, PASSWORD], check=True, capture_output=True,
                                       text=True).stdout)
    for basic in start_registry(tmp_path / "basic", htpasswd=htpasswd):
        with pytest.raises(RegistryAuthError) as info:
            store_host.images.pull(f"{basic}/wc/private:1", username=USER, password="wrong")
        assert info.value.hint and "login" in info.value.hint
    _no_image(store_host, "wc/")


@pytest.mark.parametrize("profile", ["tp3", "2016", "ws2019"])
def test_an_index_of_several_builds_gives_each_host_its_own(upstream: str, sim_roots: dict[str, SimulatedHost],
                                                          tmp_path: Path, profile: str) -> None:
    """One name, three Windows builds behind an OCI index: each profile's host pulls its own."""
    from wincontainers.images.distribution import OCI_INDEX

    registry = Registry(upstream)
    entries = []
    for build in (10514, 14393, 17763):
        tar = other_build_base(build)
        (tmp_path / f"base-{build}").write_bytes(tar)
        digest = "sha256:" + hashlib.sha256(tar).hexdigest()
        registry.push_blob("wc/multi", digest, tmp_path / f"base-{build}")
        config = json.dumps({"architecture": "amd64", "os": "windows", "os.version": f"10.0.{build}.7",
                             "config": {"Cmd": ["cmd"]}, "rootfs": {"type": "layers", "diff_ids": [digest]}}).encode()
        (tmp_path / f"config-{build}").write_bytes(config)
        config_digest = "sha256:" + hashlib.sha256(config).hexdigest()
        registry.push_blob("wc/multi", config_digest, tmp_path / f"config-{build}")
        data = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": config_digest, "size": len(config)},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest,
                                       "size": len(tar)}]}).encode()
        manifest = Manifest("application/vnd.oci.image.manifest.v1+json", data,
                            "sha256:" + hashlib.sha256(data).hexdigest())
        registry.push_manifest("wc/multi", manifest.digest, manifest)
        entries.append({"mediaType": manifest.media_type, "digest": manifest.digest, "size": len(data),
                        "platform": {"os": "windows", "architecture": "amd64", "os.version": f"10.0.{build}.7"}})
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}).encode()
    registry.push_manifest("wc/multi", "1", Manifest(OCI_INDEX, index, "sha256:" + hashlib.sha256(index).hexdigest()))
    sim = sim_roots[profile].start()
    with Host.open(sim=profile, root=sim.root) as host:
        pulled = host.images.pull(f"{upstream}/wc/multi:1")
        try:
            assert pulled.os_version == f"10.0.{host.build}.7", (profile, pulled.os_version)
        finally:
            host.images.remove(pulled.id, force=True, prune=False)
            host.images.gc()


@pytest.mark.simulator("a simulated Server 2019 host and a local registry")
def test_gc_lets_go_of_what_failed_pulls_left_but_not_of_a_live_pull(store_host: Host) -> None:
    """downloads/ keeps a failed pull's blobs for the next pull to resume; gc removes a dead
    process's and whole ones (no pull under way), never a live process's partial file."""
    folder = store_host.images.root / "downloads"
    folder.mkdir(exist_ok=True)
    dead = folder / f"{'a' * 64}.{(1 << 22) + 4321}.partial"  # above any pid: no such process
    whole = folder / ("b" * 64)
    live = folder / f"{'c' * 64}.{os.getpid()}.partial"
    for path in (dead, whole, live):
        path.write_bytes(b"x" * 10)
    garbage = store_host.images.fsck().garbage
    assert f"download leftover {dead.name}" in garbage and f"download leftover {whole.name}" in garbage
    assert not any(live.name in g for g in garbage)
    report = store_host.images.gc()
    assert f"download {dead.name}" in report.other and f"download {whole.name}" in report.other
    assert live.exists() and not dead.exists() and not whole.exists()
    live.unlink()
