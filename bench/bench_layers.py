"""Layer import and export on the simulated host, against GNU tar on the same content and disk.

Two layers are generated (not timed): (a) large files, 1 GiB in total by default, and (b) 50,000
small files. For each, in one run and one working directory:

* GNU tar extracts the layer tar into a folder (``tar -xf``) and creates a tar from that folder
  (``tar -cf``): the reference;
* wincontainers imports the tar as a diff layer (check, transport folder, ImportLayer or
  HcsImportLayer, hard links and deletions) and as a base layer (written in place, then
  ProcessBaseImage), and exports the diff layer again (ExportLayer, backup streams, the tar).

Each step runs in its own process, so its peak memory (``ru_maxrss``) is its own; the simulated
service does its share of an import or export in the daemon, whose peak is read from
``/proc/<pid>/status`` (VmHWM, reset before each step). Printed: seconds, the ratio to GNU tar,
the peak memory of the client and of the daemon. Steps are repeated ``--rounds`` times and the
best time counts.

    python bench/bench_layers.py [--size-mib 1024] [--files 50000] [--profile ws2019] [--rounds 1]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from wincontainers.layerfile import EntryKind, LayerEntry, LayerWriter  # noqa: E402

TIME = 132_000_000_000_000_000  # a FILETIME in 2019
SD = bytes.fromhex("0100049414000000240000000000000030000000010200000000000520000000200200000101000000000005"
                   "120000000200" "1c000100000000001400ff011f00010100000000000512000000")
CHILD = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from wincontainers import Host
op, profile, root, source, dest, base = sys.argv[2:8]
host = Host.open(sim=profile, root=root)
start = time.perf_counter()
if op == "import":
    layer = host.layers.import_tar(source, parents=[base])
    result = layer.id
elif op == "import-base":
    layer = host.layers.import_tar(source, base=True)
    result = layer.id
else:
    result = host.layers.export_tar(base, dest).diff_id
elapsed = time.perf_counter() - start
peak = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(json.dumps({"seconds": elapsed, "result": result, "peak_kib": peak}))
"""


def _entry(name: str, kind: EntryKind, size: int = 0) -> LayerEntry:
    return LayerEntry(name, kind, size=size, attributes=0x10 if kind is EntryKind.DIRECTORY else 0x20,
                      creation_time=TIME, last_access_time=TIME, last_write_time=TIME, change_time=TIME,
                      security=SD)


class _Repeat(io.RawIOBase):
    """``size`` bytes cycling through one random block (the disk sees real data, memory stays small)."""

    def __init__(self, block: bytes, size: int) -> None:
        super().__init__()
        self.block, self.left, self.pos = block, size, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: Any) -> int:
        n = min(len(b), self.left, len(self.block) - self.pos)
        b[:n] = self.block[self.pos:self.pos + n]
        self.pos = (self.pos + n) % len(self.block)
        self.left -= n
        return n


def make_large(path: Path, total: int, file_size: int = 128 << 20) -> int:
    block = os.urandom(1 << 20)
    count = max(1, total // file_size)
    with LayerWriter(path) as w:
        w.add(_entry("Files", EntryKind.DIRECTORY), None)
        w.add(_entry("Files/data", EntryKind.DIRECTORY), None)
        for i in range(count):
            size = min(file_size, total - i * file_size) if i == count - 1 else file_size
            w.add(_entry(f"Files/data/blob{i:03d}.bin", EntryKind.FILE, size), _Repeat(block, size))
        _hives(w)
    return count


def make_small(path: Path, files: int, per_dir: int = 500) -> int:
    block = os.urandom(8192)
    with LayerWriter(path) as w:
        w.add(_entry("Files", EntryKind.DIRECTORY), None)
        w.add(_entry("Files/app", EntryKind.DIRECTORY), None)
        for i in range(files):
            if i % per_dir == 0:
                w.add(_entry(f"Files/app/d{i // per_dir:04d}", EntryKind.DIRECTORY), None)
            size = 256 + (i * 7919) % 3840
            w.add(_entry(f"Files/app/d{i // per_dir:04d}/f{i:06d}.txt", EntryKind.FILE, size),
                  io.BytesIO(block[:size]))
        _hives(w)
    return files


def _hives(w: LayerWriter) -> None:
    w.add(_entry("Hives", EntryKind.DIRECTORY), None)
    for hive in ("DefaultUser_Delta", "Sam_Delta", "Security_Delta", "Software_Delta", "System_Delta"):
        w.add(_entry(f"Hives/{hive}", EntryKind.FILE, 8192), io.BytesIO(b"regf" + b"\0" * 8188))


def make_base(path: Path) -> None:
    with LayerWriter(path) as w:
        w.add(_entry("Files", EntryKind.DIRECTORY), None)
        for d in ("Files/Windows", "Files/Windows/System32", "Files/Windows/System32/config"):
            w.add(_entry(d, EntryKind.DIRECTORY), None)
        for hive in ("DEFAULT", "SAM", "SECURITY", "SOFTWARE", "SYSTEM"):
            w.add(_entry(f"Files/Windows/System32/config/{hive}", EntryKind.FILE, 4), io.BytesIO(b"regf"))


def run_measured(argv: list[str], daemon_pid: Optional[int] = None) -> tuple[float, int, Optional[int], str]:
    """(seconds, peak RSS in KiB of the process, daemon peak RSS in KiB, stdout).

    The peak is the process's VmHWM, sampled until it exits (``ru_maxrss`` would count the
    forking Python's memory too); the Python steps also report their own final VmHWM.
    """
    if daemon_pid is not None:
        _reset_peak(daemon_pid)
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _peak(proc.pid) or 0)
            time.sleep(0.005)
        elapsed = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"{argv[0]} failed ({proc.returncode}): {err.read().decode(errors='replace')[-2000:]}")
        text = out.read().decode()
    for line in text.splitlines():
        if line.startswith("{"):
            peak = max(peak, int(json.loads(line).get("peak_kib", 0)))
    return elapsed, peak, _peak(daemon_pid) if daemon_pid else None, text


