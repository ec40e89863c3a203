"""Layers, sandbox volumes and base images of the simulated host.

Layers are folders, as on Windows: ``Files/``, ``Hives/``; a sandbox (read-write) layer holds
its volume in ``sandbox.vhdx`` (a folder here, a VHD on Windows) plus ``wcsim-sandbox.json``.
``ActivateLayer`` gives a sandbox a volume GUID (``\\\\?\\Volume{...}\\``); ``PrepareLayer``
fills the volume with the merged view of its parents (base first, nearer layers on top, their
whiteouts applied), once. The volume folder is the container's ``C:\\``.

Base images live in the central store ``<root>/Images/CN=Microsoft_<Name>_<version>`` as on TP3,
and are listed by ``GetBaseImages``.
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import hashlib
import json
import os
import shutil
import stat
import struct
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Optional, Sequence

import attrs

from wincontainers.layerfile.reparse import encode_reparse
from wincontainers.sim import hive, layerio, ntfs
from wincontainers.sim.faults import Fail
from wincontainers.sim.ntfs import SANDBOX_VOLUME, FileMeta, NtfsStore

__all__ = ["Storage", "name_to_guid", "SANDBOX_VOLUME", "SANDBOX_META"]

SANDBOX_META = "wcsim-sandbox.json"

# The simulator's own NameToGuid namespace. Windows' algorithm is undocumented (hcs-api.md
# pitfall 11): the GUIDs have the same shape (version 5, RFC variant) but not the same values.
_NAME_NAMESPACE = uuid.UUID("6f2b4c1e-3d5a-5b7e-9c10-8a2b3c4d5e6f")

E_INVALIDARG = 0x80070057
ERROR_PATH_NOT_FOUND = 0x80070003
ERROR_ALREADY_EXISTS = 0x800700B7
ERROR_SHARING_VIOLATION = 0x80070020
ERROR_INVALID_STATE = 0xC0370105
ERROR_INVALID_LAYER = 0xC0370112
E_UNEXPECTED = 0x8000FFFF


def name_to_guid(name: str) -> bytes:
    """A version-5 GUID of the UTF-16BE name, as 16 bytes in Windows memory layout."""
    digest = hashlib.sha1(_NAME_NAMESPACE.bytes + name.encode("utf-16-be", "surrogatepass")).digest()
    return uuid.UUID(bytes=digest[:16], version=5).bytes_le


def guid_text(raw: bytes) -> str:
    d1, d2, d3 = struct.unpack_from("<IHH", raw)
    return f"{d1:08x}-{d2:04x}-{d3:04x}-{raw[8:10].hex()}-{raw[10:16].hex()}"


@attrs.define
class Volume:
    guid: str
    layer: Path
    refs: int = 1
    prepared: bool = False

    @property
    def content(self) -> Path:
        return self.layer / SANDBOX_VOLUME

    @property
    def mount_path(self) -> str:
        return f"\\\\?\\Volume{{{self.guid}}}\\"


_BASE_IMAGES = (
    # (Name, central-store publisher/name part)
    ("WindowsServerCore", "Microsoft_WindowsServerCore"),
    ("NanoServer", "Microsoft_NanoServer"),
)

_BASE_FILES = {
    "Windows/System32/cmd.exe": b"MZ simulated cmd.exe\n",
    "Windows/System32/tasklist.exe": b"MZ simulated tasklist.exe\n",
    "Windows/System32/hostname.exe": b"MZ simulated hostname.exe\n",
    "Windows/System32/drivers/etc/hosts": b"127.0.0.1 localhost\r\n",
    "Windows/win.ini": b"; for 16-bit app support\r\n",
    "ProgramData/.keep": b"",
    "Users/Public/.keep": b"",
    "Program Files/.keep": b"",
}
_BASE_HIVES = ("DEFAULT", "SAM", "SECURITY", "SOFTWARE", "SYSTEM")
# The compatibility junctions every Windows base image carries, to absolute targets outside it.
_JUNCTIONS = {
    "Documents and Settings": "C:\\Users",
    "Users/All Users": "C:\\ProgramData",
    "ProgramData/Application Data": "C:\\ProgramData",
}
# What the simulated host's own C: drive holds where those junctions lead.
_HOST_DRIVE = {
    "Users/Public/Documents/desktop.ini": b"[.ShellClassInfo]\r\n",
    "Users/Administrator/NTUSER.DAT": b"regf (the host's own profile)",
    "ProgramData/Microsoft/Windows/host-only.txt": b"this file is the host's, not any image's\n",
}
_HIDDEN_SYSTEM = 0x2 | 0x4


class Storage:
    """Daemon-side layer state; every method is called with the service lock held."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.images_root = root / "Images"
        self.volumes: dict[str, Volume] = {}
        self.vm_disks: dict[Path, str] = {}  # sandbox folder -> the utility VM its disk is attached to
        self._lock = threading.Lock()
        for rel, data in _HOST_DRIVE.items():
            path = root / rel
            if not path.exists():
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)

    # -- paths ------------------------------------------------------------------------------

    @staticmethod
    def layer_path(driver_info: Sequence[Any], layer_id: Optional[str]) -> Path:
        if not layer_id:
            raise Fail(E_INVALIDARG, "the layer id is empty")
        home = driver_info[1] if driver_info else ""
        path = Path(home) / layer_id if home else Path(layer_id)
        if not path.is_absolute():
            raise Fail(E_INVALIDARG, f"layer path {str(path)!r} is not absolute")
        return path

    def volume_for_layer(self, path: Path) -> Optional[Volume]:
        for vol in self.volumes.values():
            if vol.layer == path:
                return vol
        return None

    def volume_from_path(self, volume_path: str) -> Optional[Volume]:
        text = volume_path.strip().rstrip("\\")
        prefix = "\\\\?\\Volume{"
        if not text.startswith(prefix) or not text.endswith("}"):
            return None
        return self.volumes.get(text[len(prefix) : -1].lower())

    # -- the layer API ------------------------------------------------------------------------

    def exists(self, path: Path) -> bool:
        return path.is_dir()

    def create_layer(self, path: Path) -> None:
        if path.exists():
            raise Fail(ERROR_ALREADY_EXISTS, f"layer folder {path} already exists")
        path.mkdir(parents=True)
        (path / "Files").mkdir()
        (path / "Hives").mkdir()

    def create_sandbox(self, path: Path, parents: Sequence[Sequence[Any]]) -> None:
        if path.exists() and any(path.iterdir()):
            raise Fail(ERROR_ALREADY_EXISTS, f"layer folder {path} already exists")
        parent_paths = self.check_descriptors(parents)
        path.mkdir(parents=True, exist_ok=True)
        (path / SANDBOX_VOLUME).mkdir()
        meta = {"parents": [str(p) for p in parent_paths], "size": 20 * 1024**3, "created": time.time()}
        (path / SANDBOX_META).write_text(json.dumps(meta))

    def destroy(self, path: Path, running_volumes: set[str]) -> None:
        if not path.exists():
            raise Fail(ERROR_PATH_NOT_FOUND, f"layer folder {path} does not exist")
        vol = self.volume_for_layer(path)
        if vol is not None:
            raise Fail(ERROR_SHARING_VIOLATION, f"layer {path} is still activated (volume {vol.guid})")
        self._not_in_a_vm(path)
        _remove_tree(path)
        ntfs.forget_locations()
        ntfs.shared_view(path).remove("")  # rows kept above the folder, when it had no store of its own

    def activate(self, path: Path) -> None:
        if not path.is_dir():
            raise Fail(ERROR_PATH_NOT_FOUND, f"layer folder {path} does not exist")
        if not (path / SANDBOX_META).exists():
            return  # read-only layers are used in place
        self._not_in_a_vm(path)
        vol = self.volume_for_layer(path)
        if vol is not None:
            vol.refs += 1
            return
        guid = str(uuid.uuid4())
        self.volumes[guid] = Volume(guid=guid, layer=path)

    def deactivate(self, path: Path, running_volumes: set[str]) -> None:
        vol = self.volume_for_layer(path)
        if vol is None:
            if not path.is_dir():
                raise Fail(ERROR_PATH_NOT_FOUND, f"layer folder {path} does not exist")
            return
        if vol.guid in running_volumes:
            raise Fail(ERROR_SHARING_VIOLATION, f"volume of {path} is in use by a running compute system")
        vol.refs -= 1
        if vol.refs <= 0:
            del self.volumes[vol.guid]

    def prepare(self, path: Path, parents: Sequence[Sequence[Any]]) -> None:
        vol = self.volume_for_layer(path)
        if vol is None:
            raise Fail(ERROR_INVALID_STATE, f"layer {path} must be activated before PrepareLayer")
        self._fill(path, self.check_descriptors(parents))
        vol.prepared = True

    def _fill(self, path: Path, parent_paths: Sequence[Path]) -> None:
        """A sandbox's volume gets the merged view of its parents once, on its first mount
        (by the host's PrepareLayer, or by a utility VM that attached its disk)."""
        meta_file = path / SANDBOX_META
        meta = json.loads(meta_file.read_text()) if meta_file.exists() else {}
        if meta.get("prepared"):
            return
        vstore = NtfsStore(path / layerio.VOLUME_STORE)
        try:
            with vstore.batch():
                for depth, parent in enumerate(reversed(parent_paths)):
                    # The bottom layer is the base (whole); every other one is a diff layer.
                    layerio.overlay(parent, path / SANDBOX_VOLUME, vstore, diff=depth > 0)
        finally:
            vstore.close()
        layerio.record_prepared_view(path, path / SANDBOX_VOLUME)
        meta["prepared"] = True
        meta["parents"] = [str(p) for p in parent_paths]
        meta_file.write_text(json.dumps(meta))

    # -- a sandbox's disk attached to a utility VM (Hyper-V isolation) ----------------------

    def attach_to_vm(self, path: Path, parent_paths: Sequence[Path], vm_id: str) -> Path:
        """A utility VM attaches a sandbox's disk and mounts it with its parents inside; the
        folder that plays the container's C: is returned. A disk is attached once: while the
        host has it mounted (ActivateLayer), or another VM holds it, it is in use."""
        if not (path / SANDBOX_META).is_file():
            raise Fail(ERROR_PATH_NOT_FOUND, f"{path} is not a sandbox layer (no sandbox disk to attach)")
        if self.volume_for_layer(path) is not None:
            raise Fail(ERROR_SHARING_VIOLATION, f"the disk of sandbox {path} is mounted on the host (ActivateLayer); "
                                                "a utility VM cannot attach it")
        holder = self.vm_disks.get(path)
        if holder is not None and holder != vm_id:
            raise Fail(ERROR_SHARING_VIOLATION, f"the disk of sandbox {path} is attached to utility VM {holder}")
        self._fill(path, parent_paths)
        self.vm_disks[path] = vm_id
        return path / SANDBOX_VOLUME

    def detach_from_vms(self, vm_id: str) -> None:
        for path in [p for p, holder in self.vm_disks.items() if holder == vm_id]:
            del self.vm_disks[path]

    def _not_in_a_vm(self, path: Path) -> None:
        holder = self.vm_disks.get(path)
        if holder is not None:
            raise Fail(ERROR_SHARING_VIOLATION, f"the disk of sandbox {path} is attached to utility VM {holder}")

    def export_source(self, path: Path, running_volumes: set[str]) -> Optional[Path]:
        """For ExportLayer: the volume whose changes to export (a sandbox), or None (a read-only
        layer). A sandbox that is still mounted or used by a running container cannot be
        exported: vmcompute answers E_UNEXPECTED, "Catastrophic failure"."""
        if not path.is_dir():
            raise Fail(ERROR_PATH_NOT_FOUND, f"layer folder {path} does not exist")
        if not (path / SANDBOX_META).exists():
            return None
        vol = self.volume_for_layer(path)
        if vol is None:
            raise Fail(ERROR_INVALID_STATE, f"sandbox {path} must be activated before ExportLayer")
        if vol.guid in running_volumes or vol.prepared:
            raise Fail(E_UNEXPECTED, f"sandbox {path} is still mounted (prepared) or used by a running container")
        return vol.content

    def unprepare(self, path: Path) -> None:
        vol = self.volume_for_layer(path)
        if vol is not None:
            vol.prepared = False

    def mount_path(self, path: Path) -> str:
        vol = self.volume_for_layer(path)
        if vol is not None:
            return vol.mount_path
        if not path.is_dir():
            raise Fail(ERROR_PATH_NOT_FOUND, f"layer folder {path} does not exist")
        return ""

    def check_descriptors(self, descriptors: Sequence[Sequence[Any]]) -> list[Path]:
        paths = []
        for guid, _flags, layer_path in descriptors:
            if not layer_path:
                raise Fail(E_INVALIDARG, "a layer descriptor has no path")
            p = Path(layer_path)
            if not p.is_dir():
                raise Fail(ERROR_PATH_NOT_FOUND, f"parent layer {p} does not exist")
            want = name_to_guid(p.name)
            if guid is None or guid.raw != want:
                got = guid_text(guid.raw) if guid is not None else "none"
                raise Fail(
                    ERROR_INVALID_LAYER,
                    f"layer descriptor for {p} has LayerId {got}, but NameToGuid({p.name!r}) is {guid_text(want)}",
                )
            paths.append(p)
        return paths

    # -- base images ------------------------------------------------------------------------

    def base_images(self, build: int, *, utility_vm: bool = False) -> list[dict[str, Any]]:
        """The central store's OS images of ``build``; with ``utility_vm`` (a build that has
        Hyper-V containers) each holds the utility VM image Hyper-V isolation boots."""
        version = f"10.0.{build}.0"
        images = []
        with self._lock:
            for name, folder_name in _BASE_IMAGES:
                folder = self.images_root / f"CN={folder_name}_{version}"
                if not folder.exists():
                    _write_base_image(folder, name, version)
                if utility_vm and not (folder / "UtilityVM").exists():
                    write_utility_vm(folder / "UtilityVM", version)
                size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
                images.append({
                    "Name": name,
                    "Version": version,
                    "Path": str(folder),
                    "Size": size,
                    "CreatedTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(folder.stat().st_mtime)),
                })
        return images


