"""The package's import graph against docs/architecture.md's layering: no upward arrow, no
cycle (function-level imports included), no private name crossing a module. Read with ``ast``
(nothing is imported)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGE = ROOT / "wincontainers"


def _ranks() -> dict[str, int]:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = text.split("<!-- layering -->", 1)[1].split("```text", 1)[1].split("```", 1)[0]
    ranks = {}
    for line in block.strip().splitlines():
        rank, *groups = line.split()
        for group in groups:
            ranks[group] = int(rank)
    return ranks


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.with_suffix("").relative_to(ROOT).parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if not name.startswith("wincontainers.sim"):
            out[name] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> list[tuple[str, bool]]:
    """(imported module of the package, at module level?) for every import outside TYPE_CHECKING."""
    is_package = path.name == "__init__.py"
    found: list[tuple[str, bool]] = []

    def resolve(target: str, top: bool) -> None:
        while target and target not in modules and not target.startswith("wincontainers.sim"):
            target = target.rpartition(".")[0]
        if target and target != name and not target.startswith("wincontainers.sim"):
            found.append((target, top))

    def walk(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                for other in child.orelse:
                    walk(other, top)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    resolve(alias.name, top)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = name.split(".") if is_package else name.split(".")[:-1]
                    anchor = anchor[:len(anchor) - (child.level - 1)]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in child.names:
                    resolve(f"{base}.{alias.name}", top)
            walk(child, top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))

    walk(ast.parse(path.read_text(encoding="utf-8")), True)
    return found


def _group(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def test_no_module_imports_above_its_rank() -> None:
    ranks = _ranks()
    modules = _modules()
    unranked = sorted({_group(m) for m in modules} - set(ranks))
    assert unranked == [], f"docs/architecture.md's layering does not place {unranked}"
    upward = []
    for name, path in modules.items():
        for target, _top in _imports(name, path, modules):
            if ranks[_group(target)] > ranks[_group(name)]:
                upward.append(f"{name} -> {target}")
    assert upward == [], "imports against the layering:\n" + "\n".join(sorted(set(upward)))


def test_no_import_cycle() -> None:
    """No cycle among the imports outside TYPE_CHECKING, those inside functions included (a
    function-level import is a runtime arrow too: it only hides the cycle until first use)."""
    modules = _modules()
    graph = {name: {t for t, _top in _imports(name, path, modules)
                    if not name.startswith(t + ".")}  # a submodule needs its package's __init__
             for name, path in modules.items()}
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert cycles == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_the_checks_see_an_upward_import(tmp_path: Path) -> None:
    """The graph reader finds a module-level and a function-level import, and skips TYPE_CHECKING."""
    source = tmp_path / "probe.py"
    source.write_text("from typing import TYPE_CHECKING\nfrom wincontainers import errors\n"
                      "if TYPE_CHECKING:\n    from wincontainers.host import Host\n"
                      "def f():\n    from wincontainers.cli import main\n")
    modules = _modules()
    found = _imports("wincontainers.probe", source, modules)
    assert ("wincontainers.errors", True) in found and ("wincontainers.cli", False) in found
    assert not any(t == "wincontainers.host" for t, _ in found)


def _private_imports(name: str, path: Path) -> list[str]:
    """``from <another module of ours> import _private`` in ``path``."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("wincontainers"):
            for alias in node.names:
                if alias.name.startswith("_") and not alias.name.startswith("__") and node.module != name:
                    found.append(f"{name}: from {node.module} import {alias.name}")
    return found


def test_no_private_name_crosses_a_module() -> None:
    """What modules share is public in the module that defines it (the CLI's helpers live in
    ``cli._common`` under public names); a leading underscore stays inside its module."""
    crossing = [line for name, path in _modules().items() for line in _private_imports(name, path)]
    assert crossing == [], "private names imported across modules:\n" + "\n".join(crossing)


def test_the_private_import_check_sees_one(tmp_path: Path) -> None:
    source = tmp_path / "probe.py"
    source.write_text("from wincontainers.cli._common import size\nfrom wincontainers.cli import _COMMANDS\n")
    assert _private_imports("wincontainers.probe", source) == ["wincontainers.probe: from wincontainers.cli "
                                                               "import _COMMANDS"]


def _oversized(path: Path, limit: int = 600) -> bool:
    """A module longer than ``limit`` lines whose docstring does not say why it is one file."""
    text = path.read_text(encoding="utf-8")
    docstring = ast.get_docstring(ast.parse(text)) or ""
    return len(text.splitlines()) > limit and "Why one file:" not in docstring


def test_a_long_module_says_why_it_is_one_file() -> None:
    """A module above about 600 lines is split by job, or its docstring says why it is not."""
    long = sorted(str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py") if _oversized(p))
    assert long == [], f"modules above 600 lines without a 'Why one file:' in their docstring: {long}"


def test_the_size_check_sees_a_long_module(tmp_path: Path) -> None:
    source = tmp_path / "long.py"
    source.write_text('"""A module."""\n' + "x = 1\n" * 601)
    assert _oversized(source)
    source.write_text('"""A module.\n\nWhy one file: a table."""\n' + "x = 1\n" * 601)
    assert not _oversized(source)


def _listed(marker: str) -> list[str]:
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    return text.split(f"<!-- {marker} -->", 1)[1].split("```text", 1)[1].split("```", 1)[0].split()


def _classify(module: str, public: list[str], internal: list[str]) -> str:
    """What is wrong with ``module``'s place on the lists ('' when it is on exactly one;
    ``sim.control`` is public and inside the internal ``sim.*``, as the document says)."""
    import fnmatch

    underscore = any(p.startswith("_") and not p.startswith("__") for p in module.split("."))
    is_internal = underscore or any(fnmatch.fnmatchcase(module, pattern) for pattern in internal)
    is_public = module in public
    if is_public and is_internal and module != "wincontainers.sim.control":
        return f"{module}: both public and internal"
    if not is_public and not is_internal:
        return f"{module}: neither public nor internal"
    return ""


def test_every_module_is_public_or_internal_not_both() -> None:
    public, internal = _listed("public"), _listed("internal")
    wrong = []
    for path in PACKAGE.rglob("*.py"):
        parts = path.with_suffix("").relative_to(ROOT).parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        wrong.append(_classify(module, public, internal))
    wrong = sorted(w for w in wrong if w)
    assert wrong == [], "docs/architecture.md's public/internal lists:\n" + "\n".join(wrong)


def test_the_visibility_check_sees_an_unlisted_module() -> None:
    public, internal = ["wincontainers.host"], ["wincontainers.driver.*"]
    assert _classify("wincontainers.newthing", public, internal) == "wincontainers.newthing: neither public nor internal"
    assert _classify("wincontainers.driver.gen9", ["wincontainers.driver.gen9"], internal).endswith("both public and internal")
    assert _classify("wincontainers._secret", public, internal) == ""
    assert _classify("wincontainers.host", public, internal) == ""
