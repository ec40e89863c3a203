"""Pull and push: images between the store and registries (the OCI distribution API).

**Pull** resolves a name to a manifest; from an index it takes the entry for ``windows/amd64``
whose ``os.version`` is the host's build (the highest revision of it), as Docker does (a
Hyper-V pull may take the newest build the host can run in a utility VM). The config and the
layers the store lacks are downloaded in parallel (bounded), each checked for size and digest as
it comes; then the layers are imported in order (each checked again as a layer tar) and the
image recorded with the registry's manifest bytes, so its digest is the registry's. A layer
that is not distributable (a Windows base layer) is fetched from its ``urls`` only when
allowed; otherwise the host must have it already (its own OS image of that build).

**Push** sends the blobs the registry lacks (in parallel), then the manifest. A foreign layer
(non-distributable, with the URLs it comes from, as Docker keeps Windows base layers) is left
out unless ``allow_nondistributable``; a layer of the host's own OS image, which no URL names,
is sent only with ``allow_nondistributable`` (as its tar), else the push is refused first.

``WINCONTAINERS_REGISTRY_MIRRORS`` (``mcr.microsoft.com=127.0.0.1:5000;docker.io=...``), or
``mirrors`` in the registries' config file (:func:`registries_config_path`), sends a registry's
traffic to another host: how the tests serve any registry name from a local one.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Optional, Sequence

import attrs

from wincontainers import errors
from wincontainers.images import credentials as creds
from wincontainers.images.distribution import OCI_MANIFEST, Manifest, Registry, RegistryError
from wincontainers.images.model import (
    MEDIA_LAYER,
    Image,
    LayerRecord,
    canonical_json,
    chain_id,
    digest_of,
    file_digest,
)
from wincontainers.images.reference import Reference, parse_reference
from wincontainers.progress import Progress, ProgressLike, open_progress, operation_progress
from wincontainers.statefiles import read_optional_json

if TYPE_CHECKING:
    from wincontainers.images.store import ImageStore

log = logging.getLogger("wincontainers.images.transfer")

__all__ = ["pull", "push", "choose_platform", "registry_host", "mirrors_from_env", "registries_config_path",
           "remember", "PullResult", "PushResult",
           "NONDISTRIBUTABLE"]

#: media types of layers a registry need not (and Docker does not) carry
NONDISTRIBUTABLE = (
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
)
CONFIG_LIMIT = 8 << 20
WORKERS = 3


@attrs.frozen
class PullResult:
    image: Image
    manifest_digest: str
    downloaded: int  # layers fetched
    reused: int  # layers the store had


@attrs.frozen
class PushResult:
    reference: str
    manifest_digest: str
    uploaded: int
    mounted: int
    present: int  # blobs the registry had
    skipped: tuple[str, ...]  # non-distributable layers left out


def registry_host(domain: str) -> str:
    """The host a reference's domain is served from (Docker Hub's API is elsewhere)."""
    return "registry-1.docker.io" if domain in ("docker.io", "index.docker.io") else domain


def registries_config_path(environ: Optional[Mapping[str, str]] = None) -> Path:
    """``$WINCONTAINERS_REGISTRIES`` or ``~/.config/wincontainers/registries.json`` (``%APPDATA%``
    on Windows): ``{"mirrors": {"mcr.microsoft.com": "127.0.0.1:5000"}}``."""
    env = os.environ if environ is None else environ
    if env.get("WINCONTAINERS_REGISTRIES"):
        return Path(env["WINCONTAINERS_REGISTRIES"])
    base = Path(env["APPDATA"]) if os.name == "nt" and env.get("APPDATA") else Path.home() / ".config"
    return base / "wincontainers" / "registries.json"


def mirrors_from_env(environ: Optional[Mapping[str, str]] = None) -> dict[str, str]:
    """The mirrors: the config file's, then ``WINCONTAINERS_REGISTRY_MIRRORS`` (``domain=host[:port]``
    pairs, ``;`` or ``,`` between) over them."""
    out = _mirrors_from_file(registries_config_path(environ))
    text = (os.environ if environ is None else environ).get("WINCONTAINERS_REGISTRY_MIRRORS", "")
    for item in text.replace(",", ";").split(";"):
        if not item.strip():
            continue
        domain, sep, host = item.partition("=")
        if not sep or not domain.strip() or not host.strip():
            raise errors.BadInput(f"WINCONTAINERS_REGISTRY_MIRRORS: {item!r} is not domain=host[:port]")
        out[domain.strip()] = host.strip()
    return out


def _mirrors_from_file(path: Path) -> dict[str, str]:
    mirrors = creds.read_json_file(path, "the registries' config", 1 << 20).get("mirrors")
    if mirrors is None:
        return {}
    if not isinstance(mirrors, dict) or not all(isinstance(k, str) and isinstance(v, str) and v.strip()
                                                for k, v in mirrors.items()):
        raise errors.BadInput(f"{path}: mirrors is an object of domain -> host[:port]")
    return {k.strip(): v.strip() for k, v in mirrors.items()}


def _registry(domain: str, mirrors: Mapping[str, str], username: Optional[str], password: Optional[str]) -> Registry:
    host = mirrors.get(domain) or registry_host(domain)
    return Registry(host, credentials=creds.lookup(host, username=username, password=password))


def choose_platform(index: Mapping[str, Any], build: Optional[int], *, hyperv: bool = False,
                    os_version: Optional[str] = None) -> Mapping[str, Any]:
    """The manifest of an index to pull: windows/amd64 of the host's build (its highest
    revision), or ``os_version`` when asked; with ``hyperv``, failing that, the newest build
    below the host's (a utility VM runs it)."""
    entries = [m for m in index.get("manifests") or [] if isinstance(m, dict)]
    windows = [m for m in entries if (m.get("platform") or {}).get("os") == "windows"
               and (m.get("platform") or {}).get("architecture") in (None, "amd64")]

    def version(m: Mapping[str, Any]) -> tuple[int, ...]:
        text = str((m.get("platform") or {}).get("os.version") or "0.0.0.0")
        return tuple(int(p) if p.isdigit() else 0 for p in text.split("."))

    if os_version is not None:
        wanted = tuple(int(p) for p in os_version.split(".") if p.isdigit())
        exact = [m for m in windows if version(m)[:len(wanted)] == wanted]
        if exact:
            return max(exact, key=version)
    elif build is not None:
        same = [m for m in windows if len(version(m)) > 2 and version(m)[2] == build]
        if same:
            return max(same, key=version)
        if hyperv:
            older = [m for m in windows if len(version(m)) > 2 and version(m)[2] <= build]
            if older:
                return max(older, key=version)
    elif windows:
        return max(windows, key=version)
    offered = ", ".join(sorted({str((m.get("platform") or {}).get("os.version") or (m.get("platform") or {}).get("os"))
                                for m in entries})) or "nothing"
    raise errors.NotFound("pull", subject="the image index",
                          message=f"no windows/amd64 image for build {os_version or build} (the index offers {offered})",
                          hint="pull a tag of the host's build (ltsc2019 on Server 2019), or run it with Hyper-V "
                               "isolation (pull --platform with the image's os.version)")


