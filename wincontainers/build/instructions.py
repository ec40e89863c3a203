"""Typed instructions: parsed Dockerfile nodes with their flags checked and words expanded,
and what each config-only instruction does to an image config.

Expansion follows Docker: ``FROM``, ``COPY``/``ADD``, ``ENV``, ``ARG`` defaults, ``LABEL``,
``WORKDIR``, ``USER``, ``EXPOSE``, ``VOLUME`` and ``STOPSIGNAL`` expand ``$VAR``; ``RUN``,
``CMD``, ``ENTRYPOINT``, ``SHELL`` and ``HEALTHCHECK`` pass text to the container's shell as
written. Variable names compare case-insensitively, as on Windows.
"""

from __future__ import annotations

import ntpath
import re
import subprocess
from typing import Any, Mapping, Optional, Sequence, Union

import attrs

from wincontainers import errors
from wincontainers.build.dockerfile import Heredoc, Instruction, parse_dockerfile, parse_heredoc
from wincontainers.build.lexer import ShellLex, ShellLexError

__all__ = [
    "BuildInstructionError", "DEFAULT_SHELL", "From", "Run", "Copy", "Workdir", "Env", "Arg", "User", "Label",
    "Expose", "Volume", "Cmd", "Entrypoint", "Shell", "StopSignal", "Healthcheck", "Onbuild", "Maintainer",
    "Command", "typed", "apply_to_config", "normalize_workdir", "command_line", "CONFIG_INSTRUCTIONS",
    "parse_changes",
]

DEFAULT_SHELL = ("cmd", "/S", "/C")
#: instructions that only change the image config (allowed in ``commit(changes=...)``)
CONFIG_INSTRUCTIONS = frozenset({"cmd", "entrypoint", "env", "expose", "label", "onbuild", "user", "volume",
                                 "workdir", "shell", "stopsignal", "healthcheck", "maintainer"})


class BuildInstructionError(errors.BadInput):
    """An instruction is not valid (unknown flag, missing argument...): says which line."""

    def __init__(self, node: Instruction, message: str) -> None:
        self.node = node
        where = f"line {node.start_line}: " if node.start_line else ""
        super().__init__(f"Dockerfile {where}{node.keyword.upper()}: {message}")


# -- typed instructions ----------------------------------------------------------------------------


@attrs.frozen
class From:
    image: str
    stage_name: Optional[str] = None
    platform: Optional[str] = None


@attrs.frozen
class Run:
    command: Union[str, tuple[str, ...]]  # shell form: the text; exec form: argv
    shell_form: bool = True
    heredocs: tuple[Heredoc, ...] = ()


@attrs.frozen
class Copy:
    sources: tuple[str, ...]
    dest: str
    add: bool = False  # ADD: local tar archives are extracted
    from_stage: Optional[str] = None
    chown: Optional[str] = None
    chmod: Optional[str] = None
    heredocs: tuple[Heredoc, ...] = ()  # inline sources: COPY <<EOF /dst


@attrs.frozen
class Workdir:
    path: str


@attrs.frozen
class Env:
    pairs: tuple[tuple[str, str], ...]


@attrs.frozen
class Arg:
    args: tuple[tuple[str, Optional[str]], ...]  # (name, default or None)


@attrs.frozen
class User:
    user: str


@attrs.frozen
class Label:
    pairs: tuple[tuple[str, str], ...]


@attrs.frozen
class Expose:
    ports: tuple[str, ...]


@attrs.frozen
class Volume:
    paths: tuple[str, ...]


@attrs.frozen
class Cmd:
    command: tuple[str, ...]
    shell_form: bool = False


@attrs.frozen
class Entrypoint:
    command: tuple[str, ...]
    shell_form: bool = False


@attrs.frozen
class Shell:
    shell: tuple[str, ...]


@attrs.frozen
class StopSignal:
    signal: str


@attrs.frozen
class Healthcheck:
    test: tuple[str, ...]  # ("NONE",) / ("CMD", ...) / ("CMD-SHELL", line)
    interval: Optional[int] = None  # nanoseconds
    timeout: Optional[int] = None
    start_period: Optional[int] = None
    start_interval: Optional[int] = None
    retries: Optional[int] = None


@attrs.frozen
class Onbuild:
    expression: str


@attrs.frozen
class Maintainer:
    maintainer: str


Command = Union[From, Run, Copy, Workdir, Env, Arg, User, Label, Expose, Volume, Cmd, Entrypoint, Shell, StopSignal,
                Healthcheck, Onbuild, Maintainer]


# -- from nodes --------------------------------------------------------------------------------------


