"""Layer import and export on the simulated host, against GNU tar and against the floor.

Two layers are generated (not timed): (a) large files, 1 GiB in total by default, and (b)
50,000 small files (``--quick``: 128 MiB and 5,000 files, for CI's smoke run). For each, every
round runs, in one working directory:

* **GNU tar**, the reference: ``tar -xf`` of the layer tar into a folder, ``tar -cf`` of it;
* **the floor**: the same staged work the simulated host's layer API implies, with OS calls
  only (``os.copy_file_range`` for every byte of file data, the SHA-256 of the tar in one
  thread beside it, the tar's own header bytes, a minimal header walk):
  - base import: tar -> the layer folder;
  - diff import: tar -> a staging folder (a transport prefix per file), then staging -> the
    layer folder (ImportLayer's share), then staging removed;
  - export: the layer folder -> a staging folder (ExportLayer's share, its reads started 64 files
    at a time with ``POSIX_FADV_WILLNEED``, as the simulated ExportLayer starts them), then
    staging -> the tar;
* **wincontainers**: ``import_tar`` as a diff layer (check, transport folder, ImportLayer,
  hard links and deletions), as a base layer (in place, then ProcessBaseImage), and
  ``export_tar`` of the diff layer.

Rounds are paired: each round runs every step once, in the same order, and each ratio
(ours/tar, ours/floor) is taken within its round; printed are the median and the range over the
rounds. Between steps: ``sync``, then our own pages dropped (``posix_fadvise(DONTNEED)`` on
every file the run wrote; the source tar stays cached, as every step reads it), so no step
pays for another's write-back.

Where to run it: on ext4 without a journal (a common VM image; the run prints a warning) the
system time of creating files depends on how many were deleted in the minutes before, so
rounds vary by 2-5x; ``--workdir`` on a journaled file system (a loop-mounted ext4 image on the
same disk will do) gives steady figures, and tmpfs gives the CPU figures alone. On a VM whose
balloon reports free pages to the hypervisor (also warned about), a write may land on pages the
host must fault back in: stop the reporting for the run.

Columns: wall seconds; the client's user and system CPU of the timed part (measured inside the
child that runs the step, so interpreter start-up is not counted); the simulated service's
user and system CPU during the step (from ``/proc/<pid>/stat``); for the small-file layer the
client's user CPU per entry; peak memory of the client and of the daemon (VmHWM, the daemon's
reset before each step).

    python bench/bench_layers.py [--quick] [--size-mib 1024] [--files 50000] [--rounds 3]
                                 [--profile ws2019] [--json FILE]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from wincontainers.layerfile import EntryKind, LayerEntry, LayerWriter  # noqa: E402

TIME = 132_000_000_000_000_000  # a FILETIME in 2019
SD = bytes.fromhex("0100049414000000240000000000000030000000010200000000000520000000200200000101000000000005"
                   "120000000200" "1c000100000000001400ff011f00010100000000000512000000")
TICK = os.sysconf("SC_CLK_TCK")


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


# -- the floor: the same staged work, OS calls only ----------------------------------------------

_ZERO_BLOCK = b"\0" * 512
_PREFIX = b"\x20\0\0\0" + b"\1\0\0\0\0\0\0\0" + b"\0" * 12  # attributes + a backup DATA stream header


def tar_members(fd: int) -> Iterator[tuple[bytes, bytes, int, int, bytes]]:
    """(typeflag, name, data offset, size, header bytes) of each entry: the least a reader must do
    (PAX ``path`` and ``size`` only, USTAR prefix), for a tar this script wrote."""
    offset = 0
    while True:
        first = offset
        pax: dict[bytes, bytes] = {}
        while True:
            block = os.pread(fd, 512, offset)
            if len(block) < 512 or block == _ZERO_BLOCK:
                return
            offset += 512
            kind = block[156:157] or b"0"
            size = int(block[124:136].strip(b"\0 ") or b"0", 8)
            if kind != b"x":
                break
            for record in os.pread(fd, size, offset).split(b"\n"):
                key, _, value = record.partition(b" ")[2].partition(b"=")
                if key in (b"path", b"size"):
                    pax[key] = value
            offset += (size + 511) & ~511
        name = pax.get(b"path") or block[:100].rstrip(b"\0")
        if not pax.get(b"path") and block[345:500].strip(b"\0"):
            name = block[345:500].rstrip(b"\0") + b"/" + name
        size = int(pax.get(b"size", size)) if kind in (b"0", b"\0") else 0
        yield kind, name, offset, size, os.pread(fd, offset - first, first)
        offset += (size + 511) & ~511


def _copy_range(src: int, dst: int, size: int, src_offset: int, dst_offset: int) -> None:
    while size:
        n = os.copy_file_range(src, dst, size, src_offset, dst_offset)
        if n <= 0:
            raise OSError(f"copy_file_range copied {n}")
        size, src_offset, dst_offset = size - n, src_offset + n, dst_offset + n


def _hash_thread(ranges: "Callable[[], Iterator[tuple[int, int, int]]]") -> tuple[threading.Thread, list[str]]:
    """SHA-256 of (fd, offset, size) ranges, read with pread in a thread of its own."""
    result: list[str] = []

    def run() -> None:
        digest = hashlib.sha256()
        for fd, offset, size in ranges():
            while size:
                chunk = os.pread(fd, min(size, 1 << 20), offset)
                if not chunk:
                    break
                digest.update(chunk)
                offset, size = offset + len(chunk), size - len(chunk)
        result.append(digest.hexdigest())

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


def _whole_file(fd: int) -> Callable[[], Iterator[tuple[int, int, int]]]:
    return lambda: iter([(fd, 0, os.fstat(fd).st_size)])


def floor_import(tar: Path, layer: Path, staging: Optional[Path]) -> None:
    """tar -> layer (``staging`` None: a base layer), or tar -> staging -> layer (a diff layer)."""
    fd = os.open(tar, os.O_RDONLY)
    thread, _digest = _hash_thread(_whole_file(fd))
    first = staging if staging is not None else layer
    first.mkdir()
    staged: list[tuple[bytes, int]] = []
    for kind, name, offset, size, _header in tar_members(fd):
        path = os.path.join(first, os.fsdecode(name))
        if kind == b"5":
            os.mkdir(path)
        elif kind in (b"0", b"\0"):
            out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            head = len(_PREFIX) if staging is not None else 0
            if head:
                os.write(out, _PREFIX)
            _copy_range(fd, out, size, offset, head)
            os.utime(out, ns=(TIME, TIME))
            os.close(out)
            staged.append((name, size))
    if staging is not None:  # ImportLayer's share: staging -> layer, then staging removed
        layer.mkdir()
        for dirpath, dirnames, _files in os.walk(staging):
            for d in dirnames:
                os.mkdir(os.path.join(layer, os.path.relpath(os.path.join(dirpath, d), staging)))
        for name, size in staged:
            src = os.open(os.path.join(staging, os.fsdecode(name)), os.O_RDONLY)
            dst = os.open(os.path.join(layer, os.fsdecode(name)), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            _copy_range(src, dst, size, len(_PREFIX), 0)
            os.utime(dst, ns=(TIME, TIME))
            os.close(dst)
            os.close(src)
            os.unlink(os.path.join(staging, os.fsdecode(name)))
        shutil.rmtree(staging)
    thread.join()
    os.close(fd)


_AHEAD = 64  # files whose reading starts together


def _read_ahead(paths: list[str]) -> dict[str, int]:
    """``paths`` opened and their reading started (WILLNEED returns at once), as the simulated
    ExportLayer does: their descriptors, to copy from."""
    fds = {}
    for path in paths:
        fds[path] = fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 1 << 16, os.POSIX_FADV_WILLNEED)
    return fds


def floor_export(source_tar: Path, layer: Path, staging: Path, out_tar: Path) -> None:
    """layer -> staging (ExportLayer's share) -> a tar with the source tar's header bytes."""
    src_fd = os.open(source_tar, os.O_RDONLY)
    members = list(tar_members(src_fd))  # the headers to write: known before timing starts
    os.close(src_fd)
    started = _usage()
    staging.mkdir()
    ahead: dict[str, int] = {}
    for i, (kind, name, _offset, size, _header) in enumerate(members):
        if i % _AHEAD == 0:  # as the simulated ExportLayer does: a cold layer's reads queued together
            ahead = _read_ahead([os.path.join(layer, os.fsdecode(m[1])) for m in members[i:i + _AHEAD]
                                 if m[0] != b"5"])
        path = os.path.join(staging, os.fsdecode(name))
        if kind == b"5":
            os.mkdir(path)
        else:
            src = ahead.pop(os.path.join(layer, os.fsdecode(name)))
            dst = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(dst, _PREFIX)
            _copy_range(src, dst, size, 0, len(_PREFIX))
            os.close(dst)
            os.close(src)
    out = os.open(out_tar, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    written: list[Optional[tuple[int, int, int]]] = []
    ready = threading.Condition()

    def ranges() -> Iterator[tuple[int, int, int]]:
        i = 0
        while True:
            with ready:
                while i >= len(written):
                    ready.wait()
                item = written[i]
            if item is None:
                return
            yield item
            i += 1

    thread, _digest = _hash_thread(ranges)
    position = 0
    for kind, name, _offset, size, header in members:
        os.write(out, header)
        if kind not in (b"5",) and size:
            path = os.path.join(staging, os.fsdecode(name))
            src = os.open(path, os.O_RDONLY)
            _copy_range(src, out, size, len(_PREFIX), position + len(header))
            os.close(src)
            os.unlink(path)
            pad = (-size) % 512
            if pad:
                os.pwrite(out, _ZERO_BLOCK[:pad], position + len(header) + size)
        with ready:
            written.append((out, position, len(header) + size + (-size) % 512))
            ready.notify()
        position += len(header) + size + (-size) % 512
        os.lseek(out, position, os.SEEK_SET)
    os.write(out, _ZERO_BLOCK * 2)
    with ready:
        written.append((out, position, 1024))
        written.append(None)
        ready.notify()
    thread.join()
    os.close(out)
    shutil.rmtree(staging)
    _report(started)


# -- the steps, each in a child process ---------------------------------------------------------------


def _usage() -> tuple[float, float, float]:
    r = os.times()
    return time.perf_counter(), r.user, r.system


def _report(started: tuple[float, float, float], result: str = "") -> None:
    wall, user, system = _usage()
    peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    print(json.dumps({"seconds": wall - started[0], "user": user - started[1], "system": system - started[2],
                      "peak_kib": peak, "result": result}))


def child(step: str, args: list[str]) -> None:
    """One timed step (run as ``bench_layers.py --child STEP ARGS...``); prints its figures."""
    if step == "floor-import":
        started = _usage()
        floor_import(Path(args[0]), Path(args[1]), Path(args[2]) if args[2] != "-" else None)
        _report(started)
        return
    if step == "floor-export":
        floor_export(Path(args[0]), Path(args[1]), Path(args[2]), Path(args[3]))
        return
    from wincontainers import Host

    profile, root, source, dest, layer = args
    host = Host.open(sim=profile, root=root)
    started = _usage()
    if step == "import":
        result = host.layers.import_tar(source, parents=[layer]).id
    elif step == "import-base":
        result = host.layers.import_tar(source, base=True).id
    else:
        result = host.layers.export_tar(layer, dest).diff_id
    _report(started, result)


class Sample:
    """One step of one round."""

    def __init__(self, seconds: float, user: float, system: float, peak_kib: int,
                 daemon_user: Optional[float] = None, daemon_system: Optional[float] = None,
                 daemon_peak_kib: Optional[int] = None, result: str = "") -> None:
        self.seconds, self.user, self.system, self.peak_kib = seconds, user, system, peak_kib
        self.daemon_user, self.daemon_system, self.daemon_peak_kib = daemon_user, daemon_system, daemon_peak_kib
        self.result = result


def _proc_cpu(pid: int) -> tuple[float, float]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) / TICK, int(fields[12]) / TICK  # utime, stime


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


def settle(work: Path, keep: set[Path]) -> None:
    """``sync``, then drop the cached pages of every file under ``work`` but ``keep``."""
    os.sync()
    for dirpath, _dirs, files in os.walk(work):
        for name in files:
            path = Path(dirpath, name)
            if path in keep:
                continue
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                continue
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def filesystem_warning(work: Path) -> Optional[str]:
    """Why figures on ``work``'s file system may not be comparable between steps, or None.

    ext4 without a journal (a common VM image) checks, for each new inode, whether its slot was
    freed within the last minute (six while the inode table is not yet written back) and skips
    such slots one by one. A step that creates files after another deleted tens of thousands
    then pays for that history, in system time, by a factor that varied from 1 to 5 here.
    """
    target = str(work.resolve())
    best: Optional[tuple[str, str, str]] = None
    try:
        lines = Path("/proc/self/mountinfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if "-" not in fields:
            continue
        dash = fields.index("-")
        point, fstype, source = fields[4], fields[dash + 1], fields[dash + 2]
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and (best is None or len(point) > len(best[0])):
            best = (point, fstype, source)
    if best is None or best[1] != "ext4":
        return None
    device = os.path.basename(best[2])
    try:
        journals = os.listdir("/proc/fs/jbd2")
    except OSError:
        journals = []
    if any(name.startswith(device + "-") for name in journals):
        return None
    return (f"warning: {best[0]} is ext4 without a journal: creating files shortly after deleting many "
            "costs extra system time that depends on earlier steps; for steady figures use --workdir on a "
            "journaled file system (or tmpfs for CPU alone)")


def page_reporting_warning() -> Optional[str]:
    """Why writes may cost more in one step than in the next on this VM, or None.

    With a virtio balloon's free page reporting, the guest hands the pages it frees back to the
    hypervisor, and touching them again costs a fault on the host: writing a GiB into fresh page
    cache then took 0.3 s or 2.5 s, by chance. Reporting stops when its order is above the
    largest the kernel has (11 will do).
    """
    params = Path("/sys/module/page_reporting/parameters")
    try:
        order = int((params / "page_reporting_order").read_text())
        reported = int((params / "reported_kib").read_text())
    except (OSError, ValueError):
        return None
    if order > 10 or not reported:
        return None
    return ("warning: free page reporting is on (pages freed go back to the hypervisor and are slow to use "
            "again), so write-heavy steps vary; as root, for the run: "
            "echo 11 > /sys/module/page_reporting/parameters/page_reporting_order")


def run_tar(argv: list[str]) -> Sample:
    """GNU tar, timed from outside (its CPU from wait4, its peak sampled while it runs)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, _peak(proc.pid) or 0)
        time.sleep(0.002)
    seconds = time.perf_counter() - start
    # Popen reaped it: its CPU is what this process's children gained.
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {proc.stderr.read().decode(errors='replace')[-2000:]}")  # type: ignore[union-attr]
    return Sample(seconds, 0.0, 0.0, peak)


