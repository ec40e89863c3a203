"""cmd's internal file commands: ``type``, ``dir``, ``copy``, ``move``, ``del``, ``md``, ``rd``, ``ren``.

Messages, counts and the ``dir`` listing are cmd's own (English, en-US formats). Wildcards are
cmd's (``*.*`` matches names without a dot). Nothing here follows a link out of the container.
"""

from __future__ import annotations

import datetime
import os
import shutil
from pathlib import Path
from typing import Optional

from wincontainers.sim.shell import parser as ps
from wincontainers.sim.shell.internal import serial_number
from wincontainers.sim.shell.interpreter import Command, Shell
from wincontainers.sim.shell.matching import wildcard_match
from wincontainers.sim.shell.textio import CommandError, Io
from wincontainers.sim.shell.winpaths import split_name

__all__ = ["COMMANDS", "confirm", "switches_and_names", "has_wildcard"]

NOT_FOUND = "The system cannot find the file specified."
PATH_NOT_FOUND = "The system cannot find the path specified."
SYNTAX = "The syntax of the command is incorrect."


def switches_and_names(rest: str) -> tuple[set[str], list[str]]:
    """``/q /s name "other name"`` -> ({"q", "s"}, [names without quotes])."""
    switches: set[str] = set()
    names: list[str] = []
    for arg in ps.split_arguments(rest, " \t,;"):
        if arg.startswith("/") and len(arg) > 1:
            for part in arg[1:].split("/"):
                switches.add(part.lower().replace(":", ""))
        else:
            names.append(arg.replace('"', ""))
    return switches, names


def names_required(rest: str) -> tuple[set[str], list[str]]:
    """The switches and names of a command that needs at least one name."""
    switches, names = switches_and_names(rest)
    if not names:
        raise CommandError(SYNTAX)
    return switches, names


def has_wildcard(name: str) -> bool:
    return "*" in name or "?" in name


def confirm(io: Io, prompt: str) -> bool:
    io.out(prompt)
    answer = io.stdin.readline().decode("utf-8", "replace").strip().lower()
    io.line()
    return answer.startswith("y")


def _matches(shell: Shell, name: str, *, dirs: bool = False) -> list[str]:
    if has_wildcard(name):
        return [shell.fs.full(n) for n in shell.glob(name, dirs=dirs)]
    return [shell.fs.full(name)] if shell.fs.exists(name) else []


def type_command(shell: Shell, rest: str, io: Io) -> int:
    _, names = names_required(rest)
    code = 0
    for name in names:
        found = _matches(shell, name)
        if not found:
            folder_exists = shell.fs.is_dir(split_name(shell.fs.full(name))[0])
            io.error_line(NOT_FOUND if folder_exists else PATH_NOT_FOUND)
            if len(names) > 1:
                io.error_line(f"Error occurred while processing: {name}.")
            code = 1
            continue
        for full in found:
            host = shell.fs.host(full)
            if host.is_dir():
                io.error_line("Access is denied.")
                code = 1
                continue
            if len(names) > 1 or has_wildcard(name):
                io.err(f"\n{full.rpartition(chr(92))[2]}\n\n\n")
            with open(host, "rb") as f:
                shutil.copyfileobj(f, io.stdout)  # type: ignore[misc]
            io.stdout.flush()
    return code


def _stamp(mtime: float) -> str:
    t = datetime.datetime.fromtimestamp(mtime)
    return t.strftime("%m/%d/%Y  %I:%M %p")


def dir_command(shell: Shell, rest: str, io: Io) -> int:
    switches, names = switches_and_names(rest)
    bare = "b" in switches
    recurse = "s" in switches
    only_dirs = any(s.startswith("a") and "d" in s and "-d" not in s for s in switches)
    no_dirs = any(s.startswith("a") and "-d" in s for s in switches)
    targets = names or ["."]
    if not bare:
        io.line(" Volume in drive C has no label.")
        io.line(f" Volume Serial Number is {serial_number(shell)}")
    total_files = total_bytes = 0
    found_any = False
    for target in targets:
        full = shell.fs.full(target)
        host = shell.fs.host(full)
        if host.is_dir():
            folder, mask = full, "*"
        else:
            folder, mask = split_name(full)
            if not has_wildcard(mask) and not host.exists():
                folder_host = shell.fs.host(folder)
                if not folder_host.is_dir():
                    if not bare:
                        io.line()
                    io.error_line(PATH_NOT_FOUND if not folder_host.exists() else "File Not Found")
                    return 1
        for win_folder in _folders(shell, folder, recurse):
            entries = _listing(shell, win_folder, mask, only_dirs, no_dirs, dots=not bare)
            if not entries and (recurse or bare):
                continue
            if bare:
                for name, _, _ in entries:
                    io.line(win_folder.rstrip("\\") + "\\" + name if recurse else name)
                found_any = found_any or bool(entries)
                continue
            if not entries:
                io.line(f"\n Directory of {win_folder}\n")
                continue
            found_any = True
            io.line(f"\n Directory of {win_folder}\n")
            files = size = dirs = 0
            for name, st, is_dir in entries:
                if is_dir:
                    dirs += 1
                    io.line(f"{_stamp(st.st_mtime)}    <DIR>          {name}")
                else:
                    files += 1
                    size += st.st_size
                    io.line(f"{_stamp(st.st_mtime)} {st.st_size:>17,} {name}")
            io.line(f"{files:>16} File(s) {size:>14,} bytes")
            total_files += files
            total_bytes += size
            if not recurse:
                io.line(f"{dirs:>16} Dir(s) {_free(shell):>15,} bytes free")
    if not found_any:
        io.error_line("File Not Found")
        return 1
    if recurse and not bare:
        io.line("\n     Total Files Listed:")
        io.line(f"{total_files:>16} File(s) {total_bytes:>14,} bytes")
        io.line(f"{0:>16} Dir(s) {_free(shell):>15,} bytes free")
    return 0