def _flags(node: Instruction, allowed: Sequence[str]) -> dict[str, Optional[str]]:
    out: dict[str, Optional[str]] = {}
    for flag in node.flags:
        name, sep, value = flag[2:].partition("=")
        if name not in allowed:
            known = ", ".join(f"--{a}" for a in allowed) or "none"
            raise BuildInstructionError(node, f"unknown flag: --{name} (allowed: {known})")
        if name in out:
            raise BuildInstructionError(node, f"--{name} is given twice")
        out[name] = value if sep else None
    return out


def _expand(node: Instruction, lex: ShellLex, word: str, env: Mapping[str, str]) -> str:
    try:
        return lex.process_word(word, env)
    except ShellLexError as exc:
        raise BuildInstructionError(node, str(exc)) from None


def typed(node: Instruction, env: Mapping[str, str], *, escape: str = "\\", check_only: bool = False) -> Command:
    """The typed instruction for ``node``, with ``env`` (ARGs and ENVs in scope) expanded.

    ``check_only``: validate flags and arguments before a build, leaving unset variables as
    written (their values are known only when the step runs).
    """
    lex = ShellLex(escape, case_insensitive=True, skip_unset_env=check_only)
    name = node.name
    args = node.strings

    def word(text: str) -> str:
        return _expand(node, lex, text, env)

    if name == "from":
        flags = _flags(node, ("platform",))
        if len(args) == 3 and args[1].lower() == "as":
            stage = word(args[2]).lower()
            if not re.fullmatch(r"[a-z][a-z0-9._-]*", stage):
                raise BuildInstructionError(node, f"invalid stage name {stage!r}")
        elif len(args) == 1:
            stage = None
        else:
            raise BuildInstructionError(node, "expects FROM <image> [AS <name>]")
        platform = flags.get("platform")
        return From(word(args[0]), stage, word(platform) if platform else None)
    if name == "run":
        flags = _flags(node, ("network", "mount", "security"))
        if flags:
            raise BuildInstructionError(node, f"{', '.join('--' + f for f in flags)} is not supported by this builder")
        if not args and not node.heredocs:
            raise BuildInstructionError(node, "expects a command")
        if node.json:
            return Run(tuple(args), shell_form=False)
        return Run(args[0] if args else "", shell_form=True, heredocs=node.heredocs)
    if name in ("copy", "add"):
        allowed = ("from", "chown", "chmod", "link", "parents", "exclude") if name == "copy" else (
            "chown", "chmod", "link", "checksum", "keep-git-dir", "exclude")
        flags = _flags(node, allowed)
        if len(args) < 2:
            raise BuildInstructionError(node, f"{name.upper()} requires at least two arguments")
        inline = {doc.name: doc for doc in node.heredocs}
        sources: list[str] = []
        heredocs: list[Heredoc] = []
        for source in args[:-1]:
            doc = parse_heredoc(source) if node.heredocs else None
            if doc is not None and doc.name in inline:
                heredocs.append(inline[doc.name])
            else:
                sources.append(word(source))
        if flags.get("chown") is not None or flags.get("chmod") is not None:
            raise BuildInstructionError(node, "--chown and --chmod are not supported for Windows images")
        from_stage = flags.get("from")
        return Copy(tuple(sources), word(args[-1]), add=name == "add", from_stage=word(from_stage) if from_stage else None,
                    chown=flags.get("chown"), chmod=flags.get("chmod"), heredocs=tuple(heredocs))
    if name == "workdir":
        _flags(node, ())
        if len(args) != 1:
            raise BuildInstructionError(node, "WORKDIR requires exactly one argument")
        return Workdir(word(args[0]))
    if name in ("env", "label"):
        _flags(node, ())
        if not args:
            raise BuildInstructionError(node, f"{name.upper()} requires at least one argument")
        if len(args) // 3 > MAX_ENV_VARIABLES:
            raise BuildInstructionError(node, f"{name.upper()} sets {len(args) // 3} variables; the limit is "
                                              f"{MAX_ENV_VARIABLES}")
        pairs = []
        for i in range(0, len(args), 3):
            key, value = word(args[i]), word(args[i + 1])
            if not key:
                raise BuildInstructionError(node, f"{name.upper()} names can not be blank")
            pairs.append((key, value))
        return (Env if name == "env" else Label)(tuple(pairs))
    if name == "arg":
        _flags(node, ())
        if not args:
            raise BuildInstructionError(node, "ARG requires at least one argument")
        out: list[tuple[str, Optional[str]]] = []
        for arg in args:
            key, sep, default = arg.partition("=")
            if not key:
                raise BuildInstructionError(node, "ARG names can not be blank")
            out.append((key, word(default) if sep else None))
        return Arg(tuple(out))
    if name == "user":
        _flags(node, ())
        if len(args) != 1:
            raise BuildInstructionError(node, "USER requires exactly one argument")
        return User(word(args[0]))
    if name == "expose":
        _flags(node, ())
        ports = tuple(p for a in args for p in lex.process_words(a, env))
        if not ports:
            raise BuildInstructionError(node, "EXPOSE requires at least one argument")
        return Expose(ports)
    if name == "volume":
        _flags(node, ())
        paths = tuple(word(a) for a in args)
        if not paths or not all(paths):
            raise BuildInstructionError(node, "VOLUME specified can not be an empty string")
        return Volume(paths)
    if name in ("cmd", "entrypoint"):
        _flags(node, ())
        cls = Cmd if name == "cmd" else Entrypoint
        if node.json:
            return cls(tuple(args), shell_form=False)
        return cls(tuple(args[:1]), shell_form=bool(args))
    if name == "shell":
        _flags(node, ())
        if not node.json or not args:
            raise BuildInstructionError(node, "SHELL requires the arguments to be in JSON form, "
                                              'e.g. SHELL ["powershell", "-Command"]')
        return Shell(tuple(args))
    if name == "stopsignal":
        _flags(node, ())
        if len(args) != 1:
            raise BuildInstructionError(node, "STOPSIGNAL requires exactly one argument")
        return StopSignal(word(args[0]))
    if name == "healthcheck":
        flags = _flags(node, ("interval", "timeout", "start-period", "start-interval", "retries"))
        if not args:
            raise BuildInstructionError(node, "HEALTHCHECK requires an argument")
        kind = args[0].upper()
        if kind == "NONE":
            if len(args) > 1 or flags:
                raise BuildInstructionError(node, "HEALTHCHECK NONE takes no other arguments")
            return Healthcheck(("NONE",))
        if kind != "CMD" or len(args) < 2:
            raise BuildInstructionError(node, "expects HEALTHCHECK [OPTIONS] CMD command, or HEALTHCHECK NONE")
        test = ("CMD", *args[1:]) if node.json else ("CMD-SHELL", args[1])
        retries = flags.get("retries")
        if retries is not None and (not retries.isdigit() or int(retries) < 0):
            raise BuildInstructionError(node, f"--retries must be a non-negative integer, not {retries!r}")
        return Healthcheck(test, interval=_duration(node, flags.get("interval")),
                           timeout=_duration(node, flags.get("timeout")),
                           start_period=_duration(node, flags.get("start-period")),
                           start_interval=_duration(node, flags.get("start-interval")),
                           retries=int(retries) if retries is not None else None)
    if name == "onbuild":
        _flags(node, ())
        if not node.args or not isinstance(node.args[0], Instruction):
            raise BuildInstructionError(node, "ONBUILD requires an instruction")
        inner = node.args[0]
        if inner.name in ("onbuild", "from", "maintainer"):
            raise BuildInstructionError(node, f"{inner.keyword.upper()} isn't allowed as an ONBUILD trigger")
        text = node.original.strip()
        return Onbuild(text.split(None, 1)[1] if " " in text or "\t" in text else "")
    if name == "maintainer":
        return Maintainer(args[0] if args else "")
    raise BuildInstructionError(node, "unknown instruction")


