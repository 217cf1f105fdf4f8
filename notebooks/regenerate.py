"""Run the notebooks top to bottom in a fresh kernel and save them with their outputs.

    uv run python notebooks/regenerate.py                 # every notebook in this folder
    uv run python notebooks/regenerate.py 03_jwt.ipynb    # only some

The .ipynb files are the source: edit them in Jupyter (`uv run jupyter lab notebooks/`), then run this so
that the committed outputs come from one clean run. A notebook is written back only when every cell ran
without an error, so no error output is ever saved. Volatile metadata (timings, interpreter version) is
dropped to keep diffs small.
"""
import os
import sys
import tempfile
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

HERE = Path(__file__).resolve().parent
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}


def execute(nb, timeout=60):
    """Run a notebook in memory, as the tests do: kernel python3, working directory notebooks/."""
    client = NotebookClient(
        nb, kernel_name="python3", timeout=timeout, record_timing=False, resources={"metadata": {"path": str(HERE)}}
    )
    # The notebook's own temporary folder goes in here: a run that fails half-way leaves nothing in /tmp.
    with tempfile.TemporaryDirectory(prefix="notebook-run-") as tmp:
        # raises nbclient.exceptions.CellExecutionError at the first failing cell
        return client.execute(env={**os.environ, "TMPDIR": tmp})


def tidy(nb):
    nb.metadata = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)


def main(names):
    paths = [HERE / Path(name).name for name in names] or sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        started = time.monotonic()
        execute(nb)
        tidy(nb)
        nbformat.validate(nb)
        with open(path, "w", encoding="utf-8", newline="\n") as file:  # LF, as checked out, also on Windows
            nbformat.write(nb, file)
        print(f"{path.name}: ran in {time.monotonic() - started:.1f} s, saved with its outputs")


if __name__ == "__main__":
    main(sys.argv[1:])
