"""Runs cmd's trees: operators, redirections, ``if``, ``for``, batch files, ``call`` and ``goto``.

One :class:`Shell` is one cmd.exe process: its variables, current directory, ``ERRORLEVEL``,
``echo`` state, delayed expansion and the batch file it is in. A side of a pipe and a
``for /f`` command run in a copy, as cmd starts another cmd.exe for them.
"""

from __future__ import annotations

import contextlib
import datetime
import logging
import os
import random
import re
import threading
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, Optional, Sequence, cast

import attrs

from wincontainers.sim.shell import parser as ps
from wincontainers.sim.shell.environment import Environment
from wincontainers.sim.shell.forf import for_f_rows
from wincontainers.sim.shell.matching import compare, integer, wildcard_match
from wincontainers.sim.shell.programs import has_fds, image_name, run_forked
from wincontainers.sim.shell.textio import (
    BatchExit, CommandError, GotoLabel, Io, ShellExit, ShellSyntaxError,
)
from wincontainers.sim.shell.winpaths import ContainerFs

__all__ = ["Shell", "HostInfo", "NOT_RECOGNIZED", "Command"]

log = logging.getLogger("wincontainers.sim.shell")

NOT_RECOGNIZED = 9009
_SYNTAX_ERROR = 255
_FOR_VAR = re.compile(r"%(~[fdpnxsatz$]*)?([A-Za-z])")

#: An internal command: (shell, the text after its name, stdio) -> its return code.
Command = Callable[["Shell", str, Io], int]


@attrs.frozen
class HostInfo:
    """What the container's tools tell about their host (from the simulated host's daemon)."""

    version: str = "10.0.17763.1"
    hostname: str = "CONTAINER"
    container_id: str = ""
    control: Optional[Callable[[dict[str, object]], object]] = None


@attrs.define
class _Frame:
    """One batch file (or ``call :label``) being run."""

    path: str
    lines: list[str]
    args: list[str]
    pos: int = 0
    locals_depth: int = 0


@attrs.define
class _Saved:
    env: Environment
    delayed: bool
    cwd: str


