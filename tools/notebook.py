"""Write examples/notebooks/quickstart.ipynb and run it (nbclient), keeping its outputs.

The notebook's cells are here, so that it is reviewed as code; its saved outputs (the rich
displays among them) come from running it on the simulated host. ``tests/test_examples.py``
runs the saved notebook again and checks its outputs.

    python tools/notebook.py
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "notebooks" / "quickstart.ipynb"

CELLS: list[tuple[str, str]] = [
    ("markdown", "# wincontainers in Jupyter\n\nBuild an image, run it, look inside, commit it and save it, on the "
                 "simulated host (`Host.open()` on a Windows container host). Objects show themselves as cards and "
                 "tables; output and progress appear as they come."),
    ("code", "from wincontainers import Host\n\nhost = Host.open(sim=\"ws2019\")\nhost"),
    ("markdown", "## Build\n\n`output=True` streams the steps into the cell; the result shows each step."),
    ("code", "from wincontainers.build import build\n\n"
             "result = build(host, \"../dockerfiles/hello\", tags=[\"notebook:1\"], output=True, progress=True)\n"
             "result"),
    ("code", "result.image"),
    ("markdown", "## Run and inspect"),
    ("code", "c = host.containers.create(\"notebook:1\", name=\"notebook-demo\", image_command=False)\n"
             "await c.start_async()   # asyncio works in the notebook's own loop\nc"),
    ("code", "done = c.run(r'cmd /S /C \"type C:\\app\\app.txt\"', text=True, echo=True)   # live and captured\ndone"),
    ("code", "background = c.exec(\"ping -n 60 127.0.0.1\")\nc.top()"),
    ("code", "host.containers"),
    ("markdown", "## Commit (refused while running) and save"),
    ("code", "from wincontainers import errors\nfrom wincontainers.build import commit\n\n"
             "try:\n    commit(c, \"notebook:2\")\nexcept errors.InvalidState as refused:\n    print(refused.hint)"),
    ("code", "await c.stop_async(10)"),
    ("code", "image = commit(c, \"notebook:2\", changes=['CMD [\"cmd\", \"/c\", \"dir\"]'])\nimage"),
    ("code", "saved = host.images.save([\"notebook:2\"], \"notebook.tar\", progress=True)\n"
             "print(saved.name, saved.stat().st_size, \"bytes\")\nhost.images"),
    ("markdown", "## When a layer cannot be imported\n\nAn installer that leaves Cygwin's WSL symlinks would make "
                 "ImportLayer fail with \"Catastrophic failure\"; the build stops at that step and its report names "
                 "the files."),
    ("code", "from wincontainers.build.builder import BuildStepFailed\n\n"
             "try:\n    build(host, \"../blog/broken\", tags=[\"notebook:broken\"])\n"
             "except BuildStepFailed as failed:\n    report = failed.report\nreport"),
    ("markdown", "## Clean up"),
    ("code", "c.remove()\nfor tag in (\"notebook:2\", \"notebook:1\"):\n    host.images.remove(tag)\n"
             "host.images.gc()\nos_path = __import__(\"os\").path\nif os_path.exists(\"notebook.tar\"):\n"
             "    __import__(\"os\").remove(\"notebook.tar\")\nhost.close()"),
]


def make() -> "object":
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    for kind, source in CELLS:
        nb.cells.append(nbformat.v4.new_markdown_cell(source) if kind == "markdown"
                        else nbformat.v4.new_code_cell(source))
    return nb


def execute(nb: "object", workdir: Path, timeout: int = 300) -> "object":
    from nbclient import NotebookClient

    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", resources={"metadata": {"path": str(workdir)}})
    client.execute()
    return nb


def main() -> int:
    import nbformat

    state = tempfile.mkdtemp(prefix="wincontainers-notebook-")
    os.environ["XDG_STATE_HOME"] = state  # a simulated host of its own
    os.environ.pop("WINCONTAINERS_ROOT", None)
    nb = execute(make(), NOTEBOOK.parent)
    for cell in nb.cells:  # type: ignore[attr-defined]
        cell.get("metadata", {}).pop("execution", None)
    nbformat.write(nb, NOTEBOOK)
    import subprocess

    subprocess.run([sys.executable, "-m", "wincontainers", "--sim", "ws2019", "--root",
                    str(Path(state) / "wincontainers" / "sim" / "ws2019"), "sim", "stop"], check=False)
    print(f"wrote {NOTEBOOK}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