def run_child(step: str, args: list[str], daemon: Optional[int] = None) -> Sample:
    """A step in a child process; its own figures, and the daemon's over the same time."""
    if daemon is not None:
        _reset_peak(daemon)
        before = _proc_cpu(daemon)
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", step, *args],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"step {step} failed ({done.returncode}): {done.stderr[-3000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    sample = Sample(figures["seconds"], figures["user"], figures["system"], figures["peak_kib"],
                    result=figures["result"])
    if daemon is not None:
        after = _proc_cpu(daemon)
        sample.daemon_user, sample.daemon_system = after[0] - before[0], after[1] - before[1]
        sample.daemon_peak_kib = _peak(daemon)
    return sample


def _tar_cpu(run: Callable[[], Sample]) -> Sample:
    before = os.times()
    sample = run()
    after = os.times()
    sample.user = after.children_user - before.children_user
    sample.system = after.children_system - before.children_system
    return sample


STEPS = {
    "import": ("diff import", "tar -x"),
    "import-base": ("base import", "tar -x"),
    "export": ("export", "tar -c"),
}


def one_round(tar: Path, base_tar: Path, work: Path, profile: str) -> dict[str, dict[str, Sample]]:
    """Every step once, in a fixed order: {step: {"tar"|"floor"|"ours": Sample}}."""
    from wincontainers import Host
    from wincontainers.sim.control import SimulatedHost

    keep = {tar, base_tar}
    out: dict[str, dict[str, Sample]] = {step: {} for step in STEPS}
    gnu = work / "gnu-x"
    settle(work, keep)
    gnu.mkdir()
    extract = _tar_cpu(lambda: run_tar(["tar", "--warning=no-unknown-keyword", "-xf", str(tar), "-C", str(gnu)]))
    out["import"]["tar"] = out["import-base"]["tar"] = extract
    settle(work, keep)
    out["export"]["tar"] = _tar_cpu(lambda: run_tar(["tar", "-cf", str(work / "gnu-c.tar"), "-C", str(gnu), "."]))
    shutil.rmtree(gnu)
    os.unlink(work / "gnu-c.tar")

    settle(work, keep)
    out["import-base"]["floor"] = run_child("floor-import", [str(tar), str(work / "floor-base"), "-"])
    shutil.rmtree(work / "floor-base")
    settle(work, keep)
    out["import"]["floor"] = run_child("floor-import", [str(tar), str(work / "floor-layer"),
                                                        str(work / "floor-staging")])
    settle(work, keep)
    out["export"]["floor"] = run_child("floor-export", [str(tar), str(work / "floor-layer"),
                                                        str(work / "floor-staging"), str(work / "floor.tar")])
    shutil.rmtree(work / "floor-layer")
    os.unlink(work / "floor.tar")

    sim_root = work / "sim"
    with SimulatedHost(profile, sim_root):
        daemon = int((sim_root / "daemon" / "daemon.pid").read_text().split()[0])
        host = Host.open(sim=profile, root=sim_root)
        base = host.layers.import_tar(base_tar)
        settle(work, keep)
        out["import"]["ours"] = sample = run_child("import", [profile, str(sim_root), str(tar), "-", base.id], daemon)
        settle(work, keep)
        out["export"]["ours"] = run_child("export", [profile, str(sim_root), "-", str(work / "ours.tar"),
                                                     sample.result], daemon)
        os.unlink(work / "ours.tar")
        host.layers.destroy(sample.result)
        settle(work, keep)
        out["import-base"]["ours"] = run_child("import-base", [profile, str(sim_root), str(tar), "-", "-"], daemon)
        host.close()
    shutil.rmtree(sim_root, ignore_errors=True)
    return out


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):5.2f} [{min(values):.2f}-{max(values):.2f}]"