def _free(shell: Shell) -> int:
    try:
        return shutil.disk_usage(shell.fs.root).free
    except OSError:
        return 0


def _folders(shell: Shell, folder: str, recurse: bool) -> list[str]:
    if not recurse:
        return [folder]
    out = [folder]
    host = shell.fs.host(folder)
    for current, subdirs, _ in os.walk(host):
        subdirs[:] = sorted((d for d in subdirs if not os.path.islink(os.path.join(current, d))
                             and not d.startswith(".wcsim-")), key=str.lower)
        for d in subdirs:
            out.append(shell.fs.to_windows(Path(current) / d))
    return out


def _listing(shell: Shell, folder: str, mask: str, only_dirs: bool, no_dirs: bool,
             dots: bool = True) -> list[tuple[str, os.stat_result, bool]]:
    host = shell.fs.host(folder)
    rows: list[tuple[str, os.stat_result, bool]] = []
    if dots and folder.rstrip("\\") != "C:" and mask == "*":
        st = os.stat(host)
        rows += [(".", st, True), ("..", st, True)]
    try:
        entries = sorted(os.scandir(host), key=lambda e: e.name.lower())
    except OSError:
        return []
    for entry in entries:
        if entry.name.startswith(".wcsim-") or not wildcard_match(mask, entry.name):
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError:
            continue
        is_dir = entry.is_dir(follow_symlinks=False)
        if (only_dirs and not is_dir) or (no_dirs and is_dir):
            continue
        rows.append((entry.name, st, is_dir))
    if no_dirs:
        rows = [r for r in rows if not r[2]]
    return rows


def _destination(shell: Shell, source: str, dest: Optional[str]) -> str:
    name = source.rpartition("\\")[2]
    if dest is None:
        return shell.fs.full(name)
    full = shell.fs.full(dest)
    if shell.fs.is_dir(full):
        return full.rstrip("\\") + "\\" + name
    return full


def copy_command(shell: Shell, rest: str, io: Io) -> int:
    _, names = names_required(rest)
    source, dest = names[0], (names[1] if len(names) > 1 else None)
    sources = [s for s in _matches(shell, source) if not shell.fs.is_dir(s)]
    if shell.fs.is_dir(source) and not has_wildcard(source):
        sources = [s for s in _matches(shell, source.rstrip("\\") + "\\*") if not shell.fs.is_dir(s)]
    if not sources:
        io.error_line(NOT_FOUND)
        io.line("        0 file(s) copied.")
        return 1
    copied = 0
    for src in sources:
        target = _destination(shell, src, dest)
        if target.lower() == src.lower():
            io.error_line("The file cannot be copied onto itself.")
            io.line(f"        {copied} file(s) copied.")
            return 1
        if len(sources) > 1 or has_wildcard(source):
            io.line(src.rpartition("\\")[2] if dest is None or not has_wildcard(source) else src.rpartition("\\")[2])
        host_target = shell.fs.host(target)
        if not host_target.parent.is_dir():
            io.error_line(PATH_NOT_FOUND)
            io.line(f"        {copied} file(s) copied.")
            return 1
        shutil.copy2(shell.fs.host(src), host_target, follow_symlinks=False)
        copied += 1
    io.line(f"        {copied} file(s) copied.")
    return 0


