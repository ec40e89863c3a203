"""Images: the store (OCI layout over layer folders), references, and images from elsewhere
(the host's OS images, Docker's windowsfilter store)."""

from wincontainers.images.reference import Reference, parse_reference
from wincontainers.images.store import FsckReport, GcReport, Image, ImageNotFound, ImageStore, LayerRecord, chain_id

__all__ = ["Reference", "parse_reference", "Image", "ImageStore", "ImageNotFound", "LayerRecord", "FsckReport",
           "GcReport", "chain_id"]
