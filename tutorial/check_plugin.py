"""A pytest plugin for `tutorial check`: keep the tests that check one step, and record plain results.

Loaded with `-p tutorial.check_plugin --tutorial-step step03_jwt --tutorial-report results.json` (several
--tutorial-step: the tests of each, each case reported with its step). A test checks the step its `step`
fixture names (tests/conftest.py): the `since` parametrization, an explicit `@pytest.mark.parametrize("step",
[...])`, or else the step its file is named after. Only the tests that use the `step` fixture and check a
chosen step are kept — exactly those that fail when that step is wrong (tests/conftest.py does not even make
the `since` cases of the other steps). Before any test, each chosen step is imported (checking.import_problem):
one that does not import is reported, and nothing runs. For each test, the report records a verdict a learner
can read: the test's name and docstring, and for a failure the test's line that failed, what was found
instead, and the learner's line that raised.
"""
import ast
import functools
import json
import linecache
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


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


def already_holds(item):
    """Marked @pytest.mark.already_holds: a behaviour the step teaches that its start copy already has."""
    return item.get_closest_marker("already_holds") is not None


def checked_steps(config):
    """The steps this run checks (--tutorial-step), or None when the plugin is loaded without any."""
    return config.getoption("tutorial_step", None)


def pytest_collection_modifyitems(config, items):
    steps = checked_steps(config)
    if not steps:
        return
    keep = [item for item in items if checked_step(item) in steps]
    if config.getoption("tutorial_introduced"):
        keep = [item for item in keep if introduced(item, checked_step(item))]
    kept = set(map(id, keep))
    drop = [item for item in items if id(item) not in kept]
    if drop:
        config.hook.pytest_deselected(items=drop)
    items[:] = keep


def _case(item, step):
    """The parametrization of a test, without the step: 'testing-headers0-401-body0', or ''."""
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return ""
    return "-".join(part for part in callspec.id.split("-") if part != step)


def _short(text, limit=220):
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _relative(path):
    path = Path(path).resolve()
    for base in (Path.cwd(), ROOT):
        try:
            return path.relative_to(base).as_posix()
        except ValueError:
            pass
    return path.as_posix()


@functools.lru_cache(maxsize=None)
def _statements(filename):
    """(first line, last line) of every statement in a file, parsed once: a check explains hundreds of failures."""
    try:
        tree = ast.parse(Path(filename).read_text(encoding="utf-8"))
    except (OSError, SyntaxError, ValueError):
        return ()
    return tuple((node.lineno, node.end_lineno) for node in ast.walk(tree) if isinstance(node, ast.stmt))


def statement_at(filename, lineno):
    """The first line of the innermost statement holding line `lineno` (1-based) of the file, or None."""
    spans = [span for span in _statements(filename) if span[0] <= lineno <= span[1]]
    if not spans:
        return None
    first, _ = min(spans, key=lambda span: span[1] - span[0])
    return linecache.getline(filename, first).strip() or None


def explain(excinfo, item, steps_dir):
    """What went wrong, in a few short fields, from the exception (never a whole traceback)."""
    test_file = Path(str(item.fspath)).resolve()
    expected = where = raised_at = last = None
    for entry in excinfo.traceback:
        path = Path(str(entry.path)).resolve()
        if path == test_file or path.parent == test_file.parent:  # the test, or a fixture in conftest.py
            last = entry
            where = f"{_relative(path)}:{entry.lineno + 1}"
        if steps_dir in path.parents:  # the step's own code (the learner's copy, under `tutorial check`)
            raised_at = f"{_relative(path)}, line {entry.lineno + 1}"
    if last is not None:
        expected = statement_at(str(last.path), last.lineno + 1)
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
        self.config = config
        self.results = {}
        from tutorial.steps import steps_dir

        self.steps_dir = steps_dir()

    def write(self, problem=None):
        report = {"problem": problem, "cases": list(self.results.values())}
        Path(self.config.getoption("tutorial_report")).write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")

    def pytest_sessionstart(self, session):
        """Import each checked step here, once, instead of in a process of its own: the first that does not import
        is the whole report, and no test runs."""
        from tutorial.checking import IMPORTED, import_problem

        for step in checked_steps(self.config) or ():
            problem = import_problem(self.steps_dir, step)
            if problem:
                self.write({**problem, "step": step})
                pytest.exit(f"{step} does not import", returncode=pytest.ExitCode.INTERRUPTED)
        print(IMPORTED, flush=True)  # output is not captured between the hooks: checking.run_checks reads this line

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        step = checked_step(item)
        result = self.results.setdefault(item.nodeid, {
            "nodeid": item.nodeid,
            "step": step,
            "file": _relative(str(item.fspath)),
            "function": getattr(item, "originalname", item.name),
            "doc": (getattr(item.function, "__doc__", None) or "").strip().split("\n\n")[0],
            "case": _case(item, step),
            "introduced": introduced(item, step),
            "already_holds": already_holds(item),
            "outcome": "passed",
        })
        if report.skipped and result["outcome"] == "passed":
            result["outcome"] = "skipped"
        elif report.failed and result["outcome"] != "failed":
            result["outcome"] = "failed"
            result["when"] = report.when
            if call.excinfo is not None:
                result.update(explain(call.excinfo, item, self.steps_dir))
                logged = logged_error(report)
                if logged and logged not in (result.get("found") or ""):  # a 500 says little; the log says why
                    result["found"] = f"{result.get('found') or ''} — the app logged {logged}"

    def pytest_sessionfinish(self, session):
        self.write()


def pytest_configure(config):
    if config.getoption("tutorial_report"):
        config.pluginmanager.register(Recorder(config), "tutorial-recorder")
