"""cmd's internal commands that are not about files: ``echo``, ``set``, ``cd``, ``exit``, ``call``..."""

from __future__ import annotations

import zlib

from wincontainers.sim.shell import arith
from wincontainers.sim.shell import parser as ps
from wincontainers.sim.shell.interpreter import Command, Shell, split_command
from wincontainers.sim.shell.textio import BatchExit, CommandError, GotoLabel, Io, ShellExit

__all__ = ["COMMANDS", "change_directory"]

SYNTAX = "The syntax of the command is incorrect."


def echo(shell: Shell, rest: str, io: Io) -> int:
    if not rest:
        io.line(f"ECHO is {'on' if shell.echo else 'off'}.")
        return 0
    text = rest[1:]
    if rest[0] in ps.DELIMITERS:
        word = text.strip(" \t").lower()
        if not text.strip(" \t"):
            io.line(f"ECHO is {'on' if shell.echo else 'off'}.")
            return 0
        if word in ("on", "off"):
            shell.echo = word == "on"
            return 0
    io.line(text)
    return 0


def set_command(shell: Shell, rest: str, io: Io) -> int:
    text = rest.lstrip(" \t")
    low = text.lower()
    if low.startswith("/a"):
        expression = text[2:]
        result = arith.evaluate(expression, shell.lookup, shell.env.set)
        if shell.frame is None:
            io.out(str(result))
        return 0
    if low.startswith("/p"):
        spec = text[2:].lstrip(" \t")
        name, eq, prompt = spec.partition("=")
        if not eq or not name:
            raise CommandError(SYNTAX)
        io.out(prompt.strip('"') if prompt.startswith('"') else prompt)
        line = io.stdin.readline()
        if not line:
            return 1
        shell.env.set(name, line.decode("utf-8", "replace").rstrip("\r\n"))
        return 0
    if text.startswith('"'):
        last = text.rfind('"')
        text = text[1:last] if last > 0 else text[1:]
    if not text.strip():
        for name, value in shell.env.items():
            io.line(f"{name}={value}")
        return 0
    name, eq, value = text.partition("=")
    if not eq:
        prefix = name.rstrip(" \t").lower()
        found = [(k, v) for k, v in shell.env.items() if k.lower().startswith(prefix)]
        for k, v in found:
            io.line(f"{k}={v}")
        if not found:
            raise CommandError(f"Environment variable {name.rstrip()} not defined")
        return 0
    if not name:
        raise CommandError(SYNTAX)
    shell.env.set(name, value)
    return 0


def change_directory(shell: Shell, target: str) -> None:
    """``cd`` to ``target`` (as typed): the folder's own spelling becomes the current directory."""
    full = shell.fs.full(target)
    host = shell.fs.host(full)
    if not host.exists():
        raise CommandError("The system cannot find the path specified.")
    if not host.is_dir():
        raise CommandError("The directory name is invalid.")
    shell.fs.cwd = shell.fs.to_windows(host)


def cd(shell: Shell, rest: str, io: Io) -> int:
    text = rest.strip(" \t")
    if text.lower().startswith("/d"):
        text = text[2:].strip(" \t")
    text = text.strip('"').rstrip(" ")
    if not text:
        io.line(shell.fs.cwd)
        return 0
    if len(text) == 2 and text[1] == ":":
        shell.fs.full(text)  # another drive: "cannot find the drive"
        io.line(shell.fs.cwd)
        return 0
    change_directory(shell, text)
    return 0


def pushd(shell: Shell, rest: str, io: Io) -> int:
    target = rest.strip(" \t").strip('"')
    if not target:
        for folder in reversed(shell.dirs):
            io.line(folder)
        return 0
    before = shell.fs.cwd
    change_directory(shell, target)
    shell.dirs.append(before)
    return 0


def popd(shell: Shell, rest: str, io: Io) -> int:
    if shell.dirs:
        shell.fs.cwd = shell.dirs.pop()
    return 0


def exit_command(shell: Shell, rest: str, io: Io) -> int:
    args = ps.split_arguments(rest)
    batch_only = bool(args) and args[0].lower() == "/b"
    if batch_only:
        args = args[1:]
    code = None
    if args:
        try:
            code = int(args[0], 0) if not args[0].startswith("0") or args[0] == "0" else int(args[0], 8)
        except ValueError:
            code = 0
    if batch_only and shell.frame is not None:
        raise BatchExit(code)
    raise ShellExit(shell.errorlevel if code is None else code)


