"""Serve or run a step for the tests and the notebooks, on the database the caller names (a SQLite file, a URL, or
None: the step's own), without the learner's settings unless passed in `env`. In process or not: CONTRIBUTING.md."""
import ast
import base64
import contextlib
import http.cookies
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from unittest import mock

from tutorial.steps import ROOT, import_step, reference_steps, steps_dir

# The variables the steps read (step05 on), and Flask's own FLASK_DEBUG.
CONFIG_VARIABLES = ("FLASK_CONFIG", "FLASK_DEBUG", "SQLALCHEMY_DATABASE_URI", "DATABASE_TIMEOUT", "JWT_SECRET_KEY",
                    "JWT_ACCESS_TOKEN_EXPIRES", "CORS_ORIGINS")
# Read from step06 on: the refresh token's lifetime, the clock leeway, the blocklist.
REVOKE_VARIABLES = ("JWT_REFRESH_TOKEN_EXPIRES", "JWT_DECODE_LEEWAY", "REDIS_URL", "BLOCKLIST", "BLOCKLIST_PREFIX")
# Everything a learner's shell may set for a step: also step07's cookies, step08's login limits and proxies, gunicorn's.
LEARNERS = CONFIG_VARIABLES + REVOKE_VARIABLES + (
    "JWT_COOKIE_SECURE", "JWT_COOKIE_SAMESITE", "JWT_COOKIE_DOMAIN", "JWT_COOKIE_CSRF_PROTECT", "JWT_CSRF_IN_COOKIES",
    "IMPLICIT_REFRESH_WITHIN", "LOGIN_LIMIT", "LOGIN_LIMIT_PER_ADDRESS", "LOGIN_LIMIT_PREFIX", "TRUSTED_PROXY_HOPS",
    "GUNICORN_CMD_ARGS", "WEB_CONCURRENCY")


def _settings(db_file, config):
    """create_app's settings: the database (a SQLite file's path or a URL; None: the step's own) and `config`."""
    if db_file is None:
        return dict(config or {})
    uri = str(db_file) if "://" in str(db_file) else f"sqlite:///{Path(db_file).as_posix()}"
    return {"SQLALCHEMY_DATABASE_URI": uri, **(config or {})}


def app_value(step, db_file, config=None):
    """What `flask --app` (or gunicorn) is given: "<step>:create_app({...})", or the step alone without settings."""
    settings = _settings(db_file, config)
    return f"{step}:create_app({settings!r})" if settings else step


def clean_env(env=None, dotenv=False):
    """os.environ without the learner's settings, plus `env`; a .env file is read only if `dotenv`."""
    clean = {k: v for k, v in os.environ.items() if k not in LEARNERS}
    clean["PYTHONIOENCODING"] = "utf-8"  # what the child prints is read as UTF-8, also on Windows (cp1252, GBK)
    if os.environ.get("PYTHONWARNDEFAULTENCODING"):  # CI: our code's EncodingWarning is an error in children too
        folders = [("tutorial", ROOT / "tutorial")] + [(step, steps_dir() / step) for step in reference_steps()]
        modules = [m for name, folder in folders for m in [name, *(f"{name}.{p.stem}" for p in folder.glob("*.py"))]]
        errors = [f"error::EncodingWarning:{m}" for m in modules if not m.endswith(".__init__")]  # exact names
        clean["PYTHONWARNINGS"] = ",".join(filter(None, [os.environ.get("PYTHONWARNINGS"), *errors]))
    if not dotenv:
        clean["FLASK_SKIP_DOTENV"] = "1"
    return {**clean, **(env or {})}


def run_flask(step, db_file, *args, env=None, cwd=None, dotenv=False):
    """Run one Flask CLI command in a process; return the finished process (returncode, stdout, stderr as text)."""
    command = [sys.executable, "-m", "flask", "--app", app_value(step, db_file), *args]
    return subprocess.run(command, cwd=cwd or steps_dir(), env=clean_env(env, dotenv), capture_output=True,
                          text=True, encoding="utf-8", errors="replace", timeout=60)


def flask_cli(step, db_file, *args, **kwargs):
    """Run one Flask CLI command (for example `init-db`) and return its output; fail loudly if it fails."""
    done = run_flask(step, db_file, *args, **kwargs)
    if done.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def free_port():
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


_ENVIRON = threading.Lock()


def build_app(step, db_file, config=None, env=None):
    """The step's app as `flask --app <step> run` builds it, built in this process with `env` as its environment."""
    package, names = import_step(step), {*LEARNERS, *(env or {})}
    with _ENVIRON:  # only these names change: other threads read os.environ meanwhile (clean_env)
        saved = {name: os.environ.pop(name) for name in names if name in os.environ}
        os.environ.update(env or {})
        try:
            return package.create_app(_settings(db_file, config) or None)
        finally:
            for name in names:
                os.environ.pop(name, None)
            os.environ.update(saved)


