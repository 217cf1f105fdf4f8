"""Schemathesis's own command line (`st run`, in this process) against each step from 04 on, served over real HTTP
(conftest's `serve`): every phase and check, SCHEMATHESIS_EXAMPLES cases per operation (20 in CI, 5 for a learner),
seed SCHEMATHESIS_SEED (15). Not steps 02 and 03: their 500s are the article's lesson (tests/test_openapi.py)."""
import os
import re
import uuid

import pytest
import schemathesis
from click.testing import CliRunner
from schemathesis.cli import schemathesis as cli  # its own command line, run in this process (a new one: ~2 s of CPU)

import needs
from conftest import ADMIN, TEST_SECRET
from tutorial.live import post_for_tokens

RUN = {}  # the server of this process's current run: schemathesis's auth (Tokens) is registered for every run


def login(credentials=ADMIN):  # (access, refresh) from POST /login: the body's tokens, else (step07 on) its cookies
    status, body, tokens = post_for_tokens(RUN["server"], "/login", credentials)
    assert status == 200, body
    return tokens


# Each case gets a real token from a real login, the one its operation's document asks for; one login per run.
@schemathesis.auth(refresh_interval=3600, cache_by_key=lambda case, ctx: RUN["id"])
class Tokens:
    def get(self, case, ctx):
        return login()

    def set(self, case, tokens, ctx):
        names = {name for requirement in case.operation.definition.raw.get("security", []) for name in requirement}
        if not names:
            return  # /hello, /login: no token
        if case.operation.path == "/logout":
            tokens = login()  # a token nothing else uses: revoking it spoils nothing
        if case.operation.path == "/users/me/password":  # step08: it ends every token of its user, so a new user's
            user = {"username": f"pw-{uuid.uuid4().hex[:12]}@example.com", "password": ADMIN["password"]}
            assert RUN["server"].request("POST", "/users", user, {"Authorization": f"Bearer {tokens[0]}"})[0] == 201
            tokens = login(user)
        token = tokens[1] if "refreshToken" in names and "accessToken" not in names else tokens[0]
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}


@pytest.mark.since("step04_errors")
@pytest.mark.ends_only  # seconds a step
@pytest.mark.schedule_first
def test_schemathesis_finds_nothing(step, serve, tmp_path, monkeypatch):
    # Step08 on: the run's hundreds of failed logins must not lock out the hooks' own (hashes cheap: conftest.serve).
    server = serve(config={"BLOCKLIST": "memory", "JWT_SECRET_KEY": TEST_SECRET,
                           "LOGIN_LIMIT": "100000 per minute", "LOGIN_LIMIT_PER_ADDRESS": "100000 per minute"})
    RUN.update(server=server, id=uuid.uuid4().hex)  # a port may serve again: the id keeps the tokens apart
    examples = os.environ.get("SCHEMATHESIS_EXAMPLES", "20" if needs.STRICT else "5")
    monkeypatch.chdir(tmp_path)  # its crash cache goes here, not into the repository
    done = CliRunner().invoke(cli, [
        "run", server.url + "/openapi.json", "--checks", "all", "--max-examples", examples,
        "--seed", os.environ.get("SCHEMATHESIS_SEED", "15"), "--generation-database", "none", "--workers", "1",
        "--no-color", "--request-timeout", "10", "--suppress-health-check", "all",
    ], catch_exceptions=False)  # a crash: pytest shows its traceback
    cases = re.search(r"(\d+) generated", done.output)
    print(f"schemathesis: {step}: {cases[1] if cases else 0} cases")  # shown with -rP
    assert cases and int(cases[1]) > 0, done.output  # a run that sent nothing proves nothing
    assert done.exit_code == 0, done.output  # the app's own log: pytest's captured log of this test
