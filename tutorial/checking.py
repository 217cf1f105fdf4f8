"""`tutorial check`: run the reference tests of one step against a folder of step packages.

The tests run in a separate Python process, started in the folder being checked, with that folder first on
the import path and named in TUTORIAL_STEPS_DIR (see tutorial/steps.py), so that a step package of the same
name elsewhere — the reference copy at the repository root — cannot be imported instead.
"""
import json
import os
import re
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
        if module.stem != "__init__" and "." not in module.stem:  # gunicorn.conf.py is gunicorn's file, not a module
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


def run_check(step, folder, select=None, introduced_only=False):
    """Run the tests that check `step` against the package in `folder` (see check_imports first).
    introduced_only: only the tests the step introduces, not those inherited from earlier steps."""
    folder = Path(folder).resolve()
    test_files = test_files_for(step)
    with tempfile.TemporaryDirectory(prefix="tutorial-check-") as tmp:
        report = Path(tmp) / "results.json"
        command = [
            sys.executable, "-m", "pytest", *test_files, "-p", "tutorial.check_plugin",
            "--tutorial-step", step, "--tutorial-report", str(report),
            "-q", "--no-header", "-p", "no:cacheprovider", "-o", "addopts=", "--tb=no", "-rN",
        ]
        if select:
            command += ["-k", select]
        if introduced_only:
            command.append("--tutorial-introduced")
        env = {**os.environ, "PYTHONIOENCODING": "utf-8", STEPS_DIR_VARIABLE: str(folder), "PYTHONPATH": python_path(folder),
               "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # the step tests need no plugin: ~2 s less per check (hypothesis, schemathesis)
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
        if case["outcome"] == "failed":
            case["hint"] = hint_for(case)
        key = (case["file"], case["function"])
        if key not in behaviours:
            behaviours[key] = Behaviour(case["file"], case["function"], case["doc"])
        behaviours[key].cases.append(case)
    return CheckResult(step, folder, list(behaviours.values()), seconds, output)


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
