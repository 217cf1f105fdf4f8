"""What a test needs beyond Python and uv, declared in one line: `@pytest.mark.needs("redis", "gunicorn")`.

On a learner's machine a test whose need is missing is skipped, and the run ends with one line per missing
thing: what it is, how many tests it held back, how to get it. Under CI=true, with `--require-all`, or with
TUTORIAL_REQUIRE_ALL=1, a missing need fails the test instead, naming what is missing: nothing silently stops
being tested. A fixture that needs the thing itself (a path, a URL) asks `needs.found("chromium")`.

    pytestmark = pytest.mark.needs("newman")        # a whole module
    @pytest.mark.needs("redis")                      # one test
    pytest.param("x", marks=pytest.mark.needs("pty"))  # one case

Add a need to NEEDS below: a name, what it is, how to get it, and a function that finds it (returns what
it found, or raises Missing with what is not there).
"""
import importlib.util
import os
import shutil
import sys
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STRICT_VARIABLE = "TUTORIAL_REQUIRE_ALL"


class Missing(Exception):
    """What is not there, in a few words (`TEST_REDIS_URL is not set`)."""


@dataclass(frozen=True)
class Need:
    what: str  # shown: "Redis"
    how: str  # how to get it, one line
    find: callable  # () -> what was found; raises Missing


def _which(*names, variable=None):
    """The program named by $variable, else the first of `names` on PATH."""
    if variable and os.environ.get(variable):
        path = shutil.which(os.environ[variable])
        if not path:
            raise Missing(f"{variable}={os.environ[variable]} is not a program")
        return path
    for name in names:
        if path := shutil.which(name):
            return path
    raise Missing(f"no {' or '.join(names)} on PATH" + (f" and {variable} is not set" if variable else ""))


def _env(name):
    if not os.environ.get(name):
        raise Missing(f"{name} is not set")
    return os.environ[name]


def _newman():
    _which("node")
    newman = ROOT / "node_modules" / ".bin" / ("newman.cmd" if os.name == "nt" else "newman")  # npm's shim on Windows
    if not newman.is_file():
        raise Missing(f"{newman.relative_to(ROOT).as_posix()} is missing")
    return newman


def _browser():
    return _which("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome", variable="CHROMIUM")


def _mermaid():
    node = _which("node")
    if not (ROOT / "node_modules" / "@mermaid-js" / "mermaid-cli").is_dir():
        raise Missing("node_modules/@mermaid-js/mermaid-cli is missing")
    return node, _browser()


def _bash():
    bash = _which("bash")
    if os.name == "nt" and "system32" in bash.lower():  # WSL's bash.exe runs in another system, not this one
        raise Missing("only WSL's bash.exe on PATH, not Git Bash")
    return bash, _which("curl")


def _module(name, why, unless=False):
    if unless or importlib.util.find_spec(name) is None:
        raise Missing(why)
    return True


NEEDS = {
    "redis": Need("Redis", "start Redis and set TEST_REDIS_URL=redis://127.0.0.1:6379/0 (tests use keys of their own)",
                  lambda: _env("TEST_REDIS_URL")),
    "database servers": Need(
        "MariaDB/MySQL and PostgreSQL",
        'set TEST_DATABASE_URLS="mysql+pymysql://root@127.0.0.1:3306/ postgresql+psycopg://postgres@127.0.0.1:5432/postgres"',
        lambda: _env("TEST_DATABASE_URLS")),
    "gunicorn": Need("gunicorn", "Linux or macOS (uv sync installs it there)",
                     lambda: _module("gunicorn", "gunicorn does not run on Windows, or is not installed", sys.platform == "win32")),
    "newman": Need("Node.js and newman", "install Node.js 18 or newer, then run `npm ci` in the repository root", _newman),
    "chromium": Need("Chromium and chromedriver",
                     "apt-get install chromium chromium-driver, or set CHROMIUM and CHROMEDRIVER to the programs",
                     lambda: (_browser(), _which("chromedriver", variable="CHROMEDRIVER"))),
    "mermaid": Need("Node.js, mermaid-cli and Chromium",
                    "Node.js 18 or newer and `npm ci` (mermaid-cli), and Chromium (apt-get install chromium, or set CHROMIUM)",
                    _mermaid),
    "bash": Need("bash and curl", "Linux or macOS; on Windows, Git Bash (its bash and curl on PATH)", _bash),
    "pty": Need("a Unix terminal (pty)", "Linux or macOS: these blocks run in a pseudo-terminal",
                lambda: _module("termios", "no Unix terminal (pty) on this system")),
}


@cache
def _look(name):
    """(what was found, None) or (None, why it is missing)."""
    try:
        return NEEDS[name].find(), None
    except Missing as missing:
        return None, str(missing)


def found(name):
    """What the need found (a URL, paths); the test is skipped, or failed in strict mode, if it is missing."""
    value, why = _look(name)
    if why:
        _refuse(name, why)
    return value


def available(name):
    return _look(name)[1] is None


def strict(config):
    """Why a missing need fails here ("--require-all", "CI=true", ...), or "" (it is skipped)."""
    if config.getoption("require_all"):
        return "--require-all"
    if os.environ.get(STRICT_VARIABLE):
        return f"{STRICT_VARIABLE}=1"
    return f"CI={os.environ['CI']}" if os.environ.get("CI", "").lower() in ("true", "1", "yes") else ""


def _refuse(name, why):
    need = NEEDS[name]
    message = f"needs {need.what}: {why}; {need.how}"
    if strict(_config):
        pytest.fail(f"{message} (a missing requirement fails here: {strict(_config)})", pytrace=False)
    pytest.skip(message)


_config = None
PROPERTY = "tutorial-needs-missing"


def pytest_addoption(parser):
    parser.addoption("--require-all", action="store_true",
                     help="a test whose need (Redis, Node.js, Chromium, ...) is missing fails instead of skipping "
                          f"(also CI=true or {STRICT_VARIABLE}=1)")


_counts = {}  # need -> tests it held back, counted where the reports arrive: the only process, or xdist's controller


def pytest_configure(config):
    global _config
    _config = config
    config.addinivalue_line("markers", "needs(*names): what the test needs beyond Python (tests/needs.py): "
                            + ", ".join(NEEDS))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    for marker in item.iter_markers("needs"):
        for name in marker.args:
            if name not in NEEDS:
                pytest.fail(f"@pytest.mark.needs({name!r}): unknown; known: {', '.join(NEEDS)}", pytrace=False)
            if not available(name):
                item.user_properties.append((PROPERTY, name))
                _refuse(name, _look(name)[1])


def pytest_runtest_logreport(report):
    if report.when == "setup" and not report.passed:  # the need travels in the report's user_properties
        for name in {value for key, value in report.user_properties if key == PROPERTY}:
            _counts[name] = _counts.get(name, 0) + 1


def pytest_terminal_summary(terminalreporter, config):
    if not _counts:
        return
    verb = "failed" if strict(config) else "skipped"
    terminalreporter.section("missing requirements", sep="-", yellow=True, bold=True)
    for name, count in _counts.items():
        need = NEEDS[name]
        why = _look(name)[1] or "missing on a worker"
        terminalreporter.write_line(f"{need.what}: {count} test{'s' if count != 1 else ''} {verb} ({why}); to run them: {need.how}")
    if verb == "skipped":
        terminalreporter.write_line(f"(under CI=true, --require-all or {STRICT_VARIABLE}=1 these fail instead)")
