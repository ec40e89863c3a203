"""Layers of a host: import a tar, export a tar, sandboxes, mounting, removal.

``host.layers.import_tar(path, parents=[...])`` reads the tar once, checking each entry
(:mod:`~wincontainers.layers.checked`, the rules of :func:`~wincontainers.layerfile.check_layer`)
before it writes it: a base layer in place (then ProcessBaseImage), or a diff layer through
vmcompute's import folder and ImportLayer (HcsImportLayer on 1809+), then hard links, deletions
and directory times as hcsshim does. A rejected tar, or any failure, removes the partial layer
(renamed first, so an interrupted removal never leaves a half layer under its real id).

Why one file: every layer and sandbox lifecycle step (import, export, create, mount, remove, clean-
up) shares one retry policy and one rename-before-destroy rule; this module is their single owner.
"""

from __future__ import annotations

import builtins
import contextlib
import io
import itertools
import json
import logging
import os
import secrets
import stat
import threading
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Iterator, Optional, Sequence, Union

import attrs

from wincontainers import errors
from wincontainers.display import Cell, RichDisplay, Shown, Value, badge, human_size, short_id, when
from wincontainers._native import win32
from wincontainers._native.layerfs import LayerFolder, remove_tree
from wincontainers.statefiles import StateFiles, read_optional_json
from wincontainers.driver.base import LayerRef
from wincontainers.layerfile import DEFAULT_LIMITS, LayerReader, LayerWriter, TarLimits
from wincontainers.layerfile.codec import SourceChanged, open_source
from wincontainers.layerfile.entry import EntryKind, LayerEntry
from wincontainers.layerfile.validate import REPARSE_EXTENSION, LayerChecker
from wincontainers.layers.checked import CheckedEntries, LayerRejected
from wincontainers.rollback import Rollback
from wincontainers import aio
from wincontainers.progress import ProgressLike, check_progress, operation_progress, progress_for
from wincontainers.layers.folder_entries import read_tree
from wincontainers.layers.transcode import BaseLayerWriter, PendingWork, TransportWriter
from wincontainers.layers.utility_vm import UVM, UtilityVmWriter, parent_utility_vm, utility_vm_changes

if TYPE_CHECKING:
    from wincontainers._native.win32 import Win32
    from wincontainers.driver import Driver
    from wincontainers.records import RecordStore

__all__ = ["Layer", "LayerCollection", "LayerRejected", "ExportRefused", "ExportResult"]

LayerLike = Union["Layer", str, os.PathLike]  # type: ignore[type-arg]
#: what layer import and export enable on the process token (backup intent, SACLs)
LAYER_PRIVILEGES = ("SeBackupPrivilege", "SeRestorePrivilege", "SeSecurityPrivilege")
log = logging.getLogger("wincontainers.layers")


class ExportRefused(errors.WincontainersError):
    """The layer holds something a layer tar cannot carry (e.g. WSL/LX symlinks); nothing was written."""

    def __init__(self, layer: str, paths: Sequence[str]) -> None:
        self.paths = list(paths)
        shown = ", ".join(self.paths[:10]) + (f" and {len(self.paths) - 10} more" if len(self.paths) > 10 else "")
        super().__init__(
            f"layer {layer} cannot be exported as a Windows layer tar: {shown} "
            f"{'is a reparse point' if len(self.paths) == 1 else 'are reparse points'} of a kind HCS cannot import "
            "(WSL/LX symlinks, as Cygwin, MSYS and WSL create them). Replace them with Windows symlinks or copies, "
            "or export with unsupported_reparse='keep' (kept in a WINCONTAINERS.reparse record) or 'skip'"
        )


