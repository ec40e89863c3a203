"""The store's ``index.json``: one entry per image manifest, tags as annotations
(``io.containerd.image.name`` = full name, ``org.opencontainers.image.ref.name`` = tag). Looking
an image up by tag, ID prefix or digest; recording, tagging and untagging images. An image that
loses its last tag stays, untagged (Docker's ``<none>``)."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence, Union

from wincontainers import errors
from wincontainers.images.blobs import Blobs, StoreLock
from wincontainers.images.layer_records import LayerRecords
from wincontainers.images.model import (
    INDEX_HINT,
    MEDIA_CONFIG,
    MEDIA_INDEX,
    MEDIA_LAYER,
    MEDIA_MANIFEST,
    NAME_ANNOTATION,
    REF_ANNOTATION,
    Image,
    ImageLike,
    ImageNotFound,
    LayerRecord,
    canonical_json,
    chain_id,
    digest_of,
    platform_of,
)
from wincontainers.images.reference import Reference, ReferenceError_, parse_reference
from wincontainers.statefiles import StateFiles

__all__ = ["ImageIndex", "descriptor"]


class ImageIndex:
    def __init__(self, path: Path, files: StateFiles, blobs: Blobs, records: LayerRecords, lock: StoreLock) -> None:
        self.path = path
        self.files = files
        self.blobs = blobs
        self.records = records
        self.lock = lock
        if not files.exists(path):
            self.write({"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": []})

    def read(self) -> dict[str, Any]:
        doc = self.files.read_document(self.path, hint=INDEX_HINT)
        manifests = doc.get("manifests")
        doc["manifests"] = [e for e in manifests if isinstance(e, dict)] if isinstance(manifests, list) else []
        return doc

    def write(self, doc: dict[str, Any]) -> None:
        self.files.write(self.path, canonical_json(doc), durable=True)

    def images(self) -> list[Image]:
        """Every image the index names whose manifest and config can be read."""
        by_digest: dict[str, tuple[dict[str, Any], list[Reference]]] = {}
        for entry in self.read()["manifests"]:
            digest = entry.get("digest")
            if not isinstance(digest, str):
                continue
            slot = by_digest.setdefault(digest, (entry, []))
            name = (entry.get("annotations") or {}).get(NAME_ANNOTATION)
            if name:
                with contextlib.suppress(ReferenceError_):
                    slot[1].append(parse_reference(name))
        images = []
        for digest, (_entry, tags) in by_digest.items():
            with contextlib.suppress(errors.NotFound, ValueError, KeyError):
                images.append(self.load_image(digest, tags))
        return images

    def load_image(self, manifest_digest: str, tags: Sequence[Reference]) -> Image:
        manifest = json.loads(self.blobs.read(manifest_digest))
        config_digest = manifest["config"]["digest"]
        config_bytes = self.blobs.read(config_digest)
        return Image(id=config_digest, manifest_digest=manifest_digest, config=json.loads(config_bytes),
                     config_bytes=config_bytes, manifest=manifest, tags=tuple(tags))

    def get(self, ref: ImageLike) -> Image:
        """By tag (``app``, ``app:1.0``, full name), image ID (or a unique prefix) or manifest digest."""
        if isinstance(ref, Image):
            return ref
        text = ref.strip()
        images = self.images()
        bare = text[7:] if text.startswith("sha256:") else text
        if len(bare) >= 4 and all(c in "0123456789abcdef" for c in bare):
            matches = {i.id: i for i in images if i.id[7:].startswith(bare) or i.manifest_digest[7:].startswith(bare)}
            if len(matches) == 1:
                return next(iter(matches.values()))
            if len(matches) > 1:
                raise errors.BadInput(f"{text!r} matches {len(matches)} images; give more of the ID")
        try:
            wanted = parse_reference(text)
        except ReferenceError_:
            raise ImageNotFound(text) from None
        for image in images:
            for tag in image.tags:
                if tag.name == wanted.name and (tag.tag == wanted.tag or wanted.digest == image.manifest_digest):
                    return image
            if wanted.digest and wanted.digest == image.manifest_digest and any(t.name == wanted.name
                                                                                 for t in image.tags):
                return image
        raise ImageNotFound(text)

    def add(self, config: Union[dict[str, Any], bytes], layers: Sequence[LayerRecord],
            tags: Iterable[str] = (), *, manifest: Optional[bytes] = None) -> Image:
        """Record an image whose layers are already in the store (base first). Its manifest is
        made from them, or given (a registry's, kept byte for byte so the image keeps its
        digest): then it must name this config and, in order, these layers (by blob or diff ID)."""
        config_bytes = config if isinstance(config, bytes) else canonical_json(config)
        parsed = json.loads(config_bytes)
        diff_ids = list((parsed.get("rootfs") or {}).get("diff_ids") or [])
        if [l.diff_id for l in layers] != diff_ids:
            raise errors.BadInput("the config's rootfs.diff_ids do not match the layers")
        refs = [parse_reference(t) for t in tags]
        if manifest is not None:
            manifest_bytes = manifest
            _check_manifest(manifest, config_bytes, layers)
            media_type = str(json.loads(manifest).get("mediaType") or MEDIA_MANIFEST)
        else:
            manifest_bytes = canonical_json({
                "schemaVersion": 2,
                "mediaType": MEDIA_MANIFEST,
                "config": {"mediaType": MEDIA_CONFIG, "digest": digest_of(config_bytes), "size": len(config_bytes)},
                "layers": [self._descriptor(record) for record in layers],
            })
            media_type = MEDIA_MANIFEST
        with self.lock.held():  # a gc sees the blobs and the index entry together, or neither
            for i, record in enumerate(layers):
                if record.chain_id != chain_id(diff_ids[:i + 1]) or self.records.get(record.chain_id) is None:
                    raise errors.BadInput(f"layer {record.chain_id} is not in the store (or not in this chain)")
            self.blobs.put(config_bytes)
            manifest_digest = self.blobs.put(manifest_bytes)
            doc = self.read()
            entries = [e for e in doc["manifests"] if not _entry_is_tag(e, refs)]
            base_entry = {"mediaType": media_type, "digest": manifest_digest, "size": len(manifest_bytes),
                          "platform": platform_of(parsed)}
            if refs:
                entries += [dict(base_entry, annotations={NAME_ANNOTATION: str(r), REF_ANNOTATION: r.tag or ""})
                            for r in refs]
            elif not any(e.get("digest") == manifest_digest for e in entries):
                entries.append(base_entry)
            doc["manifests"] = _keep_untagged(entries, doc["manifests"])
            self.write(doc)
        return self.get(manifest_digest[7:])

    def _descriptor(self, record: LayerRecord) -> dict[str, Any]:
        """:func:`descriptor`, with the size of the blob the store keeps (what a registry and
        every reader check), not the layer's content size its record has."""
        found = descriptor(record)
        if record.blob is not None and found.get("digest") == record.blob:
            try:
                found["size"] = self.blobs.path(record.blob).stat().st_size
            except OSError:
                pass
        return found

    def tag(self, image: ImageLike, wanted: Reference) -> None:
        """Point ``wanted`` at the image (moving it from another image)."""
        with self.lock.held():
            found = self.get(image)
            doc = self.read()
            entries = [e for e in doc["manifests"] if not _entry_is_tag(e, [wanted])]
            entries = [e for e in entries if not (e.get("digest") == found.manifest_digest and not e.get("annotations"))]
            entries.append({"mediaType": MEDIA_MANIFEST, "digest": found.manifest_digest,
                            "size": len(canonical_json(found.manifest)), "platform": platform_of(found.config),
                            "annotations": {NAME_ANNOTATION: str(wanted), REF_ANNOTATION: wanted.tag or ""}})
            doc["manifests"] = _keep_untagged(entries, doc["manifests"])
            self.write(doc)

    def drop_image(self, image: Image) -> None:
        """Remove every entry of the image (its tags and its untagged entry)."""
        doc = self.read()
        doc["manifests"] = [e for e in doc["manifests"] if e.get("digest") != image.manifest_digest]
        self.write(doc)

    def untag(self, wanted: Reference) -> None:
        """Remove one tag (its image stays, untagged when that was its last)."""
        doc = self.read()
        doc["manifests"] = [e for e in doc["manifests"] if not _entry_is_tag(e, [wanted])]
        self.write(doc)

    def manifests_present(self) -> list[dict[str, Any]]:
        """Index entries for the image manifests among the blobs whose config is there too
        (what a lost index is rebuilt from)."""
        entries = []
        for path in sorted(self.blobs.folder.iterdir()):
            try:
                if path.stat().st_size > 4 << 20:
                    continue  # a layer, not a manifest
                doc = json.loads(path.read_bytes())
                config_digest = doc["config"]["digest"]
                if doc.get("mediaType", MEDIA_MANIFEST) != MEDIA_MANIFEST or not isinstance(doc.get("layers"), list):
                    continue
                config = json.loads(self.blobs.read(config_digest))
            except (OSError, ValueError, KeyError, TypeError, errors.WincontainersError):
                continue
            entries.append({"mediaType": MEDIA_MANIFEST, "digest": f"sha256:{path.name}",
                            "size": path.stat().st_size, "platform": platform_of(config)})
        return entries


