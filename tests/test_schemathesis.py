"""Schemathesis's own command line (`st run`, in this process) against each step from 04 on, served over real HTTP
(tests/conftest.py `serve`): requests generated from the step's OpenAPI document, every answer checked against it.

Bounded: every phase and check, SCHEMATHESIS_EXAMPLES cases per operation in the phases that draw them at random
(20 in CI, 5 in a learner's run), a fixed SCHEMATHESIS_SEED (15); more: `SCHEMATHESIS_EXAMPLES=500 uv run pytest
tests/test_schemathesis.py`. Steps 02 and 03 are left out: their 500s are the article's lesson (tests/test_openapi.py).
Each case gets a real token from a real login (Tokens, below), the one its operation's document asks for.
"""
import json
import os
import re
import traceback
import urllib.request
import uuid
from http.cookies import SimpleCookie

import pytest
import schemathesis
from click.testing import CliRunner

import needs
from conftest import ADMIN, TEST_SECRET


def post(path, body, **headers):  # to the server this run tests (TUTORIAL_API_URL)
    request = urllib.request.Request(os.environ["TUTORIAL_API_URL"] + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", **headers}, method="POST")
    return urllib.request.urlopen(request, timeout=10)


def login_tokens(credentials=ADMIN):
    """{"access", "refresh"} from POST /login: the body's token and refresh_token, else (step07 on) its cookies."""
    with post("/login", credentials) as response:
        body = json.loads(response.read())
        cookies = SimpleCookie()
        for header in response.headers.get_all("Set-Cookie") or []:
            cookies.load(header)
    return {"access": body.get("token") or getattr(cookies.get("access_token_cookie"), "value", None),
            "refresh": body.get("refresh_token") or getattr(cookies.get("refresh_token_cookie"), "value", None)}


# Registered for every schemathesis run of this process; one login per run (TUTORIAL_API_RUN: a port may serve again).
@schemathesis.auth(refresh_interval=3600,
                   cache_by_key=lambda case, ctx: os.environ["TUTORIAL_API_URL"] + os.environ["TUTORIAL_API_RUN"])
class Tokens:
    def get(self, case, ctx):
        return login_tokens()

    def set(self, case, tokens, ctx):
        names = {name for requirement in case.operation.definition.raw.get("security", []) for name in requirement}
        if not names:
            return  # /hello, /login: no token
        if case.operation.path == "/logout":
            tokens = login_tokens()  # a token nothing else uses: revoking it spoils nothing
        if case.operation.path == "/users/me/password":  # step08: it ends every token of its user, so a new user's
            user = {"username": f"pw-{uuid.uuid4().hex[:12]}@example.com", "password": ADMIN["password"]}
            post("/users", user, Authorization=f"Bearer {tokens['access']}").close()
            tokens = login_tokens(user)
        token = tokens["refresh"] if "refreshToken" in names and "accessToken" not in names else tokens["access"]
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}


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
    done = CliRunner().invoke(cli, [
        "run", server.url + "/openapi.json", "--checks", "all", "--max-examples", examples,
        "--seed", os.environ.get("SCHEMATHESIS_SEED", "15"), "--generation-database", "none", "--workers", "1",
        "--no-color", "--request-timeout", "10", "--suppress-health-check", "all",
    ], env={"TUTORIAL_API_URL": server.url, "TUTORIAL_API_RUN": uuid.uuid4().hex})
    crashed = done.exception is not None and not isinstance(done.exception, SystemExit)
    output = done.output + ("".join(traceback.format_exception(*done.exc_info)) if crashed else "")
    cases = re.search(r"(\d+) generated", output)
    print(f"schemathesis: {step}: {cases[1] if cases else 0} cases")  # shown with -rP
    assert cases and int(cases[1]) > 0, output  # a run that sent nothing proves nothing
    assert done.exit_code == 0, output  # the app's own log: pytest's captured log of this test
