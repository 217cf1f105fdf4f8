"""Every step has a walkthrough notebook, notebooks/NN_<name>.ipynb, which runs top to bottom without an error: run
by nbclient (why not nbmake: CONTRIBUTING.md) in a fresh `python3` kernel in notebooks/, with a TMPDIR of its own."""
import os
import re
import sys

import pytest

from tutorial.steps import ROOT, reference_steps

NOTEBOOKS = ROOT / "notebooks"
CJK = r"[\u4e00-\u9fff]"


def notebook(step):
    """step03_jwt -> notebooks/03_jwt.ipynb, which a new step must add (see notebooks/README.md)."""
    path = NOTEBOOKS / f"{step.removeprefix('step')}.ipynb"
    assert path.is_file(), f"{step} has no walkthrough notebook: create notebooks/{path.name}"
    return path


@pytest.mark.finished_step_for_learners  # a kernel and the notebook's servers each: CI runs every notebook
@pytest.mark.schedule_first  # seconds each
@pytest.mark.xdist_group("notebooks")  # on one worker: importing nbformat costs a test process 2–5 s of CPU, once
@pytest.mark.parametrize("step", reference_steps())
def test_notebook_runs_without_errors(step, tmp_path):
    import nbformat  # here, not at collection: its jsonschema import costs each pytest process ~2 s
    from nbclient import NotebookClient

    nb = nbformat.read(notebook(step), as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable, end='')"))  # which Python ran it
    client = NotebookClient(nb, timeout=60, resources={"metadata": {"path": str(NOTEBOOKS)}})  # kernel: nb's metadata
    client.execute(env={**os.environ, "TMPDIR": str(tmp_path)})  # raises at a cell's error; a failed run's files stay
    assert not (left := sorted(p.name for p in tmp_path.iterdir())), f"left behind in the notebook's TMPDIR: {left}"
    assert nb.cells[-1].outputs[0]["text"] == sys.executable, (
        "the python3 kernel is not this environment's Python: is another one installed (jupyter kernelspec list)?")


@pytest.mark.parametrize("step", reference_steps())
def test_committed_notebook_holds_a_clean_run(step):
    """The outputs a code host shows come from one clean top-to-bottom run: `uv run python notebooks/regenerate.py`."""
    import nbformat

    nb = nbformat.read(notebook(step), as_version=4)
    nbformat.validate(nb)
    cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert not [cell.id for cell in cells if any(out.output_type == "error" for out in cell.outputs)], "error outputs"
    assert [cell.execution_count for cell in cells] == list(range(1, len(cells) + 1)), "not one top-to-bottom run"
    assert len(cells[0].source.splitlines()) <= 15, "a light first code cell: plumbing goes in tutorial/live.py"
    title, summary = nb.cells[0].source.partition("\n")[0], nb.cells[1].source  # English title, then the Chinese summary
    assert title.startswith("# ") and not re.search(CJK, title) and re.search(CJK, summary), "title first, then 中文"
