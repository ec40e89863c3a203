"""The ``wincontainers`` command line (also ``python -m wincontainers``).

Follows the Docker CLI where it can: ``run`` streams the main process's output and exits with
its exit code (125 when wincontainers itself failed, 126 when the command could not be started,
127 when it was not found); ``ps``, ``top``, ``stop``, ``kill``, ``rm`` take names or id prefixes.
``--sim PROFILE`` (or ``WINCONTAINERS_SIM``) selects the simulated host.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
import sys
import threading
import time
from typing import IO, TYPE_CHECKING, Any, Callable, Optional, Sequence

from wincontainers import errors
from wincontainers.container import Container, parse_env_list
from wincontainers.host import Host
from wincontainers.process import list2cmdline, stream_sink

if TYPE_CHECKING:
    from wincontainers.layerfile import TarLimits

__all__ = ["main", "build_parser"]

EXIT_ERROR = 125
EXIT_CANNOT_INVOKE = 126
EXIT_NOT_FOUND = 127


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wincontainers",
        description="Windows Server containers at the level of the Host Compute Service.",
    )
    from wincontainers import __version__

    parser.add_argument("--version", action="version", version=f"wincontainers {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="log what the library does (every HCS call with its result) on standard error")
    _global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    sub.add_parser("info", help="show the host, its API generation and base images")

    run = sub.add_parser("run", help="create a container, run a command in it, stream its output")
    run.add_argument("--rm", action="store_true", help="remove the container when the command exits")
    run.add_argument("-t", "--tty", action="store_true", help="give the command a console")
    run.add_argument("-i", "--interactive", action="store_true", help="forward standard input")
    run.add_argument("-e", "--env", action="append", default=[], metavar="K=V", help="set an environment variable")
    run.add_argument("-w", "--workdir", metavar="DIR", help="working directory inside the container")
    run.add_argument("--name", help="container name")
    run.add_argument("--hostname", help="container host name")
    from wincontainers import cli_images, cli_networks

    cli_networks.add_publish_argument(run)
    run.add_argument("--network", metavar="NETWORK", help="attach to this network (name or ID; with -p alone: nat)")
    run.add_argument("image", help="image (windowsservercore, nanoserver, or one from `images`)")
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="command and arguments")

    ps = sub.add_parser("ps", help="list containers")
    ps.add_argument("-a", "--all", action="store_true", help="include stopped containers")
    ps.add_argument("-q", "--quiet", action="store_true", help="print ids only")

    top = sub.add_parser("top", help="list a container's processes")
    top.add_argument("container")

    stop = sub.add_parser("stop", help="stop containers (graceful, then forced after the timeout)")
    stop.add_argument("-t", "--time", type=float, default=10.0, metavar="S", help="seconds of grace (default 10)")
    stop.add_argument("containers", nargs="+")

    kill = sub.add_parser("kill", help="terminate containers at once")
    kill.add_argument("containers", nargs="+")

    rm = sub.add_parser("rm", help="remove containers")
    rm.add_argument("-f", "--force", action="store_true", help="kill a running container first")
    rm.add_argument("containers", nargs="+")

    inspect = sub.add_parser("inspect", help="show containers (IPs, port mappings), images or networks as JSON")
    inspect.add_argument("--type", choices=("container", "image", "network"),
                         help="look only for this kind of object (default: a container, else an image, else a network)")
    inspect.add_argument("objects", nargs="+", metavar="NAME")

    layer = sub.add_parser("layer", help="import, export, check, list and remove layers")
    lsub = layer.add_subparsers(dest="layer_command", metavar="COMMAND")
    lsub.required = True
    limp = lsub.add_parser("import", help="import a layer tar (checked first; refused with the reasons)")
    limp.add_argument("--parent", action="append", default=[], metavar="L",
                      help="parent layer (id or folder), nearest first; repeat for the chain")
    limp.add_argument("--base", action="store_true", help="import as a base layer")
    limp.add_argument("--no-check", action="store_true",
                      help="skip the report (what would write outside the layer is still refused)")
    _limit_arguments(limp)
    limp.add_argument("file")
    lexp = lsub.add_parser("export", help="export a layer (a container's sandbox: its changes) as a tar")
    lexp.add_argument("--compression", choices=("none", "gzip", "zstd"), default="none")
    lexp.add_argument("--unsupported-reparse", choices=("error", "keep", "skip"), default="error",
                      help="what to do with WSL/LX symlinks and other reparse points a tar cannot carry")
    lexp.add_argument("layer")
    lexp.add_argument("file")
    lchk = lsub.add_parser("check", help="report what in a layer tar would break an import (exit 1) or "
                                         "the file cannot be read (exit 2)")
    lchk.add_argument("--json", action="store_true", help="the report as JSON")
    lchk.add_argument("--parent", action="append", default=[], metavar="DIR",
                      help="parent layer folder, to check hard links into it")
    lchk.add_argument("--base", action="store_true", help="check as a base layer")
    _limit_arguments(lchk)
    lchk.add_argument("file")
    lls = lsub.add_parser("ls", help="list layers")
    lls.add_argument("-q", "--quiet", action="store_true", help="print ids only")
    lrm = lsub.add_parser("rm", help="remove layers")
    lrm.add_argument("-f", "--force", action="store_true", help="even when other layers use them")
    lrm.add_argument("layers", nargs="+")

    cli_images.add_parsers(sub)
    cli_networks.add_parsers(sub)

    st = sub.add_parser("selftest", help="check step by step what works on this host (exit 1 when a step fails)")
    st.add_argument("--json", action="store_true", help="the report as JSON, for a bug report")
    st.add_argument("--keep", action="store_true", help="leave the selftest- objects for inspection")
    st.add_argument("--step", action="append", default=[], metavar="NAME",
                    help="run only this step (and the first); repeatable")

    sim = sub.add_parser("sim", help="start, stop or query the simulated host's daemon")
    sim.add_argument("action", choices=("start", "stop", "status"))
    _options_after_commands(parser)
    return parser


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the (sub)command ``args`` ran: ``wincontainers layer import`` -> its own."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            chosen = action.choices.get(getattr(args, action.dest, None) or "")
            if chosen is not None:
                return _command_parser(chosen, args)
    return parser


def _global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """--sim, --root, --generation: on the top parser with their defaults, and on every command
    (``wincontainers run --sim ws2019 ...``) where, when not given, they leave the top's value."""

    def default(value: Optional[str]) -> Any:
        return value if top else argparse.SUPPRESS

    parser.add_argument("--sim", metavar="PROFILE", default=default(os.environ.get("WINCONTAINERS_SIM")),
                        help="use the simulated host with this profile: tp3, 2016 or ws2019 (env WINCONTAINERS_SIM)")
    parser.add_argument("--root", metavar="DIR", default=default(os.environ.get("WINCONTAINERS_ROOT")),
                        help="state folder (simulator root) (env WINCONTAINERS_ROOT)")
    parser.add_argument("--generation", type=int, choices=(1, 2, 3), default=default(None),
                        help="force an HCS API generation the host offers")


