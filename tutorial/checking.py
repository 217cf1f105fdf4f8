"""`tutorial check`: run the reference tests of one step against a folder of step packages.

The tests run in a separate Python process, with the folder being checked first on the import path and named
in TUTORIAL_STEPS_DIR (see tutorial/steps.py), so that a step package of the same name elsewhere — the
reference copy at the repository root — cannot be imported instead. That process first imports the step
(tutorial/check_plugin.py, import_problem below): a step that does not import is one line naming the file and
line, and no test runs. Several steps of one folder can be checked in one such process (run_checks).
"""
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from tutorial.steps import ROOT, STEPS_DIR_VARIABLE, StepError, import_step

# The line check_plugin prints once every checked step imported, before any test runs (run_checks' started()).
IMPORTED = "tutorial check: the steps import"


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


def check_folder(folder, step):
    """Raise StepError if `folder` holds no package named `step`."""
    package = Path(folder) / step
    if not package.is_dir():
        raise StepError(f"{shown(package)} does not exist")
    if not (package / "__init__.py").is_file():
        raise StepError(f"{shown(package / '__init__.py')} is missing: a step is a package with an __init__.py")


def import_problem(folder, step):
    """Import the step package in `folder` (steps_dir()) and each of its modules: None, or where the first error
    is ({file, line, message}). Run by check_plugin in the checking process before any test; the modules are
    forgotten afterwards, so that the tests import the step afresh, in the environment their fixtures make."""
    folder, package_dir = Path(folder).resolve(), Path(folder).resolve() / step
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
        for name in [name for name in sys.modules if name == step or name.startswith(step + ".")]:
            del sys.modules[name]
        importlib.invalidate_caches()


def import_error(folder, step, problem):
    """The StepError for an import_problem(): 'step03_jwt/resources.py, line 2: SyntaxError: ...'."""
    where = shown(problem["file"]) if problem["file"] else shown(Path(folder) / step)
    if problem["line"]:
        where += f", line {problem['line']}"
    return StepError(f"{where}: {problem['message']}")


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


def test_files_for(step):
    """The test modules that can hold a test of `step`: those of this step and the earlier ones, and a later
    one only if it names this step or an earlier one (step04's tests of the article's step03 code, say).
    Collecting fewer modules keeps `tutorial check` quick; the plugin still picks the tests themselves."""
    files = []
    for path in sorted((ROOT / "tests").glob("test_step[0-9][0-9]_*.py")):
        named = path.stem.removeprefix("test_")
        if named <= step or any(s <= step for s in re.findall(r"[\"'](step\d\d_\w+)[\"']", path.read_text(encoding="utf-8"))):
            files.append(str(path.relative_to(ROOT)))
    return files


def run_check(step, folder, select=None, introduced_only=False, started=None):
    """Run the tests that check `step` against the package in `folder`: a CheckResult. StepError if the step does
    not import (naming the file and line: no test runs) or the tests could not run.
    introduced_only: only the tests the step introduces, not those inherited from earlier steps.
    started(): called once the step imported, as its tests begin."""
    return run_checks([step], folder, select, introduced_only, started)[step]


def run_checks(steps, folder, select=None, introduced_only=False, started=None):
    """run_check for several steps of one folder in one pytest process (one start-up and one collection):
    {step: CheckResult}. StepError if any of them does not import."""
    folder = Path(folder).resolve()
    for step in steps:
        check_folder(folder, step)
    test_files = test_files_for(max(steps))
    with tempfile.TemporaryDirectory(prefix="tutorial-check-") as tmp:
        report = Path(tmp) / "results.json"
        command = [
            sys.executable, "-m", "pytest", *test_files, "-p", "tutorial.check_plugin",
            *(f"--tutorial-step={step}" for step in steps), "--tutorial-report", str(report),
            "-q", "--no-header", "-p", "no:cacheprovider", "-o", "addopts=", "--tb=no", "-rN",
            "-p", "no:unraisableexception",  # its collections of garbage at the end take ~0.5 s; a check reports none
        ]
        if select:
            command += ["-k", select]
        if introduced_only:
            command.append("--tutorial-introduced")
        env = {**os.environ, "PYTHONIOENCODING": "utf-8", STEPS_DIR_VARIABLE: str(folder), "PYTHONPATH": python_path(folder),
               "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # the step tests need no plugin: ~2 s less per check (hypothesis, schemathesis)
        started_at = time.monotonic()
        lines = []
        with subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, encoding="utf-8", errors="replace") as process:
            for line in process.stdout:  # read as it comes: the header waits for the import, not for the tests
                lines.append(line)
                if started and line.rstrip("\n").endswith(IMPORTED):  # after whatever the step printed as it imported
                    started()
        seconds = time.monotonic() - started_at
        output = "".join(lines)
        results = json.loads(report.read_text(encoding="utf-8")) if report.exists() else None
        if results and results["problem"]:
            problem = results["problem"]
            raise import_error(folder, problem["step"], problem)
        if process.returncode not in (0, 1) or results is None:
            if process.returncode == 5:
                raise StepError(f"no test checks {', '.join(steps)}" + (f" with -k {select!r}" if select else ""))
            tail = "\n".join(output.strip().splitlines()[-15:])
            raise StepError(f"the tests of {', '.join(steps)} could not run (pytest exit status {process.returncode}):\n{tail}")
    checks = {}
    for step in steps:
        behaviours = {}
        for case in results["cases"]:
            if case["step"] != step:
                continue
            if case["outcome"] == "failed":
                case["hint"] = hint_for(case)
            key = (case["file"], case["function"])
            if key not in behaviours:
                behaviours[key] = Behaviour(case["file"], case["function"], case["doc"])
            behaviours[key].cases.append(case)
        checks[step] = CheckResult(step, folder, list(behaviours.values()), seconds, output)
    return checks


