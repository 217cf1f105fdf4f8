"""tutorial/launcher.py: a `flask` command forked from the fork server (Linux) says and does what the same command
says and does as a new process (TUTORIAL_NO_FORK=1, and every other system): output, exit status, files, database.
On other systems both runs are new processes, and the comparison still holds."""
import json
import os
import re
import sqlite3
import subprocess
import sys
from contextlib import closing

import jwt
import pytest

from tutorial import launcher
from tutorial.live import LiveServer, clean_env, run_flask
from tutorial.steps import ROOT

COMMANDS = [  # (step, arguments, environment): what the tests and notebooks run
    ("step02_db", ["init-db"], {}),
    ("step05_config", ["init-db"], {"FLASK_CONFIG": "production"}),  # refused at start-up: one line, exit status 1
    ("step03_jwt", ["no-such-command"], {}),  # click's usage error names `python -m flask`, as a new process does
    ("step08_accounts", ["create-user", "a@example.com", "--password", "pw", "--role", "boss"], {}),  # a bad option
    ("step09_keys", ["rotate-keys"], {"KEYS_DIR": "keys"}),  # a relative path: the working folder is the step's
]


def said_kids(text):
    return re.sub(r"\d{8}T\d{6}\.\d{6}Z-[0-9a-f]+", "<kid>", text)  # a key's id: a time and a random part


def said(done):
    """What a run said, times and key ids aside."""
    return done.returncode, said_kids(done.stdout), said_kids(re.sub(r"^\[[\d :,-]+\]", "[time]", done.stderr, flags=re.M))


@pytest.mark.parametrize("step, args, env", COMMANDS, ids=lambda value: " ".join(value) if isinstance(value, list) else None)
def test_a_forked_command_does_what_a_new_process_does(step, args, env, tmp_path, monkeypatch):
    runs = {}
    for how in ("forked", "new"):
        if how == "new":
            monkeypatch.setenv("TUTORIAL_NO_FORK", "1")
        (tmp_path / how).mkdir()
        runs[how] = run_flask(step, tmp_path / how / "app.sqlite", *args, env=env, cwd=tmp_path / how)
    assert said(runs["forked"]) == said(runs["new"])
    made = {how: sorted(said_kids(p.relative_to(tmp_path / how).as_posix()) for p in (tmp_path / how).rglob("*")) for how in runs}
    assert made["forked"] == made["new"]  # the same files, in its own working folder
    if step == "step02_db":
        rows = []
        for how in runs:
            with closing(sqlite3.connect(tmp_path / how / "app.sqlite")) as db:  # closed: Windows cannot delete an open file
                rows.append(db.execute("SELECT username FROM user").fetchall())
        assert rows[0] == rows[1] == [("admin@gmail.com",)]


def test_a_forked_server_is_a_process_of_its_own(tmp_path):
    """Its own environment and exit status; stopped, it is gone; the fork server stays for the next one."""
    with LiveServer("step05_config", tmp_path / "app.sqlite", env={"JWT_ACCESS_TOKEN_EXPIRES": "2"}) as server:
        run_flask("step05_config", tmp_path / "app.sqlite", "init-db")
        status, body = server.request("POST", "/login", json_body={"username": "admin@gmail.com", "password": "123456"})
        claims = jwt.decode(body["token"], options={"verify_signature": False})
        assert (status, claims["exp"] - claims["iat"]) == (200, 2)  # the variable this server was given
        assert "Serving Flask app" in server.output() and "Running on http://127.0.0.1:" in server.output()
    assert server.proc.returncode == -15  # SIGTERM, as subprocess.Popen reports it
    with LiveServer("step05_config", tmp_path / "app.sqlite") as again:
        status, body = again.request("POST", "/login", json_body={"username": "admin@gmail.com", "password": "123456"})
        claims = jwt.decode(body["token"], options={"verify_signature": False})
        assert (status, claims["exp"] - claims["iat"]) == (200, 15 * 60)  # not the previous server's
    assert launcher.available() is (type(server.proc).__name__ == "ForkedProcess")


SESSION = """import json, sys
from tutorial import launcher, live
done = live.run_flask("step02_db", sys.argv[1], "init-db")
client = next(iter(launcher._clients.values()), None)
print(json.dumps({"said": done.stdout, "status": done.returncode, "shared": client is not None and client.proc is None}))
"""


def test_a_process_given_a_shared_fork_server_forks_from_it_when_set_up_alike(tmp_path):
    """The notebooks' kernels: a process given the shared server's socket is a session of it instead of starting a
    server of its own; one whose interpreters are set up otherwise (another PYTHON* value) starts its own. Either
    way its command does what it does. Where no fork server runs (Windows, macOS), neither is shared."""
    with launcher.shared(clean_env()) as address:
        for name, other in (("alike", {}), ("otherwise", {"PYTHONHASHSEED": "7"})):
            done = subprocess.run([sys.executable, "-c", SESSION, str(tmp_path / f"{name}.sqlite")], cwd=ROOT,
                                  env={**os.environ, **address, **other}, capture_output=True, text=True, encoding="utf-8")
            assert done.returncode == 0, done.stderr
            result = json.loads(done.stdout)
            assert (result["status"], "Created user admin@gmail.com" in result["said"]) == (0, True)
            assert result["shared"] is (name == "alike" and launcher.available())
