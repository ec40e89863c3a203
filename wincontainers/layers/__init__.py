"""Layer objects: import and export layer tars, sandboxes, mounting (``host.layers``)."""

from wincontainers.layers.collection import ExportRefused, ExportResult, Layer, LayerCollection, LayerRejected

__all__ = ["ExportRefused", "ExportResult", "Layer", "LayerCollection", "LayerRejected"]