def _options_after_commands(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in set(action.choices.values()):
                _global_options(command, top=False)
                _options_after_commands(command)


def _open_host(args: argparse.Namespace) -> Host:
    if not args.sim and sys.platform != "win32":
        raise errors.HcsUnavailable(
            "no Host Compute Service on this machine; use --sim PROFILE (tp3, 2016 or ws2019) for the simulated host"
        )
    return Host.open(sim=args.sim, root=args.root, generation=args.generation)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # said by the command's own parser, with its usage
        _command_parser(parser, args).error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.debug:
        import logging

        to_stderr = logging.StreamHandler(sys.stderr)
        to_stderr.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        library = logging.getLogger("wincontainers")
        library.addHandler(to_stderr)
        library.setLevel(logging.DEBUG)
    from wincontainers import cli_images, cli_networks

    handler = {**_COMMANDS, **cli_images.COMMANDS, **cli_networks.COMMANDS}[args.command]
    try:
        return handler(args)
    except errors.WincontainersError as exc:
        print(f"wincontainers: {_one_line(exc)}", file=sys.stderr)
        return EXIT_ERROR if args.command == "run" else 1
    except KeyboardInterrupt:
        return 130
    except OSError as exc:  # the machine's, not ours: a full disk, a file we may not read
        if exc.errno == errno.ENOSPC:
            print(f"wincontainers: no space left on the disk ({exc.filename or 'the state folder'})", file=sys.stderr)
        else:
            print(f"wincontainers: {exc.strerror or exc}{f': {exc.filename}' if exc.filename else ''}",
                  file=sys.stderr)
        return EXIT_ERROR if args.command == "run" else 1
    except Exception as exc:  # a bug of ours: one line, and the traceback when asked for
        if os.environ.get("WINCONTAINERS_DEBUG"):
            raise
        print(f"wincontainers: internal error: {type(exc).__name__}: {_one_line(exc)} (set WINCONTAINERS_DEBUG=1 "
              "for the traceback, and please report it)", file=sys.stderr)
        return EXIT_ERROR if args.command == "run" else 1


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


# -- commands ----------------------------------------------------------------------------------


def cmd_info(args: argparse.Namespace) -> int:
    host = _open_host(args)
    for key, value in host.info().items():
        if isinstance(value, list):
            value = ", ".join(map(str, value)) or "-"
        print(f"{key}: {value}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    env = parse_env_list(args.env)
    host = _open_host(args)
    if args.cmd:
        command = list2cmdline(args.cmd)
    else:  # the image's ENTRYPOINT + CMD
        from wincontainers.container import default_command

        stored = host.store_image(args.image)
        found = default_command(stored.container_config) if stored is not None else None
        if found is None:
            raise errors.BadInput(f"{args.image} has no default command: give one after the image "
                                  "(e.g. cmd /S /C \"echo hello\")")
        command = found
    container = host.containers.create(args.image, command, name=args.name, env=env, workdir=args.workdir,
                                       hostname=args.hostname, tty=args.tty, network=args.network,
                                       ports=args.publish or None)
    try:
        try:
            container.start()
        except errors.NotFound as exc:
            print(f"wincontainers: {_one_line(exc)}", file=sys.stderr)
            return EXIT_NOT_FOUND
        except errors.HcsError as exc:
            if exc.operation.endswith("Process") or "CreateProcess" in exc.operation:
                print(f"wincontainers: {_one_line(exc)}", file=sys.stderr)
                return EXIT_CANNOT_INVOKE
            raise
        proc = container.process
        assert proc is not None
        if args.tty and sys.stdout.isatty():
            size = shutil.get_terminal_size()
            try:
                proc.resize(size.lines, size.columns)
            except errors.HcsError:
                pass
        pumps = [_stream(proc.stdout, sys.stdout), _stream(proc.stderr, sys.stderr)]
        if args.interactive and proc.stdin is not None:
            threading.Thread(target=_forward_stdin, args=(proc.stdin,), daemon=True).start()
        elif proc.stdin is not None:
            proc.stdin.close()
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            container.stop(10)
            return 130
        for t in pumps:
            if t is not None:
                t.join()
        container.wait(60)
        return code
    finally:
        if args.rm:
            container.remove(force=True)
        container.close()


def _stream(source: Optional[IO[bytes]], target: IO[str]) -> Optional[threading.Thread]:
    """Copy a process's output to our stdout/stderr as it comes."""
    if source is None:
        return None
    sink = stream_sink(target)

    def pump() -> None:
        while True:
            data = source.read1(65536) if hasattr(source, "read1") else source.read(65536)
            if not data:
                return
            sink(data)

    t = threading.Thread(target=pump, daemon=True)
    t.start()
    return t


def _forward_stdin(dest: IO[bytes]) -> None:
    src = sys.stdin.buffer
    try:
        while True:
            data = src.read1(65536) if hasattr(src, "read1") else src.read(65536)
            if not data:
                break
            dest.write(data)
    except (BrokenPipeError, ValueError, OSError):
        pass
    finally:
        try:
            dest.close()
        except OSError:
            pass


def _ago(t: Optional[float]) -> str:
    if not t:
        return ""
    seconds = max(0, int(time.time() - t))
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''}"
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def cmd_ps(args: argparse.Namespace) -> int:
    host = _open_host(args)
    rows = host.containers.list(all=args.all)
    if args.quiet:
        for row in rows:
            print(row.short_id)
        return 0
    table = [("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES")]
    for row in rows:
        if row.state == "damaged":
            table.append((row.short_id, row.image, "", f"{_ago(row.created)} ago", "Damaged record (rm -f)", row.name))
            continue
        record = host.records.load(row.id)
        if row.state == "running":
            status = f"Up {_ago(record.started)}"
        elif row.state == "paused":
            status = f"Up {_ago(record.started)} (Paused)"
        elif row.state == "exited":
            code = "" if row.exit_code is None else f" ({row.exit_code})"
            status = f"Exited{code} {_ago(record.finished)} ago".rstrip()
        else:
            status = "Created"
        command = row.command or ""
        command = f'"{command[:20]}…"' if len(command) > 20 else f'"{command}"'
        table.append((row.short_id, row.image, command, f"{_ago(row.created)} ago", status, row.name))
    _print_table(table)
    return 0


def cmd_top(args: argparse.Namespace) -> int:
    host = _open_host(args)
    container = host.containers.get(args.container)
    try:
        rows = container.top()
    finally:
        container.close()
    table = [("PID", "NAME", "CPU", "PRIVATE WORKING SET")]
    for p in rows:
        cpu = (p.cpu_user_100ns + p.cpu_kernel_100ns) / 10_000_000
        table.append((str(p.pid), p.image, f"{int(cpu // 3600):02d}:{int(cpu % 3600 // 60):02d}:{cpu % 60:06.3f}",
                      _size(p.memory_private_bytes)))
    _print_table(table)
    return 0


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.4g}{unit}"
        value /= 1024
    return f"{n}B"