def goto(shell: Shell, rest: str, io: Io) -> int:
    args = ps.split_arguments(rest)
    if not args:
        raise CommandError("No batch label specified to GOTO command.")
    label = args[0]
    if label.lower() == ":eof":
        raise BatchExit(None)
    if shell.frame is None:
        raise CommandError(f"The system cannot find the batch label specified - {label.lstrip(':')}")
    raise GotoLabel(label)


def call(shell: Shell, rest: str, io: Io) -> int:
    text = rest.lstrip(ps.DELIMITERS)
    if text.startswith(":"):
        frame = shell.frame
        if frame is None:
            raise CommandError("Invalid attempt to call batch label outside of batch script.")
        args = ps.split_arguments(text)
        return shell.run_batch(frame.path, args[0], args[1:], io, called=True, label=args[0])
    batch_arg = shell._batch_arg if shell.frame is not None else None  # noqa: SLF001 (its own phase)
    expanded = ps.expand_percent(text, shell.lookup, batch_arg)
    node = ps.parse(expanded)
    if node is None:
        return 0
    if isinstance(node, ps.Simple):
        name, args_text = split_command(node.text, shell.internal)
        found = shell.find_program(name.strip('"')) if name else None
        if found and found.lower().endswith((".bat", ".cmd")) and not node.redirects:
            return shell.run_batch(found, name.strip('"'), ps.split_arguments(args_text), io, called=True)
    return shell.execute(node, io, {})


def shift(shell: Shell, rest: str, io: Io) -> int:
    if shell.frame is not None and shell.frame.args:
        shell.frame.args.pop(0)
    return 0


def setlocal(shell: Shell, rest: str, io: Io) -> int:
    if shell.frame is None:
        return 0
    shell.save()
    for word in ps.split_arguments(rest.lower()):
        if word == "enabledelayedexpansion":
            shell.delayed = True
        elif word == "disabledelayedexpansion":
            shell.delayed = False
        elif word not in ("enableextensions", "disableextensions"):
            raise CommandError("Invalid parameter to SETLOCAL command")
    return 0


def endlocal(shell: Shell, rest: str, io: Io) -> int:
    frame = shell.frame
    if frame is not None and len(shell.locals) > frame.locals_depth:
        shell.restore(shell.locals.pop())
    return 0


def ver(shell: Shell, rest: str, io: Io) -> int:
    io.out(f"\nMicrosoft Windows [Version {shell.host.version}]\n")
    return 0


def nothing(shell: Shell, rest: str, io: Io) -> int:
    return 0


def cls(shell: Shell, rest: str, io: Io) -> int:
    io.out("\x0c")
    return 0


def pause(shell: Shell, rest: str, io: Io) -> int:
    io.out("Press any key to continue . . . ")
    io.stdin.readline()
    io.line()
    return 0


def path(shell: Shell, rest: str, io: Io) -> int:
    text = rest.strip(" \t=")
    if not text:
        io.line(f"PATH={shell.env.get('PATH') or ''}" if shell.env.get("PATH") else "No Path")
        return 0
    shell.env.set("PATH", None if text == ";" else text)
    return 0


def vol(shell: Shell, rest: str, io: Io) -> int:
    io.line(" Volume in drive C has no label.")
    io.line(f" Volume Serial Number is {serial_number(shell)}")
    return 0


def serial_number(shell: Shell) -> str:
    value = zlib.crc32(str(shell.fs.root).encode())
    return f"{value >> 16:04X}-{value & 0xFFFF:04X}"


COMMANDS: dict[str, Command] = {
    "echo": echo, "set": set_command, "cd": cd, "chdir": cd, "pushd": pushd, "popd": popd,
    "exit": exit_command, "goto": goto, "call": call, "shift": shift, "setlocal": setlocal,
    "endlocal": endlocal, "ver": ver, "rem": nothing, "title": nothing, "prompt": nothing,
    "verify": nothing, "cls": cls, "pause": pause, "path": path, "vol": vol,
}
