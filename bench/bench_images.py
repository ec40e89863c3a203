"""Image work on the simulated host: cached rebuilds, and save/load against skopeo.

1. **Cached rebuild**: ``examples/dockerfiles/hello`` is built once, then rebuilt ``--rebuilds``
   times with nothing changed; printed: the time per step of the first build and of a cached
   rebuild (best of the rebuilds), and their ratio. A cached rebuild runs no container.
2. **Save and load** of one image with a layer of ``--size-mib`` MiB (files of random bytes),
   against ``skopeo copy`` of the same image in the same run:
   - save: ``save()`` to a docker-save archive, vs ``skopeo copy oci:<layout> docker-archive:<tar>``
     (skopeo reads the OCI layout we wrote and writes the same kind of archive);
   - load: ``load()`` of that archive into an empty store (which checks and imports the layer
     into a layer folder, as ``docker load`` does), vs ``skopeo copy docker-archive:<tar> oci:<dir>``
     (which only copies blobs).
   Each is run ``--rounds`` times, interleaved, best time kept; printed as MiB/s and ratio.

    python bench/bench_images.py [--size-mib 256] [--rounds 3] [--rebuilds 3] [--profile ws2019]
"""

from __future__ import annotations

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from wincontainers import Host  # noqa: E402
from wincontainers.build.builder import build  # noqa: E402
from wincontainers.images.archive import load, save  # noqa: E402
from wincontainers.images.config import derive_config  # noqa: E402
from wincontainers.layerfile import EntryKind, LayerEntry, LayerWriter  # noqa: E402
from wincontainers.sim.control import SimulatedHost  # noqa: E402

TIME = 132_000_000_000_000_000


def _entry(name: str, kind: EntryKind, size: int = 0) -> LayerEntry:
    return LayerEntry(name, kind, size=size, attributes=0x10 if kind is EntryKind.DIRECTORY else 0x20,
                      creation_time=TIME, last_access_time=TIME, last_write_time=TIME, change_time=TIME)


def big_layer(path: Path, size: int) -> None:
    block = os.urandom(1 << 20)
    with LayerWriter(path) as w:
        w.add(_entry("Files", EntryKind.DIRECTORY), None)
        w.add(_entry("Files/data", EntryKind.DIRECTORY), None)
        per_file = 64 << 20
        for i in range(max(1, size // per_file)):
            n = min(per_file, size - i * per_file)
            data = io.BytesIO(block * (n // len(block)) + block[: n % len(block)])
            w.add(_entry(f"Files/data/f{i:03d}.bin", EntryKind.FILE, n), data)
        w.add(_entry("Hives", EntryKind.DIRECTORY), None)


def cached_rebuild(host: Host, rebuilds: int) -> None:
    example = ROOT / "examples" / "dockerfiles" / "hello"
    quiet = lambda _t: None  # noqa: E731
    first = build(host, example, tags=["bench:hello"], no_cache=True, output=quiet)
    best = None
    for _ in range(rebuilds):
        again = build(host, example, tags=["bench:hello"], output=quiet)
        assert again.containers_run == 0 and again.image.id == first.image.id
        per_step = sum(s.seconds for s in again.steps) / len(again.steps)
        best = per_step if best is None else min(best, per_step)
    assert best is not None
    first_per_step = sum(s.seconds for s in first.steps) / len(first.steps)
    print(f"build of examples/dockerfiles/hello: {len(first.steps)} steps, {first.containers_run} container(s)")
    print(f"  first build      {first_per_step * 1000:9.1f} ms/step")
    print(f"  cached rebuild   {best * 1000:9.1f} ms/step   (0 containers; {first_per_step / best:.0f}x faster)")


def save_load(host: Host, work: Path, size: int, rounds: int) -> None:
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        raise SystemExit("skopeo is needed as the reference (apt-get install skopeo)")
    store = host.images
    base = store.resolve("windowsservercore")
    tar = work / "big.tar"
    big_layer(tar, size)
    with store.lease() as lease:
        layer = store.add_layer(tar, store.get_layer(base.top_chain_id), lease=lease)  # type: ignore[arg-type]
        image = store.add(derive_config(base.config, diff_id=layer.diff_id, created_by="bench"),
                          store.layer_chain(base) + [layer], tags=["bench:big"])
    layout = save(store, ["bench:big"], work / "layout", format="oci")
    mib = sum(r.size for r in store.layer_chain(image)) / (1 << 20)
    times: dict[str, float] = {}

    def best(name: str, seconds: float) -> None:
        times[name] = min(times.get(name, float("inf")), seconds)

    for _ in range(rounds):
        out = work / "ours.tar"
        start = time.perf_counter()
        save(store, ["bench:big"], out)
        best("save", time.perf_counter() - start)
        ref = work / "skopeo.tar"
        ref.unlink(missing_ok=True)
        start = time.perf_counter()
        subprocess.run([skopeo, "copy", "-q", f"oci:{layout}:big", f"docker-archive:{ref}:bench:big"], check=True)
        best("skopeo save", time.perf_counter() - start)

        other = host.image_store(work / "other")
        start = time.perf_counter()
        load(other, out)
        best("load", time.perf_counter() - start)
        for loaded in other.list():
            other.remove(loaded.id, force=True, prune=False)
        other.gc()
        shutil.rmtree(work / "other")
        dest = work / "skopeo-oci"
        shutil.rmtree(dest, ignore_errors=True)
        start = time.perf_counter()
        subprocess.run([skopeo, "copy", "-q", f"docker-archive:{out}", f"oci:{dest}:big"], check=True)
        best("skopeo load", time.perf_counter() - start)
    print(f"save/load of an image of {mib:.0f} MiB, best of {rounds}:")
    for ours, reference in (("save", "skopeo save"), ("load", "skopeo load")):
        print(f"  {ours:5} {mib / times[ours]:8.1f} MiB/s   skopeo copy {mib / times[reference]:8.1f} MiB/s"
              f"   ratio (time ours / skopeo) {times[ours] / times[reference]:.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rebuilds", type=int, default=3)
    parser.add_argument("--profile", default="ws2019")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-images-"))
    try:
        with SimulatedHost(args.profile, work / "sim"):
            host = Host.open(sim=args.profile, root=work / "sim")
            cached_rebuild(host, args.rebuilds)
            save_load(host, work, args.size_mib << 20, args.rounds)
            host.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