def _each(args: argparse.Namespace, action: Callable[[Container], str],
          damaged: Optional[Callable[[Host, str], str]] = None) -> int:
    """``action`` on each container named; ``damaged`` (if given) on one whose record is damaged."""
    host = _open_host(args)
    status = 0
    for ref in args.containers:
        try:
            try:
                container = host.containers.get(ref)
            except errors.DamagedRecord:
                if damaged is None:
                    raise
                print(damaged(host, ref))
                continue
            try:
                print(action(container))
            finally:
                container.close()
        except errors.WincontainersError as exc:
            print(f"wincontainers: {_one_line(exc)}", file=sys.stderr)
            status = 1
    return status


def cmd_stop(args: argparse.Namespace) -> int:
    if args.time < 0:
        raise errors.BadInput("the stop timeout must not be negative")

    def stop(c: Container) -> str:
        result = c.stop(args.time)
        return f"{c.name} ({result.outcome}, {result.elapsed:.2f} s)"

    return _each(args, stop)


def cmd_kill(args: argparse.Namespace) -> int:
    def kill(c: Container) -> str:
        c.kill()
        return c.name

    return _each(args, kill)


def cmd_rm(args: argparse.Namespace) -> int:
    def rm(c: Container) -> str:
        c.remove(force=args.force)
        return c.name

    def rm_damaged(host: Host, ref: str) -> str:  # -f also removes a container whose record is damaged
        return host.containers.remove_damaged(ref)[:12]

    return _each(args, rm, rm_damaged if args.force else None)


