"""Run a step as a learner does — `flask --app <step> run` in a subprocess — and talk to it over real HTTP.

Used by the black-box tests and the notebooks. The only difference from what a learner runs is the
database: a file the caller chooses (a temporary folder), passed through the step's `create_app`.
"""
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def flask_command(step, db_file, *args):
    """`python -m flask --app "<step>:create_app({...database...})" <args>`, as a list."""
    app = f"{step}:create_app({{'SQLALCHEMY_DATABASE_URI': 'sqlite:///{Path(db_file).as_posix()}'}})"
    return [sys.executable, "-m", "flask", "--app", app, *args]


def flask_cli(step, db_file, *args, env=None):
    """Run one Flask CLI command (for example `init-db`) and return its output; fail loudly if it fails."""
    done = subprocess.run(
        flask_command(step, db_file, *args), cwd=ROOT, env={**os.environ, **(env or {})},
        capture_output=True, text=True, timeout=60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


class LiveServer:
    """`flask run` on a free port. Start several, then send requests: each waits for its own server."""

    def __init__(self, step, db_file, *flask_args, env=None):
        with socket.socket() as s:  # a free port, chosen by the OS
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.cmd = flask_command(step, db_file, "run", "--port", str(self.port), "--no-reload", *flask_args)
        self.log = open(Path(db_file).with_suffix(".log"), "w+")
        self.proc = subprocess.Popen(
            self.cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=self.log, stderr=subprocess.STDOUT
        )
        self.ready = False

    def wait_until_ready(self, timeout=20):
        deadline = time.monotonic() + timeout
        while not self.ready:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                self.ready = True
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{' '.join(self.cmd)} did not start:\n{self.output()}")
                time.sleep(0.05)
        return self

    def request(self, method, path, json_body=None, headers=None, data=None):
        """Send one request; return (HTTP status, parsed JSON body)."""
        self.wait_until_ready()
        headers = dict(headers or {})
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def output(self):
        """What the server printed so far (its log)."""
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.log.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
