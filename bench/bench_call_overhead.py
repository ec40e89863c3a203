"""Per-call overhead of the binding and driver layers, against a raw cffi call.

For each simulator profile, the same simulated function is called three ways in one process:

* raw:     the bare cffi function, with the caller doing what the binding does for it
           (passing the str, reading the out value, freeing a returned string);
* binding: ``NativeDll.call`` (marshalling plan, allocator-aware string copy and free);
* driver:  the driver method a library user reaches (errors checked, result parsed).

Rounds are interleaved and the best round counts, so machine noise hits all three alike.
``NameToGuid`` needs no service (the simulated DLL computes it, a fraction of a microsecond),
so its rows show what the binding and the driver add per call: the ``+µs`` columns (binding -
raw, driver - raw). The other functions go to the simulated service, whose round trip hides
those microseconds; their ratios are what a real call costs end to end.

    python bench/bench_call_overhead.py [--calls 2000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from wincontainers import Host  # noqa: E402
from wincontainers.sim.control import SimulatedHost  # noqa: E402


def best_per_call(fns: dict[str, Callable[[], object]], calls: int, rounds: int) -> dict[str, float]:
    best = {name: float("inf") for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            best[name] = min(best[name], (time.perf_counter() - start) / calls)
    return best


def cases(host: Host) -> dict[str, dict[str, Callable[[], object]]]:
    vm = host.binding.vmcompute
    ffi = vm.ffi
    guid = ffi.new("GUID *")
    name_to_guid = vm.raw("NameToGuid")
    out = ffi.new("PWSTR *")
    base_images = vm.raw("GetBaseImages")
    free = vm.free_string

    def raw_base_images() -> object:
        base_images(out)
        text = ffi.string(out[0])
        free(out[0])
        return text

    result = {
        "NameToGuid": {
            "raw": lambda: (name_to_guid("layer-0123456789", guid), bytes(ffi.buffer(guid, 16))),
            "binding": lambda: vm.call("NameToGuid", "layer-0123456789"),
            "driver": lambda: host.driver.name_to_guid("layer-0123456789"),
        },
        "GetBaseImages": {
            "raw": raw_base_images,
            "binding": lambda: vm.call("GetBaseImages"),
            "driver": lambda: host.driver.base_images(),
        },
    }
    if host.generation == 3:
        cc = host.binding.computecore
        props = cc.raw("HcsGetServiceProperties")
        cell = cc.ffi.new("PWSTR *")

        def raw_props() -> object:
            props(cc.ffi.NULL, cell)
            text = cc.ffi.string(cell[0])
            cc.free_string(cell[0])
            return text

        result["HcsGetServiceProperties"] = {
            "raw": raw_props,
            "binding": lambda: cc.call("HcsGetServiceProperties", None),
            "driver": lambda: host.driver.service_properties(),
        }
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--profiles", nargs="*", default=["tp3", "2016", "ws2019"])
    args = ap.parse_args()
    print(f"{'profile':<8} {'function':<24} {'raw µs':>8} {'binding µs':>11} {'+µs':>6} {'ratio':>6} "
          f"{'driver µs':>10} {'+µs':>6} {'ratio':>6}")
    with tempfile.TemporaryDirectory(prefix="wc-bench-") as tmp:
        for profile in args.profiles:
            sim = SimulatedHost(profile, Path(tmp) / profile).start()
            try:
                host = Host.open(sim=profile, root=sim.root)
                for function, fns in cases(host).items():
                    for fn in fns.values():  # warm up (first-use plans, connection)
                        fn()
                    t = best_per_call(fns, args.calls, args.rounds)
                    raw, binding, driver = t["raw"] * 1e6, t["binding"] * 1e6, t["driver"] * 1e6
                    print(f"{profile:<8} {function:<24} {raw:8.2f} {binding:11.2f} {binding - raw:6.2f} "
                          f"{binding / raw:6.2f} {driver:10.2f} {driver - raw:6.2f} {driver / raw:6.2f}")
            finally:
                sim.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
