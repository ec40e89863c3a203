"""imagecheck: a toy tool that embeds wincontainers.

It answers one question about an image: does a command run in it? It creates a container from
the image, runs the command, and always removes the container again, also when a step fails.
Its tests (``tests/``) run on the simulated host through the ``wincontainers.testing`` plugin.

    python imagecheck.py windowsservercore "cmd /c ver"
"""

from __future__ import annotations

import sys
from typing import Optional

import attrs

from wincontainers import Host, errors


@attrs.frozen
class CheckResult:
    image: str
    ok: bool
    exit_code: Optional[int] = None
    output: str = ""
    error: Optional[str] = None


def check_image(host: Host, image: str, command: str = "cmd /c ver", *, timeout: float = 60) -> CheckResult:
    """Run ``command`` in a new container of ``image``; the container is gone afterwards."""
    try:
        with host.containers.create(image, image_command=False) as container:
            container.start()
            try:
                done = container.run(command, text=True, timeout=timeout)
            finally:
                container.stop()
    except errors.WincontainersError as exc:
        return CheckResult(image, ok=False, error=f"{type(exc).__name__}: {exc}")
    return CheckResult(image, ok=done.returncode == 0, exit_code=done.returncode,
                       output=(done.stdout or "") + (done.stderr or ""))


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2):
        print("usage: imagecheck.py IMAGE [COMMAND]", file=sys.stderr)
        return 2
    with Host.open() as host:  # WINCONTAINERS_SIM=ws2019 runs it on the simulated host
        result = check_image(host, *argv)
    print(f"{result.image}: {'ok' if result.ok else 'FAILED'}"
          + (f" (exit code {result.exit_code})" if result.exit_code is not None else "")
          + (f": {result.error}" if result.error else ""))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
