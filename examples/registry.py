"""Images through a registry: build an image, push it, remove it here, pull it back, run it.

It starts a private registry on this machine for the example (Debian's docker-registry, the
CNCF distribution server, on 127.0.0.1 with a temporary store); give --registry HOST:PORT to
use one that runs already. Runs on the simulated host (profile from WINCONTAINERS_SIM, default
ws2019); on a Windows container host pass --real.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Iterator

from wincontainers import Host
from wincontainers.build import build

EXAMPLE = Path(__file__).resolve().parent / "dockerfiles" / "hello"


@contextlib.contextmanager
def private_registry() -> Iterator[str]:
    """docker-registry on a free 127.0.0.1 port, its store in a temporary folder."""
    binary = shutil.which("docker-registry")
    if binary is None:
        raise SystemExit("this example needs a registry: install docker-registry (Debian) or give --registry")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory(prefix="wincontainers-registry-") as root:
        config = Path(root) / "config.yml"
        config.write_text(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {root}/store\n"
                          f"http:\n  addr: 127.0.0.1:{port}\n")
        proc = subprocess.Popen([binary, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        raise SystemExit("docker-registry did not start") from None
                    time.sleep(0.05)
            yield f"127.0.0.1:{port}"
        finally:
            proc.terminate()
            proc.wait(10)


def main() -> int:
    host = Host.open() if "--real" in sys.argv else Host.open(sim=os.environ.get("WINCONTAINERS_SIM", "ws2019"))
    given = sys.argv[sys.argv.index("--registry") + 1] if "--registry" in sys.argv else None
    with contextlib.nullcontext(given) if given else private_registry() as registry:
        name = f"{registry}/examples/hello:1"
        image = build(host, EXAMPLE, tags=[name], output=lambda _text: None).image
        print(f"built {name} ({image.short_id})")
        # The host's Windows OS layer is not distributable: a private registry may take it
        digest = host.images.push(name, allow_nondistributable=True)
        print(f"pushed: {digest}")
        host.images.remove(name, force=True)
        print(f"removed here; in the store: {[t.familiar for i in host.images.list() for t in i.tags if 'hello' in str(t)]}")
        pulled = host.images.pull(name)
        print(f"pulled: {pulled.manifest_digest} (the same: {pulled.manifest_digest == digest})")
        result = host.containers.run(name, pulled.config["config"]["Cmd"])
        print(f"output: {result.stdout.decode().strip()!r}")
        host.images.remove(name, force=True)
        host.images.gc()
    host.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
