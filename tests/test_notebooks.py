"""Every step has a walkthrough notebook, notebooks/NN_<name>.ipynb, and it runs top to bottom without an error.

Each notebook is executed in memory (the committed file is never written) in a fresh `python3` kernel, with
notebooks/ as its working directory, as a reader opening it in Jupyter would run it; three run at a time. The run time of each
notebook is printed and recorded as the test property `seconds`; see it with
`uv run pytest tests/test_notebooks.py -rA` (or `--durations=0`).
"""
import os
import sys
import time
from pathlib import Path

import pytest

from conftest import collected_cases
from tutorial.steps import reference_steps

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
STEPS = reference_steps()
CELL_TIMEOUT = 60  # seconds; a whole notebook takes well under 15 s


def notebook_path(step):
    """step03_jwt -> notebooks/03_jwt.ipynb"""
    return NOTEBOOKS / f"{step.removeprefix('step')}.ipynb"


def notebook_for(step):
    path = notebook_path(step)
    if not path.is_file():
        pytest.fail(f"{step} has no walkthrough notebook: create {path.relative_to(ROOT).as_posix()} "
                    "(see notebooks/README.md)")
    return path


TEST = "test_notebook_runs_without_errors"
AT_ONCE = 3  # notebooks run at the same time: each mostly waits (for its kernel, its servers, a token to expire)


@pytest.fixture(scope="session")
def executed(request, tmp_path_factory):
    """{step: (the notebook as run, seconds, the CellExecutionError or None, its temporary folder)} for every notebook
    this run checks (the cases left after -k), three at a time, each in a fresh kernel of its own."""
    import asyncio

    import nbformat  # imported here, not at collection: jsonschema's import costs every pytest worker ~1 s of CPU
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError

    steps = [item.callspec.params["step"] for item in collected_cases(request, TEST)]

    async def run(step, at_once):
        async with at_once:
            nb = nbformat.read(notebook_for(step), as_version=4)
            # One extra cell, in this in-memory copy only: which Python ran the notebook.
            nb.cells.append(nbformat.v4.new_code_cell("import sys; print(sys.executable, end='')"))
            client = NotebookClient(nb, kernel_name="python3", timeout=CELL_TIMEOUT, record_timing=False,
                                    resources={"metadata": {"path": str(NOTEBOOKS)}})
            tmp = tmp_path_factory.mktemp(step)  # the notebook's TMPDIR: a failed run leaves its files there to inspect
            started, error = time.monotonic(), None
            try:
                await client.async_execute(env={**os.environ, "TMPDIR": str(tmp)})
            except CellExecutionError as raised:
                error = raised
            return step, (nb, round(time.monotonic() - started, 1), error, tmp)

    async def run_all():
        at_once = asyncio.Semaphore(AT_ONCE)
        return dict(await asyncio.gather(*(run(step, at_once) for step in steps if notebook_path(step).is_file())))

    return asyncio.run(run_all())


@pytest.mark.xdist_group("notebooks")  # one worker runs them all (executed)
@pytest.mark.parametrize("step", STEPS)
def test_notebook_runs_without_errors(step, executed, record_property):
    path = notebook_for(step)
    nb, seconds, error, tmp = executed[step]
    if error is not None:
        pytest.fail(f"{path.name}: a cell failed after {seconds} s\n{error}", pytrace=False)
    record_property("seconds", seconds)
    print(f"{path.name}: ran in {seconds} s")
    left = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*"))
    assert not left, f"{path.name} left files in its temporary folder: {left}"

    kernel_python = nb.cells[-1].outputs[0]["text"]
    assert kernel_python == sys.executable, (
        f"the python3 kernel ran {kernel_python}, not this environment's {sys.executable}: "
        "is another 'python3' kernelspec installed (jupyter kernelspec list)?"
    )


@pytest.mark.parametrize("step", STEPS)
def test_committed_notebook_holds_a_clean_run(step):
    """The outputs a code host shows come from one clean top-to-bottom run: `uv run python notebooks/regenerate.py`."""
    import nbformat

    path = notebook_for(step)
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code_cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    counts = [cell.execution_count for cell in code_cells]
    errors = [cell.id for cell in code_cells if any(out.output_type == "error" for out in cell.outputs)]
    assert not errors, f"{path.name}: error output in cells {errors}; run notebooks/regenerate.py"
    assert counts == list(range(1, len(code_cells) + 1)), (
        f"{path.name}: execution counts {counts} are not one top-to-bottom run; run notebooks/regenerate.py"
    )
