"""Schemathesis's own command line (`st run`, in this process) against each step from 04 on, served over real HTTP
(tests/conftest.py `serve`): requests generated from the step's OpenAPI document, every answer checked against it.

Bounded for CI: SCHEMATHESIS_EXAMPLES (default 20) cases per operation and phase, a fixed seed (SCHEMATHESIS_SEED,
default 15); more: `SCHEMATHESIS_EXAMPLES=500 uv run pytest tests/test_schemathesis.py`. Tokens come from a real login
(tests/schemathesis_hooks.py). Steps 02 and 03 are left out: their 500s are the article's lesson (tests/test_openapi.py).
"""
import os
import re
import traceback
import uuid

import pytest
from click.testing import CliRunner

from conftest import TEST_SECRET

EXAMPLES = os.environ.get("SCHEMATHESIS_EXAMPLES", "20")
SEED = os.environ.get("SCHEMATHESIS_SEED", "15")


@pytest.fixture
def server(serve):  # its password hashes cheap (conftest.serve): the run logs in often, with made-up users too
    return serve(config={"BLOCKLIST": "memory", "JWT_SECRET_KEY": TEST_SECRET,
                         # step08 on: schemathesis's hundreds of failed logins must not lock out the hooks' own
                         "LOGIN_LIMIT": "100000 per minute", "LOGIN_LIMIT_PER_ADDRESS": "100000 per minute"})


@pytest.mark.since("step04_errors")
@pytest.mark.ends_only  # seconds a step
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
    assert done.exit_code == 0, output  # the app's own log: pytest's captured log of this test