def _files_tree(folder: Path, files: dict[str, bytes], license_text: str) -> Path:
    """A temporary sibling of ``folder`` with ``Files/`` holding ``files`` and a license, to be
    completed, then renamed into place (a half-written image is never seen)."""
    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    for rel, data in files.items():
        f = tmp / "Files" / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(data)
    (tmp / "Files" / "Windows" / "System32" / "license.rtf").write_text(license_text)
    return tmp


def _write_base_image(folder: Path, name: str, version: str) -> None:
    """A small Windows base image: the tools the simulated cmd provides, the registry hives (its
    SOFTWARE hive names its build) and the compatibility junctions, with its own NTFS store."""
    tmp = _files_tree(folder, _BASE_FILES, f"{name} {version} (simulated)\n")
    build = int(version.split(".")[2])
    config = tmp / "Files" / "Windows" / "System32" / "config"
    config.mkdir(parents=True, exist_ok=True)
    (tmp / "Hives").mkdir(parents=True)
    for hive_name in _BASE_HIVES:
        data = hive.software_hive(build, f"{name} (simulated)") if hive_name == "SOFTWARE" else hive.empty_hive(hive_name)
        (config / hive_name).write_bytes(data)
        (tmp / "Hives" / f"{hive_name}_BASE").write_bytes(data)
    store = NtfsStore.at(tmp)
    try:
        with store.batch():
            for rel, target in _JUNCTIONS.items():
                (tmp / "Files" / rel).mkdir(parents=True, exist_ok=True)
                store.put(f"Files/{rel}", FileMeta(
                    attributes=0x10 | 0x400 | _HIDDEN_SYSTEM, reparse=encode_reparse(target, junction=True)))
            _freeze_times(tmp, "", store, build)
    finally:
        store.close()
    os.replace(tmp, folder)