@attrs.frozen
class Layer(RichDisplay):
    """A layer folder of this host."""

    id: str
    path: Path
    parents: tuple[Path, ...] = ()
    kind: str = "diff"  # "base", "diff" or "sandbox"
    diff_id: Optional[str] = None
    size: Optional[int] = None
    created: Optional[float] = None
    #: who made it: "images" for the image store's layers (it may collect them), None otherwise
    owner: Optional[str] = None

    @property
    def short_id(self) -> str:
        return self.id[:12]

    def row(self) -> tuple[Value, ...]:
        """The row a table of layers shows."""
        return (short_id(self.id), badge(self.kind), human_size(self.size), len(self.parents),
                short_id(self.diff_id), when(self.created))

    def _shown_(self) -> Shown:
        return Shown("Layer", short_id(self.id), state=self.kind, fields=(
            ("size", human_size(self.size)), ("diff ID", short_id(self.diff_id, 19)),
            ("parents", len(self.parents)), ("created", when(self.created)),
            ("folder", Cell(self.path.name[:24] + ("..." if len(self.path.name) > 24 else ""), title=str(self.path))),
            ("made by", self.owner)))


LAYER_COLUMNS = ("ID", "Kind", "Size", "Parents", "Diff ID", "Created")


@attrs.frozen
class ExportResult:
    diff_id: str
    size: int
    entries: int
    compressed_size: int


def _read_chain(files: StateFiles, path: Path) -> tuple[Path, ...]:
    data = read_optional_json(files, path / "layerchain.json")
    return tuple(Path(p) for p in data if isinstance(p, str)) if isinstance(data, list) else ()