def pull(store: "ImageStore", reference: str, *, build: Optional[int] = None, os_version: Optional[str] = None,
         hyperv: bool = False, allow_nondistributable: bool = False, username: Optional[str] = None,
         password: Optional[str] = None, mirrors: Optional[Mapping[str, str]] = None, progress: ProgressLike = None,
         layer_progress: Optional[Callable[[str, int, int], None]] = None, workers: int = WORKERS) -> PullResult:
    """See the module: ``reference`` into ``store``, tagged with it (unless it names a digest)."""
    ref = parse_reference(reference)
    mirror_map = mirrors_from_env() if mirrors is None else dict(mirrors)
    registry = _registry(ref.domain, mirror_map, username, password)
    repository = ref.path
    manifest = registry.manifest(repository, ref.digest or ref.tag or "latest")
    if manifest.is_index:
        chosen = choose_platform(manifest.document, build, hyperv=hyperv, os_version=os_version)
        manifest = registry.manifest(repository, str(chosen.get("digest")))
        if manifest.is_index:
            raise RegistryError("an index names another index for the platform", registry=registry.host,
                                repository=repository)
    doc = manifest.document
    config_desc = doc.get("config") or {}
    layers = [d for d in doc.get("layers") or [] if isinstance(d, dict)]
    with store.lease() as lease, operation_progress(progress, desc=f"pull {ref.familiar}") as shared:
        tmp = store.new_temp_file(".config")
        try:
            registry.fetch_blob(repository, str(config_desc.get("digest")), tmp, size=_size(config_desc, CONFIG_LIMIT))
            config_bytes = tmp.read_bytes()
        finally:
            with contextlib.suppress(OSError):
                tmp.unlink()
        config = json.loads(config_bytes)
        diff_ids = list((config.get("rootfs") or {}).get("diff_ids") or [])
        if len(diff_ids) != len(layers) or not layers:
            raise RegistryError(f"the manifest names {len(layers)} layers and the config {len(diff_ids)} diff IDs",
                                registry=registry.host, repository=repository)
        plan: list[tuple[int, Mapping[str, Any], Optional[LayerRecord]]] = []
        for i, layer_desc in enumerate(layers):
            chain = chain_id(diff_ids[: i + 1])
            lease.hold(chain)
            plan.append((i, layer_desc, store.usable_layer(chain) or _host_layer(store, chain, diff_ids[i], i)))
        wanted = [(i, desc) for i, desc, found in plan if found is None]
        for i, desc in wanted:
            if desc.get("mediaType") in NONDISTRIBUTABLE and not (allow_nondistributable and desc.get("urls")):
                raise errors.NotFound(
                    "pull", subject=f"layer {diff_ids[i][:19]} of {ref.familiar}",
                    message="the layer is not distributable (a Windows base layer) and this host does not have it",
                    hint="use a base image of this host's build, or allow non-distributable layers to be fetched "
                         "from their URLs (--allow-nondistributable)")
        layers_report = _LayerReports(shared, progress is True, layer_progress)
        layers_report.expect(sum(int(d.get("size") or 0) for _, d in wanted))
        # what is downloaded and not imported (a failure elsewhere) stays in downloads/ for the next pull
        files: dict[int, Path] = {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = {pool.submit(_download, store, registry, repository, desc, layers_report): i
                       for i, desc in wanted}
            for future in concurrent.futures.as_completed(futures):
                files[futures[future]] = future.result()
        records: list[LayerRecord] = []
        for i, _desc, found in plan:
            if found is None:
                found = store.add_layer(files.pop(i), records[-1] if records else None, lease=lease)
                if found.diff_id != diff_ids[i]:
                    raise RegistryError(f"layer {i + 1} is {found.diff_id[:19]}, the config says {diff_ids[i][:19]}",
                                        registry=registry.host, repository=repository)
            records.append(found)
        image = store.add(config_bytes, records, tags=[str(ref)] if ref.tag else [], manifest=manifest.data)
        remember(store, registry.host, repository,
                 [str(config_desc.get("digest")), *(str(d.get("digest")) for _, d in wanted)])
    return PullResult(image, manifest.digest, len(wanted), len(plan) - len(wanted))


def _size(desc: Mapping[str, Any], limit: Optional[int] = None) -> int:
    size = desc.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0 or (limit is not None and size > limit):
        raise RegistryError(f"a descriptor's size {size!r} is not a size this client takes")
    return size


class _LayerReports:
    """Progress of a transfer: the operation's running total (bytes; a file per layer done) and
    each layer's own, to ``layer_progress(digest, bytes_done, size)`` and, with
    ``progress=True``, a bar of its own while it moves."""

    def __init__(self, shared: Optional[Progress], bars: bool,
                 layer_progress: Optional[Callable[[str, int, int], None]]) -> None:
        self.shared = shared
        self.bars = bars
        self.layer_progress = layer_progress

    def expect(self, total: int) -> None:
        if self.shared is not None:
            self.shared.expect(total)

    @contextlib.contextmanager
    def layer(self, digest: str, size: int) -> Iterator[Callable[[int], None]]:
        bar = open_progress(True, total=size, desc=digest[7:19]) if self.bars else None
        done = [0]

        def count(n: int) -> None:
            done[0] += n
            if self.shared is not None:
                self.shared.advance(n)
            if bar is not None:
                bar.advance(n)
            if self.layer_progress is not None:
                self.layer_progress(digest, done[0], size)

        try:
            yield count
            if self.shared is not None:
                self.shared.advance(0, 1)
        finally:
            if bar is not None:
                bar.close()


def _download(store: "ImageStore", registry: Registry, repository: str, desc: Mapping[str, Any],
              reports: _LayerReports) -> Path:
    """A layer blob into a temporary file of the store: from the registry, or (a foreign layer,
    allowed) from the first of its ``urls`` that serves it."""
    digest, size = str(desc.get("digest")), _size(desc)
    done = _downloaded(store, digest, size)
    if done is not None:  # an earlier pull that failed later got it whole
        with reports.layer(digest, size) as count:
            count(size)
        return done
    path = _download_slot(store, digest)
    with reports.layer(digest, size) as count:
        if desc.get("mediaType") not in NONDISTRIBUTABLE:
            registry.fetch_blob(repository, digest, path, size=size, progress=count)
            return _finished(digest, path)
        failures = []
        for url in [str(u) for u in desc.get("urls") or [] if _fetchable(str(u))]:
            try:
                registry.fetch_url(url, path, digest, size, count)
                return _finished(digest, path)
            except RegistryError as exc:
                failures.append(str(exc))
    raise RegistryError(f"the foreign layer {digest[:19]} could not be fetched from its URLs: "
                        f"{'; '.join(failures) or 'none is https (or http to this machine)'}", registry=registry.host,
                        repository=repository)


# -- downloads kept across pulls ------------------------------------------------------------------------
#
# A layer is downloaded into <store>/downloads/<digest hex>.<pid> (its .partial while it comes)
# and renamed to <digest hex> when whole. A pull that fails leaves what it finished, and what it
# had begun: the next pull uses the first as it is (checked again) and resumes the second with
# Range, adopting a dead process's partial file. A live process's partial is never touched.


def _downloads(store: "ImageStore") -> Path:
    folder = store.root / "downloads"
    store.files.makedirs(folder)
    return folder


def _downloaded(store: "ImageStore", digest: str, size: int) -> Optional[Path]:
    """The whole blob an earlier pull left, if it is right (else it is removed)."""
    final = _downloads(store) / digest.split(":", 1)[1]
    if not final.is_file():
        return None
    if final.stat().st_size == size and file_digest(final) == digest:
        return final
    with contextlib.suppress(OSError):
        final.unlink()
    return None


def _download_slot(store: "ImageStore", digest: str) -> Path:
    """This process's file for the blob; a dead process's partial file is adopted to resume."""
    folder = _downloads(store)
    hex_digest = digest.split(":", 1)[1]
    mine = folder / f"{hex_digest}.{os.getpid()}"
    partial = mine.with_name(mine.name + ".partial")
    if not partial.exists():
        for other in folder.glob(f"{hex_digest}.*.partial"):
            owner = other.name[len(hex_digest) + 1:-len(".partial")]
            if owner.isdigit() and not store.process_alive(int(owner)):
                with contextlib.suppress(OSError):
                    os.replace(other, partial)
                    break
    return mine


def _finished(digest: str, path: Path) -> Path:
    final = path.with_name(digest.split(":", 1)[1])
    os.replace(path, final)
    return final


def _fetchable(url: str) -> bool:
    """https, or plain http to this machine's loopback (as for registries)."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    return parts.scheme == "https" or (parts.scheme == "http" and (host == "localhost" or host.startswith("127.")))


def _host_layer(store: "ImageStore", chain: str, diff_id: str, index: int) -> Optional[LayerRecord]:
    """The host's own OS image layer of that diff ID, when the image starts with it (each is
    recorded, as a name finding it would, to know its diff ID)."""
    if index != 0:
        return None
    for base in store.base_images():
        try:
            image = store.resolve(base.tag)
        except errors.WincontainersError:
            continue
        if image.diff_ids[:1] == (diff_id,):
            return store.usable_layer(chain)
    return None


def push(store: "ImageStore", image_ref: str, target: Optional[str] = None, *, allow_nondistributable: bool = False,
         username: Optional[str] = None, password: Optional[str] = None, mirrors: Optional[Mapping[str, str]] = None,
         chunk_size: Optional[int] = None, progress: ProgressLike = None,
         layer_progress: Optional[Callable[[str, int, int], None]] = None, workers: int = WORKERS) -> PushResult:
    """See the module: the store's ``image_ref`` to ``target`` (default: its own name)."""
    image = store.get(image_ref)
    ref = parse_reference(target or image_ref)
    if ref.digest is not None:
        raise errors.BadInput("push to a tag, not a digest")
    mirror_map = mirrors_from_env() if mirrors is None else dict(mirrors)
    registry = _registry(ref.domain, mirror_map, username, password)
    repository = ref.path
    records = store.layer_chain(image)
    stored = store.read_blob(image.manifest_digest)
    manifest_doc = json.loads(stored)
    descriptors = list(manifest_doc.get("layers") or [])
    with contextlib.ExitStack() as cleanup:  # the tars made for this push go with it
        skipped: list[str] = []
        sources: list[tuple[str, Path]] = [(image.id, store.blob_path(image.id))]  # digest, its file
        marked = False
        for record, desc in zip(records, descriptors):
            if record.blob is not None:
                path = store.blob_path(record.blob)
                sources.append((record.blob, path))
                size = path.stat().st_size
                if desc.get("digest") != record.blob or desc.get("size") != size:  # the registry checks the size
                    desc.update({"mediaType": record.media_type, "digest": record.blob, "size": size})
                    marked = True
            elif not allow_nondistributable and desc.get("mediaType") in NONDISTRIBUTABLE and desc.get("urls"):
                skipped.append(record.diff_id)  # foreign, with the URLs it comes from: stays so, as Docker leaves it
            elif allow_nondistributable and record.folder is not None:  # sent as its tar (its diff ID)
                tar = _export(store, record)
                cleanup.callback(_unlink_quietly, tar)
                sources.append((record.diff_id, tar))
                wanted = {"mediaType": MEDIA_LAYER, "digest": record.diff_id, "size": tar.stat().st_size}
                if desc != wanted:  # the store's stands for a tar it does not keep: the registry's names it
                    desc.clear()
                    desc.update(wanted)
                    marked = True
            else:
                raise errors.NotSupported(
                    "push", subject=f"layer {record.diff_id[:19]} of {image_ref}",
                    message="the layer is a Windows OS image of this host (not distributable), and no URL names "
                            "where else it comes from",
                    alternative="push with allow_nondistributable=True (--allow-nondistributable) if the registry "
                                "may hold it")
        manifest_bytes = canonical_json(manifest_doc) if marked else stored
        counts = {"uploaded": 0, "mounted": 0, "exists": 0}
        lock = threading.Lock()
        with operation_progress(progress, desc=f"push {ref.familiar}") as shared:
            reports = _LayerReports(shared, progress is True, layer_progress)
            reports.expect(sum(int(d.get("size") or 0) for d in descriptors if d.get("digest") not in skipped))

            def send(digest: str, path: Path) -> None:
                with reports.layer(digest, path.stat().st_size) as count:
                    how = registry.push_blob(repository, digest, path,
                                             mount_from=_mount_sources(store, digest, ref, registry.host),
                                             chunk_size=chunk_size, progress=count)
                with lock:
                    counts[how] += 1

            with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
                for job in concurrent.futures.as_completed([pool.submit(send, *source) for source in sources]):
                    job.result()
            media_type = json.loads(manifest_bytes).get("mediaType") or OCI_MANIFEST
            manifest = Manifest(media_type, manifest_bytes, digest_of(manifest_bytes))
            registry.push_manifest(repository, ref.tag or "latest", manifest)
            remember(store, registry.host, repository, [digest for digest, _path in sources])
    log.info("pushed %s: %d uploaded, %d mounted, %d there already, %d not distributable", ref.familiar,
             counts["uploaded"], counts["mounted"], counts["exists"], len(skipped))
    return PushResult(str(ref), manifest.digest, counts["uploaded"], counts["mounted"], counts["exists"],
                      tuple(skipped))


