"""Schemathesis's own command line (`st run`, in this process) against each step from 04 on, served over real HTTP
(tests/conftest.py `serve`): requests generated from the step's OpenAPI document, every answer checked against it.

Bounded: every phase and check, SCHEMATHESIS_EXAMPLES cases per operation in the phases that draw them at random
(20 in CI, 5 in a learner's run), a fixed SCHEMATHESIS_SEED (15); more: `SCHEMATHESIS_EXAMPLES=500 uv run pytest
tests/test_schemathesis.py`. Tokens come from a real login (tests/schemathesis_hooks.py). Steps 02 and 03 are left
out: their 500s are the article's lesson (tests/test_openapi.py).
"""
import os
import re
import traceback
import uuid

import pytest
from click.testing import CliRunner

import needs
from conftest import TEST_SECRET


@pytest.mark.since("step04_errors")
@pytest.mark.ends_only  # seconds a step
def test_schemathesis_finds_nothing(step, serve, tmp_path, monkeypatch):
    # schemathesis's own command line, run in this process: a new one would import schemathesis again (~2 s of CPU)
    from schemathesis.cli import schemathesis as cli

    # Password hashes cheap (conftest.serve): the run logs in often. Step08 on: its hundreds of failed logins must not
    # lock out the hooks' own.
    server = serve(config={"BLOCKLIST": "memory", "JWT_SECRET_KEY": TEST_SECRET,
                           "LOGIN_LIMIT": "100000 per minute", "LOGIN_LIMIT_PER_ADDRESS": "100000 per minute"})
    examples = os.environ.get("SCHEMATHESIS_EXAMPLES", "20" if needs.STRICT else "5")
    monkeypatch.chdir(tmp_path)  # its crash cache goes here, not into the repository
    # the hooks module is imported once per process: its tokens are cached per run (TUTORIAL_API_RUN)
    env = {"SCHEMATHESIS_HOOKS": "schemathesis_hooks", "TUTORIAL_API_URL": server.url, "TUTORIAL_API_RUN": uuid.uuid4().hex}
    done = CliRunner().invoke(cli, [
        "run", server.url + "/openapi.json", "--checks", "all", "--max-examples", examples,
        "--seed", os.environ.get("SCHEMATHESIS_SEED", "15"), "--generation-database", "none", "--workers", "1",
        "--no-color", "--request-timeout", "10", "--suppress-health-check", "all"], env=env)
    crashed = done.exception is not None and not isinstance(done.exception, SystemExit)
    output = done.output + ("".join(traceback.format_exception(*done.exc_info)) if crashed else "")
    cases = re.search(r"(\d+) generated", output)
    print(f"schemathesis: {step}: {cases[1] if cases else 0} cases")  # shown with -rP
    assert cases and int(cases[1]) > 0, output  # a run that sent nothing proves nothing
    assert done.exit_code == 0, output  # the app's own log: pytest's captured log of this test