class LayerCollection(RichDisplay):
    """``host.layers``: every layer and sandbox operation, over the driver and the host's files.

    What it needs of a container is asked through ``container_status`` (its id -> ``created``,
    ``running``, ``paused``, ``exited``), which the host wires to its container collection: layers
    sit below containers and never import them.
    """

    def __init__(self, driver: "Driver", win32: "Win32", files: StateFiles, root: Path, info_dir: Path,
                 records: "RecordStore", container_status: Callable[[str], str]) -> None:
        self.driver = driver
        self.win32 = win32
        self.root = root
        self.files = files
        self.info_dir = info_dir
        self.records = records
        self.container_status = container_status
        self.files.makedirs(self.info_dir)

    # -- lookup --------------------------------------------------------------------------------

    def _layer_at(self, path: Path) -> Layer:
        doc = read_optional_json(self.files, self.info_dir / f"{path.name}.json")
        info: dict[str, Any] = doc if isinstance(doc, dict) else {}
        chain = _read_chain(self.files, path)
        if self.files.exists(path / "sandbox.vhdx") or self.files.exists(path / "wcsim-sandbox.json"):
            kind = "sandbox"
        else:
            kind = info.get("kind") or ("diff" if chain else "base")
        owner = info.get("owner")
        return Layer(id=path.name, path=path, parents=chain, kind=kind, diff_id=info.get("diff_id"),
                     size=info.get("size"), created=info.get("created"), owner=owner if isinstance(owner, str) else None)

    def get(self, ref: LayerLike) -> Layer:
        """A layer by id (or unique prefix), folder path, or Layer."""
        if isinstance(ref, Layer):
            return ref
        text = os.fspath(ref)
        if not text:
            raise errors.BadInput("empty layer reference")
        path = Path(text)
        if path.is_absolute():
            if not self.files.is_dir(path):
                raise errors.NotFound("get", subject=errors.subject_for("layer", text), message="no such layer folder")
            return self._layer_at(path)
        if "/" in text or "\\" in text:
            raise errors.BadInput(f"a layer is named by its id or an absolute folder path, not {text!r}")
        exact = self.root / text
        if self.files.is_dir(exact):
            return self._layer_at(exact)
        matches = [p for p in self._folders() if p.name.startswith(text)]
        if len(matches) == 1:
            return self._layer_at(matches[0])
        if len(matches) > 1:
            raise errors.BadInput(f"{text!r} matches {len(matches)} layers; give more of the id")
        raise errors.NotFound("get", subject=f"layer {text!r}", message="no such layer",
                              hint="`wincontainers layer ls` lists the layers")

    def exists(self, ref: LayerLike) -> bool:
        try:
            self.get(ref)
            return True
        except errors.NotFound:
            return False

    def _folders(self) -> builtins.list[Path]:
        return sorted(self.root / e.name for e in self.files.entries(self.root)
                      if e.is_dir and not e.name.endswith("-removing") and not e.name.startswith("."))

    def _shown_(self) -> Shown:
        return Shown.table("Layers", LAYER_COLUMNS, (layer.row() for layer in self.list()), empty="no layer")

    def list(self) -> builtins.list[Layer]:
        return [self._layer_at(p) for p in self._folders()]

    def ref(self, layer: Union[LayerLike, LayerRef]) -> LayerRef:
        """What HCS calls take for a layer: its GUID and folder (a LayerRef is taken as it is)."""
        if isinstance(layer, LayerRef):
            return layer
        found = self.get(layer)
        return LayerRef(self.driver.name_to_guid(found.path.name), str(found.path))

    def _refs(self, parents: Sequence[Union[LayerLike, LayerRef]]) -> builtins.list[LayerRef]:
        return [self.ref(p) for p in parents]

    # -- import --------------------------------------------------------------------------------

    def import_tar(
        self,
        source: Union[str, "os.PathLike[str]", IO[bytes]],
        parents: Sequence[LayerLike] = (),
        *,
        base: Optional[bool] = None,
        check: bool = True,
        progress: ProgressLike = None,
        on_folder: Optional[Callable[[Path], None]] = None,
        limits: TarLimits = DEFAULT_LIMITS,
        owner: Optional[str] = None,
    ) -> Layer:
        """Import a layer tar (plain, gzip or zstd) as a new layer over ``parents`` (nearest first).

        With no parents it is a base layer unless ``base=False``. The tar is read once, each entry
        checked before it is written. Raises :class:`LayerRejected` (with the full report) when
        the check finds errors (``check=False``: only those that would write, delete or link
        outside the layer), and nothing of the import is kept;
        :class:`~wincontainers._native.win32.PrivilegeNotHeld` when this process cannot enable
        SeBackupPrivilege, SeRestorePrivilege and SeSecurityPrivilege (not elevated).
        ``on_folder`` is told the new folder's path before it is created (the image store
        records it, so a killed import's folder can be found and removed). ``limits`` bound what
        the tar may ask (entries, size, extended headers); raise them for a larger layer.
        ``owner`` is kept with the layer (:attr:`Layer.owner`): the image store marks its own.
        """
        shown = _source_name(source)
        self.win32.require_privileges(*LAYER_PRIVILEGES, task=f"importing {shown} as a layer")
        with errors.during(f"importing {shown}"):
            parent_refs = self._refs(parents)
        is_base = (not parent_refs) if base is None else base
        if is_base and parent_refs:
            raise errors.BadInput("a base layer has no parents")
        with _opened(source) as (stream, total):
            layer_id = secrets.token_hex(32)
            target = self.root / layer_id
            if on_folder is not None:
                on_folder(target)
            checker = LayerChecker(source=shown, parents=[Path(r.path) for r in parent_refs], base=is_base)
            # A diff import's hash reads the file again, behind the copy, and overlaps ImportLayer;
            # a base import has nothing after the copy to overlap, so its hash takes the bytes read.
            hash_from = source if not is_base and isinstance(source, (str, os.PathLike)) else None
            try:
                with errors.during(f"importing {shown} as {'base ' if is_base else ''}layer {layer_id[:12]}"), \
                        progress_for(progress, total=total, desc=f"import {layer_id[:12]}") as callback, \
                        LayerReader(stream, progress=callback, limits=limits, opened_from=hash_from) as reader:
                    entries = CheckedEntries(reader, checker, check=check)
                    if is_base:
                        size = self._import_base(entries, target)
                    else:
                        size = self._import_diff(entries, target, parent_refs)
                    try:
                        diff_id = reader.diff_id
                    except SourceChanged as exc:
                        raise errors.BadInput(f"layer file {shown}: {exc}; nothing of it was kept") from None
                    LayerFolder(self.win32, target).write_bytes(
                        "layerchain.json", json.dumps([r.path for r in parent_refs] or None,
                                                      separators=(",", ":")).encode())
                info = {"diff_id": diff_id, "size": size, "created": time.time(), "kind": "base" if is_base else "diff"}
                if owner is not None:
                    info["owner"] = owner
                self._write_info(layer_id, info)
            except BaseException:
                self._discard_quietly(target)
                raise
        return self.get(layer_id)

    async def import_tar_async(
        self,
        source: Union[str, "os.PathLike[str]", IO[bytes]],
        parents: Sequence[LayerLike] = (),
        *,
        progress: ProgressLike = None,
        **options: Any,
    ) -> Layer:
        """:meth:`import_tar`, awaited (same arguments; it runs on the shared pool of
        :mod:`wincontainers.aio`). Cancelling the awaiting task stops the import at its next
        piece of data and keeps nothing of it; the cancellation completes once the partial
        layer is removed."""
        check_progress(progress)

        def run(cancel: threading.Event) -> Layer:
            with operation_progress(progress, desc="import") as shared:
                def report(done: int, files: int) -> None:
                    if cancel.is_set():
                        raise errors.Cancelled("the layer import was cancelled; nothing of it was kept")
                    if shared is not None:
                        shared(done, files)

                return self.import_tar(source, parents, progress=report, **options)

        return await aio.call_cancellable(run, undo=self.destroy)

    def _import_base(self, entries: CheckedEntries, target: Path) -> int:
        folder = LayerFolder(self.win32, target, create=True)
        writer = BaseLayerWriter(folder)
        size = 0
        try:
            for entry, data in entries:
                writer.add(entry, data)
                if entry.kind is EntryKind.FILE:
                    size += entry.size
            pending = writer.close()
        except BaseException:
            writer.abort()
            raise
        self._apply_pending(folder, pending, writer.added, [])
        self.driver.process_base_image(str(target))
        if pending.has_utility_vm:
            self.driver.process_utility_image(str(target / "UtilityVM"))
        return size

    def _staging(self, kind: str) -> Path:
        """A new staging folder of this process (``.import-<pid>-...``), made with CreateDirectoryW."""
        path = self.root / f".{kind}-{os.getpid()}-{secrets.token_hex(6)}"
        self.win32.create_directory(win32.long_path(path))
        return path

    def _import_diff(self, entries: CheckedEntries, target: Path, parents: Sequence[LayerRef]) -> int:
        """Files and Hives through vmcompute's transport folder; a utility VM (a clone of the
        parent's with the tar's changes, :mod:`~wincontainers.layers.utility_vm`) in a staging
        folder of its own, moved into the layer after ImportLayer and prepared there."""
        staging = self._staging("import")
        size = 0
        parent_folders = [LayerFolder(self.win32, p.path) for p in parents]
        uvm_staging = staging / "uvm"
        uvm: Optional[UtilityVmWriter] = None
        try:
            writer = TransportWriter(LayerFolder(self.win32, staging / "transport", create=True))
            try:
                for entry, data in entries:
                    if entry.name.startswith("UtilityVM"):
                        if uvm is None:
                            uvm = UtilityVmWriter(LayerFolder(self.win32, uvm_staging, create=True),
                                                  parent_utility_vm(parent_folders), target.name)
                        uvm.add(entry, data)
                    else:
                        writer.add(entry, data)
                    if entry.kind is EntryKind.FILE:
                        size += entry.size
                pending = writer.close(parent_folders)
                if uvm is not None:
                    uvm.close()
            except BaseException:
                writer.abort()
                if uvm is not None:
                    uvm.abort()
                raise
            self.driver.import_layer(str(target), str(staging / "transport"), parents)
            self._apply_pending(LayerFolder(self.win32, target), pending, writer.added, parent_folders)
            if uvm is not None:
                self.win32.move(win32.long_path(uvm_staging / UVM), win32.long_path(target / UVM))
                self.driver.process_utility_image(str(target / UVM))
        finally:
            self._remove_quietly(staging)
        return size

    def _apply_pending(self, folder: LayerFolder, pending: PendingWork, added: set[str],
                       parent_folders: Sequence[LayerFolder]) -> None:
        """What ImportLayer does not do, in hcsshim's order: deletions, then hard links (each
        replacing what ImportLayer left at its name), then the folders' times again."""
        for deleted in pending.tombstones:
            _nolink_on_the_way(folder, deleted, "a deletion")
            folder.remove(deleted)
        for name, link_target in pending.hardlinks:
            _nolink_on_the_way(folder, name, "a hard link")
            if link_target.lower() in added:
                owner = folder
                _nolink_on_the_way(folder, link_target, "a hard link's target")
            else:
                owner = next((p for p in parent_folders
                              if link_on_the_way(p, link_target) is None and p.is_file(link_target)),
                             None)  # type: ignore[assignment]
            if owner is None:
                raise errors.NotFound("import", subject=errors.subject_for("layer", Path(folder.root).name),
                                      message=f"hard link {name} -> {link_target}: the target is neither in this "
                                              "layer nor in a parent layer")
            folder.hardlink(name, owner, link_target)
        for name, times in reversed(pending.directory_times):  # children before parents
            if folder.exists(name):
                folder.set_times(name, times)

    # -- export --------------------------------------------------------------------------------

    def export_tar(
        self,
        layer: LayerLike,
        dest: Union[str, "os.PathLike[str]", IO[bytes]],
        *,
        compression: str = "none",
        unsupported_reparse: str = "error",
        progress: ProgressLike = None,
    ) -> ExportResult:
        """Write ``layer`` as a Windows layer tar (a sandbox: the container's changes).

        ``unsupported_reparse``: what to do with reparse points a tar cannot carry (WSL/LX
        symlinks): ``"error"`` (default: :class:`ExportRefused`, naming them), ``"keep"`` (in a
        ``WINCONTAINERS.reparse`` record, which :func:`check_layer` reports) or ``"skip"``.
        """
        if unsupported_reparse not in ("error", "keep", "skip"):
            raise errors.BadInput("unsupported_reparse is 'error', 'keep' or 'skip'")
        if compression not in ("none", "gzip", "zstd"):
            raise errors.BadInput("compression is 'none', 'gzip' or 'zstd'")
        found = self.get(layer)
        self.win32.require_privileges("SeBackupPrivilege", "SeSecurityPrivilege",
                                           task=f"exporting layer {found.short_id}")
        to_path = isinstance(dest, (str, os.PathLike))
        partial = Path(os.fspath(dest) + ".partial") if to_path else None  # type: ignore[arg-type]
        try:
            with errors.during(f"exporting layer {found.short_id}"), self._exported_tree(found) as (folder, transport), \
                    progress_for(progress, desc=f"export {found.short_id}") as callback:
                refused: builtins.list[str] = []
                out = partial if partial is not None else dest
                with LayerWriter(out, compression=compression, progress=callback) as writer:
                    # the export folder is ours alone: each file goes as it is read
                    for entry, data in itertools.chain(read_tree(folder, transport=transport, consume=transport),
                                                       self._utility_vm_changes(found)):
                        if REPARSE_EXTENSION in entry.pax_extra:
                            refused.append(entry.name)
                            if unsupported_reparse != "keep":
                                continue
                        writer.add(entry, data)
                    entries = writer.files
                if refused and unsupported_reparse == "error":
                    raise ExportRefused(found.id, refused)
            if partial is not None:
                os.replace(partial, os.fspath(dest))  # type: ignore[arg-type]
                compressed = os.path.getsize(os.fspath(dest))  # type: ignore[arg-type]
            else:
                compressed = writer.bytes_written
            return ExportResult(writer.diff_id, writer.bytes_written, entries, compressed)
        finally:
            if partial is not None and partial.exists():
                partial.unlink()

    def _utility_vm_changes(self, layer: Layer) -> Iterator[tuple[LayerEntry, Optional[IO[bytes]]]]:
        """A diff layer's utility VM, as what differs from its parent's (a base layer's is in
        its tree already; a sandbox never has one)."""
        if layer.kind != "diff":
            return iter(())
        parents = [LayerFolder(self.win32, p) for p in layer.parents]
        return utility_vm_changes(LayerFolder(self.win32, layer.path), parent_utility_vm(parents))

    @contextlib.contextmanager
    def _exported_tree(self, layer: Layer) -> Iterator[tuple[LayerFolder, bool]]:
        if layer.kind == "base":
            yield LayerFolder(self.win32, layer.path), False
            return
        staging = self._staging("export")
        try:
            export = staging / "export"
            self.win32.create_directory(win32.long_path(export))  # ExportLayer writes into an existing folder
            parents = self._refs([str(p) for p in layer.parents])
            with self._unprepared(layer, parents):
                self.driver.export_layer(str(layer.path), str(export), parents,
                                              writable=layer.kind == "sandbox")
            yield LayerFolder(self.win32, export), True
        finally:
            self._remove_quietly(staging)

    @contextlib.contextmanager
    def _unprepared(self, layer: Layer, parents: Sequence[LayerRef]) -> Iterator[None]:
        """A sandbox is exported activated but not prepared (hcs-api.md pitfall 14).

        A container's sandbox stays prepared while the container exists: when the container is
        not running, it is unprepared for the export and prepared again afterwards; a running
        (or paused) container is refused here, with advice, instead of vmcompute's bare
        "Catastrophic failure".
        """
        if layer.kind != "sandbox":
            yield
            return
        driver = self.driver
        path = str(layer.path)
        owned = self.records.exists(layer.id)
        if owned:
            state = self.container_status(layer.id)
            if state in ("running", "paused"):
                raise errors.InvalidState(
                    "export", subject=errors.subject_for("container", layer.id),
                    message=f"the container is {state}; its sandbox changes while it runs",
                    hint="stop the container first (wincontainers stop), then export or commit it")
            if state == "created":
                raise errors.InvalidState(
                    "export", subject=errors.subject_for("container", layer.id),
                    message="the container was created but has not run: its compute system holds the sandbox",
                    hint="start it and let it exit (or stop it), then export or commit it")
        was_mounted = bool(driver.layer_mount_path(path))
        if not was_mounted:
            driver.activate_layer(path)
        elif owned:
            driver.unprepare_layer(path)
        try:
            yield
        finally:
            if not was_mounted:
                driver.deactivate_layer(path)
            elif owned:
                driver.prepare_layer(path, parents)


    # -- sandboxes and mounting ------------------------------------------------------------------

    def create_sandbox(self, parents: Sequence[Union[LayerLike, LayerRef]], *, layer_id: Optional[str] = None,
                       on_folder: Optional[Callable[[Path], None]] = None, size: Optional[int] = None) -> Layer:
        """A new read-write (scratch) layer over ``parents`` (nearest first), named ``layer_id``
        (a container's sandbox has the container's id) or a new id. ``on_folder`` is told its
        path before it is created. ``size``: its volume grows to at least that many bytes
        (ExpandSandboxSize; Docker's ``--storage-opt size=``)."""
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size <= 0):
            raise errors.BadInput("a sandbox size is a positive number of bytes")
        layer_id = layer_id or secrets.token_hex(32)
        with errors.during(f"creating sandbox layer {layer_id[:12]}"):
            refs = self._refs(parents)
            if not refs:
                raise errors.BadInput("a sandbox needs at least its base layer as parent")
            path = self.root / layer_id
            if on_folder is not None:
                on_folder(path)
            self.driver.create_sandbox(str(path), refs)
        try:
            if size is not None:
                self.driver.expand_sandbox(str(path), size)
            LayerFolder(self.win32, path).write_bytes(
                "layerchain.json", json.dumps([r.path for r in refs], separators=(",", ":")).encode())
        except BaseException:
            self._discard_quietly(path)
            raise
        return self.get(layer_id)

    @contextlib.contextmanager
    def activated(self, layer: LayerLike) -> Iterator[str]:
        """ActivateLayer for the block; yields the mount path (the folder for read-only layers)."""
        found = self.get(layer)
        driver = self.driver
        driver.activate_layer(str(found.path))
        try:
            yield driver.layer_mount_path(str(found.path)) or str(found.path)
        finally:
            driver.deactivate_layer(str(found.path))

    @contextlib.contextmanager
    def prepared(self, layer: LayerLike) -> Iterator[str]:
        """Activate and prepare a sandbox over its parents; yields its volume path."""
        mount = self.mount(layer)
        try:
            yield mount
        finally:
            self.unmount(layer)

    def mount(self, layer: LayerLike, parents: Optional[Sequence[LayerRef]] = None) -> str:
        """Activate and prepare a sandbox over its parents (``parents``, or its layerchain.json)
        and return its volume path; what this did is undone when a step fails. It stays mounted
        (a container's) until :meth:`unmount`."""
        found = self.get(layer)
        path = str(found.path)
        driver = self.driver
        refs = list(parents) if parents is not None else self._refs([str(p) for p in found.parents])
        driver.activate_layer(path)
        prepared = False
        try:
            driver.prepare_layer(path, refs)
            prepared = True
            mount = driver.layer_mount_path(path)
            if not mount:
                raise errors.HcsError("GetLayerMountPath", subject=errors.subject_for("layer", path),
                                      message="the sandbox has no volume after ActivateLayer")
            return mount
        except BaseException as exc:
            undo = Rollback(f"mounting sandbox {found.id[:12]}", log)
            undo.add(f"the activation of sandbox {found.id[:12]}", lambda: driver.deactivate_layer(path))
            if prepared:
                undo.add(f"the volume of sandbox {found.id[:12]}", lambda: driver.unprepare_layer(path))
            undo.undo(exc)
            raise

    def unmount(self, layer: LayerLike) -> None:
        """Unprepare and deactivate a sandbox :meth:`mount` mounted."""
        path = str(self.get(layer).path)
        self.driver.unprepare_layer(path)
        self.driver.deactivate_layer(path)

    # -- removal ---------------------------------------------------------------------------------

    def destroy(self, layer: LayerLike, *, force: bool = False) -> None:
        """Remove a layer: renamed first, then destroyed. Refused while other layers or a container
        use it, unless ``force``."""
        found = self.get(layer)
        if not force:
            users = [other.id[:12] for other in self.list() if found.path in other.parents]
            if users:
                raise errors.InvalidState("destroy", subject=errors.subject_for("layer", found.id),
                                          message=f"layers {', '.join(users)} are built on it",
                                          hint="remove them first, or use force=True")
            if self.records.exists(found.id):
                raise errors.InvalidState("destroy", subject=errors.subject_for("layer", found.id),
                                          message="it is the sandbox of a container",
                                          hint="remove the container (wincontainers rm)")
        self._discard(found.path)
        self.files.remove(self.info_dir / f"{found.id}.json")

    def leftovers(self) -> builtins.list[Path]:
        """What interrupted operations left in the layers folder: ``<id>-removing`` folders and
        the staging folders and spool files of processes that no longer run."""
        out = []
        for entry in self.files.entries(self.root):
            path = self.root / entry.name
            if path.name.endswith("-removing"):
                out.append(path)
            elif path.name.startswith((".import-", ".export-", ".spool-")):
                pid = path.name.split("-")[1]
                if not (pid.isdigit() and self.win32.process_alive(int(pid))):
                    out.append(path)
        return sorted(out)

    def cleanup(self) -> builtins.list[Path]:
        """Remove :meth:`leftovers` (a ``-removing`` folder through DestroyLayer)."""
        removed = []
        for path in self.leftovers():
            if path.name.endswith("-removing"):
                self._discard(path)
            elif self.files.is_dir(path):
                remove_tree(self.win32, path)
            else:
                self.files.remove(path)
            if not self.files.exists(path):
                removed.append(path)
        return removed

    def remove_sandbox(self, path: Union[str, Path]) -> None:
        """Remove a container's sandbox: unprepare, deactivate, then as :meth:`_discard` does.
        Each HCS step is tried twice (they fail transiently while the container's last processes
        exit). Done when the folder is gone; otherwise the first error is raised (the container
        record stays, so ``rm`` can be repeated)."""
        folder = Path(path)
        if self.win32.attributes(win32.long_path(folder)) is None:
            return
        failures: builtins.list[errors.HcsError] = []
        _attempt(self.driver.unprepare_layer, str(folder), failures)
        _attempt(self.driver.deactivate_layer, str(folder), failures)
        self._discard(folder, failures)

    def _discard(self, path: Path, failures: Optional[builtins.list[errors.HcsError]] = None) -> None:
        """Rename to ``<id>-removing``, then DestroyLayer (a crash leaves no half layer under the
        id; tried twice); what DestroyLayer left is removed through ``\\\\?\\`` paths. When the
        folder cannot be removed, the first HCS error met (in ``failures`` too) is raised."""
        api = self.win32
        if api.attributes(win32.long_path(path)) is None:
            return
        failures = [] if failures is None else failures
        removing = path if path.name.endswith("-removing") else path.with_name(path.name + "-removing")
        if removing != path:
            try:
                api.move(win32.long_path(path), win32.long_path(removing))
            except win32.Win32Error as exc:
                log.info("could not rename %s before removing it: %s", path.name, exc)
                removing = path
        _attempt(self.driver.destroy_layer, str(removing), failures)
        if api.attributes(win32.long_path(removing)) is not None:
            try:
                remove_tree(api, removing)
            except (win32.Win32Error, OSError):
                if failures:
                    raise failures[0] from None
                raise

    def _discard_quietly(self, path: Path) -> None:
        """:meth:`_discard` on a failure path: its own error is logged, the first one raised."""
        try:
            self._discard(path)
        except errors.WincontainersError as exc:
            log.warning("could not remove %s after a failure: %s", path, exc)

    def _remove_quietly(self, staging: Path) -> None:
        try:
            remove_tree(self.win32, staging)
        except errors.WincontainersError as exc:
            log.warning("could not remove the staging folder %s: %s", staging, exc)

    def _write_info(self, layer_id: str, info: dict[str, Any]) -> None:
        self.files.write_json(self.info_dir / f"{layer_id}.json", info)