# Likely fixes ---------------------------------------------------------------------------------------------
# The mistakes learners make when they type the article's code on today's libraries: how each shows up in a
# failure (a pattern in what was found, and/or the test that failed), the fix in one line, and the README
# section that explains it. The first match wins; tests/test_tutorial_cli.py makes each mistake in a copy.


@dataclass
class Hint:
    fix: str
    link: str  # README.md#anchor, relative to the repository root
    found: str = ""  # a regular expression searched in what the failure found
    test: str = ""  # a regular expression searched in the failing test's function name


HINTS = [
    Hint("write @jwt_required() with parentheses: in flask-jwt-extended 4 it is a decorator factory, and bare it checks nothing",
         "step03_jwt/README.md#from-flask-jwt-extended-3x-to-4x", found=r"Object of type function is not JSON serializable"),
    Hint("give @jwt.expired_token_loader's function the two arguments 4.x passes: def expired_token(jwt_header, jwt_payload)",
         "step04_errors/README.md#the-token-answers", found=r"takes 0 positional arguments but 2 were given"),
    Hint("the identity must be a string: create_access_token(identity=user.username), or str(user.id)",
         "step03_jwt/README.md#from-flask-jwt-extended-3x-to-4x", found=r"Subject must be a string"),
    Hint("the login answer carries no token: return {\"code\": 200, ..., \"token\": create_access_token(identity=user.username), ...}",
         "step03_jwt/README.md#the-concept", found=r"Invalid token type|KeyError: 'token'|token.{0,20}\bNone\b"),
    Hint("look the user up on every request: jwt.user_lookup_loader(load_user) in create_app, so that a token dies with its user",
         "step03_jwt/README.md#the-concept", test=r"stops_working_when_its_user|deleted_or_deactivated|inactive"),
    Hint("the server answered an HTML page, not JSON: under --debug that is Werkzeug's debugger showing an exception; the server's traceback names the line",
         "step03_jwt/README.md#without---debug-every-token-problem-is-a-500", found=r"JSONDecodeError"),
    Hint("without --debug this step still answers 500: leave the article's PROPAGATE_EXCEPTIONS = True (and DEBUG = True) out of create_app; step 04 fixes the 500",
         "step03_jwt/README.md#without---debug-every-token-problem-is-a-500", test=r"without_debug|with_and_without_debug", found=r"\b40[13]\b"),
    Hint("read the role from the user's row (current_user.role, loaded at every request), not from the token's role claim: a demoted admin keeps the claim until the token expires",
         "step08_accounts/README.md#the-concept", test=r"role_is_read_from_the_user_row"),
    Hint("put the signing key's kid in every token's header (@jwt.additional_headers_loader returning {\"kid\": ...}): a token is checked with the key its kid names",
         "step09_keys/README.md#the-concept", found=r"KeyError: 'kid'|unknown key id|UnknownKeyId: no key None"),
]


def hint_for(case):
    """'likely fix' text with its README link for a failed case, or None."""
    text = case.get("found") or ""
    for hint in HINTS:
        if hint.found and not re.search(hint.found, text):
            continue
        if hint.test and not re.search(hint.test, case.get("function", "")):
            continue
        return f"{hint.fix} (see {hint.link})"
    return None
