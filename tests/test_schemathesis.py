"""Schemathesis against each step from 04 on: requests generated from the step's OpenAPI document, sent to the step
running as a real server (`flask run`), every answer checked against the document with all of schemathesis' checks.
The run is schemathesis's own command line (`st run`, the options below), invoked in the test process.

Bounded for CI: SCHEMATHESIS_EXAMPLES (default 20) cases at most per operation and phase, a fixed seed
(SCHEMATHESIS_SEED, default 15) so that a run can be repeated. More: `SCHEMATHESIS_EXAMPLES=500 uv run pytest
tests/test_schemathesis.py`. Tokens come from a real login (tests/schemathesis_hooks.py). Steps 02 and 03 are left
out: their failures (the 500s of the article) are the lesson, and tests/test_openapi.py documents them.
"""
import os
import re
import traceback
import uuid
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import TEST_SECRET
from tutorial.live import LiveServer

HERE = Path(__file__).resolve().parent
EXAMPLES = os.environ.get("SCHEMATHESIS_EXAMPLES", "20")
SEED = os.environ.get("SCHEMATHESIS_SEED", "15")


class FastLoginServer(LiveServer):
    """`flask run` of the step's own app, but through fast_login_app (a cheap dummy hash, see there)."""

    def command(self, step, db_file, *flask_args, config=None):
        cmd = super().command(step, db_file, *flask_args, config=config)
        at = cmd.index("--app") + 1
        settings = {"SQLALCHEMY_DATABASE_URI": db_file, **(config or {})}
        cmd[at] = f"fast_login_app:create_app({step!r}, {settings!r})"
        return cmd


@pytest.fixture
def server(step, database_uri):
    """The step on a copy of its seeded database (the article's user, its password hashed fast: the run logs in often)."""
    pythonpath = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    with FastLoginServer(step, database_uri, env={"PYTHONPATH": pythonpath},
                         config={"BLOCKLIST": "memory", "JWT_SECRET_KEY": TEST_SECRET,
                                 # step08 on: schemathesis's hundreds of failed logins must not lock out the hooks' own
                                 "LOGIN_LIMIT": "100000 per minute", "LOGIN_LIMIT_PER_ADDRESS": "100000 per minute"}) as live:
        yield live.wait_until_ready()


@pytest.mark.since("step04_errors")
def test_schemathesis_finds_nothing(step, server, tmp_path, monkeypatch):
    # schemathesis's own command line, run in this process: a new one would import schemathesis again (~2 s of CPU)
    from schemathesis.cli import schemathesis as cli

    monkeypatch.chdir(tmp_path)  # its crash cache goes here, not into the repository
    # the hooks module is imported once per process: its tokens are cached per run (TUTORIAL_API_RUN)
    env = {"SCHEMATHESIS_HOOKS": "schemathesis_hooks", "TUTORIAL_API_URL": server.url, "TUTORIAL_API_RUN": uuid.uuid4().hex}
    done = CliRunner().invoke(cli, [
        "run", server.url + "/openapi.json", "--checks", "all", "--max-examples", EXAMPLES, "--seed", SEED,
        "--generation-database", "none", "--workers", "1", "--no-color", "--request-timeout", "10",
        "--suppress-health-check", "all"], env=env)
    crashed = done.exception is not None and not isinstance(done.exception, SystemExit)
    output = done.output + ("".join(traceback.format_exception(*done.exc_info)) if crashed else "")
    cases = re.search(r"(\d+) generated", output)
    print(f"schemathesis: {step}: {cases[1] if cases else 0} cases")  # shown with -rP
    assert cases and int(cases[1]) > 0, output  # a run that sent nothing proves nothing
    assert done.exit_code == 0, output + "\n--- server log ---\n" + server.output()[-3000:]