def cmd_inspect(args: argparse.Namespace) -> int:
    """Like ``docker inspect``: each name is looked up as a container, an image, then a network."""
    from wincontainers.cli_networks import network_document

    host = _open_host(args)

    def container(ref: str) -> dict[str, object]:
        found = host.containers.get(ref)
        try:
            return found.inspect()
        finally:
            found.close()

    lookups: dict[str, Callable[[str], object]] = {
        "container": container, "image": host.images.inspect,
        "network": lambda ref: network_document(host.networks.get(ref)),
    }
    kinds = [args.type] if args.type else list(lookups)
    docs, status = [], 0
    for ref in args.objects:
        for kind in kinds:
            try:
                docs.append(lookups[kind](ref))
                break
            except errors.NotFound:
                continue
        else:
            print(f"wincontainers: no such object: {ref}", file=sys.stderr)
            status = 1
    print(json.dumps(docs, indent=4))
    return status


def cmd_sim(args: argparse.Namespace) -> int:
    if sys.platform == "win32":
        raise errors.HcsUnavailable("the simulated host runs on POSIX systems")
    from wincontainers.sim.control import SimulatedHost

    sim = SimulatedHost(args.sim or "ws2019", args.root)
    if args.action == "start":
        sim.start()
        info = sim.status() or {}
        print(f"simulated host running (pid {info.get('pid')}, root {sim.root}, profile {sim.profile.name})")
        return 0
    if args.action == "stop":
        print("simulated host stopped" if sim.stop() else "simulated host was not running")
        return 0
    status = sim.status()
    if status is None:
        print(f"simulated host not running (root {sim.root})")
        return 3
    objects = sim.objects()
    print(json.dumps({**status, "compute_systems": len(objects["systems"]), "volumes": len(objects["volumes"]),
                      "networks": len(objects["networks"]), "endpoints": len(objects["endpoints"])}))
    return 0