def _source_name(source: Union[str, "os.PathLike[str]", IO[bytes]]) -> str:
    if isinstance(source, (str, os.PathLike)):
        return os.path.basename(os.fspath(source)) or os.fspath(source)
    name = getattr(source, "name", None)
    return os.path.basename(name) if isinstance(name, str) else "a layer stream"


def _attempt(step: Callable[[str], None], target: str, failures: "builtins.list[errors.HcsError]") -> None:
    """One layer step, tried twice: a step on a sandbox fails transiently while a container's
    last processes exit. Not activated, not prepared or already gone counts as done."""
    for tries in range(2):
        try:
            step(target)
            return
        except (errors.NotFound, errors.InvalidArgument):
            return
        except errors.HcsError as exc:
            log.info("%s on %s failed (try %d): %s", exc.operation, Path(target).name[:12], tries + 1, exc)
            failures.append(exc)
            time.sleep(0.05 * (tries + 1))


def link_on_the_way(folder: LayerFolder, rel: str) -> Optional[str]:
    """The first folder on the way to ``rel`` that is a link (symlink, junction), if any: Windows
    follows a link in the middle of a path whatever the flags say. The walk stops at a name that
    is missing (nothing is below it)."""
    parts = rel.split("/")[:-1]
    for depth in range(1, len(parts) + 1):
        prefix = "/".join(parts[:depth])
        attributes = folder.attributes(prefix)
        if attributes is None:
            return None
        if attributes & win32.FILE_ATTRIBUTE_REPARSE_POINT:
            return prefix
    return None


def _nolink_on_the_way(folder: LayerFolder, rel: str, what: str) -> None:
    link = link_on_the_way(folder, rel)
    if link is not None:
        raise errors.BadInput(f"{what} at {rel} goes through the link {link} in layer "
                              f"{Path(folder.root).name[:12]}: it could land outside the layer")


@contextlib.contextmanager
def _opened(source: Union[str, "os.PathLike[str]", IO[bytes]]) -> Iterator[tuple[IO[bytes], Optional[int]]]:
    """The source, opened once (the import reads it once), and its size when it is a file."""
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        try:
            opened = open(path, "rb", buffering=1 << 16)  # a large read skips the buffer: no copy through it
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise errors.BadInput(f"layer file {path!r} does not exist (or is not a file)") from None
        with opened:
            st = os.fstat(opened.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise errors.BadInput(f"layer file {path!r} is not a regular file")
            yield opened, st.st_size
        return
    handle, _ = open_source(source)
    try:
        total: Optional[int] = os.fstat(handle.fileno()).st_size - handle.tell()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        total = None
    yield handle, total