def summarize(shape: str, entries: int, rounds: list[dict[str, dict[str, Sample]]],
              per_entry: bool) -> list[dict[str, Any]]:
    rows = []
    for step, (label, reference) in STEPS.items():
        ours = [r[step]["ours"] for r in rounds]
        rows.append({
            "step": f"{shape}: {label}",
            "reference": reference,
            "ours_seconds": statistics.median(s.seconds for s in ours),
            "tar_seconds": statistics.median(r[step]["tar"].seconds for r in rounds),
            "floor_seconds": statistics.median(r[step]["floor"].seconds for r in rounds),
            "ours_tar": [r[step]["ours"].seconds / r[step]["tar"].seconds for r in rounds],
            "ours_floor": [r[step]["ours"].seconds / r[step]["floor"].seconds for r in rounds],
            "user": statistics.median(s.user for s in ours),
            "system": statistics.median(s.system for s in ours),
            "daemon_user": statistics.median(s.daemon_user or 0.0 for s in ours),
            "daemon_system": statistics.median(s.daemon_system or 0.0 for s in ours),
            "user_us_per_entry": statistics.median(s.user for s in ours) / entries * 1e6 if per_entry else None,
            "peak_mib": max(s.peak_kib for s in ours) / 1024,
            "daemon_peak_mib": max(s.daemon_peak_kib or 0 for s in ours) / 1024,
            "floor_user": statistics.median(r[step]["floor"].user for r in rounds),
            "tar_user": statistics.median(r[step]["tar"].user for r in rounds),
        })
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"{'step':30} {'ours s':>7} {'tar s':>6} {'floor s':>7} {'ours/tar med [range]':>21} "
          f"{'ours/floor med [range]':>23} {'user s':>6} {'sys s':>6} {'d.usr':>6} {'d.sys':>6} "
          f"{'µs/ent':>6} {'MiB':>5} {'d.MiB':>5}")
    for row in rows:
        per = f"{row['user_us_per_entry']:6.0f}" if row["user_us_per_entry"] is not None else f"{'-':>6}"
        print(f"{row['step']:30} {row['ours_seconds']:7.2f} {row['tar_seconds']:6.2f} {row['floor_seconds']:7.2f} "
              f"{_spread(row['ours_tar']):>21} {_spread(row['ours_floor']):>23} {row['user']:6.2f} "
              f"{row['system']:6.2f} {row['daemon_user']:6.2f} {row['daemon_system']:6.2f} {per} "
              f"{row['peak_mib']:5.0f} {row['daemon_peak_mib']:5.0f}")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="128 MiB and 5,000 files (CI's smoke run)")
    parser.add_argument("--size-mib", type=int, default=None, help="total size of the large-file layer (1024)")
    parser.add_argument("--files", type=int, default=None, help="files in the small-file layer (50000)")
    parser.add_argument("--profile", default="ws2019", help="simulator profile (tp3, 2016, ws2019)")
    parser.add_argument("--rounds", type=int, default=None, help="paired rounds (3; --quick: 1)")
    parser.add_argument("--workdir", default=None, help="where to work (default: a temporary folder)")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    args = parser.parse_args()
    size_mib = args.size_mib or (128 if args.quick else 1024)
    files = args.files or (5_000 if args.quick else 50_000)
    rounds = args.rounds or (1 if args.quick else 3)
    if not shutil.which("tar"):
        raise SystemExit("GNU tar is needed as the reference")
    if not hasattr(os, "copy_file_range"):
        raise SystemExit("the floor needs os.copy_file_range (Linux, Python 3.8+)")
    work = Path(tempfile.mkdtemp(prefix="bench-layers-", dir=args.workdir))
    rows: list[dict[str, Any]] = []
    try:
        base_tar = work / "base.tar"
        make_base(base_tar)
        large = work / "large.tar"
        count = make_large(large, size_mib << 20)
        print(f"(a) {count} large files, {size_mib} MiB; (b) {files} small files; profile {args.profile}; "
              f"{rounds} paired round(s)", flush=True)
        for warning in filter(None, (filesystem_warning(work), page_reporting_warning())):
            print(warning, flush=True)
        rows += summarize("(a) large", count, [one_round(large, base_tar, work, args.profile)
                                              for _ in range(rounds)], per_entry=False)
        large.unlink()
        small = work / "small.tar"
        make_small(small, files)
        rows += summarize("(b) small", files, [one_round(small, base_tar, work, args.profile)
                                              for _ in range(rounds)], per_entry=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print_table(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
