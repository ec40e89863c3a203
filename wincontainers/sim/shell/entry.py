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

from wincontainers.sim.shell import fileops, internal, launch, tools
from wincontainers.sim.shell.argv import command_line_to_argv, program_of
from wincontainers.sim.shell.environment import Environment
from wincontainers.sim.shell.interpreter import NOT_RECOGNIZED, HostInfo, Shell
from wincontainers.sim.shell.programs import STATUS_CONTROL_C_EXIT, image_name
from wincontainers.sim.shell.parser import split_arguments
from wincontainers.sim.shell.textio import CommandError, Io, ShellExit
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


def image_for(command_line: str, root: Path, env: Mapping[str, str]) -> str:
    """The image name the process list shows for ``command_line``; ProgramNotFound if none."""
    program, _ = program_of(command_line)
    if not program:
        raise ProgramNotFound("")
    name = launch.program_name(program)
    if name in Shell.external and ("\\" not in program or "system32" in program.lower()):
        return image_name(name)
    shell = new_shell(root, "C:\\", env, HostInfo())
    try:
        found = shell.find_program(program)
    except CommandError:
        found = None
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
    program, _ = program_of(command_line)
    name = launch.program_name(program or "")
    if name == "cmd":
        return tools.run_cmd(shell, command_line, io)
    tool = Shell.external.get(name)
    if tool is not None and ("\\" not in (program or "") or "system32" in (program or "").lower()):
        return tool(shell, command_line_to_argv(command_line)[1:], io)
    found: Optional[str] = shell.find_program(program or "")
    if found is not None and found.lower().endswith((".bat", ".cmd")):
        _, rest_at = program_of(command_line)
        return shell.run_batch(found, program or found, split_arguments(command_line[rest_at:]), io, called=True)
    io.error_line(f"not simulated: {found or program} is a Windows program; the simulated host runs cmd, "
                  "powershell (a subset) and the tools listed in docs/simulator.md")
    return NOT_RECOGNIZED
