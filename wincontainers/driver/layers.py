"""The vmcompute layer API (process isolation), shared by every generation.

gen1 and gen2 only have this; gen3 hosts keep it for NameToGuid and for the sandbox of a
process-isolated container, as hcsshim does on 1809+. Layers are addressed by absolute folder
path with ``DriverInfo.HomeDir = ""`` (hcsshim's convention); parent chains are nearest first.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Sequence

from wincontainers import errors
from wincontainers._native.library import Binding, NativeDll, unwrap
from wincontainers.driver.base import BaseImageInfo, LayerRef
from wincontainers.driver.common import check

__all__ = ["VmcomputeLayers"]

ERROR_INSUFFICIENT_BUFFER = 0x8007007A


class VmcomputeLayers:
    def __init__(self, binding: Binding, *, pass_parent_id: bool) -> None:
        self.binding = binding
        self.vm: NativeDll = binding.vmcompute
        self._info = binding.driver_info("")
        self._pass_parent_id = pass_parent_id

    def _subject(self, path: str) -> str:
        return errors.subject_for("layer", path)

    def _descriptors(self, parents: Sequence[LayerRef]) -> tuple[Any, int]:
        return self.binding.layer_descriptors([(p.id, p.path) for p in parents])

    def name_to_guid(self, name: str) -> uuid.UUID:
        if not name:
            raise errors.BadInput("NameToGuid needs a non-empty name")
        hr, guid = self.vm.call("NameToGuid", name)
        check("NameToGuid", hr, subject=f"name {name!r}")
        return guid  # type: ignore[no-any-return]

    def base_images(self) -> list[BaseImageInfo]:
        hr, data = self.vm.call("GetBaseImages")
        check("GetBaseImages", hr)
        doc = json.loads(data) if data else {}
        images = doc.get("Images") or [] if isinstance(doc, dict) else []
        return [
            BaseImageInfo(
                name=str(i.get("Name", "")), version=str(i.get("Version", "")), path=str(i.get("Path", "")),
                size=int(i.get("Size") or 0), created=str(i.get("CreatedTime", "")),
            )
            for i in images if isinstance(i, dict)
        ]

    def layer_exists(self, path: str) -> bool:
        hr, exists = self.vm.call("LayerExists", self._info, path)
        check("LayerExists", hr, subject=self._subject(path), ids=[path])
        return bool(exists)

    def create_sandbox(self, path: str, parents: Sequence[LayerRef]) -> None:
        descs, n = self._descriptors(parents)
        parent_id = parents[0].path if (self._pass_parent_id and parents) else None
        hr = self.vm.call("CreateSandboxLayer", self._info, path, parent_id, descs, n)[0]
        check("CreateSandboxLayer", hr, subject=self._subject(path), ids=[path, *(p.path for p in parents)])

    def expand_sandbox(self, path: str, size: int) -> None:
        """ExpandSandboxSize (Server 2016 and later): the sandbox's volume grows to at least ``size``."""
        if not self.vm.has("ExpandSandboxSize"):
            raise errors.NotSupported("ExpandSandboxSize", subject=self._subject(path), generation=self.binding.generation,
                                      alternative="TP3 sandboxes have the size HCS gives them: leave the size out")
        hr = self.vm.call("ExpandSandboxSize", self._info, path, size)[0]
        check("ExpandSandboxSize", hr, subject=self._subject(path), ids=[path])

    def activate_layer(self, path: str) -> None:
        check("ActivateLayer", self.vm.call("ActivateLayer", self._info, path)[0], subject=self._subject(path),
              ids=[path])

    def prepare_layer(self, path: str, parents: Sequence[LayerRef]) -> None:
        descs, n = self._descriptors(parents)
        hr = self.vm.call("PrepareLayer", self._info, path, descs, n)[0]
        check("PrepareLayer", hr, subject=self._subject(path), ids=[path, *(p.path for p in parents)])

    def unprepare_layer(self, path: str) -> None:
        check("UnprepareLayer", self.vm.call("UnprepareLayer", self._info, path)[0], subject=self._subject(path),
              ids=[path])

    def deactivate_layer(self, path: str) -> None:
        check("DeactivateLayer", self.vm.call("DeactivateLayer", self._info, path)[0], subject=self._subject(path),
              ids=[path])

    def destroy_layer(self, path: str) -> None:
        check("DestroyLayer", self.vm.call("DestroyLayer", self._info, path)[0], subject=self._subject(path),
              ids=[path])

    def import_layer(self, path: str, folder: str, parents: Sequence[LayerRef]) -> None:
        """ImportLayer: a transport folder into a new layer at ``path``."""
        descs, n = self._descriptors(parents)
        hr = self.vm.call("ImportLayer", self._info, path, folder, descs, n)[0]
        check("ImportLayer", hr, subject=self._subject(path), ids=[path, folder, *(p.path for p in parents)])

    def export_layer(self, path: str, folder: str, parents: Sequence[LayerRef], writable: bool = False) -> None:
        """ExportLayer: a layer (a sandbox: its changes) into a transport folder."""
        descs, n = self._descriptors(parents)
        hr = self.vm.call("ExportLayer", self._info, path, folder, descs, n)[0]
        check("ExportLayer", hr, subject=self._subject(path), ids=[path, folder, *(p.path for p in parents)])

    def process_base_image(self, path: str) -> None:
        """ProcessBaseImage (Server 2016+): hives and scratch templates of a base layer.

        TP3 has no such call (its base images come installed in the central store): there
        the layer is used as written.
        """
        if not self.vm.has("ProcessBaseImage"):
            return
        check("ProcessBaseImage", self.vm.call("ProcessBaseImage", path)[0], subject=self._subject(path), ids=[path])

    def process_utility_image(self, path: str) -> None:
        if not self.vm.has("ProcessUtilityImage"):
            return
        check("ProcessUtilityImage", self.vm.call("ProcessUtilityImage", path)[0], subject=self._subject(path),
              ids=[path])

    def layer_mount_path(self, path: str) -> str:
        """GetLayerMountPath's two-call protocol: ask the length, then fill a buffer."""
        fn = self.vm.logged("GetLayerMountPath")
        ffi = self.vm.ffi
        info = unwrap(self._info)
        wpath = ffi.new("char16_t[]", path)
        length = ffi.new("UINT64 *")
        for _ in range(3):  # the path could change between the calls; retry a couple of times
            hr = fn(info, wpath, length, ffi.NULL) & 0xFFFFFFFF
            check("GetLayerMountPath", hr, subject=self._subject(path), ids=[path])
            n = int(length[0])
            if n <= 1:
                return ""
            buf = ffi.new("char16_t[]", n)
            hr = fn(info, wpath, length, buf) & 0xFFFFFFFF
            if hr == ERROR_INSUFFICIENT_BUFFER:
                continue
            check("GetLayerMountPath", hr, subject=self._subject(path), ids=[path])
            return str(ffi.string(buf))
        raise errors.HcsError("GetLayerMountPath", ERROR_INSUFFICIENT_BUFFER, subject=self._subject(path))

