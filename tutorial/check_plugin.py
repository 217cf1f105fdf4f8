"""The checking process of `tutorial check` (tutorial/checking.py), and its pytest plugin.

`python -m tutorial.check_plugin sessions.json` runs one pytest session per entry, one after another, each with its
folder first on the import path and in TUTORIAL_STEPS_DIR, after importing each checked step (import_problem: one that
does not import is the whole report). The plugin keeps the tests whose `step` fixture (tests/conftest.py: the `since`
parametrization, an explicit parametrize, or the step the file is named after) names a --tutorial-step, and reports
for each a verdict a learner can read: its name and docstring and, for a failure, the test's line that failed, what
was found instead, and the learner's line that raised.
"""
import importlib
import json
import os
import re
import sys
import traceback
from pathlib import Path

import pytest

from tutorial.checking import IMPORTED, shown  # paths relative to the repository, where this process runs
from tutorial.steps import STEPS_DIR_VARIABLE, forget, import_step, steps_dir


def pytest_addoption(parser):
    group = parser.getgroup("tutorial")
    group.addoption("--tutorial-step", action="append", help="keep only the tests that check this step package (repeatable)")
    group.addoption("--tutorial-report", help="write the results, as JSON, to this file")
    group.addoption("--tutorial-introduced", action="store_true",
                    help="keep only the tests the step introduces (not those inherited from earlier steps)")


def checked_step(item):
    """The step package a collected test checks, or None if it does not use the `step` fixture."""
    if "step" not in getattr(item, "fixturenames", ()):
        return None
    callspec = getattr(item, "callspec", None)
    if callspec is not None and "step" in callspec.params:
        return callspec.params["step"]
    return item.module.__name__.rpartition(".")[2].removeprefix("test_")


def introduced(item, step):
    """Whether the step introduces this test: not one inherited through since() from an earlier step."""
    marker = item.get_closest_marker("since")
    return marker is None or marker.args[0] >= step


def pytest_collection_modifyitems(config, items):
    steps = config.getoption("tutorial_step")
    if not steps:
        return
    keep = [item for item in items if checked_step(item) in steps
            and (introduced(item, checked_step(item)) or not config.getoption("tutorial_introduced"))]
    kept = set(keep)
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = keep


def _short(text, limit=220):
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def explain(excinfo, item, steps_dir):
    """What went wrong, in a few short fields, from the exception (never a whole traceback)."""
    test_file = item.path.resolve()
    expected = where = raised_at = last = None
    for entry in excinfo.traceback:
        path = Path(str(entry.path)).resolve()
        if path == test_file or path.parent == test_file.parent:  # the test, or a fixture in conftest.py
            last = entry
            where = f"{shown(path)}:{entry.lineno + 1}"
        if steps_dir in path.parents:  # the step's own code (the learner's copy, under `tutorial check`)
            raised_at = f"{shown(path)}, line {entry.lineno + 1}"
    if last is not None:  # the first line of the test's statement that failed
        expected = last.statement.lines[0].strip() if last.statement.lines else None
    lines = [line for line in str(excinfo.value).splitlines() if line.strip()]
    if excinfo.errisinstance(AssertionError):
        found = _short(lines[0]) if lines else "assert failed"
        detail = [line.strip() for line in lines[1:] if line.strip().startswith(("At index", "Differing items"))]
        if detail:  # pytest shortens long values in the first line; this one says what differs
            found += " — " + _short(detail[0], 160)
        raised_at = None  # an assert in the test, not a crash in the step
    else:
        found = _short(excinfo.exconly().splitlines()[0])
        if len(lines) > 1:  # e.g. a server that did not start: its last line says why
            found += " … " + _short(lines[-1], 160)
    return {"expected": expected, "where": where, "found": found, "raised_at": raised_at,
            "assertion": excinfo.errisinstance(AssertionError)}