def release(app):
    """Close an app's pooled database connections now: a server allows only so many, Windows keeps a file open."""
    if "sqlalchemy" in getattr(app, "extensions", {}):  # not every WSGI app served is a Flask app
        with app.app_context():
            app.extensions["sqlalchemy"].engine.dispose()


class WouldServe(Exception):
    """`flask run` got past its checks: in this process it would serve forever."""


def invoke_flask(step, db_file, *args, env=None, config=None, input=None):
    """`flask --app <step> ARGS` run in this process by click's CliRunner, as Flask's `runner` fixture runs a command:
    the learner's variables left out, `env` set. Returns (exit status, what it printed on stdout and stderr)."""
    from click.testing import CliRunner
    from flask import cli
    from flask.logging import default_handler

    env = {**dict.fromkeys(LEARNERS), "FLASK_SKIP_DOTENV": "1", **(env or {})}  # None: unset while it runs
    package, built = import_step(step), []
    factory = package.create_app

    def create_app(*args, **kwargs):  # the app flask builds, kept to close its database file afterwards (Windows)
        built.append(factory(*args, **kwargs))
        return built[-1]

    command, disabled = ["--app", app_value(step, db_file, config), *args], logging.root.manager.disable
    # pytest's log capture on the root logger would keep Flask from logging to stderr, as it does in a terminal
    with _ENVIRON, mock.patch.object(cli, "run_simple", side_effect=WouldServe(f"flask {' '.join(command)}")), \
            mock.patch.object(logging.root, "handlers", []), mock.patch.object(package, "create_app", create_app):
        logging.disable(logging.NOTSET)  # a terminal shows the app's warnings, even where logs are off for servers
        try:
            done = CliRunner().invoke(cli.cli, command, input=input, env=env)
        finally:
            logging.disable(disabled)
            logging.getLogger(step).removeHandler(default_handler)  # Flask added it for this app; later ones decide
            for app in built:
                release(app)
    if isinstance(done.exception, WouldServe):
        raise done.exception
    return done.exit_code, done.output


class HTTPClient(contextlib.AbstractContextManager):
    """What every kind of server here offers: url, send(), request(), and `with`."""

    @property
    def url(self):
        return f"http://127.0.0.1:{self.wait_until_ready().port}"

    def send(self, method, path, json_body=None, headers=None, data=None):
        """Send one request; return (HTTP status, parsed JSON body, the answer's headers)."""
        headers = dict(headers or {})
        if json_body is not None:
            data = json.dumps(json_body).encode()
            headers.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as response:
                return response.status, json.loads(response.read()), response.headers
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read()), error.headers

    def request(self, method, path, json_body=None, headers=None, data=None):
        """Send one request; return (HTTP status, parsed JSON body)."""
        return self.send(method, path, json_body, headers, data)[:2]

    def __exit__(self, *exc):
        self.stop()


class AppServer(HTTPClient):
    """A WSGI app of this process, served on `port` (0: a free one) by werkzeug's threaded server from a thread.
    No access line in a notebook's or a test's output: `requests` lists them, [("GET /users", 200), ...]."""

    def __init__(self, app, port=0):
        from werkzeug.serving import WSGIRequestHandler, make_server

        class Logged(WSGIRequestHandler):
            def log_request(self, code="-", size="-"):
                self.server.requests.append((f"{self.command} {self.path}", int(code)))

        self.app = app
        self.server = make_server("127.0.0.1", port, app, threaded=True, request_handler=Logged)
        self.port, self.requests = self.server.server_port, []
        self.server.requests = self.requests
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def wait_until_ready(self):
        return self  # listening since __init__

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        release(self.app)