def image_time(build: int) -> int:
    """The FILETIME every entry of a simulated OS image of ``build`` carries: each host of that
    build has the same image, byte for byte, as every host that pulled it from Microsoft does
    (so its layer has one diff ID everywhere)."""
    return 131_000_000_000_000_000 + build * 10_000_000


def _freeze_times(layer: Path, below: str, store: NtfsStore, build: int) -> None:
    """Give ``layer/below`` and every entry under it (``below=""``: all of the layer, not its
    root) the image's fixed times."""
    when = image_time(build)
    top = layer / below if below else layer
    names = [below] if below else []
    for folder, dirs, files in os.walk(top):
        names += [os.path.relpath(os.path.join(folder, name), layer).replace(os.sep, "/")
                  for name in dirs + files if not name.startswith(".wcsim")]
    for rel in names:
        meta = store.get(rel) or FileMeta()
        meta.creation = meta.access = meta.write = meta.change = when
        store.put(rel, meta)


#: What a utility VM image holds here: the boot manager HCS boots over VSMB (hcsshim's
#: ``\\EFI\\Microsoft\\Boot\\bootmgfw.efi``) and a few system files.
UVM_BOOT_FILE = "EFI/Microsoft/Boot/bootmgfw.efi"
_UVM_FILES = {
    UVM_BOOT_FILE: b"MZ simulated bootmgfw.efi\n",
    "Windows/System32/cmd.exe": b"MZ simulated cmd.exe (utility VM)\n",
    "Windows/System32/vmcompute-guest.exe": b"MZ simulated guest compute service\n",
}


