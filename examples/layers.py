"""Layers: a container's changes exported as a Windows layer tar, imported again as a layer, and
a container run from it; then the kind of layer that broke the blog's import, refused with the
files named.

Runs on the simulated host (profile from WINCONTAINERS_SIM, default ws2019); on a Windows
container host pass --real to use the Host Compute Service itself.
"""

from __future__ import annotations

import base64
import io
import os
import sys
import tempfile
from pathlib import Path

from wincontainers import Host
from wincontainers.layerfile import EntryKind, LayerEntry, LayerWriter, check_layer
from wincontainers.layers import LayerRejected


def cygwin_like_layer() -> bytes:
    """A layer with a WSL/LX symlink, as Cygwin's installer leaves behind."""
    lx_symlink = bytes.fromhex("1d0000a00c000000") + (2).to_bytes(4, "little") + b"vim.basic"
    out = io.BytesIO()
    with LayerWriter(out) as tar:
        tar.add(LayerEntry("Files", EntryKind.DIRECTORY, attributes=0x10), None)
        tar.add(LayerEntry("Files/cygwin64", EntryKind.DIRECTORY, attributes=0x10), None)
        tar.add(LayerEntry("Files/cygwin64/vi", EntryKind.FILE, attributes=0x420,
                           pax_extra={"WINCONTAINERS.reparse": base64.b64encode(lx_symlink).decode()}),
                io.BytesIO())
        tar.add(LayerEntry("Hives", EntryKind.DIRECTORY, attributes=0x10), None)
    return out.getvalue()


# cmd lines, the same on Windows and on the simulated host (whose containers run its cmd).
WRITE = 'cmd /S /C "mkdir app && echo hello from a layer> app\\hello.txt"'
READ = 'cmd /S /C "type C:\\app\\hello.txt"'


def main() -> int:
    host = Host.open() if "--real" in sys.argv else Host.open(sim=os.environ.get("WINCONTAINERS_SIM", "ws2019"))
    base = next(image for image in host.base_images() if image.name.lower() == "windowsservercore")
    work = Path(tempfile.mkdtemp(prefix="wincontainers-layers-"))

    with host.containers.create("windowsservercore", name=f"layers-{os.getpid()}") as container:
        container.start()
        container.run(WRITE, check=True)
        container.stop()
        changes = host.layers.export_tar(container.id, work / "changes.tar")
        print(f"exported the container's changes: {changes.entries} entries, {changes.size} bytes, {changes.diff_id}")

    layer = host.layers.import_tar(work / "changes.tar", parents=[base.path])
    print(f"imported as layer {layer.short_id} over {base.name}")
    try:
        with host.containers.create([str(layer.path), base.path], name=f"from-layer-{os.getpid()}") as container:
            container.start()
            print(f"a container from it reads: {container.run(READ).stdout.decode().strip()!r}")
            container.stop()
    finally:
        host.layers.destroy(layer)

    report = check_layer(io.BytesIO(cygwin_like_layer()))
    print(f"checking a Cygwin-like layer: {len(report.errors)} error(s)")
    try:
        host.layers.import_tar(io.BytesIO(cygwin_like_layer()), parents=[base.path])
    except LayerRejected as refused:
        for finding in refused.report.errors:
            print(f"  refused: {finding.path}: {finding.advice}")
    print(f"layers left: {len(host.layers.list())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
