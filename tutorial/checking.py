"""`tutorial check`: the reference tests of a step, run on a folder of step packages in a process of its own
(tutorial/check_plugin.py), so that the reference package of the same name is never imported instead."""
import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tutorial.steps import ROOT, StepError


def shown(path):
    """A path as the learner would type it: relative to the current folder when inside it."""
    path = Path(path).resolve()
    return path.relative_to(Path.cwd()).as_posix() if path.is_relative_to(Path.cwd()) else path.as_posix()


@dataclass
class Check:
    """What one pytest session of the checking process checks: `steps` (package names) in `folder`."""
    folder: Path
    steps: list
    select: str = None  # pytest's -k
    introduced_only: bool = False  # only the tests the steps introduce, not those carried forward from earlier steps


@dataclass
class CheckResult:
    step: str
    tests: list  # a dict per test case, as tutorial/check_plugin.py reports it, in the order they ran

    @property
    def passed(self):
        return bool(self.tests) and all(case["outcome"] != "failed" for case in self.tests)

    @property
    def behaviours(self):
        """{(file, test function): its cases}: a behaviour, one verdict."""
        behaviours = {}
        for case in self.tests:
            behaviours.setdefault((case["file"], case["function"]), []).append(case)
        return behaviours


def test_files_for(step):
    """The test modules that can hold a test of `step` (a later one only if it names an earlier step): quicker."""
    return [path.relative_to(ROOT).as_posix() for path in sorted((ROOT / "tests").glob("test_step[0-9][0-9]_*.py"))
            if path.stem.removeprefix("test_") <= step
            or any(s <= step for s in re.findall(r"[\"'](step\d\d_\w+)[\"']", path.read_text(encoding="utf-8")))]


def run_checks(checks):
    """Several Checks in one process (one start-up), a pytest session each: {step: CheckResult} or a StepError each."""
    with tempfile.TemporaryDirectory(prefix="tutorial-check-") as tmp:
        sessions = []
        for n, check in enumerate(checks):
            folder = Path(check.folder).resolve()
            for step in check.steps:
                if not (folder / step / "__init__.py").is_file():
                    raise StepError(f"{shown(folder / step / '__init__.py')} is missing: a step is a package with an __init__.py")
            sessions.append({"folder": str(folder), "steps": check.steps, "report": f"{tmp}/{n}.json", "args": [
                *test_files_for(max(check.steps)), *(f"--tutorial-step={s}" for s in check.steps),
                *(["-k", check.select] if check.select else []),
                *(["--tutorial-introduced"] if check.introduced_only else []), f"--tutorial-report={tmp}/{n}.json",
                f"--basetemp={tmp}/tmp{n}",  # its own: pytest's shared one is cleaned of old runs at the end (~0.5 s)
            ]})
        Path(tmp, "sessions.json").write_text(json.dumps(sessions), encoding="utf-8")
        env = {**os.environ, "PYTHONIOENCODING": "utf-8",
               "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # the step tests need no plugin: ~2 s less (hypothesis, schemathesis)
        done = subprocess.run([sys.executable, "-m", "tutorial.check_plugin", f"{tmp}/sessions.json"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, encoding="utf-8", errors="replace")
        reports = [json.loads(Path(s["report"]).read_text(encoding="utf-8")) if Path(s["report"]).is_file() else None
                   for s in sessions]
    tail = "\n".join(done.stdout.strip().splitlines()[-15:])
    return [results(check, report, tail) for check, report in zip(checks, reports)]


def results(check, report, tail):
    if report and "problem" in report:
        problem = report["problem"]
        line = f", line {problem['line']}" if problem["line"] else ""
        return StepError(f"{shown(problem['file'])}{line}: {problem['message']}")
    steps = ", ".join(check.steps)
    if report and report["exit"] == 5:
        return StepError(f"no test checks {steps}" + (f" with -k {check.select!r}" if check.select else ""))
    if not report or report["exit"] not in (0, 1):
        return StepError(f"the tests of {steps} could not run (pytest exit status {report and report['exit']}):\n{tail}")
    return {step: CheckResult(step, [case for case in report["cases"] if case["step"] == step]) for step in check.steps}


@dataclass
class Hint:
    """A learner's mistake: its fix and README section. A pattern names what the app did (its answer before " != ",
    or its exception), never the test's expected value. The first match wins."""
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
         "step03_jwt/README.md#the-concept", found=r"Invalid token type|KeyError: 'token'"),
    Hint("look the user up on every request: jwt.user_lookup_loader(load_user) in create_app, so that a token dies with its user",
         "step03_jwt/README.md#the-concept", test=r"stops_working_when_its_user", found=r"^assert 200 == 401"),
    Hint("the server answered an HTML page, not JSON: under --debug that is Werkzeug's debugger showing an exception; the server's traceback names the line",
         "step03_jwt/README.md#without---debug-every-token-problem-is-a-500", found=r"JSONDecodeError"),
    Hint("without --debug this step still answers 500: leave the article's PROPAGATE_EXCEPTIONS = True (and DEBUG = True) out of create_app; step 04 fixes the 500",
         "step03_jwt/README.md#without---debug-every-token-problem-is-a-500", found=r"At index 0 diff: 40[13] != 500"),
    Hint("build the API with step 04's Api subclass (from .errors import Api): its handle_error re-raises token errors to flask-jwt-extended, which flask-restful's own Api answers with a 500",
         "step04_errors/README.md#why-token-errors-were-500s-and-the-fix-chosen-here",
         found=r"(?:500 != 40[13]|KeyError: 'code') — the app logged (?:flask_jwt_extended|jwt)\.exceptions\."),
    Hint("the answer is flask-jwt-extended's own {\"msg\": ...}: register the loader that answers this token problem in the envelope (register_token_errors)",
         "step04_errors/README.md#the-token-answers", found=r"diff: \{'msg': '[^']*'\} != \{'code'"),
    Hint("store and look up a username in its one spelling: normalize_username() returns its NFKC form, stripped and case-folded, for User() and authenticate()",
         "step02_db/README.md#the-concept", test=r"look_alike|one_spelling"),
    Hint("open a replaced SQLite file again: init_database() calls reopen_a_replaced_file(db.engine), which compares the file's inode when a connection is lent",
         "step04_errors/README.md#when-the-database-goes-away", test=r"replaced_while_the_app_runs"),
    Hint("read the role from the user's row (current_user.role, loaded at every request), not from the token's role claim: a demoted admin keeps the claim until the token expires",
         "step08_accounts/README.md#the-concept", test=r"role_is_read_from_the_user_row"),
    Hint("put the signing key's kid in every token's header (@jwt.additional_headers_loader returning {\"kid\": ...}): a token is checked with the key its kid names",
         "step09_keys/README.md#the-concept", found=r"KeyError: 'kid'|unknown key id|UnknownKeyId: no key None"),
]


def hint_for(found, function):
    for hint in HINTS:
        if re.search(hint.found, found) and re.search(hint.test, function):
            return f"{hint.fix} (see {hint.link})"
    return None
