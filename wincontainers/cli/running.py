"""The CLI commands that start containers and carry their streams: ``run``, ``create``,
``start``, ``restart``, ``exec``, ``attach``, ``logs`` and ``wait``.

``run -d`` and ``start`` hand the container to its monitor (:mod:`wincontainers.monitors`) and
return; ``logs``, ``attach`` and ``wait`` reach it from any process later. A foreground ``run``
holds the main process itself and exits with its exit code (Docker's 125/126/127 when
wincontainers or the command failed).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from typing import Any, Callable, Optional

from wincontainers import errors
from wincontainers.cli._common import (
    EXIT_CANNOT_INVOKE,
    EXIT_NOT_FOUND,
    complain,
    exit_status,
    each_container,
    opened_container,
    open_host,
)
from wincontainers.cli.options import add_create_arguments, create_options
from wincontainers.cli.terminal import follow_window_size, forward_input, parse_detach_keys, raw_terminal
from wincontainers.container import Container, parse_env_list
from wincontainers.containers import no_command_message
from wincontainers.host import Host
from wincontainers.monitors import AttachSession
from wincontainers.process import list2cmdline, stream_sink

__all__ = ["add_parsers", "COMMANDS"]


def add_parsers(sub: Any) -> None:
    run = sub.add_parser("run", help="create a container, run a command in it, stream its output")
    run.add_argument("-d", "--detach", action="store_true",
                     help="run in the background (a monitor holds it); print the container ID")
    add_create_arguments(run)
    run.add_argument("image", help="image (windowsservercore, nanoserver, or one from `images`)")
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="command and arguments (default: the image's)")

    create = sub.add_parser("create", help="create a container (start it with `start`)")
    add_create_arguments(create)
    create.add_argument("image")
    create.add_argument("cmd", nargs=argparse.REMAINDER)

    start = sub.add_parser("start", help="start containers in the background (a monitor holds each)")
    start.add_argument("-a", "--attach", action="store_true", help="stream the output and exit with its code")
    start.add_argument("-i", "--interactive", action="store_true", help="forward standard input (with -a)")
    start.add_argument("containers", nargs="+")

    restart = sub.add_parser("restart", help="stop, then start containers")
    restart.add_argument("-t", "--time", type=float, metavar="S", help="seconds of grace (default: its stop timeout)")
    restart.add_argument("containers", nargs="+")

    exec_ = sub.add_parser("exec", help="run a command in a running container")
    exec_.add_argument("-i", "--interactive", action="store_true", help="forward standard input")
    exec_.add_argument("-t", "--tty", action="store_true", help="give the command a console")
    exec_.add_argument("-d", "--detach", action="store_true", help="start it and return")
    exec_.add_argument("-e", "--env", action="append", default=[], metavar="K=V", help="set an environment variable")
    exec_.add_argument("-w", "--workdir", metavar="DIR", help="working directory")
    exec_.add_argument("-u", "--user", metavar="USER", help="the account to run as")
    exec_.add_argument("container")
    exec_.add_argument("cmd", nargs=argparse.REMAINDER)

    attach = sub.add_parser("attach", help="stream a detached container's output (and input)")
    attach.add_argument("--no-stdin", action="store_true", help="do not forward standard input")
    attach.add_argument("--detach-keys", default="ctrl-p,ctrl-q", metavar="KEYS",
                        help="the keys that detach (default ctrl-p,ctrl-q)")
    attach.add_argument("container")

    logs = sub.add_parser("logs", help="show a detached container's output")
    logs.add_argument("-f", "--follow", action="store_true", help="follow until the container stops")
    logs.add_argument("-t", "--timestamps", action="store_true", help="show each line's time")
    logs.add_argument("-n", "--tail", default="all", metavar="N", help="only the last N lines (default all)")
    logs.add_argument("--since", metavar="TIME", help="only lines since TIME (RFC 3339, epoch seconds, or 10m)")
    logs.add_argument("container")

    wait = sub.add_parser("wait", help="wait until containers stop; print their exit codes")
    wait.add_argument("containers", nargs="+")


def _create(args: argparse.Namespace, host: Host) -> Container:
    options = create_options(args)
    command = list2cmdline(args.cmd) if args.cmd else None  # else the image's ENTRYPOINT + CMD
    if host.containers.command_for(args.image, command, options["entrypoint"]) is None:
        raise errors.BadInput(no_command_message(args.image))
    auto_remove = bool(args.rm) and bool(getattr(args, "detach", True))
    return host.containers.create(args.image, command, image_command=True, auto_remove=auto_remove, **options)


def cmd_create(args: argparse.Namespace) -> int:
    container = _create(args, open_host(args))
    print(container.id)
    container.close()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    host = open_host(args)
    container = _create(args, host)
    if args.detach:
        try:
            container.start(detach=True)
        except BaseException:
            container.remove(force=True)
            raise
        finally:
            container.close()
        print(container.id)
        return 0
    sinks = _our_streams()
    try:
        # raw before the process exists: its first output (a prompt) must not meet a cooked terminal
        with raw_terminal(host.win32, args.tty and args.interactive):
            try:
                container.start(stdin=args.interactive, output=lambda stream, data: sinks[stream](data))
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
            with follow_window_size(proc.resize, args.tty):
                if args.interactive and proc.stdin is not None:
                    forward_input(proc.stdin.write, proc.stdin.close)
                try:
                    code = proc.wait()  # after its output is all written
                except KeyboardInterrupt:
                    container.stop(10)
                    return 130
        container.wait(60)
        return exit_status(code)
    finally:
        if args.rm:
            container.remove(force=True)
        container.close()


def _our_streams() -> dict[str, Callable[[bytes], None]]:
    """Where a container process's ``stdout`` and ``stderr`` go: ours."""
    return {"stdout": stream_sink(sys.stdout), "stderr": stream_sink(sys.stderr)}


