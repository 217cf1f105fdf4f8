"""Run the notebooks top to bottom in a fresh kernel and save them with their outputs.

    uv run python notebooks/regenerate.py                 # every notebook in this folder
    uv run python notebooks/regenerate.py 03_jwt.ipynb    # only some

Edit the notebooks in Jupyter (`uv run jupyter lab notebooks/`), then run this: the committed outputs come from one
clean run (a notebook is written back only when every cell ran), without volatile metadata (timings, versions).
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


def main(names):
    paths = [HERE / Path(name).name for name in names] or sorted(HERE.glob("[0-9][0-9]_*.ipynb"))
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        started = time.monotonic()
        client = NotebookClient(nb, kernel_name="python3", timeout=60, resources={"metadata": {"path": str(HERE)}})
        with tempfile.TemporaryDirectory(prefix="notebook-run-") as tmp:  # a run that fails leaves nothing in /tmp
            client.execute(env={**os.environ, "TMPDIR": tmp})  # as the tests run it; raises at a failing cell
        nb.metadata = {"kernelspec": KERNELSPEC, "language_info": {"name": "python"}}
        for cell in nb.cells:
            cell.metadata.pop("execution", None)
        nbformat.validate(nb)
        with open(path, "w", encoding="utf-8", newline="\n") as file:  # LF, as checked out, also on Windows
            nbformat.write(nb, file)
        print(f"{path.name}: ran in {time.monotonic() - started:.1f} s, saved with its outputs")


if __name__ == "__main__":
    main(sys.argv[1:])
