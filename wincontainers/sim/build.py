"""Compile the simulated DLLs and lay out a profile's system directory.

The C sources ship in the package (``wincontainers/sim/native``). On first use they are compiled
with the platform C compiler into a per-user cache keyed by the sources, the profile and the
compiler, so a changed source rebuilds and an unchanged one is reused. A system directory is then
filled with *copies* named like the Windows DLLs (``vmcompute.dll`` ...): copies, because the
dynamic loader shares one instance per file, and each simulated host needs its own.
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Mapping

from wincontainers.errors import HcsUnavailable
from wincontainers.sim.private import private_folder
from wincontainers.sim.profiles import Profile

__all__ = ["NATIVE_DIR", "build_dll", "populate_system_directory", "cache_root"]

NATIVE_DIR = Path(__file__).resolve().parent / "native"

# dll -> (sources besides client.c, extra defines)
_DLL_SOURCES: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "vmcompute.dll": (("vmcompute.c",), ("WC_STRING_TAG=WC_TAG_COTASKMEM",)),
    "computecore.dll": (("computecore.c",), ("WC_STRING_TAG=WC_TAG_LOCALMEM",)),
    "computestorage.dll": (("computestorage.c",), ("WC_STRING_TAG=WC_TAG_LOCALMEM",)),
    "computenetwork.dll": (("computenetwork.c",), ("WC_STRING_TAG=WC_TAG_COTASKMEM",)),
    "ole32.dll": (("allocators.c",), ("WC_STRING_TAG=WC_TAG_COTASKMEM", "WC_EXPORT_COTASKMEMFREE")),
    "kernel32.dll": (("allocators.c", "kernel32.c"),
                     ("WC_STRING_TAG=WC_TAG_LOCALMEM", "WC_EXPORT_LOCALFREE", "WC_SYNC_CALLS")),
    "advapi32.dll": (("advapi32.c",), ("WC_STRING_TAG=WC_TAG_LOCALMEM", "WC_SYNC_CALLS")),
}


def cache_root() -> Path:
    """Where compiled libraries are cached (``WINCONTAINERS_CACHE`` or the XDG cache)."""
    env = os.environ.get("WINCONTAINERS_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "wincontainers"


def _compiler() -> list[str]:
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if not cc:
        raise HcsUnavailable(
            "the simulated host needs a C compiler to build its DLLs on first use; install one "
            "(Debian: apt-get install gcc) or set CC"
        )
    return cc.split()


def _compiler_identity(cc: list[str]) -> str:
    try:
        out = subprocess.run([*cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    return out.splitlines()[0] if out else " ".join(cc)


def _build_key(profile: Profile, dll: str, cc: list[str]) -> str:
    sources, defines = _DLL_SOURCES[dll]
    h = hashlib.sha256()
    for name in ("wcsim.h", "client.c", *sources):
        h.update(name.encode())
        h.update((NATIVE_DIR / name).read_bytes())
    h.update(repr((profile.name, dll, defines, tuple(profile.exports[dll]), _compiler_identity(cc))).encode())
    return h.hexdigest()[:24]


def build_dll(profile: Profile, dll: str) -> Path:
    """Compile (or reuse from the cache) ``dll`` for ``profile``; returns the cached file."""
    if sys.platform == "win32":
        raise HcsUnavailable("the simulated host runs on POSIX systems; on Windows use the real HCS")
    cc = _compiler()
    key = _build_key(profile, dll, cc)
    builds = private_folder(cache_root() / "sim-build", "build cache")  # the DLLs a client loads
    target = builds / key / dll
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    sources, defines = _DLL_SOURCES[dll]
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        version_script = Path(tmp) / "exports.map"
        names = "".join(f"    {name};\n" for name in profile.exports[dll])
        version_script.write_text("{\n  global:\n" + names + "  local: *;\n};\n")
        out = Path(tmp) / dll
        cmd = [
            *cc, "-shared", "-fPIC", "-O2", "-g", "-fvisibility=hidden", "-pthread",
            "-Wall", "-Wno-unused-function",
            f'-DWC_DLL_NAME="{dll}"', f'-DWC_PROFILE="{profile.name}"',
            *(f"-D{d}" for d in defines),
            f"-I{NATIVE_DIR}",
            str(NATIVE_DIR / "client.c"), *(str(NATIVE_DIR / s) for s in sources),
            f"-Wl,--version-script={version_script}",
            # Never unmapped: its threads may still run after the last handle on the library goes.
            "-Wl,-z,nodelete",
            "-o", str(out), "-ldl",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise HcsUnavailable(
                f"building the simulated {dll} failed (exit {proc.returncode}):\n{proc.stderr.strip()}"
            )
        os.replace(out, target)
    return target


def populate_system_directory(profile: Profile, system_dir: Path, service_socket: Path) -> Path:
    """Fill ``system_dir`` with the profile's DLLs and tell them where the daemon listens."""
    system_dir.mkdir(parents=True, exist_ok=True)
    wanted = set(profile.exports)
    for dll in profile.exports:
        built = build_dll(profile, dll)
        dest = system_dir / dll
        if not _same_file_content(built, dest):
            tmp = dest.with_name(dest.name + f".tmp{os.getpid()}")
            shutil.copyfile(built, tmp)
            os.replace(tmp, dest)
    # A directory reused for another profile must not keep DLLs this build did not have.
    for stale in system_dir.glob("*.dll"):
        if stale.name not in wanted:
            stale.unlink()
    _write_if_changed(system_dir / "hcs-service", str(service_socket) + "\n")
    _write_if_changed(
        system_dir / "profile.json",
        json.dumps({"profile": profile.name, "build": profile.build, "version": profile.version}) + "\n",
    )
    return system_dir


def _same_file_content(a: Path, b: Path) -> bool:
    try:
        if a.stat().st_size != b.stat().st_size:
            return False
        return a.read_bytes() == b.read_bytes()
    except FileNotFoundError:
        return False


def _write_if_changed(path: Path, text: str) -> None:
    try:
        if path.read_text() == text:
            return
    except FileNotFoundError:
        pass
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