def _print_table(rows: Sequence[Sequence[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("   ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip())


def _limit_arguments(parser: argparse.ArgumentParser) -> None:
    from wincontainers.layerfile import DEFAULT_LIMITS

    parser.add_argument("--max-entries", type=int, default=DEFAULT_LIMITS.max_entries, metavar="N",
                        help=f"refuse a tar of more entries (default {DEFAULT_LIMITS.max_entries})")
    parser.add_argument("--max-size", type=int, default=DEFAULT_LIMITS.max_total_size, metavar="BYTES",
                        help=f"refuse a larger uncompressed tar (default {DEFAULT_LIMITS.max_total_size})")


def _limits(args: argparse.Namespace) -> "TarLimits":
    from wincontainers.layerfile import DEFAULT_LIMITS, TarLimits

    try:
        return TarLimits(DEFAULT_LIMITS.max_extended_header, args.max_entries, args.max_size)
    except ValueError as exc:
        raise errors.BadInput(str(exc)) from None


def cmd_layer(args: argparse.Namespace) -> int:
    if args.layer_command == "check":
        return _layer_check(args)
    from wincontainers.layers import LayerRejected

    host = _open_host(args)
    progress = sys.stderr.isatty()
    if args.layer_command == "import":
        try:
            layer = host.layers.import_tar(args.file, args.parent, base=True if args.base else None,
                                           check=not args.no_check, progress=progress, limits=_limits(args))
        except LayerRejected as exc:
            for finding in exc.report.findings:
                print(finding.line(), file=sys.stderr)
            print(f"wincontainers: {len(exc.report.errors)} problem(s); nothing was imported", file=sys.stderr)
            return 1
        print(layer.id)
        return 0
    if args.layer_command == "export":
        result = host.layers.export_tar(args.layer, args.file, compression=args.compression,
                                        unsupported_reparse=args.unsupported_reparse, progress=progress)
        print(result.diff_id)
        return 0
    if args.layer_command == "ls":
        layers = host.layers.list()
        if args.quiet:
            for layer in layers:
                print(layer.id)
            return 0
        table = [("LAYER ID", "KIND", "PARENTS", "SIZE", "DIFF ID")]
        for layer in layers:
            table.append((layer.short_id, layer.kind, str(len(layer.parents)),
                          _size(layer.size) if layer.size is not None else "-", (layer.diff_id or "-")[:19]))
        _print_table(table)
        return 0
    status = 0
    for ref in args.layers:
        try:
            host.layers.destroy(ref, force=args.force)
            print(ref)
        except errors.WincontainersError as exc:
            print(f"wincontainers: {_one_line(exc)}", file=sys.stderr)
            status = 1
    return status


def _layer_check(args: argparse.Namespace) -> int:
    from pathlib import Path

    from wincontainers.layerfile import check_layer

    if not os.path.isfile(args.file) or not os.access(args.file, os.R_OK):
        print(f"wincontainers: cannot read {args.file}", file=sys.stderr)
        return 2
    report = check_layer(args.file, parents=[Path(p) for p in args.parent], base=True if args.base else None,
                         limits=_limits(args))
    unreadable = report.entries == 0 and report.rules() & {"malformed-tar", "bad-metadata"}
    if args.json:
        print(report.dumps())
    else:
        for finding in report.findings:
            print(finding.line())
        print(f"{report.entries} entries, {len(report.errors)} error(s), {len(report.warnings)} warning(s)"
              + (f", diff ID {report.diff_id}" if report.diff_id else ""), file=sys.stderr)
    if unreadable:
        return 2
    return 0 if report.ok else 1


def cmd_selftest(args: argparse.Namespace) -> int:
    from wincontainers import selftest

    def progress(step: "selftest.StepResult") -> None:
        if not args.json and sys.stderr.isatty():
            print(f"{step.name}: {step.status}", file=sys.stderr)

    report = selftest.run(sim=args.sim, root=args.root, generation=args.generation, keep=args.keep,
                          only=args.step, on_step=progress)
    print(json.dumps(report.to_json(), indent=2) if args.json else report.table())
    return 0 if report.ok else 1


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "info": cmd_info,
    "run": cmd_run,
    "ps": cmd_ps,
    "top": cmd_top,
    "stop": cmd_stop,
    "kill": cmd_kill,
    "rm": cmd_rm,
    "layer": cmd_layer,
    "inspect": cmd_inspect,
    "sim": cmd_sim,
    "selftest": cmd_selftest,
}



if __name__ == "__main__":
    sys.exit(main())
