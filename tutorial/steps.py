"""Where the step packages are imported from: the repository root, or $TUTORIAL_STEPS_DIR (`tutorial check` sets
it to the learner's workspace, so that the same tests run on the learner's code)."""
import importlib
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STEPS_DIR_VARIABLE = "TUTORIAL_STEPS_DIR"


class StepError(Exception):
    """A problem the learner can fix, said in one line (the command exits with status 2)."""


def reference_steps():
    """The reference step packages at the repository root, in order: ['step01_basic', ...]."""
    return sorted(p.name for p in ROOT.glob("step[0-9][0-9]_*") if (p / "__init__.py").is_file())


def find_step(text):
    """'3', '03', 'step03' or 'step03_jwt' -> 'step03_jwt'; StepError for anything else."""
    steps, match = reference_steps(), re.fullmatch(r"(?:step)?(\d{1,2})", text)
    for step in steps:
        if step == text or match and int(step[4:6]) == int(match[1]):
            return step
    raise StepError(f"there is no step {text!r}: the steps are {', '.join(s[4:6] for s in steps)}")


def previous_step(step):
    steps = reference_steps()
    return steps[steps.index(step) - 1] if steps.index(step) else None


def steps_dir():
    value = os.environ.get(STEPS_DIR_VARIABLE)
    return Path(value).resolve() if value else ROOT


def import_step(name):
    """Import the step package `name` from steps_dir() only: one imported from elsewhere would shadow the copy."""
    where = steps_dir()
    if where != ROOT:
        if sys.path[:1] != [str(where)]:
            sys.path.insert(0, str(where))
        module = sys.modules.get(name)
        if module is not None and Path(module.__file__).resolve().parent.parent != where:
            forget(name)
    return importlib.import_module(name)


def forget(name):
    """Forget the imported package `name` and its modules: the next import reads them afresh."""
    for key in [key for key in sys.modules if key == name or key.startswith(name + ".")]:
        del sys.modules[key]
    importlib.invalidate_caches()
