"""The Windows programs a container script reaches for, as simulated programs.

``cmd`` (a nested one), ``powershell``/``pwsh``, ``ping``, ``timeout``, ``hostname``,
``whoami``, ``ipconfig``, ``tasklist``, ``find``, ``findstr``, ``xcopy`` and ``setx``. They
answer as their Windows namesakes do (messages, exit codes); ``ipconfig`` and ``tasklist``
ask the simulated host about their own container.
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import fcntl
import json
import os
import shutil
import struct
import termios
import re
import time
from pathlib import Path
from typing import Callable, Optional

from wincontainers.sim.shell import fileops, launch, powershell
from wincontainers.sim.shell.argv import command_line_to_argv
from wincontainers.sim.shell.interpreter import Shell
from wincontainers.sim.shell.textio import CommandError, Io, ShellExit

__all__ = ["TOOLS", "run_cmd", "SETX_FILE", "persisted_environment"]

#: A program: (shell, its command line as typed, program name included, stdio) -> exit code.
Tool = Callable[[Shell, str, Io], int]

#: Where ``setx`` keeps variables inside the container (a registry stand-in that layers carry).
SETX_FILE = "Windows/System32/config/wcsim-environment.json"


def run_cmd(shell: Shell, command_line: str, io: Io) -> int:
    """``cmd [/q] [/v:on] [/s] [/c|/k line]``: a cmd.exe in ``shell``; without /C, a console."""
    switches = launch.cmd_switches(command_line, lambda name: shell.find_program(name) is not None)
    shell.echo = switches.echo
    shell.delayed = switches.delayed
    try:
        if switches.line is not None:
            code = shell.run_line(switches.line, io)
            if not switches.keep:
                return code
        return _interactive(shell, io, banner=switches.line is None)
    except ShellExit as exc:
        return exc.code


def _interactive(shell: Shell, io: Io, banner: bool) -> int:
    if banner:
        io.out(f"Microsoft Windows [Version {shell.host.version}]\n"
               "(c) Microsoft Corporation. All rights reserved.\n")
    while True:
        if shell.echo:
            io.out(f"\n{shell.fs.cwd}>")
        raw = io.stdin.readline()
        if not raw:
            return shell.errorlevel
        line = raw.decode("utf-8", "replace").rstrip("\r\n")
        if not io.tty and shell.echo:
            io.out(line + "\n")
        try:
            shell.run_line(line, io)
        except ShellExit as exc:
            return exc.code


def cmd_tool(shell: Shell, command_line: str, io: Io) -> int:
    """A nested ``cmd``: a new cmd.exe with this one's variables, reading its own command line
    (cmd parses the text itself, so it gets the text, spacing and all)."""
    return run_cmd(shell.child(), command_line, io)


def _with_argv(program: Callable[[Shell, list[str], Io], int]) -> Tool:
    """A program that reads its arguments as the C runtime splits them (``CommandLineToArgvW``)."""
    return lambda shell, command_line, io: program(shell, command_line_to_argv(command_line)[1:], io)


def ping(shell: Shell, argv: list[str], io: Io) -> int:
    forever, count, target = False, 4, ""
    args = iter(argv)
    for arg in args:
        low = arg.lower()
        if low in ("-t", "/t"):
            forever = True
        elif low in ("-n", "/n"):
            value = next(args, "")
            if not value.isdigit() or int(value) < 1:
                io.line(f"Bad value for option {arg}, valid range is from 1 to 4294967295.\n")
                return 1
            count = int(value)
        elif low in ("-w", "/w", "-l", "/l", "-i", "/i"):
            next(args, "")
        elif not low.startswith(("-", "/")):
            target = arg
    if not target:
        io.line("\nUsage: ping [-t] [-n count] [-w timeout] target_name")
        return 1
    address = "127.0.0.1" if target.lower() in ("localhost", shell.host.hostname.lower()) else target
    if not re.fullmatch(r"\d+\.\d+\.\d+\.\d+", address):
        io.line(f"Ping request could not find host {target}. Please check the name and try again.")
        return 1
    shown = f"{target} [{address}]" if address != target else target
    sent = 0
    try:  # from the first line on: a Ctrl+C that lands just after it still gets the summary
        io.line(f"\nPinging {shown} with 32 bytes of data:")
        while forever or sent < count:
            if sent:
                time.sleep(1)
            io.line(f"Reply from {address}: bytes=32 time<1ms TTL=128")
            sent += 1
    except KeyboardInterrupt:
        _ping_statistics(io, address, sent)
        io.line("Control-C")
        raise
    _ping_statistics(io, address, sent)
    return 0


def _ping_statistics(io: Io, address: str, sent: int) -> None:
    io.line(f"\nPing statistics for {address}:")
    io.line(f"    Packets: Sent = {sent}, Received = {sent}, Lost = 0 (0% loss),")
    io.line("Approximate round trip times in milli-seconds:")
    io.line("    Minimum = 0ms, Maximum = 0ms, Average = 0ms")


def timeout(shell: Shell, argv: list[str], io: Io) -> int:
    low = [a.lower() for a in argv]
    seconds: Optional[int] = None
    if "/t" in low and low.index("/t") + 1 < len(argv):
        try:
            seconds = int(argv[low.index("/t") + 1])
        except ValueError:
            seconds = None
    elif argv and argv[0].lstrip("-").isdigit():
        seconds = int(argv[0])
    if seconds is None or seconds < -1 or seconds > 99999:
        io.error_line("ERROR: Invalid syntax. Default option is not allowed more than '1' time(s).\n"
                      "Type \"TIMEOUT /?\" for usage.")
        return 1
    try:
        interactive = os.isatty(io.stdin.fileno())
    except (AttributeError, OSError, ValueError):
        interactive = False
    if not interactive:
        io.error_line("ERROR: Input redirection is not supported, exiting the process immediately.")
        return 1
    io.out(f"\nWaiting for {seconds:2d} seconds, press {'CTRL+C to quit' if '/nobreak' in low else 'a key to continue'} ...")
    deadline = time.monotonic() + (seconds if seconds >= 0 else 10 ** 9)
    while time.monotonic() < deadline:
        time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
    io.line()
    return 0


def mode(shell: Shell, argv: list[str], io: Io) -> int:
    """``mode con``: the console's size (from the pseudo-console, as Windows reports its own)."""
    if argv and argv[0].lower() not in ("con", "con:"):
        io.error_line(f"not simulated: mode {' '.join(argv)}")
        return 1
    rows, cols = 9001, 120  # a pipe: the defaults a console-less process sees
    try:
        packed = fcntl.ioctl(io.stdout.fileno(), termios.TIOCGWINSZ, b"\0" * 8)
        rows, cols = struct.unpack("HHHH", packed)[:2]
    except (AttributeError, OSError, ValueError):
        pass
    io.line("\nStatus for device CON:\n----------------------")
    io.line(f"    Lines:          {rows}\n    Columns:        {cols}\n    Keyboard rate:  31\n"
            "    Keyboard delay: 1\n    Code page:      437\n")
    return 0


