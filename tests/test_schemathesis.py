"""Schemathesis against each step from 04 on: requests generated from the step's OpenAPI document, sent to the step
running as a real server (`flask run`), every answer checked against the document with all of schemathesis' checks.

Bounded for CI: SCHEMATHESIS_EXAMPLES (default 20) cases at most per operation and phase, a fixed seed
(SCHEMATHESIS_SEED, default 15) so that a run can be repeated. More: `SCHEMATHESIS_EXAMPLES=500 uv run pytest
tests/test_schemathesis.py`. Tokens come from a real login (tests/schemathesis_hooks.py). Steps 02 and 03 are left
out: their failures (the 500s of the article) are the lesson, and tests/test_openapi.py documents them.
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from werkzeug.security import generate_password_hash

from conftest import ADMIN
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
def server(step, database_uri, make_app, models, tmp_path):
    app = make_app()
    with app.app_context():  # the article's user, its password hashed fast (the run logs in often)
        hashed = generate_password_hash(ADMIN["password"], method="pbkdf2:sha256:1")
        models.db.session.execute(models.db.update(models.User).values(password=hashed))
        models.db.session.commit()
    pythonpath = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))
    with FastLoginServer(step, database_uri, env={"PYTHONPATH": pythonpath},
                         config={"BLOCKLIST": "memory", "JWT_SECRET_KEY": app.config["JWT_SECRET_KEY"],
                                 # step08 on: schemathesis's hundreds of failed logins must not lock out the hooks' own
                                 "LOGIN_LIMIT": "100000 per minute", "LOGIN_LIMIT_PER_ADDRESS": "100000 per minute"}) as live:
        yield live.wait_until_ready()


@pytest.mark.since("step04_errors")
def test_schemathesis_finds_nothing(step, server, tmp_path):
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_hooks", "TUTORIAL_API_URL": server.url,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", server.url + "/openapi.json", "--checks", "all",
         "--max-examples", EXAMPLES, "--seed", SEED, "--generation-database", "none", "--workers", "1",
         "--no-color", "--request-timeout", "10", "--suppress-health-check", "all"],
        cwd=tmp_path, env=env, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=600,
    )
    output = done.stdout + done.stderr
    cases = re.search(r"(\d+) generated", output)
    print(f"schemathesis: {step}: {cases[1] if cases else 0} cases")  # shown with -rP
    assert cases and int(cases[1]) > 0, output  # a run that sent nothing proves nothing
    assert done.returncode == 0, output + "\n--- server log ---\n" + server.output()[-3000:]
