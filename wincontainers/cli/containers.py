"""Container commands of the ``wincontainers`` CLI: ``run``, ``ps``, ``top``, ``stop``, ``kill``,
``rm`` and ``inspect`` (which also finds images and networks, as ``docker inspect`` does)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import threading
from typing import IO, Any, Callable, Optional

from wincontainers import errors
from wincontainers.cli._common import (
    EXIT_CANNOT_INVOKE,
    EXIT_NOT_FOUND,
    ago,
    complain,
    for_each,
    open_host,
    print_table,
    size,
)
from wincontainers.cli.networks import add_publish_argument, network_document
from wincontainers.container import Container, parse_env_list
from wincontainers.containers import no_command_message
from wincontainers.host import Host
from wincontainers.process import list2cmdline, stream_sink

__all__ = ["add_parsers", "COMMANDS"]


def add_parsers(sub: Any) -> None:
    run = sub.add_parser("run", help="create a container, run a command in it, stream its output")
    run.add_argument("--rm", action="store_true", help="remove the container when the command exits")
    run.add_argument("-t", "--tty", action="store_true", help="give the command a console")
    run.add_argument("-i", "--interactive", action="store_true", help="forward standard input")
    run.add_argument("-e", "--env", action="append", default=[], metavar="K=V",
                     help="set an environment variable (NAME alone: its value here, if set)")
    run.add_argument("-w", "--workdir", metavar="DIR", help="working directory inside the container")
    run.add_argument("--entrypoint", metavar="CMD",
                     help="run CMD instead of the image's ENTRYPOINT (its CMD is then dropped)")
    run.add_argument("--name", help="container name")
    run.add_argument("--hostname", help="container host name")
    add_publish_argument(run)
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


def cmd_run(args: argparse.Namespace) -> int:
    env = parse_env_list(args.env)
    host = open_host(args)
    command = list2cmdline(args.cmd) if args.cmd else None  # else the image's ENTRYPOINT + CMD
    if host.containers.command_for(args.image, command, args.entrypoint) is None:
        raise errors.BadInput(no_command_message(args.image))
    container = host.containers.create(args.image, command, entrypoint=args.entrypoint, image_command=True,
                                       name=args.name, env=env,
                                       workdir=args.workdir,
                                       hostname=args.hostname, tty=args.tty, network=args.network,
                                       ports=args.publish or None)
    try:
        try:
            container.start()
        except errors.NotFound as exc:
            complain(exc)
            return EXIT_NOT_FOUND
        except errors.HcsError as exc:
            if exc.operation.endswith("Process") or "CreateProcess" in exc.operation:
                complain(exc)
                return EXIT_CANNOT_INVOKE
            raise
        proc = container.process
        assert proc is not None
        if args.tty and sys.stdout.isatty():
            terminal = shutil.get_terminal_size()
            try:
                proc.resize(terminal.lines, terminal.columns)
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


def cmd_ps(args: argparse.Namespace) -> int:
    host = open_host(args)
    rows = host.containers.list(all=args.all)
    if args.quiet:
        for row in rows:
            print(row.short_id)
        return 0
    table = [("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES")]
    for row in rows:
        if row.state == "damaged":
            table.append((row.short_id, row.image, "", f"{ago(row.created)} ago", "Damaged record (rm -f)", row.name))
            continue
        record = host.records.load(row.id)
        if row.state == "running":
            status = f"Up {ago(record.started)}"
        elif row.state == "paused":
            status = f"Up {ago(record.started)} (Paused)"
        elif row.state == "exited":
            code = "" if row.exit_code is None else f" ({row.exit_code})"
            status = f"Exited{code} {ago(record.finished)} ago".rstrip()
        else:
            status = "Created"
        command = row.command or ""
        command = f'"{command[:20]}…"' if len(command) > 20 else f'"{command}"'
        table.append((row.short_id, row.image, command, f"{ago(row.created)} ago", status, row.name))
    print_table(table)
    return 0


def cmd_top(args: argparse.Namespace) -> int:
    host = open_host(args)
    container = host.containers.get(args.container)
    try:
        rows = container.top()
    finally:
        container.close()
    table = [("PID", "NAME", "CPU", "PRIVATE WORKING SET")]
    for p in rows:
        cpu = (p.cpu_user_100ns + p.cpu_kernel_100ns) / 10_000_000
        table.append((str(p.pid), p.image, f"{int(cpu // 3600):02d}:{int(cpu % 3600 // 60):02d}:{cpu % 60:06.3f}",
                      size(p.memory_private_bytes)))
    print_table(table)
    return 0


def _each(args: argparse.Namespace, action: Callable[[Container], str],
          damaged: Optional[Callable[[Host, str], str]] = None) -> int:
    """``action`` on each container named; ``damaged`` (if given) on one whose record is damaged."""
    host = open_host(args)

    def one(ref: str) -> str:
        try:
            container = host.containers.get(ref)
        except errors.DamagedRecord:
            if damaged is None:
                raise
            return damaged(host, ref)
        try:
            return action(container)
        finally:
            container.close()

    return for_each(args.containers, one)


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
    host = open_host(args)

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


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run, "ps": cmd_ps, "top": cmd_top, "stop": cmd_stop, "kill": cmd_kill, "rm": cmd_rm,
    "inspect": cmd_inspect,
}