def _unlink_quietly(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.unlink()


#: how many repositories are remembered per blob
SEEN_LIMIT = 32


def _seen_path(store: "ImageStore", digest: str) -> Path:
    return store.root / "distribution" / f"{digest.split(':', 1)[-1]}.json"


def remember(store: "ImageStore", host: str, repository: str, digests: Sequence[str]) -> None:
    """Note that ``host/repository`` has these blobs (pulled from it or pushed to it), so that
    a later push to another repository of that registry can mount them instead of sending them
    (Docker's distribution metadata)."""
    where = f"{host}/{repository}"
    store.files.makedirs(store.root / "distribution")
    for digest in digests:
        path = _seen_path(store, digest)
        known = read_optional_json(store.files, path)
        seen = [str(x) for x in known] if isinstance(known, list) else []
        if where in seen:
            continue
        seen = ([where] + seen)[:SEEN_LIMIT]
        store.files.write(path, json.dumps(seen).encode())


def _mount_sources(store: "ImageStore", digest: str, ref: Reference, host: str) -> Sequence[str]:
    """Repositories of ``host`` known to have ``digest`` (other than the one pushed to)."""
    known = read_optional_json(store.files, _seen_path(store, digest))
    if not isinstance(known, list):
        return ()
    prefix = f"{host}/"
    return [str(x)[len(prefix):] for x in known if str(x).startswith(prefix) and str(x)[len(prefix):] != ref.path]


def _export(store: "ImageStore", record: LayerRecord) -> Path:
    """A layer the store has only as a folder (a host's OS image): its tar, which hashes to its
    diff ID (exports are deterministic)."""
    path = store.new_temp_file(".layer")
    assert record.folder is not None
    result = store.layers.export_tar(record.folder, str(path))
    if result.diff_id != record.diff_id:
        with contextlib.suppress(OSError):
            path.unlink()
        raise errors.BadInput(f"layer {record.diff_id[:19]} exports as {result.diff_id[:19]}: it changed")
    return path

