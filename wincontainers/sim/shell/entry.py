"""What a simulated container process runs: one Windows command line, to its exit code.

``cmd ...`` is the interpreter; ``powershell``/``pwsh`` and the simulated tools run as
themselves; a ``.bat``/``.cmd`` file in the container runs as ``cmd /c`` runs it; any other file
is a Windows program the simulator cannot run (cmd's 9009, saying so). :func:`image_for` is the
daemon's question before it starts a process: does this command line name a program at all?
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Mapping, Optional

from wincontainers.sim.shell import fileops, internal, tools
from wincontainers.sim.shell.argv import program_of
from wincontainers.sim.shell.environment import Environment
from wincontainers.sim.shell.interpreter import NOT_RECOGNIZED, HostInfo, Shell, not_simulated
from wincontainers.sim.shell.programs import STATUS_CONTROL_C_EXIT, image_name
from wincontainers.sim.shell.parser import split_arguments
from wincontainers.sim.shell.textio import Io, ShellExit
from wincontainers.sim.shell.winpaths import ContainerFs

__all__ = ["run_command_line", "image_for", "new_shell", "STATUS_CONTROL_C_EXIT", "ProgramNotFound"]

Shell.internal = {**internal.COMMANDS, **fileops.COMMANDS}
Shell.external = dict(tools.TOOLS)


class ProgramNotFound(Exception):
    """The command line names no program in the container (CreateProcess fails, file not found)."""


def new_shell(root: Path, cwd: str, env: Mapping[str, str], host: HostInfo,
              mounts: Optional[Mapping[str, str]] = None) -> Shell:
    return Shell(ContainerFs(root, cwd, mounts), Environment(env), host)


def _image_name(program: str) -> str:
    base = program.replace("/", "\\").rsplit("\\", 1)[-1]
    return base if "." in base else base + ".exe"


def image_for(command_line: str, fs: ContainerFs, env: Mapping[str, str]) -> str:
    """The image name the process list shows for ``command_line``, started in ``fs``'s current
    directory; ProgramNotFound if it names no program."""
    program, _ = program_of(command_line)
    if not program:
        raise ProgramNotFound("")
    tool_name, found = Shell(fs, Environment(env), HostInfo()).program_for(program)
    if tool_name is not None:
        return image_name(tool_name)
    if found is None:
        raise ProgramNotFound(program)
    return "cmd.exe" if found.lower().endswith((".bat", ".cmd")) else _image_name(found)


def run_command_line(command_line: str, shell: Shell, io: Io) -> int:
    """Run a process's command line in ``shell``; its exit code (Ctrl+C gives 0xC000013A)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return _run(command_line, shell, io)
    except KeyboardInterrupt:
        return STATUS_CONTROL_C_EXIT
    except ShellExit as exc:
        return exc.code & 0xFFFFFFFF


def _run(command_line: str, shell: Shell, io: Io) -> int:
    program, rest_at = program_of(command_line)
    tool_name, found = shell.program_for(program or "")
    if tool_name is not None:  # the process is the program itself: no cmd, no fork
        return Shell.external[tool_name](shell, command_line, io)
    if found is not None and found.lower().endswith((".bat", ".cmd")):
        return shell.run_batch(found, program or found, split_arguments(command_line[rest_at:]), io, called=True)
    io.error_line(not_simulated(found or program or ""))
    return NOT_RECOGNIZED
