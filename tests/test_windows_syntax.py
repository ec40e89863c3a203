"""Container commands in the tests and examples are Windows commands: nothing POSIX in them.

A simulated container runs cmd's language, as Windows does; a test that used POSIX shell syntax
would either fail here or, worse, pass on a simulator that accepted it. This reads every string
in the tests and examples that is a container command line (it starts with ``cmd``, or is a
Dockerfile ``RUN``) and every example Dockerfile, and refuses POSIX constructs in them.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

POSIX = re.compile(
    r"\$\{?[A-Za-z_]"  # $VAR, ${VAR} (cmd says %VAR%)
    r"|\$\("  # $(command)
    r"|;\s*(do|done|then|fi)\b"  # loops and conditionals
    r"|/dev/null"
    r"|\b(sleep|cat|ls|grep|head|tail|wc|pwd|stty|trap|read|chmod|ln|touch|sort -|printf)\s"
    r"|\brm -[rf]"
    r"|\bmkdir -p\b"
    r"|\btest -[a-z]\b"
    r"|\s-(type|exec|name|print)\b"  # POSIX find
    r"|/bin/sh"
)


def _commands(text: str) -> list[str]:
    """The container command lines in one string: a ``cmd`` line, or a Dockerfile's RUN lines."""
    stripped = text.lstrip()
    if re.match(r"(?i)(cmd(\.exe)?(\s|$)|C:\\Windows\\System32\\cmd)", stripped):
        return [stripped]
    return [line[4:] for line in text.splitlines() if line.startswith("RUN ")]


def _posix(command: str) -> bool:
    if re.match(r"(?i)(powershell|pwsh)\b", command.lstrip()):  # $env:X is PowerShell's own
        return bool(re.search(r"/bin/sh|/dev/null", command))
    return bool(POSIX.search(command))


#: Calls whose string arguments are (parts of) container command lines.
_RUNNERS = {"run", "exec", "create", "cli", "_files", "_image_files"}


def _command_strings(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            found += [(node.lineno, command) for command in _commands(node.value)]
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in _RUNNERS:
                for arg in node.args:
                    items = arg.elts if isinstance(arg, (ast.List, ast.Tuple)) else [arg]
                    found += [(item.lineno, item.value) for item in items
                              if isinstance(item, ast.Constant) and isinstance(item.value, str)
                              and not item.value.startswith("-")]
    return found


def test_the_checker_catches_posix() -> None:
    for bad in ('cmd /c "echo $HOME"', 'cmd /c "sleep 30"', "cmd /S /C \"find x | sort; ls -l\"",
                'cmd /c "mkdir -p a && rm -rf b"', "cmd /c cat x 2>/dev/null", "find app t.txt -type f",
                "test -t 1 && echo console"):
        assert _posix(bad), bad
    for good in ('cmd /c "echo %HOME% & dir /b"', "cmd /S /C \"ping -n 2 localhost > nul\"",
                 'cmd /c "type a.txt | find /c /v """', "cmd /c for /f %l in (a.txt) do @echo %l"):
        assert not _posix(good), good
    assert _commands("C:\\Windows\\System32\\cmd.exe /c echo") == ["C:\\Windows\\System32\\cmd.exe /c echo"]
    assert _commands("FROM x\nRUN echo $HOME\nENV A=${B}\n") == ["echo $HOME"]
    assert not _posix("powershell -c \"$env:A = 'x'\"")


def test_no_posix_in_container_commands() -> None:
    offenders = []
    checked = 0
    sources = sorted((ROOT / "tests").glob("*.py")) + sorted((ROOT / "examples").rglob("*.py"))
    for path in sources:
        if path.name == Path(__file__).name:
            continue
        for line, text in _command_strings(path):
            checked += 1
            if _posix(text):
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {text!r}")
    for dockerfile in sorted((ROOT / "examples").rglob("Dockerfile")):
        for number, text in enumerate(dockerfile.read_text(encoding="utf-8").splitlines(), 1):
            if dockerfile.parent.parent.name == "blog":
                # the blog's scenario runs Cygwin's ln.exe (a Windows program) on purpose: that
                # one program, and nothing else POSIX, is allowed there
                text = text.replace("ln -s vim vi", "")
            if any(_posix(command) for command in _commands(text)):
                offenders.append(f"{dockerfile.relative_to(ROOT)}:{number}: {text!r}")
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for number, text in enumerate(readme.splitlines(), 1):
        if re.search(r"\bcmd\b", text) and POSIX.search(text.split("#")[0]):
            offenders.append(f"README.md:{number}: {text!r}")
    assert not offenders, "POSIX shell syntax in container commands:\n" + "\n".join(offenders)
    assert len(sources) > 10 and checked > 100, checked
