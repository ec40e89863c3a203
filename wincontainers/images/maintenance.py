"""The store's upkeep: ``fsck`` (what is broken, what is garbage, and with ``repair`` the
quarantine and the rebuilds) and ``gc`` (remove what nothing references). Both read the store's
parts through :class:`~wincontainers.images.store.ImageStore` and decide under its lock, where
every writer decides too."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence, Union

from wincontainers import errors
from wincontainers.images.leases import LiveLeases, owned_by_live
from wincontainers.images.model import (
    MEDIA_INDEX,
    REPAIR_HINT,
    FsckReport,
    GcReport,
    LayerRecord,
    chain_id,
    file_digest,
)

if TYPE_CHECKING:
    from wincontainers.images.store import ImageStore
    from wincontainers.records import DamagedContainer

__all__ = ["fsck", "gc"]

log = logging.getLogger("wincontainers.images")


def _norm(path: Union[str, Path]) -> str:
    return os.path.normcase(os.path.abspath(str(path)))


def referenced(store: "ImageStore") -> tuple[set[str], set[str], list[str]]:
    """(blob digests, layer chain IDs) reachable from the index and the build cache, and
    errors met on the way."""
    problems: list[str] = []
    blobs: set[str] = set()
    chains: set[str] = set()
    configs: list[tuple[str, str]] = []
    for entry in store.index.read()["manifests"]:
        digest = entry.get("digest")
        if not isinstance(digest, str):
            problems.append(f"index.json: an entry has no digest: {entry}")
            continue
        blobs.add(digest)
        try:
            manifest = json.loads(store.blobs.read(digest))
            configs.append((manifest["config"]["digest"], f"image manifest {digest[:19]}"))
        except (errors.NotFound, ValueError, KeyError, TypeError) as exc:
            problems.append(f"image manifest {digest[:19]}: {exc}")
    cached = [(d, f"build cache entry {k[:19]}") for k, d in store.cache.entries().items()
              if store.cache.get(k) is not None]
    for config_digest, what in configs + cached:
        blobs.add(config_digest)
        try:
            config = json.loads(store.blobs.read(config_digest))
            diff_ids = list(config["rootfs"]["diff_ids"])
        except (errors.NotFound, ValueError, KeyError, TypeError) as exc:
            problems.append(f"{what}: {exc}")
            continue
        for i in range(len(diff_ids)):
            chain: Optional[str] = chain_id(diff_ids[:i + 1])
            while chain and chain not in chains:
                chains.add(chain)
                try:
                    record = store.chains.get(chain)
                except errors.DamagedRecord as exc:
                    problems.append(f"{what}: layer {chain[:19]}: {exc.reason}")
                    break
                if record is None:
                    problems.append(f"{what}: layer {chain[:19]} has no record")
                    break
                if record.blob:
                    blobs.add(record.blob)
                chain = record.parent
    return blobs, chains, problems


def _damage(store: "ImageStore", path: Path,
            parse: Optional[Callable[[dict[str, Any]], object]] = None) -> Optional[str]:
    """What is wrong with the state file ``path`` (None: readable, or missing)."""
    try:
        doc = store.files.read_document(path, hint="")
        if parse is not None:
            parse(doc)
    except FileNotFoundError:
        return None
    except errors.DamagedRecord as exc:
        return exc.reason
    except (TypeError, ValueError, KeyError) as exc:
        return f"not the record it should be: {exc}"
    return None


def unreadable(store: "ImageStore", *, records_only: bool = False,
               containers: Optional[Sequence["DamagedContainer"]] = None) -> list[tuple[Path, str]]:
    """Every state file that cannot be read, with what is wrong: the index, the build cache,
    layer records, leases and container records (``containers``: those already found);
    ``records_only``: the index and layer records, what gc needs whole."""
    files: list[tuple[Path, Optional[Callable[[dict[str, Any]], object]]]] = [(store.index.path, None)]
    if not records_only:
        files.append((store.cache.path, None))
    files += [(store.chains.folder / name, LayerRecord.from_json) for name in store.chains.names()]
    if not records_only:
        files += [(store.leases.folder / name, None) for name in store.leases.names()]
    out = [(path, reason) for path, parse in files if (reason := _damage(store, path, parse)) is not None]
    if not records_only:
        found = store.container_records.damaged() if containers is None else containers
        out += [(d.path, d.reason) for d in found]
    return out


def _repair(store: "ImageStore") -> tuple[list[str], list[str]]:
    """Move unreadable files to ``quarantine/<time>/``, remove what a damaged container
    record left, rebuild the index from the manifests present and layer records from the
    layer folders; (quarantined, repaired)."""
    quarantined: list[str] = []
    repaired: list[str] = []
    damaged_containers = store.container_records.damaged()
    damaged = unreadable(store, containers=damaged_containers)
    if not damaged:
        return quarantined, repaired
    box = store.root / "quarantine" / time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    containers = {d.path: d.id for d in damaged_containers}
    index_lost = False
    for path, reason in damaged:
        where = box / path.parent.name / path.name
        os.makedirs(where.parent, exist_ok=True)
        if path in containers:  # kept aside, then the container goes with what it left
            shutil.copyfile(path, where)
            with contextlib.suppress(errors.WincontainersError, OSError):
                store.remove_damaged_container(containers[path])
                repaired.append(f"container {containers[path][:12]} removed (its record was damaged)")
        if path.exists():
            os.replace(path, where)
        quarantined.append(f"{path} -> {where}: {reason}")
        index_lost = index_lost or path == store.index.path
    if index_lost:
        found = store.index.manifests_present()
        store.index.write({"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": found})
        repaired.append(f"index.json rebuilt from the {len(found)} image manifest(s) in the store "
                        "(untagged: the tags were in the damaged index)")
    repaired += _rebuild_layer_records(store)
    return quarantined, repaired


def _rebuild_layer_records(store: "ImageStore") -> list[str]:
    """Records for the chains images and the cache need that have none, from the layer folder
    of that diff ID over the parent's folder (what import_tar wrote in its layer info)."""
    repaired: list[str] = []
    try:
        images = store.index.images()
    except errors.DamagedRecord:
        return repaired
    layers = [l for l in store.layers.list() if l.kind != "sandbox" and l.diff_id]
    for image in images:
        parent: Optional[LayerRecord] = None
        for i, diff_id in enumerate(image.diff_ids):
            chain = chain_id(list(image.diff_ids[:i + 1]))
            record = store.chains.get(chain)
            if record is None:
                below = [os.path.normcase(parent.folder)] if parent is not None and parent.folder else []
                match = [l for l in layers if l.diff_id == diff_id
                         and [os.path.normcase(str(p)) for p in l.parents[:1]] == below]
                if len(match) != 1:
                    break
                layer = match[0]
                record = LayerRecord(chain_id=chain, diff_id=diff_id, parent=parent.chain_id if parent else None,
                                     folder=str(layer.path), size=layer.size or 0,
                                     blob=diff_id if store.blobs.has(diff_id) else None,
                                     owned=layer.owner == store.owner, created=layer.created or time.time())
                store.chains.write(record)
                repaired.append(f"layer record {chain[:19]} rebuilt from folder {layer.path.name[:12]}")
            parent = record
    return repaired