def logged_error(report):
    """The last exception line the step logged or printed while the test ran ('TypeError: ...'), or None."""
    text = "\n".join(part for part in (report.caplog, report.capstderr) if part)
    errors = re.findall(r"^(?:\w+\.)*\w*(?:Error|Exception): .+$", text, re.MULTILINE)
    return _short(errors[-1], 200) if errors else None


class Recorder:
    def __init__(self, config):
        self.config, self.results, self.steps_dir = config, {}, steps_dir()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item, call):
        report = yield
        step = checked_step(item)
        callspec = getattr(item, "callspec", None)
        result = self.results.setdefault(item.nodeid, {
            "nodeid": item.nodeid,
            "step": step,
            "file": shown(item.path),
            "function": item.originalname,
            "doc": (item.function.__doc__ or "").strip().split("\n\n")[0],
            "case": "-".join(part for part in callspec.id.split("-") if part != step) if callspec else "",
            "introduced": introduced(item, step),
            "already_holds": item.get_closest_marker("already_holds") is not None,
            "outcome": "passed",
        })
        if report.skipped and result["outcome"] == "passed":
            result["outcome"] = "skipped"
        elif report.failed and result["outcome"] != "failed":
            result["outcome"] = "failed"
            if call.excinfo is not None:
                result.update(explain(call.excinfo, item, self.steps_dir))
                logged = logged_error(report)
                if logged and logged not in (result.get("found") or ""):  # a 500 says little; the log says why
                    result["found"] = f"{result.get('found') or ''} — the app logged {logged}"
        return report

    def pytest_sessionfinish(self, session, exitstatus):
        report = {"exit": int(exitstatus), "cases": list(self.results.values())}
        Path(self.config.getoption("tutorial_report")).write_text(json.dumps(report, ensure_ascii=False), encoding="utf-8")


def pytest_configure(config):
    if config.getoption("tutorial_report"):
        config.pluginmanager.register(Recorder(config), "tutorial-recorder")


def import_problem(folder, step):
    """Import the step package in `folder` (steps_dir()) and each of its modules: None, or where the first error is
    ({file, line, message}). Forgotten afterwards: the tests import the step afresh, in the environment they make."""
    package_dir = Path(folder) / step
    try:
        package = import_step(step)
        for module in sorted(package_dir.glob("*.py")):
            if module.stem != "__init__" and "." not in module.stem:  # gunicorn.conf.py is gunicorn's file, not a module
                importlib.import_module(f"{step}.{module.stem}")
        if not callable(getattr(package, "create_app", None)):
            return {"file": str(package_dir / "__init__.py"), "line": None,
                    "message": "defines no create_app() function, which the tests call to build the app"}
        return None
    except (Exception, SystemExit) as error:
        file, line = None, None
        if isinstance(error, SyntaxError) and error.filename:
            file, line = error.filename, error.lineno
        else:
            for frame in traceback.extract_tb(error.__traceback__):
                if package_dir in Path(frame.filename).resolve().parents:
                    file, line = frame.filename, frame.lineno
        message = "".join(traceback.format_exception_only(type(error), error)).strip().splitlines()[-1]
        return {"file": file, "line": line, "message": message}
    finally:
        forget(step)


def main(sessions_file):
    """One pytest session per entry of the file, one after another in this process (see the top of this file)."""
    path, python_path = list(sys.path), os.environ.get("PYTHONPATH")
    for session in json.loads(Path(sessions_file).read_text(encoding="utf-8")):
        folder = session["folder"]
        os.environ[STEPS_DIR_VARIABLE] = folder
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [folder, python_path]))  # for the processes tests start
        sys.path[:] = [folder, *path]  # not the folder of the previous session
        problem = next(({**p, "step": s} for s in session["steps"] if (p := import_problem(folder, s))), None)
        if problem:
            Path(session["report"]).write_text(json.dumps({"problem": problem}), encoding="utf-8")
            continue
        print(IMPORTED, flush=True)
        pytest.main(session["args"])


if __name__ == "__main__":
    main(sys.argv[1])