class Shell:
    """One cmd.exe process."""

    internal: dict[str, Command] = {}  # filled by wincontainers.sim.shell.internal
    #: Run external programs in a process of their own, as cmd does (set in container processes;
    #: off where the shell runs inside another program, such as the unit tests).
    fork_programs = False
    #: Simulated programs by name: (shell, command line as typed, stdio) -> exit code (filled by tools).
    external: dict[str, Callable[["Shell", str, Io], int]] = {}

    def __init__(self, fs: ContainerFs, env: Environment, host: HostInfo, *,
                 delayed: bool = False, echo: bool = True) -> None:
        self.fs = fs
        self.env = env
        self.host = host
        self.delayed = delayed
        self.echo = echo
        self.errorlevel = 0
        self.frame: Optional[_Frame] = None
        self.locals: list[_Saved] = []
        self.dirs: list[str] = []

    def child(self) -> "Shell":
        """A new cmd.exe with this one's variables and directory (pipes, ``for /f``, ``cmd``)."""
        return Shell(self.fs.copy(), self.env.copy(), self.host, delayed=self.delayed)

    # -- variables ------------------------------------------------------------------------------

    def lookup(self, name: str) -> Optional[str]:
        value = self.env.get(name)
        if value is not None:
            return value
        now = datetime.datetime.now()
        dynamic: Optional[Callable[[], str]] = {
            "CD": lambda: self.fs.cwd,
            "__CD__": lambda: self.fs.cwd.rstrip("\\") + "\\",
            "ERRORLEVEL": lambda: str(self.errorlevel),
            "RANDOM": lambda: str(random.randint(0, 32767)),
            "DATE": lambda: now.strftime("%a %m/%d/%Y"),
            "TIME": lambda: now.strftime("%H:%M:%S.") + f"{now.microsecond // 10000:02d}",
            "CMDEXTVERSION": lambda: "2",
            "CMDCMDLINE": lambda: self.env.get("__CMDLINE__") or "cmd.exe",
        }.get(name.upper())
        return dynamic() if dynamic is not None else None

    def _batch_arg(self, modifiers: str, which: str) -> str:
        frame = self.frame
        assert frame is not None
        if which == "*":
            return " ".join(frame.args[1:])
        index = int(which)
        value = frame.args[index] if index < len(frame.args) else ""
        return self.modify(modifiers[1:], value) if modifiers else value

    def modify(self, modifiers: str, value: str) -> str:
        """``%~nx1``: the parts of a path an argument or ``for`` variable names."""
        value = value.strip('"') if value.startswith('"') else value
        if not modifiers:
            return value
        if not value:
            return ""
        try:
            full = self.fs.full(value)
        except CommandError:
            return value
        head, _, name = full.rpartition("\\")
        stem, dot, ext = name.rpartition(".")
        if not dot:
            stem, ext = name, ""
        parts = {"d": full[:2], "p": head[2:] + "\\", "n": stem, "x": (dot + ext) if dot else ""}
        out = ""
        if "z" in modifiers:
            st = self.fs.stat(value)
            out = str(st.st_size) if st else ""
        picked = [k for k in "dpnx" if k in modifiers]
        if picked:
            out += ("" if not out else " ") + "".join(parts[k] for k in picked)
        elif "f" in modifiers or "s" in modifiers:
            out += ("" if not out else " ") + full
        return out

    def substitute(self, text: str, forvars: dict[str, str]) -> str:
        """Phases 4 and 5: ``for`` variables, then ``!VAR!`` when delayed expansion is on."""
        if forvars and "%" in text:
            def repl(m: "re.Match[str]") -> str:
                letter = m.group(2)
                if letter not in forvars:
                    return m.group(0)
                return self.modify(m.group(1)[1:], forvars[letter]) if m.group(1) else forvars[letter]
            text = _FOR_VAR.sub(repl, text)
        if self.delayed:
            text = ps.expand_delayed(text, self.lookup)
        return text

    # -- lines ----------------------------------------------------------------------------------

    def run_line(self, line: str, io: Io) -> int:
        """A command line (``cmd /c``): command-line expansion, then run it."""
        expanded = ps.expand_percent(line, self.lookup)
        try:
            node = ps.parse(expanded)
        except ShellSyntaxError as exc:
            io.error_line(str(exc) if not ps.is_incomplete(exc) else "The syntax of the command is incorrect.")
            self.errorlevel = _SYNTAX_ERROR
            return _SYNTAX_ERROR
        if node is None:
            return self.errorlevel
        try:
            code = self.execute(node, io, {})
        except GotoLabel as exc:
            io.error_line(f"The system cannot find the batch label specified - {exc.label}")
            self.errorlevel = 1
            return 1
        except BatchExit as exc:
            if exc.code is not None:
                self.errorlevel = exc.code
            return self.errorlevel
        return code

    def execute(self, node: ps.Node, io: Io, forvars: dict[str, str]) -> int:
        if isinstance(node, ps.Simple):
            return self._simple(node, io, forvars)
        if isinstance(node, ps.Binary):
            return self._binary(node, io, forvars)
        if isinstance(node, ps.Block):
            with contextlib.ExitStack() as stack:
                try:
                    inner = self._redirected(node.redirects, io, stack, forvars)
                except CommandError as exc:
                    io.error_line(exc.message)
                    self.errorlevel = exc.code
                    return exc.code
                return self.execute(node.body, inner, forvars) if node.body is not None else 0
        if isinstance(node, ps.IfNode):
            return self._if(node, io, forvars)
        return self._for(node, io, forvars)

    def _binary(self, node: ps.Binary, io: Io, forvars: dict[str, str]) -> int:
        if node.op == "|":
            return self._pipe(node, io, forvars)
        code = self.execute(node.left, io, forvars)
        if node.op == "&" or (node.op == "&&") == (code == 0):
            return self.execute(node.right, io, forvars)
        return code

    def _pipe(self, node: ps.Binary, io: Io, forvars: dict[str, str]) -> int:
        read_fd, write_fd = os.pipe()
        reader = os.fdopen(read_fd, "rb")
        writer = os.fdopen(write_fd, "wb", buffering=0)
        left, right = self.child(), self.child()
        # A program forked now would hold the pipe's write end open: the reader would never end.
        left.fork_programs = right.fork_programs = False

        def produce() -> None:
            try:
                left.run_isolated(node.left, io.with_handles(stdout=cast(BinaryIO, writer)), forvars)
            finally:
                writer.close()

        thread = threading.Thread(target=produce, name="cmd-pipe", daemon=True)
        thread.start()
        try:
            code = right.run_isolated(node.right, io.with_handles(stdin=cast(BinaryIO, reader)), forvars)
        finally:
            reader.close()
            thread.join()
        self.errorlevel = code
        return code

    def run_isolated_line(self, line: str, io: Io) -> int:
        """``cmd /c line`` in this (child) shell: ``exit`` ends only it."""
        try:
            return self.run_line(line, io)
        except ShellExit as exc:
            return exc.code

    def run_isolated(self, node: ps.Node, io: Io, forvars: dict[str, str]) -> int:
        """Run ``node`` as a separate cmd.exe would: ``exit`` ends only it."""
        try:
            return self.execute(node, io, forvars)
        except ShellExit as exc:
            return exc.code
        except (BatchExit, GotoLabel):
            return self.errorlevel

    # -- simple commands ------------------------------------------------------------------------

    def _simple(self, node: ps.Simple, io: Io, forvars: dict[str, str]) -> int:
        text = self.substitute(node.text, forvars)
        with contextlib.ExitStack() as stack:
            try:
                inner = self._redirected(node.redirects, io, stack, forvars)
                name, rest = split_command(text, self.internal)
                if not name:
                    return 0
                low = name.lower()
                command = self.internal.get(low)
                if command is not None:
                    code = command(self, rest, inner)
                    if code:
                        self.errorlevel = code
                    return code
                if re.fullmatch(r"[A-Za-z]:", name) and not rest.strip():
                    return self._drive(name, inner)
                code = self.run_program(name, rest, inner)
            except CommandError as exc:
                io.error_line(exc.message)
                self.errorlevel = exc.code
                return exc.code
            except BrokenPipeError:
                code = 1
        self.errorlevel = code
        return code

    def _drive(self, name: str, io: Io) -> int:
        if name.upper() != "C:":
            raise CommandError("The system cannot find the drive specified.")
        return 0

    def _redirected(self, redirects: Sequence[ps.Redirect], io: Io, stack: contextlib.ExitStack,
                    forvars: dict[str, str]) -> Io:
        handles: list[BinaryIO] = [io.stdin, io.stdout, io.stderr]
        tty = io.tty
        for r in redirects:
            if r.handle > 2:
                continue
            if r.mode in (">&", "<&"):
                source = int(r.target)
                if source <= 2:
                    handles[r.handle] = handles[source]
                continue
            target = self.substitute(r.target, forvars)
            if target.lower() in ("nul", "nul:"):
                handles[r.handle] = cast(BinaryIO, stack.enter_context(
                    open(os.devnull, "rb" if r.mode == "<" else "wb", buffering=0)))
            elif target.lower() in ("con", "con:"):
                continue
            else:
                path = self.fs.host(target)
                if path.is_dir():
                    raise CommandError("Access is denied.")
                if not path.parent.is_dir():
                    raise CommandError("The system cannot find the path specified.")
                try:
                    if r.mode == "<":
                        handles[r.handle] = cast(BinaryIO, stack.enter_context(open(path, "rb")))
                    else:
                        handles[r.handle] = cast(BinaryIO, stack.enter_context(
                            open(path, "ab" if r.mode == ">>" else "wb", buffering=0)))
                except FileNotFoundError:
                    raise CommandError("The system cannot find the file specified.") from None
                except OSError:
                    raise CommandError("Access is denied.") from None
            if r.handle == 1:
                tty = False
        return Io(handles[0], handles[1], handles[2], tty)

    # -- programs -------------------------------------------------------------------------------

    def program_for(self, name: str) -> tuple[Optional[str], Optional[str]]:
        """What a program name names: (a simulated tool's name, None) for a tool reached by its
        name or in System32; else (None, the Windows path the name finds, or None)."""
        bare = name.strip('"')
        base = bare.replace("/", "\\").rsplit("\\", 1)[-1].lower()
        tool_name = base[:-4] if base.endswith((".exe", ".com")) else base
        in_system = "\\" not in bare or bare.lower().replace("/", "\\").startswith(
            ("c:\\windows\\system32\\", "\\windows\\system32\\", "%systemroot%"))
        if tool_name in self.external and in_system:
            return tool_name, None
        try:
            return None, self.find_program(bare)
        except CommandError:
            return None, None

    def run_program(self, name: str, rest: str, io: Io) -> int:
        """An external command: a simulated Windows tool, a batch file, or cmd's 9009."""
        bare = name.strip('"')
        tool_name, found = self.program_for(bare)
        if tool_name is not None:
            tool, line = self.external[tool_name], name + rest
            if self.fork_programs and has_fds(io) and threading.current_thread() is threading.main_thread():
                return run_forked(image_name(tool_name), lambda: tool(self, line, io))
            return tool(self, line, io)
        if found is not None and found.lower().endswith((".bat", ".cmd")):
            return self.run_batch(found, bare, ps.split_arguments(rest), io, called=False)
        io.error_line(f"'{bare}' is not recognized as an internal or external command,\n"
                      "operable program or batch file.")
        if found is not None:
            io.error_line(not_simulated(found))
        return NOT_RECOGNIZED

    def find_program(self, name: str) -> Optional[str]:
        """The Windows path a program name finds (the current directory, then PATH, with PATHEXT)."""
        exts = [e.lower() for e in (self.env.get("PATHEXT") or ".COM;.EXE;.BAT;.CMD").split(";") if e]
        has_ext = "." in name.replace("\\", "/").rsplit("/", 1)[-1]
        if "\\" in name or "/" in name or ":" in name:
            folders = [""]
        else:
            folders = [self.fs.cwd] + [p.strip('"') for p in (self.env.get("PATH") or "").split(";") if p.strip()]
        for folder in folders:
            base = (folder.rstrip("\\") + "\\" + name) if folder else name
            for candidate in ([base] if has_ext else []) + [base + e for e in exts]:
                try:
                    host = self.fs.host(candidate)
                except CommandError:
                    continue
                if host.is_file():
                    return self.fs.to_windows(host)
        return None

    def run_batch(self, path: str, typed: str, args: list[str], io: Io, *, called: bool,
                  label: Optional[str] = None) -> int:
        """Run a batch file (or ``call :label`` in the one running)."""
        if label is None:
            try:
                raw = self.fs.host(path).read_bytes()
            except OSError:
                io.error_line("The batch file cannot be found.")
                return 1
            lines = raw.decode("utf-8", "replace").replace("\r\n", "\n").split("\n")
        else:
            assert self.frame is not None
            lines = self.frame.lines
        frame = _Frame(path, lines, [typed, *args], locals_depth=len(self.locals))
        if label is not None:
            index = self._label_index(lines, label, 0)
            if index is None:
                io.error_line(f"The system cannot find the batch label specified - {label}")
                return 1
            frame.pos = index
        outer = self.frame
        self.frame = frame
        try:
            self._run_frame(frame, io)
        except BatchExit as exc:
            if exc.code is not None:
                self.errorlevel = exc.code
        finally:
            while len(self.locals) > frame.locals_depth:
                self.restore(self.locals.pop())
            self.frame = outer
        if outer is not None and not called:
            raise BatchExit(None)  # a batch file started without call replaces the one running
        return self.errorlevel

    def _run_frame(self, frame: _Frame, io: Io) -> None:
        while frame.pos < len(frame.lines):
            start = frame.pos
            text = frame.lines[frame.pos]
            frame.pos += 1
            if text.lstrip(" \t;,=@").startswith(":"):
                continue
            while True:
                expanded = ps.expand_percent(text, self.lookup, self._batch_arg)
                try:
                    node = ps.parse(expanded)
                    break
                except ShellSyntaxError as exc:
                    if ps.is_incomplete(exc) and frame.pos < len(frame.lines):
                        text += "\n" + frame.lines[frame.pos]
                        frame.pos += 1
                        continue
                    io.error_line(str(exc) if not ps.is_incomplete(exc)
                                  else "The syntax of the command is incorrect.")
                    self.errorlevel = _SYNTAX_ERROR
                    raise ShellExit(_SYNTAX_ERROR) from None
            if node is None:
                continue
            if self.echo and not text.lstrip(" \t").startswith("@"):
                io.out(f"\n{self.fs.cwd}>{expanded.strip()}\n")
            try:
                self.execute(node, io, {})
            except GotoLabel as exc:
                index = self._label_index(frame.lines, exc.label, start)
                if index is None:
                    io.error_line(f"The system cannot find the batch label specified - {exc.label}")
                    raise BatchExit(1) from None
                frame.pos = index

    @staticmethod
    def _label_index(lines: list[str], label: str, start: int) -> Optional[int]:
        want = label.lstrip(":").split()[0].lower() if label.strip(": ") else ""
        order = list(range(start, len(lines))) + list(range(0, start))
        for i in order:
            text = lines[i].lstrip(" \t;,=@")
            if text.startswith(":") and not text.startswith("::"):
                name = text[1:].split(None, 1)[0].lower() if text[1:].strip() else ""
                if name == want:
                    return i + 1
        return None

    # -- if and for ---------------------------------------------------------------------------

    def _if(self, node: ps.IfNode, io: Io, forvars: dict[str, str]) -> int:
        args = [self.substitute(a, forvars) for a in node.args]
        if node.kind == "exist":
            result = self._exists(args[0])
        elif node.kind == "defined":
            result = self.lookup(args[0]) is not None
        elif node.kind == "errorlevel":
            number = integer(args[0])
            if number is None:
                io.error_line(f"{args[0]} was unexpected at this time.")
                return _SYNTAX_ERROR
            result = self.errorlevel >= number
        else:
            result = compare(args[0], args[1], node.op, node.insensitive)
        if result != node.negate:
            return self.execute(node.then, io, forvars)
        if node.orelse is not None:
            return self.execute(node.orelse, io, forvars)
        return 0

    def _exists(self, path: str) -> bool:
        path = path.strip('"')
        if "*" in path or "?" in path:
            return bool(list(self.glob(path)))
        return self.fs.exists(path)

    def glob(self, pattern: str, *, dirs: bool = False, files: bool = True) -> Iterator[str]:
        """Names matching a wildcard, as typed (folder prefix kept), in cmd's order."""
        pattern = pattern.replace("/", "\\")
        folder_typed, _, mask = pattern.rpartition("\\")
        if not _ and ":" in pattern[:2]:
            folder_typed, mask = pattern[:2], pattern[2:]
        try:
            folder = self.fs.host(folder_typed + ("\\" if folder_typed.endswith(":") or not folder_typed else "")
                                  if folder_typed else ".")
        except CommandError:
            return
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name.lower())
        except OSError:
            return
        prefix = pattern[: len(pattern) - len(mask)]
        for entry in entries:
            is_dir = entry.is_dir(follow_symlinks=False)
            if (is_dir and not dirs) or (not is_dir and not files):
                continue
            if wildcard_match(mask, entry.name):
                yield prefix + entry.name

    def _for(self, node: ps.ForNode, io: Io, forvars: dict[str, str]) -> int:
        items = self.substitute(node.items, forvars)
        code = 0
        for values in self._for_values(node, items, io):
            inner = dict(forvars)
            inner.update(values)
            code = self.execute(node.body, io, inner)
        return code

    def _for_values(self, node: ps.ForNode, items: str, io: Io) -> Iterator[dict[str, str]]:
        var = node.var
        if node.switch == "/l":
            numbers = [(integer(t) or 0) for t in ps.split_arguments(items)][:3]
            start, step, end = (numbers + [0, 0, 0])[:3]
            value = start
            while (step > 0 and value <= end) or (step < 0 and value >= end):
                yield {var: str(value)}
                value += step
            return
        if node.switch == "/f":
            yield from for_f_rows(self, node.options, items, var, io)
            return
        if node.switch == "/r":
            root = node.options or self.fs.cwd
            top = self.fs.host(root)
            for folder, subdirs, _ in os.walk(top):
                subdirs.sort(key=str.lower)
                win = self.fs.to_windows(Path(folder))
                for token in ps.split_arguments(items):
                    if "*" in token or "?" in token:
                        for name in self.glob(win.rstrip("\\") + "\\" + token):
                            yield {var: name}
                    else:
                        yield {var: win.rstrip("\\") + "\\" + token}
            return
        for token in ps.split_arguments(items):
            if "*" in token or "?" in token:
                for name in self.glob(token, dirs=node.switch == "/d", files=node.switch != "/d"):
                    yield {var: name}
            elif node.switch != "/d":
                yield {var: token}

    # -- setlocal -------------------------------------------------------------------------------

    def save(self) -> None:
        self.locals.append(_Saved(self.env.copy(), self.delayed, self.fs.cwd))

    def restore(self, saved: _Saved) -> None:
        self.env, self.delayed, self.fs.cwd = saved.env, saved.delayed, saved.cwd


def not_simulated(path: str) -> str:
    """What a container says of a Windows program it cannot run."""
    return (f"not simulated: {path} is a Windows program; the simulated host runs cmd, "
            "powershell (a subset) and the tools listed in docs/simulator.md")


def split_command(text: str, internal: dict[str, Command]) -> tuple[str, str]:
    """The command's name and the text after it (``echo.x`` -> ``echo``, ``.x``)."""
    i, n = 0, len(text)
    while i < n and text[i] in ps.DELIMITERS:
        i += 1
    if i >= n:
        return "", ""
    if text[i] == '"':
        close = text.find('"', i + 1)
        close = n if close < 0 else close
        return text[i:close + 1], text[close + 1:]
    j = i
    while j < n and text[j] not in ps.DELIMITERS:
        j += 1
    name = text[i:j]
    if name.lower() not in internal:
        for k, c in enumerate(name):
            if c in "./(:\\+[]" and name[:k].lower() in internal:
                return name[:k], text[i + k:]
    return name, text[j:]