def sort(shell: Shell, argv: list[str], io: Io) -> int:
    reverse = any(a.lower() in ("/r", "/reverse") for a in argv)
    names = [a for a in argv if not a.startswith("/")]
    lines = [line for _, chunk in _inputs(shell, names, io) for line in chunk]
    for line in sorted(lines, key=str.lower, reverse=reverse):
        io.line(line)
    return 0


def hostname(shell: Shell, argv: list[str], io: Io) -> int:
    io.line(shell.host.hostname)
    return 0


def whoami(shell: Shell, argv: list[str], io: Io) -> int:
    user = (shell.env.get("USERNAME") or "ContainerAdministrator").lower()
    io.line(f"user manager\\{user}")
    return 0


def _control(shell: Shell, request: dict[str, object]) -> object:
    if shell.host.control is None:
        raise CommandError("ERROR: the simulated host cannot be reached from this process.")
    try:
        return shell.host.control(request)
    except OSError as exc:
        raise CommandError(f"ERROR: {exc}") from None


def _mask(prefix: int) -> str:
    bits = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
    return ".".join(str((bits >> s) & 0xFF) for s in (24, 16, 8, 0))


def ipconfig(shell: Shell, argv: list[str], io: Io) -> int:
    adapters = _control(shell, {"op": "network", "system": shell.host.container_id})
    io.line("\nWindows IP Configuration\n")
    everything = "/all" in [a.lower() for a in argv]
    for adapter in adapters if isinstance(adapters, list) else []:
        io.line(f"\nEthernet adapter vEthernet (Container NIC {str(adapter['EndpointId'])[:8]}):\n")
        io.line("   Connection-specific DNS Suffix  . : ")
        if everything:
            io.line(f"   Physical Address. . . . . . . . . : {adapter['MacAddress']}")
        io.line(f"   IPv4 Address. . . . . . . . . . . : {adapter['IPAddress']}")
        io.line(f"   Subnet Mask . . . . . . . . . . . : {_mask(int(adapter['PrefixLength']))}")
        io.line(f"   Default Gateway . . . . . . . . . : {adapter['GatewayAddress']}")
    return 0