_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000, "m": 60_000_000_000,
          "h": 3_600_000_000_000}


def _duration(node: Instruction, text: Optional[str]) -> Optional[int]:
    """A Go duration (``30s``, ``1m30s``, ``500ms``) in nanoseconds."""
    if text is None:
        return None
    if text == "0":
        return 0
    pos, total = 0, 0.0
    while pos < len(text):
        match = _DURATION_PART.match(text, pos)
        if match is None:
            raise BuildInstructionError(node, f"invalid duration {text!r}")
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not text:
        raise BuildInstructionError(node, "empty duration")
    return int(total)


# -- effects on the config ------------------------------------------------------------------------------


def normalize_workdir(current: Optional[str], requested: str) -> str:
    """WORKDIR on Windows: relative to the current one, ``/`` as ``\\``, always on ``C:``."""
    if not requested:
        raise errors.BadInput("WORKDIR cannot be empty")
    path = requested.replace("/", "\\")
    if re.match(r"[a-zA-Z]:", path):
        if path[0].upper() != "C":
            raise errors.BadInput(f"WORKDIR {requested!r}: Windows containers only have drive C:")
        rest = path[2:] or "\\"
        if not rest.startswith("\\"):
            rest = "\\" + rest
    elif path.startswith("\\"):
        rest = path
    else:
        base = (current or "C:\\")[2:] if current and re.match(r"[a-zA-Z]:", current) else (current or "\\")
        rest = base.rstrip("\\") + "\\" + path
    return "C:" + ntpath.normpath(rest)


def command_line(argv: Sequence[str], *, args_escaped: bool = False) -> str:
    """A Windows command line from an argv (the last element as is when already escaped)."""
    if args_escaped and argv:
        head = subprocess.list2cmdline(list(argv[:-1]))
        return f"{head} {argv[-1]}" if head else argv[-1]
    return subprocess.list2cmdline(list(argv))