def move_command(shell: Shell, rest: str, io: Io) -> int:
    _, names = switches_and_names(rest)
    if len(names) < 1:
        raise CommandError(SYNTAX)
    sources = _matches(shell, names[0], dirs=True)
    if not sources:
        io.error_line(NOT_FOUND)
        return 1
    dest = names[1] if len(names) > 1 else None
    moved = dirs = 0
    for src in sources:
        target = _destination(shell, src, dest)
        host_src, host_target = shell.fs.host(src), shell.fs.host(target)
        if not host_target.parent.is_dir():
            io.error_line(PATH_NOT_FOUND)
            return 1
        if host_src.is_dir():
            if host_target.exists():
                io.error_line("Access is denied.")
                return 1
            dirs += 1
        else:
            moved += 1
        os.replace(host_src, host_target) if not host_target.is_dir() else shutil.move(str(host_src), str(host_target))
    if dirs:
        io.line(f"        {dirs} dir(s) moved.")
    else:
        io.line(f"        {moved} file(s) moved.")
    return 0


def del_command(shell: Shell, rest: str, io: Io) -> int:
    switches, names = names_required(rest)
    quiet = "q" in switches
    for name in names:
        full = shell.fs.full(name)
        host = shell.fs.host(full)
        if host.is_dir() and not host.is_symlink():
            if not quiet and not confirm(io, f"{full.rstrip(chr(92))}\\*, Are you sure (Y/N)? "):
                continue
            targets = [str(p) for p in sorted(host.iterdir()) if not p.is_dir() and not p.name.startswith(".wcsim-")]
        else:
            if has_wildcard(name) and name.rpartition("\\")[2] in ("*", "*.*") and not quiet:
                if not confirm(io, f"{split_name(full)[0].rstrip(chr(92))}\\*, Are you sure (Y/N)? "):
                    continue
            # del removes a link itself, never what it points at (a reparse point is deleted as a file)
            if has_wildcard(name):
                matched = [shell.fs.host(m, follow_last=False) for m in _matches(shell, name)]
            else:
                link = shell.fs.host(full, follow_last=False)
                matched = [link] if os.path.lexists(link) else []
            targets = [str(p) for p in matched if p.is_symlink() or not p.is_dir()]
        if not targets:
            io.error_line(f"Could Not Find {full}")
            continue
        for target in targets:
            try:
                os.unlink(target)
            except OSError:
                io.error_line(f"{shell.fs.to_windows(Path(target))}\nAccess is denied.")
    return 0


def mkdir_command(shell: Shell, rest: str, io: Io) -> int:
    _, names = names_required(rest)
    code = 0
    for name in names:
        host = shell.fs.host(name)
        if os.path.lexists(host):
            io.error_line(f"A subdirectory or file {name} already exists.")
            code = 1
            continue
        try:
            host.mkdir(parents=True)
        except OSError:
            io.error_line("The system cannot find the path specified.")
            code = 1
    return code


def rmdir_command(shell: Shell, rest: str, io: Io) -> int:
    switches, names = names_required(rest)
    code = 0
    for name in names:
        host = shell.fs.host(name, follow_last=False)
        if not os.path.lexists(host):
            io.error_line(NOT_FOUND)
            code = 2
            continue
        if host.is_symlink():
            host.unlink()
            continue
        if not host.is_dir():
            io.error_line("The directory name is invalid.")
            code = 267
            continue
        if "s" in switches:
            if "q" not in switches and not confirm(io, f"{name}, Are you sure (Y/N)? "):
                continue
            shutil.rmtree(host)
            continue
        if any(True for _ in host.iterdir()):
            io.error_line("The directory is not empty.")
            code = 145
            continue
        host.rmdir()
    return code


def ren_command(shell: Shell, rest: str, io: Io) -> int:
    _, names = switches_and_names(rest)
    if len(names) != 2 or "\\" in names[1] or ":" in names[1]:
        raise CommandError(SYNTAX)
    sources = _matches(shell, names[0], dirs=True)
    if not sources:
        io.error_line(NOT_FOUND)
        return 1
    for src in sources:
        folder, _ = split_name(src)
        target = shell.fs.host(folder.rstrip("\\") + "\\" + names[1])
        host_src = shell.fs.host(src)
        if os.path.lexists(target) and target != host_src:
            io.error_line("A duplicate file name exists, or the file\ncannot be found.")
            return 1
        os.rename(host_src, target)
    return 0


def mklink(shell: Shell, rest: str, io: Io) -> int:
    io.error_line("not simulated: mklink (links made inside a simulated container are not Windows links)")
    return 1


COMMANDS: dict[str, Command] = {
    "type": type_command, "dir": dir_command, "copy": copy_command, "move": move_command,
    "del": del_command, "erase": del_command, "md": mkdir_command, "mkdir": mkdir_command,
    "rd": rmdir_command, "rmdir": rmdir_command, "ren": ren_command, "rename": ren_command,
    "mklink": mklink,
}
