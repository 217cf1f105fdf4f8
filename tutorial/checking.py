"""`tutorial check`: run the reference tests of one step against a folder of step packages.

The tests run in a separate Python process, started in the folder being checked, with that folder first on
the import path and named in TUTORIAL_STEPS_DIR (see tutorial/steps.py), so that a step package of the same
name elsewhere — the reference copy at the repository root — cannot be imported instead.
"""
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tutorial.steps import ROOT, STEPS_DIR_VARIABLE, StepError

# Run in a fresh interpreter: import the package and each of its modules; print where the first error is.
PROBE = r"""
import importlib, json, sys, traceback
from pathlib import Path
folder, name = Path(sys.argv[1]).resolve(), sys.argv[2]
sys.path.insert(0, str(folder))
problem = None
try:
    package = importlib.import_module(name)
    for module in sorted((folder / name).glob("*.py")):
        if module.stem != "__init__":
            importlib.import_module(f"{name}.{module.stem}")
    if not callable(getattr(package, "create_app", None)):
        problem = {"file": str(folder / name / "__init__.py"), "line": None,
                   "message": "defines no create_app() function, which the tests call to build the app"}
except BaseException as error:
    file, line = None, None
    if isinstance(error, SyntaxError) and error.filename:
        file, line = error.filename, error.lineno
    else:
        for frame in traceback.extract_tb(error.__traceback__):
            if (folder / name) in Path(frame.filename).resolve().parents:
                file, line = frame.filename, frame.lineno
    message = "".join(traceback.format_exception_only(type(error), error)).strip().splitlines()[-1]
    problem = {"file": file, "line": line, "message": message}
print(json.dumps(problem))
"""


def shown(path):
    """A path as the learner would type it: relative to the current folder when inside it."""
    path = Path(path).resolve()
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return path.as_posix()


def python_path(folder):
    rest = os.environ.get("PYTHONPATH")
    return str(folder) + (os.pathsep + rest if rest else "")


def check_imports(folder, step):
    """Raise StepError, naming the file and line, if the step package in `folder` does not import."""
    package = Path(folder) / step
    if not package.is_dir():
        raise StepError(f"{shown(package)} does not exist")
    if not (package / "__init__.py").is_file():
        raise StepError(f"{shown(package / '__init__.py')} is missing: a step is a package with an __init__.py")
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(folder), step], cwd=folder, capture_output=True, text=True, encoding="utf-8", errors="replace",
        env={**os.environ, "PYTHONPATH": python_path(folder)}, timeout=120,
    )
    try:
        problem = json.loads(done.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise StepError(f"{step} could not be imported: {(done.stderr or done.stdout).strip()[-300:]}") from None
    if problem:
        where = shown(problem["file"]) if problem["file"] else shown(package)
        if problem["line"]:
            where += f", line {problem['line']}"
        raise StepError(f"{where}: {problem['message']}")


@dataclass
class Behaviour:
    """One test function: all its cases for the checked step."""
    file: str
    function: str
    doc: str
    cases: list = field(default_factory=list)

    @property
    def sentence(self):
        """test_users_with_a_token_says_who_is_asking -> 'Users with a token says who is asking'"""
        words = self.function.removeprefix("test_").replace("_", " ").strip()
        return words[:1].upper() + words[1:]

    @property
    def failures(self):
        return [case for case in self.cases if case["outcome"] == "failed"]

    @property
    def outcome(self):
        if self.failures:
            return "failed"
        return "skipped" if all(case["outcome"] == "skipped" for case in self.cases) else "passed"


@dataclass
class CheckResult:
    step: str
    folder: Path
    behaviours: list
    seconds: float
    output: str

    @property
    def passed(self):
        return bool(self.behaviours) and all(b.outcome != "failed" for b in self.behaviours)

    @property
    def tests(self):
        return [case for b in self.behaviours for case in b.cases]


def run_check(step, folder, select=None):
    """Run the tests that check `step` against the package in `folder` (see check_imports first)."""
    folder = Path(folder).resolve()
    test_files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "tests").glob("test_step[0-9][0-9]_*.py"))
    with tempfile.TemporaryDirectory(prefix="tutorial-check-") as tmp:
        report = Path(tmp) / "results.json"
        command = [
            sys.executable, "-m", "pytest", *test_files, "-p", "tutorial.check_plugin",
            "--tutorial-step", step, "--tutorial-report", str(report),
            "-q", "--no-header", "-p", "no:cacheprovider", "-o", "addopts=", "--tb=no", "-rN",
        ]
        if select:
            command += ["-k", select]
        env = {**os.environ, "PYTHONIOENCODING": "utf-8", STEPS_DIR_VARIABLE: str(folder), "PYTHONPATH": python_path(folder)}
        started = time.monotonic()
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, encoding="utf-8", errors="replace")
        seconds = time.monotonic() - started
        output = done.stdout + done.stderr
        if done.returncode not in (0, 1) or not report.exists():
            if done.returncode == 5:
                raise StepError(f"no test checks {step}" + (f" with -k {select!r}" if select else ""))
            tail = "\n".join(output.strip().splitlines()[-15:])
            raise StepError(f"the tests of {step} could not run (pytest exit status {done.returncode}):\n{tail}")
        results = json.loads(report.read_text(encoding="utf-8"))
    behaviours = {}
    for case in results:
        key = (case["file"], case["function"])
        if key not in behaviours:
            behaviours[key] = Behaviour(case["file"], case["function"], case["doc"])
        behaviours[key].cases.append(case)
    return CheckResult(step, folder, list(behaviours.values()), seconds, output)