def _stream_session(host: Host, session: AttachSession, *, stdin: bool, tty: bool,
                    detach_keys: bytes = b"") -> Optional[int]:
    """Output to our stdout/stderr until the main process exits (its exit code) or the detach
    keys are typed (None)."""
    sinks = _our_streams()
    detached = threading.Event()

    def detach() -> None:
        detached.set()
        session.close()

    with raw_terminal(host.win32, stdin and tty), follow_window_size(session.resize, stdin and tty):
        if stdin:
            forward_input(session.write, session.close_stdin, detach_keys=detach_keys, on_detach=detach)
        for stream, data in session:
            sinks[stream](data)
    return None if detached.is_set() else session.exit_code


def cmd_start(args: argparse.Namespace) -> int:
    if args.attach and len(args.containers) > 1:
        raise errors.BadInput("you cannot start and attach multiple containers at once")
    if not args.attach:
        return each_container(args, lambda c: c.start(detach=True).name)
    host = open_host(args)
    container = host.containers.get(args.containers[0])
    try:
        began = time.time()
        container.start(detach=True)
        stdin = args.interactive and container.record.open_stdin
        try:
            session = container.attach(stdin=stdin, replay=True)
        except errors.MonitorError:
            if container.monitor_status() != "ended":
                raise
            return exit_status(_ended_before_attach(container, began))
        with session:
            code = _stream_session(host, session, stdin=stdin, tty=container.record.tty,
                                   detach_keys=parse_detach_keys("ctrl-p,ctrl-q"))
        return exit_status(code if code is not None else 0)
    finally:
        container.close()


def _ended_before_attach(container: Container, began: float) -> int:
    """A main process that ended before ``start -a`` could attach (a command that exits at
    once, its monitor gone with it): what attaching would have shown, from its log (this run's
    records only), and its exit code."""
    sinks = _our_streams()
    for record in container.log_records(since=began):
        sinks[record.stream](record.data)
    code = container.wait(30).exit_code
    return code if code is not None else 0


def cmd_restart(args: argparse.Namespace) -> int:
    if args.time is not None and args.time < 0:
        raise errors.BadInput("the stop timeout must not be negative")

    def restart(c: Container) -> str:
        c.stop(args.time)
        c.start(detach=True)
        return c.name

    return each_container(args, restart)


def cmd_exec(args: argparse.Namespace) -> int:
    if not args.cmd:
        raise errors.BadInput("exec needs a command: wincontainers exec CONTAINER COMMAND [ARG...]")
    with opened_container(args) as container:
        if container.status != "running":
            raise errors.InvalidState("exec", subject=container.subject, message=f"it is {container.status}",
                                      hint="start it first (wincontainers start)")
        command = list2cmdline(args.cmd)
        if args.detach:
            container.exec(command, env=parse_env_list(args.env), workdir=args.workdir, user=args.user,
                           tty=args.tty, stdin=False).close()
            return 0
        # raw before the process exists: its first output (a prompt) must not meet a cooked terminal
        with raw_terminal(container.host.win32, args.tty and args.interactive):
            proc = container.exec(command, env=parse_env_list(args.env), workdir=args.workdir, user=args.user,
                                  tty=args.tty, stdin=args.interactive, stdout_sink=stream_sink(sys.stdout),
                                  stderr_sink=stream_sink(sys.stderr))
            with follow_window_size(proc.resize, args.tty):
                if args.interactive and proc.stdin is not None:
                    forward_input(proc.stdin.write, proc.stdin.close)
                try:
                    return exit_status(proc.wait())
                finally:
                    proc.close()


def cmd_attach(args: argparse.Namespace) -> int:
    keys = parse_detach_keys(args.detach_keys)
    with opened_container(args) as container:
        stdin = not args.no_stdin and container.record.open_stdin
        with container.attach(stdin=stdin) as session:
            code = _stream_session(container.host, session, stdin=stdin, tty=container.record.tty, detach_keys=keys)
        if stdin and code is None and session.exit_code is None:
            return 0  # detached with the keys: the container runs on
        container.reload()
        return exit_status(code if code is not None else (container.record.exit_code or 0))


def cmd_logs(args: argparse.Namespace) -> int:
    if args.tail != "all" and not str(args.tail).isdigit():
        raise errors.BadInput(f"--tail {args.tail!r}: a number of lines, or all")
    with opened_container(args) as container:
        sinks = _our_streams()
        for record in container.log_records(tail=None if args.tail == "all" else int(args.tail), since=args.since,
                                            follow=args.follow):
            sinks[record.stream]((record.timestamp.encode() + b" " if args.timestamps else b"") + record.data)
        if container.monitor_status() == "dead":
            print(f"wincontainers: the monitor of {container.name} is gone (killed?): the container is unmonitored "
                  "and its output since then was not kept", file=sys.stderr)
        return 0


def cmd_wait(args: argparse.Namespace) -> int:
    def wait(c: Container) -> str:
        code = c.wait().exit_code
        return str(code if code is not None else -1)

    return each_container(args, wait)


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": cmd_run, "create": cmd_create, "start": cmd_start, "restart": cmd_restart, "exec": cmd_exec,
    "attach": cmd_attach, "logs": cmd_logs, "wait": cmd_wait,
}
