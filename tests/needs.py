"""What a test needs beyond Python and uv: `@pytest.mark.needs("redis")` on a test, a case or a module (pytestmark).

Missing on a learner's machine: the test is skipped with the reason, and the run ends with one line per missing thing
(how many tests it held back, how to get it), counted from pytest's own skip reports, xdist's included. Under CI=true,
--require-all or TUTORIAL_REQUIRE_ALL=1 the test fails instead, naming what is missing. A fixture that needs the
thing itself (a path, a URL) asks found("chromium"). A new need: a line in NEEDS, whose finder returns what it found
or raises Missing.
"""
import importlib.util
import os
import shutil
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STRICT_VARIABLE = "TUTORIAL_REQUIRE_ALL"


class Missing(Exception):
    """What is not there, in a few words (`TEST_REDIS_URL is not set`)."""


def _which(*names, variable=None):
    """The program named by $variable, else the first of `names` on PATH."""
    if variable and os.environ.get(variable):
        if not (path := shutil.which(os.environ[variable])):
            raise Missing(f"{variable}={os.environ[variable]} is not a program")
        return path
    if path := next(filter(None, map(shutil.which, names)), None):
        return path
    raise Missing(f"no {' or '.join(names)} on PATH" + (f" and {variable} is not set" if variable else ""))


def _env(name):
    if not os.environ.get(name):
        raise Missing(f"{name} is not set")
    return os.environ[name]


def _node_module(path):
    """Node.js, with this package of `npm ci` in node_modules/."""
    node = _which("node")
    if not (ROOT / "node_modules" / path).exists():
        raise Missing(f"node_modules/{path} is missing")
    return node


def _browser():
    return _which("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", variable="CHROMIUM")


def _bash():
    bash = _which("bash")
    if os.name == "nt" and "system32" in bash.lower():  # WSL's bash.exe runs in another system, not this one
        raise Missing("only WSL's bash.exe on PATH, not Git Bash")
    return bash, _which("curl")


def _module(name, why, unless=False):
    if unless or importlib.util.find_spec(name) is None:
        raise Missing(why)
    return True


NEEDS = {  # name: (what it is, how to get it, finder)
    "redis": ("Redis", "start Redis and set TEST_REDIS_URL=redis://127.0.0.1:6379/0 (tests use keys of their own)",
              lambda: _env("TEST_REDIS_URL")),
    "database servers": (
        "MariaDB/MySQL and PostgreSQL",
        'set TEST_DATABASE_URLS="mysql+pymysql://root@127.0.0.1:3306/ postgresql+psycopg://postgres@127.0.0.1:5432/postgres"',
        lambda: _env("TEST_DATABASE_URLS")),
    "gunicorn": ("gunicorn", "Linux or macOS (uv sync installs it there)",
                 lambda: _module("gunicorn", "gunicorn does not run on Windows, or is not installed", sys.platform == "win32")),
    "newman": ("Node.js and newman", "install Node.js 18 or newer, then run `npm ci` in the repository root",
               lambda: _node_module(".bin/newman.cmd" if os.name == "nt" else ".bin/newman")),  # npm's shim on Windows
    "chromium": ("Chromium and chromedriver", "apt-get install chromium chromium-driver, or set CHROMIUM and CHROMEDRIVER "
                 "to the programs", lambda: (_browser(), _which("chromedriver", variable="CHROMEDRIVER"))),
    "mermaid": ("Node.js, mermaid-cli and Chromium",
                "Node.js 18 or newer and `npm ci` (mermaid-cli), and Chromium (apt-get install chromium, or set CHROMIUM)",
                lambda: (_node_module("@mermaid-js/mermaid-cli"), _browser())),
    "bash": ("bash and curl", "Linux or macOS; on Windows, Git Bash (its bash and curl on PATH)", _bash),
}


@cache
def _look(name):
    """(what was found, None) or (None, why it is missing)."""
    try:
        return NEEDS[name][2](), None
    except Missing as missing:
        return None, str(missing)


def available(name):
    return _look(name)[1] is None


def found(name):
    """What the need found (a URL, paths); the test is skipped, or failed in strict mode, if it is missing."""
    value, why = _look(name)
    if why:
        what, how, _ = NEEDS[name]
        message = f"needs {what}: {why}; {how}"  # pytest_terminal_summary finds the need by "needs {what}: "
        if strict(_config):
            pytest.fail(f"{message} (a missing requirement fails here: {strict(_config)})", pytrace=False)
        pytest.skip(message)
    return value


def strict(config):
    """Why a missing need fails here ("--require-all", "CI=true", ...), or "" (it is skipped)."""
    if config.getoption("require_all"):
        return "--require-all"
    if os.environ.get(STRICT_VARIABLE):
        return f"{STRICT_VARIABLE}=1"
    return f"CI={os.environ['CI']}" if os.environ.get("CI", "").lower() in ("true", "1", "yes") else ""


_config = None


def pytest_addoption(parser):
    parser.addoption("--require-all", action="store_true", help="a test whose need (Redis, Node.js, Chromium, ...) is "
                     f"missing fails instead of skipping (also CI=true or {STRICT_VARIABLE}=1)")


def pytest_configure(config):
    global _config
    _config = config
    config.addinivalue_line("markers", "needs(*names): what the test needs beyond Python (tests/needs.py): " + ", ".join(NEEDS))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    for name in (name for marker in item.iter_markers("needs") for name in marker.args):
        if name not in NEEDS:
            pytest.fail(f"@pytest.mark.needs({name!r}): unknown; known: {', '.join(NEEDS)}", pytrace=False)
        found(name)


def pytest_terminal_summary(terminalreporter, config):
    # The reports xdist's workers sent, or this process made: a skip's reason, a strict run's setup error
    counts = {}
    for report in terminalreporter.stats.get("skipped", []) + terminalreporter.stats.get("error", []):
        text = str(report.longrepr)  # a skip's (path, line, reason), or the error's message
        name = next((name for name, (what, _, _) in NEEDS.items() if f"needs {what}: " in text), None)
        if name and report.when == "setup":
            counts[name] = counts.get(name, 0) + 1
    if not counts:
        return
    verb = "failed" if strict(config) else "skipped"
    terminalreporter.section("missing requirements", sep="-", yellow=True, bold=True)
    for name, count in counts.items():
        what, how, _ = NEEDS[name]
        why = _look(name)[1] or "missing on a worker"
        terminalreporter.write_line(f"{what}: {count} test{'s' if count != 1 else ''} {verb} ({why}); to run them: {how}")
    if verb == "skipped":
        terminalreporter.write_line(f"(under CI=true, --require-all or {STRICT_VARIABLE}=1 these fail instead)")