def fsck(store: "ImageStore", *, deep: bool = False, repair: bool = False) -> FsckReport:
    """See :meth:`ImageStore.fsck`."""
    quarantined: list[str] = []
    repaired: list[str] = []
    if repair:
        with store.locked():
            quarantined, repaired = _repair(store)
    damaged = [f"{path}: {reason}" for path, reason in unreadable(store)]
    try:
        blobs, chains, problems = referenced(store)
    except errors.DamagedRecord as exc:  # the index: nothing else can be judged without it
        return FsckReport(tuple(damaged or [str(exc)]), (), tuple(quarantined), tuple(repaired))
    found_errors = damaged + list(problems)
    garbage: list[str] = []
    found = {chain: store.chains.find(chain) for chain in chains}  # each record read once
    records = [r for r in found.values() if r]
    for digest in sorted(blobs):
        path = store.blobs.path(digest)
        if not path.is_file():
            record_wants = any(r.blob == digest for r in records)
            if record_wants or not any(r.diff_id == digest or (r.descriptor or {}).get("digest") == digest
                                       for r in records):
                found_errors.append(f"blob {digest[:19]} is missing")
        elif deep and file_digest(path) != digest:
            found_errors.append(f"blob {digest[:19]} does not hash to its name")
    for chain in sorted(chains):
        record = found[chain]
        if record is None:
            continue
        if record.folder is not None and not Path(record.folder).is_dir():
            found_errors.append(f"layer {chain[:19]}: folder {record.folder} is missing")
        if record.folder is None and record.descriptor is None and record.blob is None:
            found_errors.append(f"layer {chain[:19]} has neither a folder nor a blob")
    live = store.leases.live()
    in_use = _folders_in_use(store)
    for record in store.chains.all():
        if record.chain_id not in chains and record.chain_id not in live.held:
            if record.folder and _norm(record.folder) in in_use:
                if record.blob:  # a container or another layer rests on it: gc keeps it too
                    blobs.add(record.blob)
                continue
            garbage.append(f"layer {record.chain_id[:19]} is not referenced")
    for path in sorted(store.blobs.folder.iterdir()):
        if f"sha256:{path.name}" not in blobs and f"sha256:{path.name}" not in live.held:
            garbage.append(f"blob {path.name[:12]} is not referenced")
    garbage += [f"stale lease {Path(p).name}" for p in sorted(live.stale)]
    garbage += [f"temporary file {p.name}" for p in sorted(store.tmp_dir.iterdir())
                if not owned_by_live(p.name, store.process_alive)]
    garbage += [f"layer folder {name}: no layer record names it (an interrupted or lost import)"
                for name in _orphan_folders(store, live, _container_folders(store))]
    garbage += [f"leftover {p.name} in the layers folder" for p in store.layers.leftovers()]
    garbage += [f"download leftover {p.name}" for p in _download_leftovers(store, live)]
    return FsckReport(tuple(found_errors), tuple(garbage), tuple(quarantined), tuple(repaired))


