"""Images: build a Dockerfile, look at the image, save it as a docker-save archive and as an
OCI layout, load it into a second store (another machine's), and check both stores.

Runs on the simulated host (profile from WINCONTAINERS_SIM, default ws2019); on a Windows
container host pass --real to use the Host Compute Service itself.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

from wincontainers import Host
from wincontainers.build import build

HELLO = Path(__file__).resolve().parent / "dockerfiles" / "hello"


def main() -> int:
    host = Host.open() if "--real" in sys.argv else Host.open(sim=os.environ.get("WINCONTAINERS_SIM", "ws2019"))
    work = Path(tempfile.mkdtemp(prefix="wincontainers-images-"))
    result = build(host, HELLO, tags=["hello:1"])
    image = result.image
    print(f"built {image.short_id} ({', '.join(image.repo_tags)}): {len(image.diff_ids)} layers, "
          f"{result.cache_hits} of {len(result.steps)} steps from the cache")
    for entry in image.history:
        print(f"  {entry.get('created_by', '')[:70]}")

    archive = host.images.save(["hello:1"], work / "hello.tar")   # `docker load -i hello.tar` reads it
    layout = host.images.save(["hello:1"], work / "hello-oci", format="oci")
    print(f"saved {archive.name} ({archive.stat().st_size} bytes) and the OCI layout {layout.name}/")

    other = host.image_store(work / "other-store")   # what another machine's store would be
    loaded = other.load(archive)
    print(f"loaded into a second store: {[i.repo_tags for i in loaded.images]}, "
          f"{loaded.layers_imported} layer(s) imported")
    with host.containers.create(other.layer_folders(loaded.images[0]), image_command=False) as c:
        c.start()
        text = c.run(r"cmd /c type C:\app\app.txt", text=True).stdout.strip()
        print(f"a container of the loaded image reads: {text!r}")
        c.stop()
    print(f"fsck: {host.images.fsck().summary()} / {other.fsck().summary()}")
    for store in (other, host.images):
        for each in store.list():
            store.remove(each.id, force=True)
        store.gc()
    return 0


if __name__ == "__main__":
    sys.exit(main())