#: what an image's environment may hold (ENV); past it a Dockerfile is refused
MAX_ENV_VARIABLES = 10_000
MAX_ENV_SIZE = 1 << 20  # characters of all "KEY=value" together


def _set_env(config: dict[str, Any], pairs: Sequence[tuple[str, str]]) -> None:
    """Set ``pairs`` in the config's Env, replacing (case-insensitively, as Windows does) and
    moving to the end what they redefine; linear in the size of the environment."""
    env: dict[str, str] = {}
    for item in config.get("Env") or []:
        env[str(item).split("=", 1)[0].lower()] = str(item)
    for key, value in pairs:
        env.pop(key.lower(), None)
        env[key.lower()] = f"{key}={value}"
        if len(env) > MAX_ENV_VARIABLES:
            raise errors.BadInput(f"the image environment would hold more than {MAX_ENV_VARIABLES} variables")
    if sum(len(e) for e in env.values()) > MAX_ENV_SIZE:
        raise errors.BadInput(f"the image environment would be larger than {MAX_ENV_SIZE} characters")
    config["Env"] = list(env.values())


def apply_to_config(config: dict[str, Any], command: Command, *, cmd_set: bool = False,
                    author: Optional[list[str]] = None) -> None:
    """Change a container config (``config["config"]`` of an image) as ``command`` says.

    ``cmd_set``: a CMD came earlier in this stage (else ENTRYPOINT drops the inherited CMD, as
    Docker does). ``MAINTAINER`` sets the image author: it is appended to ``author``.
    """
    shell = list(config.get("Shell") or DEFAULT_SHELL)
    if isinstance(command, Env):
        _set_env(config, command.pairs)
    elif isinstance(command, Label):
        config.setdefault("Labels", {}).update(dict(command.pairs))
    elif isinstance(command, Expose):
        ports = config.setdefault("ExposedPorts", {})
        for port in command.ports:
            number, _, proto = port.partition("/")
            if not number or not all(part.isdigit() for part in number.split("-")):
                raise errors.BadInput(f"EXPOSE: invalid port {port!r}")
            ports[f"{number}/{(proto or 'tcp').lower()}"] = {}
    elif isinstance(command, Volume):
        volumes = config.setdefault("Volumes", {})
        for path in command.paths:
            volumes[path] = {}
    elif isinstance(command, User):
        config["User"] = command.user
    elif isinstance(command, Workdir):
        config["WorkingDir"] = normalize_workdir(config.get("WorkingDir"), command.path)
    elif isinstance(command, (Cmd, Entrypoint)):
        argv = shell + list(command.command) if command.shell_form else list(command.command)
        if isinstance(command, Cmd):
            config["Cmd"] = argv
        else:
            config["Entrypoint"] = argv
            if not cmd_set:
                config.pop("Cmd", None)  # Docker: ENTRYPOINT drops a CMD inherited from the base image
        if command.shell_form:
            config["ArgsEscaped"] = True
        else:
            config.pop("ArgsEscaped", None)
    elif isinstance(command, Shell):
        config["Shell"] = list(command.shell)
    elif isinstance(command, StopSignal):
        config["StopSignal"] = command.signal
    elif isinstance(command, Healthcheck):
        check: dict[str, Any] = {"Test": list(command.test)}
        for field, amount in (("Interval", command.interval), ("Timeout", command.timeout),
                              ("StartPeriod", command.start_period), ("StartInterval", command.start_interval),
                              ("Retries", command.retries)):
            if amount is not None:
                check[field] = amount
        config["Healthcheck"] = check
    elif isinstance(command, Onbuild):
        config["OnBuild"] = list(config.get("OnBuild") or []) + [command.expression]
    elif isinstance(command, Maintainer):
        if author is not None:
            author.append(command.maintainer)
    else:
        raise errors.BadInput(f"{type(command).__name__.upper()} does not only change the image config")


def parse_changes(changes: Sequence[str]) -> list[Command]:
    """``commit --change`` lines (``CMD ["app.exe"]``, ``ENV A=1``...) as typed instructions.

    Only instructions that change the config are allowed; nothing is expanded.
    """
    commands: list[Command] = []
    for change in changes:
        if not isinstance(change, str) or not change.strip():
            raise errors.BadInput("a change is a Dockerfile instruction such as 'CMD [\"app.exe\"]'")
        parsed = parse_dockerfile(change)
        for node in parsed.instructions:
            if node.name not in CONFIG_INSTRUCTIONS:
                raise errors.BadInput(f"{node.keyword.upper()} cannot be a commit change "
                                      f"(allowed: {', '.join(sorted(i.upper() for i in CONFIG_INSTRUCTIONS))})")
            commands.append(typed(node, {}))
    return commands