def _orphan_folders(store: "ImageStore", live: LiveLeases, containers: set[str]) -> list[str]:
    """Layer folders no record points at: those a dead operation named in its lease, and
    those the store made whose record another process wrote first (unless a live operation
    is still making them or a container runs on them: ``containers``, the folders of
    :func:`_container_folders`); gc leaves alone the first kind too while a container runs on one."""
    known = {_norm(r.folder) for r in store.chains.all() if r.folder}
    orphans = []
    for folders in live.stale.values():
        for folder in folders:
            if _norm(folder) not in known and folder not in live.held and Path(folder).exists():
                orphans.append(folder)
    for layer in store.layers.list():
        normalized = _norm(layer.path)
        if layer.owner == store.owner and normalized not in known and normalized not in live.making \
                and normalized not in containers:
            orphans.append(str(layer.path))
    return sorted(set(orphans))


def gc(store: "ImageStore") -> GcReport:
    """See :meth:`ImageStore.gc`."""
    removed_blobs: list[str] = []
    removed_layers: list[str] = []
    other: list[str] = []
    freed = 0
    with store.locked():
        # What a damaged record or index names cannot be known: collecting now could destroy
        # the very folders a repair would give back their records.
        damaged = unreadable(store, records_only=True)
        if damaged:
            path, reason = damaged[0]
            raise errors.DamagedRecord(path, reason, REPAIR_HINT + "; gc runs again after it")
        blobs, chains, _problems = referenced(store)
        live = store.leases.live()
        # What killed operations left first: their folders would otherwise keep parents alive.
        containers = _container_folders(store)
        for folder in _orphan_folders(store, live, containers):
            if _norm(folder) not in containers:
                store.destroy_folder(folder)
                other.append(f"layer folder {folder}")
        other += [f"leftover {p.name}" for p in store.layers.cleanup()]
        in_use = _folders_in_use(store)
        for record in store.chains.all():
            if record.chain_id in chains or record.chain_id in live.held:
                continue
            if record.folder and _norm(record.folder) in in_use:
                chains.add(record.chain_id)  # a container still runs on it
                continue
            if record.owned and record.folder and Path(record.folder).exists():
                store.destroy_folder(record.folder)
            store.chains.remove(record.chain_id)
            removed_layers.append(record.chain_id)
        # the blobs of layers kept: referenced, used, or held by an operation in progress
        keep_blobs = blobs | {r.blob for r in map(store.chains.get, chains | live.held) if r and r.blob}
        for path in list(store.blobs.folder.iterdir()):
            digest = f"sha256:{path.name}"
            if digest in keep_blobs or digest in live.held:
                continue
            with contextlib.suppress(OSError):
                freed += path.stat().st_size
                path.unlink()
                removed_blobs.append(digest)
        for lease_path in live.stale:
            if store.files.remove(lease_path):
                other.append(f"lease {Path(lease_path).name}")
        for path in list(store.tmp_dir.iterdir()):
            if not owned_by_live(path.name, store.process_alive):
                with contextlib.suppress(OSError):
                    shutil.rmtree(path) if path.is_dir() else path.unlink()
                    other.append(f"temporary {path.name}")
        for path in _download_leftovers(store, live):
            with contextlib.suppress(OSError):
                freed += path.stat().st_size
                path.unlink()
                other.append(f"download {path.name}")
    if removed_blobs or removed_layers or other:
        log.info("gc removed %d blob(s), %d layer(s), %d other object(s); %d bytes freed",
                 len(removed_blobs), len(removed_layers), len(other), freed)
    return GcReport(tuple(removed_blobs), tuple(removed_layers), tuple(other), freed)


def _download_leftovers(store: "ImageStore", live: LiveLeases) -> list[Path]:
    """What pulls left in ``downloads/`` (kept so that the next pull resumes; gc lets it go):
    a dead process's files (``<digest>.<pid>[.partial]``), and whole blobs no pull is importing
    (none when an operation of the store is under way: a live pull may be about to)."""
    folder = store.root / "downloads"
    if not folder.is_dir():
        return []
    busy = bool(live.held or live.making)
    out = []
    for path in sorted(folder.iterdir()):
        parts = path.name.split(".")
        if len(parts) >= 2 and parts[1].isdigit():
            if not store.process_alive(int(parts[1])):
                out.append(path)
        elif not busy:
            out.append(path)
    return out


def _container_folders(store: "ImageStore") -> set[str]:
    out: set[str] = set()
    for container in store.container_records.all():
        out.update(_norm(p) for p in [*container.layers, container.sandbox])
    return out


def _folders_in_use(store: "ImageStore") -> set[str]:
    """Layer folders containers run on, and parents of layers made outside the store."""
    used: set[str] = set()
    containers = list(store.container_records.all())
    for container in containers:
        used.update(_norm(p) for p in container.layers)
    ours = {_norm(r.folder) for r in store.chains.all() if r.folder}
    sandboxes = {_norm(c.sandbox) for c in containers}
    for layer in store.layers.list():
        if _norm(layer.path) not in ours and _norm(layer.path) not in sandboxes:
            used.update(_norm(p) for p in layer.parents)
    return used