class LiveServer(HTTPClient):
    """`flask run` in a process of its own. Start several, then send requests: each waits for its own server.
    It binds port 0 and says which in its log: no other process can take the port between choosing and binding."""

    ANNOUNCED = re.compile(r"Running on http://127\.0\.0\.1:(\d+)")  # werkzeug's line, once it listens

    def __init__(self, step, db_file, *args, env=None, config=None):
        self.port, self.ready = 0, False
        self.cmd = self.command(step, db_file, *args, config=config)  # benchmarks/users.py overrides it
        # The server appends to its log (O_APPEND), output() reads it through a file of its own: no shared offset.
        fd, self.log_path = tempfile.mkstemp(prefix="live-server-", suffix=".log")
        os.close(fd)
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(self.cmd, cwd=steps_dir(), env=clean_env(env), stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)  # a group: killpg (gunicorn)

    def command(self, step, db_file, *args, config=None):
        app = app_value(step, db_file, config)
        return [sys.executable, "-m", "flask", "--app", app, "run", "--port", str(self.port), "--no-reload", *args]

    def is_ready(self, output):
        found = self.ANNOUNCED.search(output)
        self.port = int(found[1]) if found else self.port
        return bool(found)

    def wait_until_ready(self):
        deadline = time.monotonic() + 30
        while not self.ready:
            self.ready = self.is_ready(self.output())
            if not self.ready and (self.proc.poll() is not None or time.monotonic() > deadline):
                raise RuntimeError(f"{' '.join(self.cmd)} did not start:\n{self.output()}")
            time.sleep(0 if self.ready else 0.02)
        return self

    def output(self):
        """What the server printed so far (its log)."""
        with open(self.log_path, encoding="utf-8", errors="replace") as log:
            return log.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=20)
        Path(self.log_path).unlink(missing_ok=True)


class GunicornServer(LiveServer):
    """The step under gunicorn (step06 on; not on Windows), as in production: the step's gunicorn.conf.py,
    `workers` processes, on a free port. Its log holds one access line per request, with the worker's pid."""

    ANNOUNCED = re.compile(r"Listening at: http://127\.0\.0\.1:(\d+)")  # gunicorn's line, once it listens

    def __init__(self, step, db_file, *args, workers=4, env=None, config=None):
        self.workers = workers
        super().__init__(step, db_file, *args, env=env, config=config)

    def command(self, step, db_file, *args, config=None):
        conf = steps_dir() / step / "gunicorn.conf.py"
        return [sys.executable, "-m", "gunicorn", *(["--config", str(conf)] if conf.is_file() else []),
                "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers), *args,
                app_value(step, db_file, config)]

    def is_ready(self, output):
        """Every worker booted, so that the first requests can go to any of them (the app is built before)."""
        return super().is_ready(output) and output.count("Booting worker") >= self.workers

    def stop(self):
        # Master and workers at once: their own orderly exit takes seconds (each tidies a copy of the app's memory).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        super().stop()


# Notebook helpers: what every notebook's first cell would define, kept here so that cell is short.
def show(step, file, name=None):
    """Display a file of a step as it is on disk, or one class, function or method of it ("Login.post")."""
    from IPython.display import display

    source = (steps_dir() / step / file).read_text(encoding="utf-8")
    first, last = 1, len(source.splitlines())
    if name:
        node = ast.parse(source)
        for part in name.split("."):
            node = next(n for n in node.body if getattr(n, "name", None) == part)
        first = min([node.lineno] + [d.lineno for d in node.decorator_list])
        last = node.end_lineno
    text = textwrap.dedent("\n".join(source.splitlines()[first - 1:last]))
    where = f"# {step}/{file}" + (f", {name}, lines {first}-{last}" if name else "")
    # A highlighted code block where Markdown is rendered (Jupyter), plain text elsewhere.
    display({"text/markdown": f"```python\n{where}\n{text}\n```", "text/plain": f"{where}\n{text}"}, raw=True)


def call(server, method, path, **kwargs):
    """Send one request to a live server; print the HTTP status and the JSON answer; return both."""
    status, body = server.request(method, path, **kwargs)
    print(f"{method} {path}  ->  HTTP {status}")
    print(json.dumps(body, ensure_ascii=False, indent=2))
    return status, body


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


@contextlib.contextmanager
def environment(**variables):
    """In this process, inside the with block: os.environ as the processes started here get it, plus `variables`."""
    with mock.patch.dict(os.environ, clean_env(variables), clear=True):
        yield


def b64url_decode(segment):
    """base64url without padding, as in a JWT: add the "=" padding back, then decode."""
    return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))


def b64url_encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def issued_tokens(body, set_cookie_headers):
    """(access, refresh): the tokens a /login or /refresh answer issued, in its JSON body or (step07 on) cookies."""
    jar = http.cookies.SimpleCookie()
    for header in set_cookie_headers:
        jar.load(header)
    body = body if isinstance(body, dict) else {}
    cookies = [jar[name].value if name in jar else None for name in ("access_token_cookie", "refresh_token_cookie")]
    return body.get("token") or cookies[0] or None, body.get("refresh_token") or cookies[1] or None


def post_for_tokens(server, path, json_body=None, headers=None):
    """POST /login or /refresh: (status, body, (access, refresh)), wherever the step puts the tokens."""
    status, body, answer = server.send("POST", path, json_body, headers)
    return status, body, issued_tokens(body, answer.get_all("Set-Cookie") or []) if status < 400 else (None, None)
