"""Write docs/reference/: one page per public module, every name of its ``__all__`` on it.

A name the module defines is rendered from its docstring (mkdocstrings, ``::: module.name``);
a name it re-exports is listed with a link to the page of the module that defines it, so
each object is documented once. ``tests/test_docs.py`` checks the pages are current and that
every public name appears; run ``python tools/api_reference.py`` after changing an ``__all__``.
"""

from __future__ import annotations

import importlib
import inspect
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "reference"


def public_modules() -> list[str]:
    """The public modules, as docs/architecture.md lists them."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    block = re.search(r"<!-- public -->\n```text\n(.*?)```", text, re.S)
    assert block is not None, "docs/architecture.md has no public module list"
    return block.group(1).split()


def defining_module(module: object, name: str, modules: list[str]) -> str:
    """Where ``name`` (exported by ``module``) is defined: a class or function says so itself;
    a constant or type alias is defined where an assignment to it is written."""
    obj = getattr(module, name)
    home = getattr(obj, "__module__", None) if inspect.isclass(obj) or inspect.isfunction(obj) else None
    if home is None or not isinstance(home, str):
        try:
            source = inspect.getsource(module)  # type: ignore[arg-type]
        except (OSError, TypeError):
            source = ""
        if re.search(rf"^{re.escape(name)}\s*(:[^=\n]*)?=", source, re.M):
            return str(getattr(module, "__name__"))
        for other in modules:
            candidate = importlib.import_module(other)
            try:
                text = inspect.getsource(candidate)
            except (OSError, TypeError):
                continue
            if re.search(rf"^{re.escape(name)}\s*(:[^=\n]*)?=", text, re.M):
                return other
        return str(getattr(module, "__name__"))
    # a private submodule's object belongs to the public module that exports it nearest
    if home not in modules:
        owners = [m for m in modules if name in getattr(importlib.import_module(m), "__all__", ())
                  and home.startswith(m)]
        return max(owners, key=len) if owners else str(getattr(module, "__name__"))
    return home


def page_name(module: str) -> str:
    return module + ".md"


def pages() -> dict[str, str]:
    modules = public_modules()
    out: dict[str, str] = {}
    for name in modules:
        module = importlib.import_module(name)
        exported = list(getattr(module, "__all__", ()))
        doc = (inspect.getdoc(module) or "").split("\n\n")[0].replace("\n", " ")
        lines = [f"# `{name}`", "", doc, ""]
        here = [n for n in exported if defining_module(module, n, modules) == name]
        elsewhere = [(n, defining_module(module, n, modules)) for n in exported if n not in here]
        if elsewhere:
            lines += ["Also exported here (documented where they are defined):", "", "| Name | Defined in |", "|---|---|"]
            lines += [f"| `{n}` | [`{home}`]({page_name(home)}#{home}.{n}) |" for n, home in elsewhere]
            lines.append("")
        for n in here:
            lines += [f"::: {name}.{n}", ""]
        out[page_name(name)] = "\n".join(lines).rstrip() + "\n"
    index = ["# API reference", "", "Every public module, and every name it exports.", ""]
    index += [f"- [`{m}`]({page_name(m)})" for m in modules]
    out["index.md"] = "\n".join(index) + "\n"
    return out


def main() -> int:
    REFERENCE.mkdir(parents=True, exist_ok=True)
    wanted = pages()
    for old in REFERENCE.glob("*.md"):
        if old.name not in wanted:
            old.unlink()
    for file, text in wanted.items():
        (REFERENCE / file).write_text(text, encoding="utf-8")
    print(f"wrote {len(wanted)} pages to {REFERENCE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