def tasklist(shell: Shell, argv: list[str], io: Io) -> int:
    args = [a.lower() for a in argv]
    fmt = args[args.index("/fo") + 1] if "/fo" in args and args.index("/fo") + 1 < len(args) else "table"
    header = "/nh" not in args
    listed = _control(shell, {"op": "processes", "system": shell.host.container_id})
    rows = [
        (str(p["ImageName"]), str(p["ProcessId"]), "Services", "0",
         f"{int(p['MemoryWorkingSetPrivateBytes']) // 1024:,} K")
        for p in (listed if isinstance(listed, list) else [])
    ]
    names = ("Image Name", "PID", "Session Name", "Session#", "Mem Usage")
    if fmt == "csv":
        if header:
            io.line(",".join(f'"{n}"' for n in names))
        for row in rows:
            io.line(",".join(f'"{v}"' for v in row))
        return 0
    widths = (25, 8, 16, 11, 12)
    if header:
        io.line("\n" + " ".join(n.ljust(w) if i in (0, 2) else n.rjust(w)
                                for i, (n, w) in enumerate(zip(names, widths))))
        io.line(" ".join("=" * w for w in widths))
    for row in rows:
        io.line(" ".join(v[:w].ljust(w) if i in (0, 2) else v.rjust(w)
                         for i, (v, w) in enumerate(zip(row, widths))))
    return 0


def _inputs(shell: Shell, names: list[str], io: Io) -> list[tuple[Optional[str], list[str]]]:
    if not names:
        data = io.stdin.read()
        return [(None, _lines(data))]
    out: list[tuple[Optional[str], list[str]]] = []
    for name in names:
        matches = list(shell.glob(name)) if fileops.has_wildcard(name) else [name]
        for match in matches:
            try:
                data = shell.fs.host(match).read_bytes()
            except (OSError, CommandError):
                out.append((match, []))
                io.error_line(f"File not found - {match.upper()}")
                continue
            out.append((match, _lines(data)))
    return out


def _lines(data: bytes) -> list[str]:
    text = data.decode("utf-8", "replace").replace("\r\n", "\n")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def find(shell: Shell, argv: list[str], io: Io) -> int:
    flags = {a[1:].lower() for a in argv if a.startswith("/") and len(a) == 2}
    rest = [a for a in argv if not (a.startswith("/") and len(a) == 2)]
    if not rest:
        io.error_line("FIND: Parameter format not correct")
        return 2
    needle, names = rest[0], rest[1:]
    found = False
    for name, lines in _inputs(shell, names, io):
        # An empty string matches no line (so `find /c /v ""` counts them all).
        hits = [(n, line) for n, line in enumerate(lines, 1)
                if (bool(needle) and ((needle.lower() in line.lower()) if "i" in flags else (needle in line)))
                != ("v" in flags)]
        found = found or bool(hits)
        if name is not None:
            io.out(f"\n---------- {name.upper()}" + (f": {len(hits)}\n" if "c" in flags else "\n"))
        elif "c" in flags:
            io.line(str(len(hits)))
        if "c" not in flags:
            for n, line in hits:
                io.line(f"[{n}]{line}" if "n" in flags else line)
    return 0 if found else 1


def _findstr_regex(pattern: str) -> str:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            out.append({"<": r"\b", ">": r"\b"}.get(nxt, re.escape(nxt)))
            i += 2
            continue
        if c in ".*^$":
            out.append(c)
        elif c == "[":
            close = pattern.find("]", i + 1)
            if close < 0:
                out.append(re.escape(c))
            else:
                out.append(pattern[i:close + 1])
                i = close + 1
                continue
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


def findstr(shell: Shell, argv: list[str], io: Io) -> int:
    flags: set[str] = set()
    strings: list[str] = []
    rest: list[str] = []
    for arg in argv:
        low = arg.lower()
        if low.startswith("/c:"):
            strings.append(arg[3:])
        elif arg.startswith("/") and len(arg) >= 2:
            flags.update(low[1:].split("/"))
        else:
            rest.append(arg)
    if not strings:
        if not rest:
            io.error_line("FINDSTR: Bad command line")
            return 2
        strings = rest[0].split()
        rest = rest[1:]
    literal = "l" in flags and "r" not in flags
    patterns = [re.escape(s) if literal else _findstr_regex(s) for s in strings]
    if "b" in flags:
        patterns = ["^" + p for p in patterns]
    if "e" in flags:
        patterns = [p + "$" for p in patterns]
    if "x" in flags:
        patterns = ["^(?:" + p + ")$" for p in patterns]
    regex = re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE if "i" in flags else 0)
    found = False
    inputs = _inputs(shell, rest, io)
    many = len(inputs) > 1
    for name, lines in inputs:
        for n, line in enumerate(lines, 1):
            if bool(regex.search(line)) == ("v" in flags):
                continue
            found = True
            if "m" in flags and name is not None:
                io.line(name)
                break
            prefix = (f"{name}:" if many and name else "") + (f"{n}:" if "n" in flags else "")
            io.line(prefix + line)
    return 0 if found else 1


