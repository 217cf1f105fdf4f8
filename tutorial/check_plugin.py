"""The checking process of `tutorial check` (tutorial/checking.py), and its pytest plugin: the tests of each
--tutorial-step, and for a failure what a learner can read, never a traceback."""
import ast
import functools
import importlib
import json
import linecache
import os
import re
import sys
import traceback
from pathlib import Path

import pytest

from tutorial.checking import hint_for, shown  # paths relative to the repository, where this process runs
from tutorial.steps import STEPS_DIR_VARIABLE, forget, import_step, steps_dir

OPTIONS = ["-p", "tutorial.check_plugin", "-o", "addopts=", "-q", "--tb=no", "-p", "no:cacheprovider",
           "-p", "no:unraisableexception"]  # its garbage collections at the end: ~0.5 s
CASES = pytest.StashKey[dict]()


def pytest_addoption(parser):
    parser.addoption("--tutorial-step", action="append", help="keep only the tests that check this step package")
    parser.addoption("--tutorial-report", help="write the results, as JSON, to this file")
    parser.addoption("--tutorial-introduced", action="store_true", help="keep only the tests the steps introduce")


def checked_step(item):
    """The step package a collected test checks, or None if it does not use the `step` fixture."""
    if "step" not in item.fixturenames:
        return None
    params = item.callspec.params if hasattr(item, "callspec") else {}
    return params.get("step") or item.module.__name__.rpartition(".")[2].removeprefix("test_")


def introduced(item, step):
    """Whether the step introduces this test: not one inherited through since() from an earlier step."""
    marker = item.get_closest_marker("since")
    return marker is None or marker.args[0] >= step


def pytest_collection_modifyitems(config, items):
    steps, only_introduced = config.getoption("tutorial_step"), config.getoption("tutorial_introduced")
    items[:] = [item for item in items if checked_step(item) in steps
                and (introduced(item, checked_step(item)) or not only_introduced)]


def short(text, limit=220):
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


@functools.cache
def statements(path):
    """(first, last) line of every statement in a file, parsed once (pytest's entry.statement parses it each time)."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    return [(node.lineno, node.end_lineno) for node in ast.walk(tree) if isinstance(node, ast.stmt)]


def statement_at(path, line):
    """The first line of the innermost statement holding this line (a multi-line assert: its `assert` line)."""
    first = max((start for start, end in statements(path) if start <= line <= end), default=line)
    return linecache.getline(str(path), first).strip()


def explain(excinfo, item, report):
    """What went wrong, in a few short fields, from the exception (never a whole traceback)."""
    test_file, where, raised_at, statement = item.path.resolve(), None, None, None
    for entry in excinfo.traceback:
        path = Path(str(entry.path)).resolve()
        if path.parent == test_file.parent:  # the test, or a fixture in conftest.py: its statement that failed
            where, statement = f"{shown(path)}:{entry.lineno + 1}", (path, entry.lineno + 1)
        if steps_dir() in path.parents:  # the step's own code (the learner's copy, under `tutorial check`)
            raised_at = f"{shown(path)}, line {entry.lineno + 1}"
    lines = [line for line in str(excinfo.value).splitlines() if line.strip()]
    assertion = excinfo.errisinstance(AssertionError)
    if assertion:
        found = short(lines[0]) if lines else "assert failed"
        detail = [line.strip() for line in lines[1:] if line.strip().startswith(("At index", "Differing items"))]
        if detail:  # pytest shortens long values in the first line; this one says what differs
            found += " — " + short(detail[0], 160)
        raised_at = None  # an assert in the test, not a crash in the step
    else:
        found = short(excinfo.exconly().splitlines()[0])
        if len(lines) > 1:  # e.g. a server that did not start: its last line says why
            found += " … " + short(lines[-1], 160)
    # The last exception the step logged or printed while the test ran: a 500 says little, the log says why.
    logged = re.findall(r"^(?:\w+\.)*\w*(?:Error|Exception): .+$", f"{report.caplog}\n{report.capstderr}", re.MULTILINE)
    if logged and short(logged[-1], 200) not in found:
        found += f" — the app logged {short(logged[-1], 200)}"
    return {"expected": statement_at(*statement) if statement else None, "where": where, "found": found,
            "raised_at": raised_at, "assertion": assertion, "hint": hint_for(found, item.originalname)}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    step, callspec = checked_step(item), getattr(item, "callspec", None)
    case = item.config.stash.setdefault(CASES, {}).setdefault(item.nodeid, {
        "nodeid": item.nodeid, "step": step, "file": shown(item.path), "function": item.originalname,
        "doc": (item.function.__doc__ or "").strip().split("\n\n")[0],
        "case": "-".join(part for part in callspec.id.split("-") if part != step) if callspec else "",
        "introduced": introduced(item, step), "already_holds": item.get_closest_marker("already_holds") is not None,
        "outcome": "passed"})
    if report.skipped and case["outcome"] == "passed":
        case["outcome"] = "skipped"
    elif report.failed and case["outcome"] != "failed":  # the first failure (setup, call or teardown) is explained
        case["outcome"] = "failed"
        case.update(explain(call.excinfo, item, report) if call.excinfo else {})
    return report


def pytest_sessionfinish(session, exitstatus):
    report = {"exit": int(exitstatus), "cases": list(session.config.stash.get(CASES, {}).values())}
    Path(session.config.getoption("tutorial_report")).write_text(json.dumps(report, ensure_ascii=False), encoding="utf-8")


def import_problem(folder, step):
    """Import the step package in `folder` (steps_dir()) and each of its modules: None, or where the first error is
    ({file, line, message}). Forgotten afterwards: the tests import the step afresh, in the environment they make."""
    package_dir = Path(folder) / step
    try:
        import_step(step)
        for module in sorted(package_dir.glob("*.py")):
            if module.stem != "__init__" and "." not in module.stem:  # gunicorn.conf.py is gunicorn's file, not a module
                importlib.import_module(f"{step}.{module.stem}")
    except (Exception, SystemExit) as error:
        frames = [(frame.filename, frame.lineno) for frame in traceback.extract_tb(error.__traceback__)
                  if package_dir in Path(frame.filename).resolve().parents]
        file, line = frames[-1] if frames else (str(package_dir), None)
        if isinstance(error, SyntaxError) and error.filename:
            file, line = error.filename, error.lineno
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
        problem = next(filter(None, (import_problem(folder, step) for step in session["steps"])), None)
        if problem:
            Path(session["report"]).write_text(json.dumps({"problem": problem}), encoding="utf-8")
        else:
            pytest.main([*session["args"], *OPTIONS])


if __name__ == "__main__":
    main(sys.argv[1])