def write_utility_vm(folder: Path, version: str) -> None:
    """``<base layer>/UtilityVM``: ``Files/`` (the VM's own Windows) and the scratch templates
    that ProcessUtilityImage makes (``SystemTemplate.vhdx`` is copied as each VM's scratch)."""
    tmp = _files_tree(folder, _UVM_FILES, f"utility VM {version} (simulated)\n")
    for template in ("SystemTemplateBase.vhdx", "SystemTemplate.vhdx"):
        (tmp / template).write_bytes(b"vhdxfile (simulated)\n")
    os.replace(tmp, folder)
    store = NtfsStore.at(folder.parent)  # the base image's store: its entries are UtilityVM/...
    try:
        with store.batch():
            _freeze_times(folder.parent, folder.name, store, int(version.split(".")[2]))
    finally:
        store.close()


def base_image_build(folder: Path) -> Optional[int]:
    """The build a central-store image's folder name states (``CN=..._10.0.<build>.0``)."""
    if not folder.name.startswith("CN="):
        return None
    version = folder.name.rsplit("_", 1)[-1].split(".")
    return int(version[2]) if len(version) == 4 and version[2].isdigit() else None


def _remove_tree(path: Path) -> None:
    def onerror(func: Any, p: str, exc: Any) -> None:
        try:
            os.chmod(p, stat.S_IRWXU)
            func(p)
        except OSError:
            pass

    shutil.rmtree(path, onerror=onerror)