def _check_manifest(manifest: bytes, config_bytes: bytes, layers: Sequence[LayerRecord]) -> None:
    """A given manifest must be an image manifest of this config and these layers."""
    try:
        doc = json.loads(manifest)
    except ValueError:
        raise errors.BadInput("the manifest is not JSON") from None
    if not isinstance(doc, dict) or doc.get("schemaVersion") != 2:
        raise errors.BadInput("the manifest is not a schema 2 image manifest")
    if (doc.get("config") or {}).get("digest") != digest_of(config_bytes):
        raise errors.BadInput("the manifest names another config")
    named = [d.get("digest") for d in doc.get("layers") or [] if isinstance(d, dict)]
    if len(named) != len(layers) or any(
            digest not in {r.blob, r.diff_id, (r.descriptor or {}).get("digest")} for digest, r in zip(named, layers)):
        raise errors.BadInput("the manifest's layers are not the image's")


def descriptor(record: LayerRecord) -> dict[str, Any]:
    """The manifest's descriptor of a layer: its kept blob, its tar by diff ID, or a foreign
    layer's descriptor as loaded."""
    if record.descriptor is not None and record.blob is None:
        return dict(record.descriptor)
    digest = record.blob if record.blob is not None else record.diff_id
    media = record.media_type if record.blob is not None else MEDIA_LAYER
    return {"mediaType": media, "digest": digest, "size": record.size}


def _entry_is_tag(entry: dict[str, Any], refs: Sequence[Reference]) -> bool:
    name = (entry.get("annotations") or {}).get(NAME_ANNOTATION)
    return bool(name) and any(name == str(r) for r in refs)


def _keep_untagged(entries: list[dict[str, Any]], before: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """An image that lost its last tag stays, untagged (Docker's ``<none>``)."""
    present = {e.get("digest") for e in entries}
    for old in before:
        if old.get("digest") not in present:
            entries.append({k: v for k, v in old.items() if k != "annotations"})
            present.add(old.get("digest"))
    return entries