def _reset_peak(pid: int) -> None:
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def _peak(pid: int) -> Optional[int]:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class Measured:
    def __init__(self) -> None:
        self.seconds = float("inf")
        self.rss = 0
        self.daemon: Optional[int] = None

    def add(self, seconds: float, rss: int, daemon: Optional[int]) -> None:
        self.seconds = min(self.seconds, seconds)
        self.rss = max(self.rss, rss)
        if daemon is not None:
            self.daemon = max(self.daemon or 0, daemon)


def bench(name: str, tar: Path, work: Path, profile: str, rounds: int) -> list[tuple[str, Measured, Measured]]:
    from wincontainers import Host
    from wincontainers.sim.control import SimulatedHost

    gnu_x, gnu_c = Measured(), Measured()
    ours_import, ours_base, ours_export = Measured(), Measured(), Measured()
    base_tar = work / "base.tar"
    make_base(base_tar)
    for _ in range(rounds):
        target = work / "gnu-x"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir()
        s, rss, _, _ = run_measured(["tar", "--warning=no-unknown-keyword", "-xf", str(tar), "-C", str(target)])
        gnu_x.add(s, rss, None)
        s, rss, _, _ = run_measured(["tar", "-cf", str(work / "gnu-c.tar"), "-C", str(target), "."])
        gnu_c.add(s, rss, None)
        shutil.rmtree(target)
        os.unlink(work / "gnu-c.tar")

        sim_root = work / "sim"
        shutil.rmtree(sim_root, ignore_errors=True)
        with SimulatedHost(profile, sim_root):
            daemon = int((sim_root / "daemon" / "daemon.pid").read_text().split()[0])
            host = Host.open(sim=profile, root=sim_root)
            base = host.layers.import_tar(base_tar)
            child = [sys.executable, "-c", CHILD, str(ROOT)]
            s, rss, d, out = run_measured(child + ["import", profile, str(sim_root), str(tar), "-", base.id], daemon)
            took = json.loads(out.strip().splitlines()[-1])
            ours_import.add(took["seconds"], rss, d)
            layer_id = took["result"]
            s, rss, d, out = run_measured(child + ["export", profile, str(sim_root), "-", str(work / "ours.tar"),
                                                   layer_id], daemon)
            ours_export.add(json.loads(out.strip().splitlines()[-1])["seconds"], rss, d)
            os.unlink(work / "ours.tar")
            host.layers.destroy(layer_id)
            s, rss, d, out = run_measured(child + ["import-base", profile, str(sim_root), str(tar), "-", "-"],
                                          daemon)
            ours_base.add(json.loads(out.strip().splitlines()[-1])["seconds"], rss, d)
            host.close()
        shutil.rmtree(sim_root, ignore_errors=True)
    return [
        (f"{name}: import (diff layer, ImportLayer) vs tar -x", ours_import, gnu_x),
        (f"{name}: import (base layer, in place) vs tar -x", ours_base, gnu_x),
        (f"{name}: export vs tar -c", ours_export, gnu_c),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024, help="total size of the large-file layer")
    parser.add_argument("--files", type=int, default=50_000, help="files in the small-file layer")
    parser.add_argument("--profile", default="ws2019", help="simulator profile (tp3, 2016, ws2019)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workdir", default=None, help="where to work (default: a temporary folder)")
    args = parser.parse_args()
    if not shutil.which("tar"):
        raise SystemExit("GNU tar is needed as the reference")
    work = Path(tempfile.mkdtemp(prefix="bench-layers-", dir=args.workdir))
    rows: list[tuple[str, Measured, Measured]] = []
    try:
        large = work / "large.tar"
        count = make_large(large, args.size_mib << 20)
        print(f"(a) {count} large files, {args.size_mib} MiB; (b) {args.files} small files; profile {args.profile}")
        rows += bench("(a) large", large, work, args.profile, args.rounds)
        large.unlink()
        small = work / "small.tar"
        make_small(small, args.files)
        rows += bench("(b) small", small, work, args.profile, args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'step':58} {'ours s':>8} {'tar s':>8} {'ratio':>6} {'ours MiB':>9} {'daemon MiB':>10} {'tar MiB':>8}")
    for label, ours, ref in rows:
        daemon = f"{ours.daemon / 1024:10.0f}" if ours.daemon is not None else f"{'-':>10}"
        print(f"{label:58} {ours.seconds:8.2f} {ref.seconds:8.2f} {ours.seconds / ref.seconds:6.2f} "
              f"{ours.rss / 1024:9.0f} {daemon} {ref.rss / 1024:8.0f}")


if __name__ == "__main__":
    main()
