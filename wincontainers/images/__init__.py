"""Images: the store (OCI layout over layer folders), references, and images from elsewhere
(the host's OS images, Docker's windowsfilter store). Loaded on first use (PEP 562)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from wincontainers._lazy import exports

_LAZY = {
    "Reference": "wincontainers.images.reference",
    "parse_reference": "wincontainers.images.reference",
    **{name: "wincontainers.images.store" for name in ("FsckReport", "GcReport", "Image", "ImageNotFound",
                                                         "ImageStore", "LayerRecord", "chain_id")},
}

if TYPE_CHECKING:
    from wincontainers.images.reference import Reference, parse_reference
    from wincontainers.images.store import FsckReport, GcReport, Image, ImageNotFound, ImageStore, LayerRecord, chain_id

__all__ = ["Reference", "parse_reference", "Image", "ImageStore", "ImageNotFound", "LayerRecord", "FsckReport",
           "GcReport", "chain_id"]

__getattr__, __dir__ = exports(__name__, _LAZY)
