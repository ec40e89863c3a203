"""Push and pull throughput against ``skopeo copy``, to the same registry in the same run.

An image of the host's base and two layers of ``--size-mib`` / 2 MiB each (files of random
bytes) is pushed to a private docker-registry on 127.0.0.1 and pulled back, ``--rounds`` times,
interleaved with skopeo moving the same image (from the OCI layout ``save`` wrote) to and from
the same registry; best time kept, printed as MiB/s and as the ratio ours / skopeo.

- push: ``host.images.push`` to a new repository (blobs sent whole, three at a time) vs
  ``skopeo copy oci:<layout> docker://<registry>/<new repository>``;
- pull: ``host.images.pull`` into an empty store (downloads, digests checked, then each layer
  checked again and imported into a layer folder, as ``docker pull`` does) vs
  ``skopeo copy docker://... oci:<dir>`` (blobs copied only).

Each round uses new repositories, no mount from an earlier one (our store forgets where blobs
went; skopeo runs with an empty HOME, so its blob cache is empty too).

    python bench/bench_registry.py [--size-mib 256] [--rounds 2] [--profile ws2019]
"""

from __future__ import annotations

import argparse
import importlib.util
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
from wincontainers.images.archive import save  # noqa: E402
from wincontainers.images.config import derive_config  # noqa: E402
from wincontainers.sim.control import SimulatedHost  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from bench_images import big_layer  # noqa: E402


def _private_registry() -> object:
    """examples/registry.py's private_registry (a docker-registry for the run)."""
    spec = importlib.util.spec_from_file_location("registry_example", ROOT / "examples" / "registry.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.private_registry()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--profile", default="ws2019")
    args = parser.parse_args()
    skopeo = shutil.which("skopeo")
    if skopeo is None:
        raise SystemExit("skopeo is needed as the reference (apt-get install skopeo)")
    work = Path(tempfile.mkdtemp(prefix="bench-registry-"))
    try:
        with SimulatedHost(args.profile, work / "sim"):
            host = Host.open(sim=args.profile, root=work / "sim")
            store = host.images
            base = store.resolve("windowsservercore")
            records = store.layer_chain(base)
            with store.lease() as lease:
                for n in range(2):
                    tar = work / f"layer{n}.tar"
                    big_layer(tar, (args.size_mib << 20) // 2)
                    records.append(store.add_layer(tar, records[-1], lease=lease))
                config = dict(base.config)
                for record in records[1:]:
                    config = derive_config(config, diff_id=record.diff_id, created_by="bench")
                image = store.add(config, records, tags=["bench:big"])
            layout = save(store, ["bench:big"], work / "layout", format="oci")
            mib = sum((store.blob_path(r.blob).stat().st_size if r.blob else r.size) for r in records) / (1 << 20)
            times: dict[str, float] = {}
            env = dict(os.environ, HOME=str(work / "skopeo-home"))
            for n in range(args.rounds):
                with _private_registry() as registry:  # type: ignore[attr-defined]  # empty: nothing to mount or skip
                    for name, seconds in _round(n, registry, host, image.id, layout, work, env, skopeo).items():
                        times[name] = min(times.get(name, float("inf")), seconds)
            print(f"push/pull of an image of {mib:.0f} MiB ({len(records)} layers), best of {args.rounds}:")
            for ours_name, reference in (("push", "skopeo push"), ("pull", "skopeo pull")):
                print(f"  {ours_name:5} {mib / times[ours_name]:8.1f} MiB/s   skopeo copy {mib / times[reference]:8.1f} "
                      f"MiB/s   ratio (time ours / skopeo) {times[ours_name] / times[reference]:.2f}")
            host.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _round(n: int, registry: str, host: Host, image_id: str, layout: Path, work: Path, env: dict[str, str],
           skopeo: str) -> dict[str, float]:
    """Push and pull, ours then skopeo's, on a registry of its own; the seconds of each."""
    store = host.images
    ours = f"{registry}/bench/ours{n}:big"
    store.tag(image_id, ours)
    out: dict[str, float] = {}
    start = time.perf_counter()
    store.push(ours, allow_nondistributable=True)
    out["push"] = time.perf_counter() - start
    shutil.rmtree(env["HOME"], ignore_errors=True)
    start = time.perf_counter()
    subprocess.run([skopeo, "copy", "-q", "--dest-tls-verify=false", f"oci:{layout}:big",
                    f"docker://{registry}/bench/theirs{n}:big"], check=True, env=env)
    out["skopeo push"] = time.perf_counter() - start
    other = host.image_store(work / f"other{n}")
    start = time.perf_counter()
    other.pull(ours)
    out["pull"] = time.perf_counter() - start
    for pulled in other.list():
        other.remove(pulled.id, force=True, prune=False)
    other.gc()
    dest = work / f"skopeo-oci{n}"
    shutil.rmtree(env["HOME"], ignore_errors=True)
    start = time.perf_counter()
    subprocess.run([skopeo, "copy", "-q", "--src-tls-verify=false", f"docker://{ours}", f"oci:{dest}:big"],
                   check=True, env=env)
    out["skopeo pull"] = time.perf_counter() - start
    shutil.rmtree(dest, ignore_errors=True)
    store.remove(ours, force=False, prune=False)
    return out


if __name__ == "__main__":
    main()