def xcopy(shell: Shell, argv: list[str], io: Io) -> int:
    switches = {a[1:].lower() for a in argv if a.startswith("/")}
    names = [a for a in argv if not a.startswith("/")]
    if not names:
        io.line("Invalid number of parameters")
        return 4
    source = shell.fs.full(names[0])
    dest = shell.fs.full(names[1]) if len(names) > 1 else shell.fs.cwd
    src_host = shell.fs.host(source)
    recurse = "s" in switches or "e" in switches
    if src_host.is_dir():
        pairs = _walk(src_host, recurse, "e" in switches)
    elif fileops.has_wildcard(source):
        pairs = [(shell.fs.host(m), shell.fs.host(m).name) for m in (shell.fs.full(n) for n in shell.glob(source))]
    elif src_host.is_file():
        pairs = [(src_host, src_host.name)]
    else:
        io.line(f"File not found - {names[0].rpartition(chr(92))[2]}")
        io.line("0 File(s) copied")
        return 4
    dest_host = shell.fs.host(dest)
    as_folder = dest_host.is_dir() or "i" in switches or src_host.is_dir() or len(pairs) != 1
    copied = 0
    for src, rel in pairs:
        target = dest_host / rel if as_folder else dest_host
        if src.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target, follow_symlinks=False)
        if "q" not in switches:
            io.line(shell.fs.to_windows(src) if src_host.is_dir() else names[0])
        copied += 1
    io.line(f"{copied} File(s) copied")
    return 0 if copied or "e" in switches else 1


def _walk(top: Path, recurse: bool, empty_dirs: bool) -> list[tuple[Path, str]]:
    pairs: list[tuple[Path, str]] = []
    for current, subdirs, files in os.walk(top):
        subdirs.sort(key=str.lower)
        rel_dir = os.path.relpath(current, top)
        if rel_dir != "." and empty_dirs:
            pairs.append((Path(current), rel_dir))
        for f in sorted(files, key=str.lower):
            if f.startswith(".wcsim-"):
                continue
            pairs.append((Path(current) / f, f if rel_dir == "." else os.path.join(rel_dir, f)))
        if not recurse:
            break
    return pairs


def persisted_environment(root: Path) -> dict[str, str]:
    """The variables ``setx`` saved in a container (its later processes start with them)."""
    try:
        doc = json.loads((root / SETX_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(doc, dict):
        return {}
    return {str(k): str(v) for k, v in list(doc.items())[:1024] if isinstance(v, str)}


def setx(shell: Shell, argv: list[str], io: Io) -> int:
    args = [a for a in argv if a.lower() != "/m"]
    if len(args) != 2:
        io.error_line("ERROR: Invalid syntax.\nType \"SETX /?\" for usage.")
        return 1
    name, value = args
    values = persisted_environment(shell.fs.root)
    values[name] = value
    path = shell.fs.root / SETX_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(values), encoding="utf-8")
    os.replace(tmp, path)
    if len(value) > 1024:
        io.line("\nWARNING: The data being saved is truncated to 1024 characters.")
    io.line("\nSUCCESS: Specified value was saved.")
    return 0


def ln(shell: Shell, argv: list[str], io: Io) -> int:
    """``ln -s TARGET NAME``: Cygwin's ln (3.1.5 and later), which makes a WSL symlink (an
    IO_REPARSE_TAG_LX_SYMLINK reparse point) holding TARGET as written. It is how Cygwin's
    installer leaves the links that HCS's ImportLayer cannot import ("Catastrophic failure")."""
    args = [a for a in argv if a != "-s"]
    if "-s" not in argv or len(args) != 2 or any(a.startswith("-") for a in args):
        io.error_line("ln: only `ln -s TARGET NAME` is simulated (Cygwin's symbolic links)")
        return 1
    target, name = args
    link = shell.fs.host(shell.fs.full(name.replace("/", "\\")))
    if link.exists() or link.is_symlink():
        io.error_line(f"ln: failed to create symbolic link '{name}': File exists")
        return 1
    if not link.parent.is_dir():
        io.error_line(f"ln: failed to create symbolic link '{name}': No such file or directory")
        return 1
    os.symlink(target, link)  # read back by the simulated NTFS as an LX symlink, never followed
    return 0


TOOLS: dict[str, Tool] = {
    "cmd": cmd_tool,
    **{name: _with_argv(program) for name, program in (
        ("ping", ping), ("timeout", timeout), ("hostname", hostname), ("whoami", whoami), ("ipconfig", ipconfig),
        ("tasklist", tasklist), ("find", find), ("findstr", findstr), ("xcopy", xcopy), ("setx", setx),
        ("mode", mode), ("sort", sort), ("powershell", powershell.run), ("pwsh", powershell.run), ("ln", ln))},
}
