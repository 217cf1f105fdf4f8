"""What a test needs beyond Python and uv: `@pytest.mark.needs("redis")`, or found("redis") in a fixture. Missing:
skipped, one reason per thing (pytest's -rs ends with a line each, counted); failed under CI=true or --require-all."""
import importlib.util
import os
import shutil
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STRICT = ""  # why a missing need fails ("--require-all", "CI=true", ...), or "": it is skipped (pytest_configure)


class Missing(Exception):  # what is not there, in a few words (`TEST_REDIS_URL is not set`)
    pass


def require(found, why):  # what was found, if anything: else Missing(why)
    if not found:
        raise Missing(why)
    return found


def program(*names, variable=None):  # the program $variable names, else the first of `names` on PATH
    if variable and os.environ.get(variable):
        return require(shutil.which(os.environ[variable]), f"{variable}={os.environ[variable]} is not a program")
    return require(next(filter(None, map(shutil.which, names)), None),
                   f"no {' or '.join(names)} on PATH" + (f" and {variable} is not set" if variable else ""))


def node_package(path):  # Node.js, with this package of `npm ci` in node_modules/
    require((ROOT / "node_modules" / path).exists(), f"node_modules/{path} is missing")
    return program("node")


def bash_and_curl():
    bash = program("bash")  # not WSL's bash.exe (in System32): it runs in another system, not this one
    require(os.name != "nt" or "system32" not in bash.lower(), "only WSL's bash.exe on PATH, not Git Bash")
    return bash, program("curl")


CHROMIUM = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
NEEDS = {  # name: (what it is, how to get it, finder: what it found, or raises Missing)
    "redis": ("Redis", "start Redis and set TEST_REDIS_URL=redis://127.0.0.1:6379/0 (tests use keys of their own)",
              lambda: require(os.environ.get("TEST_REDIS_URL"), "TEST_REDIS_URL is not set")),
    "database servers": ("MariaDB/MySQL and PostgreSQL", 'set TEST_DATABASE_URLS="mysql+pymysql://root@127.0.0.1:3306/'
                         ' postgresql+psycopg://postgres@127.0.0.1:5432/postgres"',
                         lambda: require(os.environ.get("TEST_DATABASE_URLS"), "TEST_DATABASE_URLS is not set")),
    "gunicorn": ("gunicorn", "Linux or macOS (uv sync installs it there)",
                 lambda: require(sys.platform != "win32" and importlib.util.find_spec("gunicorn"),
                                 "gunicorn does not run on Windows, or is not installed")),
    "newman": ("Node.js and newman", "install Node.js 18 or newer, then run `npm ci` in the repository root",
               lambda: node_package("newman/bin/newman.js")),  # run by node itself: the same path on Windows
    "chromium": ("Chromium and chromedriver",
                 "apt-get install chromium chromium-driver, or set CHROMIUM and CHROMEDRIVER to the programs",
                 lambda: (program(*CHROMIUM, variable="CHROMIUM"), program("chromedriver", variable="CHROMEDRIVER"))),
    "mermaid": ("Node.js, mermaid-cli and Chromium",
                "Node.js 18 or newer, `npm ci` (mermaid-cli), and Chromium (apt-get install chromium, or set CHROMIUM)",
                lambda: (node_package("@mermaid-js/mermaid-cli"), program(*CHROMIUM, variable="CHROMIUM"))),
    "bash": ("bash and curl", "Linux or macOS; on Windows, Git Bash (its bash and curl on PATH)", bash_and_curl),
}


@cache
def look(name):  # (what was found, None) or (None, why it is missing)
    try:
        return NEEDS[name][2](), None
    except Missing as missing:
        return None, str(missing)


def found(name):  # what the need found (a URL, paths); if it is missing, the test is skipped (failed if strict)
    value, why = look(name)
    if why:
        message = f"needs {NEEDS[name][0]}: {why}; to run these tests: {NEEDS[name][1]}"
        if STRICT:
            pytest.fail(f"{message} (a missing requirement fails here: {STRICT})", pytrace=False)
        pytest.skip(f"{message} (under CI=true or --require-all: a failure)")
    return value


def pytest_addoption(parser):
    parser.addoption("--require-all", action="store_true", help="a test whose need (Redis, Node.js, Chromium, ...) is "
                     "missing fails instead of skipping (also CI=true or TUTORIAL_REQUIRE_ALL=1)")


def pytest_configure(config):
    global STRICT  # set afresh: tutorial check runs several sessions in one process
    ci = os.environ.get("CI", "").lower() in ("true", "1", "yes")
    STRICT = ("--require-all" if config.getoption("require_all") else "TUTORIAL_REQUIRE_ALL=1"
              if os.environ.get("TUTORIAL_REQUIRE_ALL") else f"CI={os.environ['CI']}" if ci else "")
    config.addinivalue_line("markers", "needs(*names): what the test needs beyond Python and uv: " + ", ".join(NEEDS))


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    for name in (name for marker in item.iter_markers("needs") for name in marker.args):
        if name not in NEEDS:
            pytest.fail(f"@pytest.mark.needs({name!r}): unknown; known: {', '.join(NEEDS)}", pytrace=False)
        found(name)
