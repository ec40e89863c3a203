"""Images: the store (OCI layout over layer folders), references, and images from elsewhere
(the host's OS images, Docker's windowsfilter store). Loaded on first use (PEP 562)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wincontainers._lazy import exports

_LAZY = {
    "Reference": "wincontainers.images.reference",
    "parse_reference": "wincontainers.images.reference",
    "ImageStore": "wincontainers.images.store",
    **{name: "wincontainers.images.model" for name in ("BaseImage", "FsckReport", "GcReport", "Image", "ImageNotFound",
                                                         "LayerRecord", "chain_id")},
}

if TYPE_CHECKING:
    from wincontainers.images.reference import Reference, parse_reference
    from wincontainers.images.model import BaseImage, FsckReport, GcReport, Image, ImageNotFound, LayerRecord, chain_id
    from wincontainers.images.store import ImageStore

__all__ = ["Reference", "parse_reference", "BaseImage", "Image", "ImageStore", "ImageNotFound", "LayerRecord", "FsckReport",
           "GcReport", "chain_id"]

__getattr__, __dir__ = exports(__name__, _LAZY)
