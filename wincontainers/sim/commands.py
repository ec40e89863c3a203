"""Windows tools inside simulated containers: ``tasklist``, ``ver``, ``hostname``, ``ipconfig``, ``ping``.

They run as container processes (the daemon puts shims for them on the container's PATH) and
ask the daemon about their own container, identified by ``WCSIM_CONTAINER``. ``tasklist`` is
what the gen1 driver runs for ``top()``, since the TP3 API has no process list; ``ipconfig`` is
how a TP3 container's address is learnt (TP3's NAT hands it out and the API does not report it).
"""

from __future__ import annotations

import sys

if sys.platform == "win32":  # the simulated host runs on POSIX systems; Windows has the real HCS
    raise ImportError("wincontainers.sim runs on POSIX systems")

import json
import os
import socket
import time
from typing import Any, Optional

from wincontainers.sim import wire


def _control(request: dict[str, Any]) -> Any:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(30)
    try:
        sock.connect(os.environ["WCSIM_SOCKET"])
        wire.send_message(sock, b"J" + json.dumps(request).encode())
        msg = wire.recv_message(sock)
    finally:
        sock.close()
    if msg is None:
        raise OSError("the simulator daemon closed the connection")
    answer = json.loads(msg[0][1:].decode())
    if not answer.get("ok"):
        raise OSError(answer.get("error"))
    return answer["result"]


def _kilobytes(n: int) -> str:
    return f"{n // 1024:,} K"


def tasklist(argv: list[str]) -> int:
    args = [a.lower() for a in argv]
    fmt = "table"
    if "/fo" in args:
        i = args.index("/fo")
        fmt = args[i + 1] if i + 1 < len(args) else "table"
    header = "/nh" not in args
    rows = [
        (p["ImageName"], str(p["ProcessId"]), "Services", "0", _kilobytes(int(p["MemoryWorkingSetPrivateBytes"])))
        for p in _control({"op": "processes", "system": os.environ.get("WCSIM_CONTAINER", "")})
    ]
    names = ("Image Name", "PID", "Session Name", "Session#", "Mem Usage")
    out = sys.stdout
    if fmt == "csv":
        if header:
            out.write(",".join(f'"{n}"' for n in names) + "\n")
        for row in rows:
            out.write(",".join(f'"{v}"' for v in row) + "\n")
    else:
        widths = (25, 8, 16, 11, 12)
        if header:
            out.write("\n" + " ".join(n.ljust(w) if i in (0, 2) else n.rjust(w)
                                      for i, (n, w) in enumerate(zip(names, widths))) + "\n")
            out.write(" ".join("=" * w for w in widths) + "\n")
        for row in rows:
            out.write(" ".join(v[:w].ljust(w) if i in (0, 2) else v.rjust(w)
                               for i, (v, w) in enumerate(zip(row, widths))) + "\n")
    return 0


def ver(argv: list[str]) -> int:
    sys.stdout.write(f"\nMicrosoft Windows [Version {os.environ.get('WCSIM_VERSION', '10.0')}]\n")
    return 0


def hostname(argv: list[str]) -> int:
    sys.stdout.write(os.environ.get("COMPUTERNAME", "CONTAINER") + "\n")
    return 0


def _mask(prefix: int) -> str:
    bits = (0xFFFFFFFF << (32 - prefix)) & 0xFFFFFFFF
    return ".".join(str((bits >> s) & 0xFF) for s in (24, 16, 8, 0))


def ipconfig(argv: list[str]) -> int:
    adapters = _control({"op": "network", "system": os.environ.get("WCSIM_CONTAINER", "")})
    out = sys.stdout
    out.write("\nWindows IP Configuration\n\n")
    for adapter in adapters:
        out.write(f"\nEthernet adapter vEthernet (Container NIC {adapter['EndpointId'][:8]}):\n\n")
        out.write("   Connection-specific DNS Suffix  . : \n")
        out.write(f"   IPv4 Address. . . . . . . . . . . : {adapter['IPAddress']}\n")
        out.write(f"   Subnet Mask . . . . . . . . . . . : {_mask(int(adapter['PrefixLength']))}\n")
        out.write(f"   Default Gateway . . . . . . . . . : {adapter['GatewayAddress']}\n")
        if "/all" in [a.lower() for a in argv]:
            out.write(f"   Physical Address. . . . . . . . . : {adapter['MacAddress']}\n")
    return 0


def ping(argv: list[str]) -> int:
    """``ping [-t] [-n count] host``: one reply a second (``-t``: until stopped), as a
    long-running process for examples and tests; every host answers from itself."""
    forever, count, target = False, 4, ""
    args = iter(argv)
    for arg in args:
        low = arg.lower()
        if low in ("-t", "/t"):
            forever = True
        elif low in ("-n", "/n"):
            try:
                count = max(1, int(next(args, "4")))
            except ValueError:
                sys.stderr.write("Bad value for option -n.\n")
                return 1
        elif not low.startswith(("-", "/")):
            target = arg
    if not target:
        sys.stderr.write("usage: ping [-t] [-n count] target_name\n")
        return 1
    address = "127.0.0.1" if target.lower() == "localhost" else target
    sys.stdout.write(f"\nPinging {target} [{address}] with 32 bytes of data:\n")
    sent = 0
    while forever or sent < count:
        if sent:
            time.sleep(1)
        sys.stdout.write(f"Reply from {address}: bytes=32 time<1ms TTL=128\n")
        sys.stdout.flush()
        sent += 1
    sys.stdout.write(f"\nPing statistics for {address}:\n    Packets: Sent = {sent}, Received = {sent}, Lost = 0 (0% loss),\n")
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        sys.stderr.write("usage: python -m wincontainers.sim.commands TOOL [ARGS...]\n")
        return 2
    tools = {"tasklist": tasklist, "ver": ver, "hostname": hostname, "ipconfig": ipconfig, "ping": ping}
    tool = tools.get(argv[0].lower())
    if tool is None:
        sys.stderr.write(f"'{argv[0]}' is not recognized as an internal or external command\n")
        return 9009
    try:
        return tool(argv[1:])
    except OSError as exc:
        sys.stderr.write(f"ERROR: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
