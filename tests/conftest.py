"""Flask's app, client and runner fixtures for the step a test file is named after (CONTRIBUTING.md, "How the suite is
built"): a step used through create_app, its CLI and HTTP; from inside, only its password hashing and its tables."""
import contextlib
import functools
import importlib
import importlib.util
import json
import os
import re
import shutil
import socket
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import jwt
import pytest
import redis
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from flask import got_request_exception
from flask_jwt_extended import create_access_token, create_refresh_token
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tutorial.live import CONFIG_VARIABLES, AppServer, build_app, release
from tutorial.steps import ROOT, STEPS_DIR_VARIABLE, import_step, reference_steps  # noqa: F401 (ROOT: for the step tests)

pytest_plugins = ["needs"]

STEPS = reference_steps()
ADMIN = {"username": "admin@gmail.com", "password": "123456"}  # the article's user, made by init-db
TEST_SECRET = "a-test-only-secret-that-is-32-bytes-or-longer"
# werkzeug's own code path without scrypt's cost (~0.15 s a hash); real_password_hashes: the step's own method
FAST_HASH = "pbkdf2:sha256:1"
# An access line of the steps' gunicorn.conf.py (step06 on): the request, its status, the worker that answered.
ACCESS_LINE = re.compile(r'"(?P<request>[A-Z]+ \S+) HTTP/1\.[01]" (?P<status>\d{3}) .* pid=<(?P<pid>\d+)>')
LEAKS = ("Traceback (most recent call last)", "sqlalchemy", "sqlite3.", "pymysql", "psycopg", 'File "')  # in no answer
SERVER_URLS = os.environ.get("TEST_DATABASE_URLS", "").split()
# Without TEST_DATABASE_URLS, one "servers" case per test stands for the servers: skipped, or failed under CI=true.
PLACEHOLDER = pytest.param("servers", marks=pytest.mark.needs("database servers"))
DATABASES = ["sqlite"] + ([make_url(url).get_backend_name() for url in SERVER_URLS] or [PLACEHOLDER])


def pytest_addoption(parser):
    parser.addoption("--all-steps", action="store_true", help="run every step's copy of every carried-forward check")


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's (-n auto): a worker per core and one more, for the time tests
def pytest_xdist_auto_num_workers(config):  # wait on a server, a kernel or a timeout with their core idle
    return (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1) + 1


def pytest_report_header(config):
    return "databases: " + ", ".join(DATABASES if SERVER_URLS else ["sqlite (set TEST_DATABASE_URLS for more)"])


def pytest_collection_modifyitems(config, items):
    """Which steps a `since` check runs on (CONTRIBUTING.md, "the fan-out"): --all-steps, -k and -m run every copy."""
    # Tests of several seconds first: xdist hands them out in this order, so no worker is left with one at the end.
    items.sort(key=lambda item: item.get_closest_marker("schedule_first") is None)
    if config.getoption("all_steps") or config.getoption("keyword") or config.getoption("markexpr") \
            or os.environ.get(STEPS_DIR_VARIABLE):
        return
    learner = not config.pluginmanager.get_plugin("needs").STRICT
    keep, drop = [], []
    for item in items:
        since, ends = item.get_closest_marker("since"), None  # ends: the only steps it runs on
        step = getattr(item, "callspec", None) and item.callspec.params.get("step")
        if since and (learner or item.get_closest_marker("ends_only")):
            ends = (since.args[0], min(since.kwargs.get("until", STEPS[-1]), STEPS[-1]))
        if learner and item.get_closest_marker("finished_step_for_learners"):
            ends = (STEPS[-1],)
        (drop if ends and step and step not in ends else keep).append(item)
    config.hook.pytest_deselected(items=drop)
    items[:] = keep


def pytest_generate_tests(metafunc):
    since = metafunc.definition.get_closest_marker("since")
    marker = metafunc.definition.get_closest_marker("databases")
    checked = metafunc.config.getoption("tutorial_step", None)  # tutorial check: other steps' cases would be deselected
    steps = [s for s in STEPS if since.args[0] <= s <= since.kwargs.get("until", STEPS[-1])] if since else []
    if not marker:
        if steps:
            metafunc.parametrize("step", [s for s in steps if not checked or s in checked])
        return
    names = DATABASES[1:] if marker.kwargs.get("servers_only") else DATABASES
    if not steps:
        return metafunc.parametrize("database", names, indirect=True)
    pairs = [(s, n) for s in steps for n in names]
    if marker.kwargs.get("later_steps_on_one"):
        # The first step on every database; each later step on one, taken in turn (the first step's first comes last),
        # so that every server still sees later steps without the whole test on each (the placeholder only if alone).
        turn = [n for n in names if n is not PLACEHOLDER] or names
        pairs = [(steps[0], n) for n in names] + [(s, turn[(i + 1) % len(turn)]) for i, s in enumerate(steps[1:])]
    cases = [pytest.param(s, *getattr(n, "values", [n]), marks=getattr(n, "marks", ())) for s, n in pairs]
    cases = [case for case in cases if not checked or case.values[0] in checked]
    metafunc.parametrize(("step", "database"), cases, indirect=["database"])


@pytest.fixture(scope="session", autouse=True)
def clean_environment(tmp_path_factory, pytestconfig):
    """No learner's own settings (FLASK_CONFIG, ...); one signing key (KEYS_DIR, step09 on), as one JWT_SECRET_KEY."""
    checked = pytestconfig.getoption("tutorial_step", None)  # tutorial check: no step after these is built
    with pytest.MonkeyPatch.context() as mp:
        for name in CONFIG_VARIABLES:
            mp.delenv(name, raising=False)
        mp.setenv("KEYS_DIR", str(signing_keys(tmp_path_factory.mktemp("keys"), max(checked) if checked else None)))
        yield


def signing_keys(folder, last=None):  # a folder with a key made by the newest step's (to `last`) rotate-keys (09 on)
    for name in reversed([step for step in STEPS if last is None or step <= last]):
        if flask_command(import_step(name), config_for("sqlite://", KEYS_DIR=str(folder)), "rotate-keys"):
            break
    return folder


def flask_command(package, config, command):  # the step's own `flask COMMAND`; False if the step has none
    app = package.create_app(config)
    if command in app.cli.commands:
        result = app.test_cli_runner().invoke(args=[command])
        assert result.exit_code == 0, result.output
    release(app)
    return command in app.cli.commands


@pytest.fixture
def redis_blocklist():
    """This test's own keys in TEST_REDIS_URL's Redis (needs("redis")): config (prefixes), client, keys()."""
    url = os.environ["TEST_REDIS_URL"]
    client = redis.Redis.from_url(url, socket_timeout=5)
    client.ping()  # a Redis that TEST_REDIS_URL names and that does not answer fails the test here
    tag = uuid.uuid4().hex[:12]
    prefix = f"test-blocklist-{tag}:"
    config = {"REDIS_URL": url, "BLOCKLIST_PREFIX": prefix, "LOGIN_LIMIT_PREFIX": f"test-login-{tag}"}
    yield SimpleNamespace(config=config, client=client, prefix=prefix,
                          keys=lambda: sorted(k.decode() for k in client.scan_iter(match=prefix + "*")))
    for key in client.scan_iter(match=f"*{tag}*"):
        client.delete(key)
    client.close()


@pytest.fixture
def closed_port():  # refuses connections: bound, never listening, held so no other process takes it
    with socket.socket() as reserved:
        reserved.bind(("127.0.0.1", 0))
        yield reserved.getsockname()[1]


@pytest.fixture
def step(request):  # the step a test checks, by name; `since` parametrizes it
    return request.module.__name__.rpartition(".")[2].removeprefix("test_")


@pytest.fixture
def step_package(step, request, monkeypatch):
    """The step's package (from $TUTORIAL_STEPS_DIR under tutorial check), its password hashes cheap (FAST_HASH)."""
    package = import_step(step)
    name = package.__name__ + ".models"
    if not request.node.get_closest_marker("real_password_hashes") and importlib.util.find_spec(name):  # step01: none
        models = importlib.import_module(name)
        real = models.generate_password_hash
        cheap_dummy = real("no user has this password", method=FAST_HASH)
        monkeypatch.setattr(models, "generate_password_hash", lambda password, method=FAST_HASH: real(password, method))
        monkeypatch.setattr(models, "dummy_hash", lambda: cheap_dummy)
    return package


@pytest.fixture
def models(step_package):  # db, User: step02 on
    return importlib.import_module(step_package.__name__ + ".models")


def config_for(database_uri, **overrides):
    return {"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_uri, "JWT_SECRET_KEY": TEST_SECRET, **overrides}


@pytest.fixture(scope="session")
def seeded_db_file(tmp_path_factory):
    """get(package, real_hashes=False): a SQLite file made by the step's init-db, to copy (FAST_HASH or real hashes)."""
    @functools.cache
    def get(package, real_hashes=False):
        db_file = tmp_path_factory.mktemp(package.__name__) / "seed.sqlite"
        flask_command(package, config_for(f"sqlite:///{db_file}"), "init-db")  # step01: none
        return db_file

    return get


def execute(server_url, statement):
    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(statement))
    engine.dispose()


@pytest.fixture(scope="session")
def server_databases():
    """({backend: URL}, {backend: engine}): a database per server, named by chance, dropped at the end."""
    made, engines = {}, {}
    try:
        for url in map(make_url, SERVER_URLS):
            name, backend = f"flask_jwt_test_{uuid.uuid4().hex[:12]}", url.get_backend_name()
            if backend == "mysql":  # utf8mb4: all of Unicode, Chinese included (MySQL's "utf8" is not)
                execute(url, f"CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
                url = url.update_query_dict({"charset": "utf8mb4"})
            else:
                execute(url, f"CREATE DATABASE {name} ENCODING 'UTF8' TEMPLATE template0")
            made[backend] = url.set(database=name).render_as_string(hide_password=False)
            # kept: a new connection's handshake was most of a copy's cost; waiting for no lock forever
            engines[backend] = create_engine(made[backend], pool_size=1, pool_pre_ping=True, connect_args={
                "mysql": {"init_command": "SET SESSION lock_wait_timeout = 10"},
                "postgresql": {"options": "-c lock_timeout=10000"}}[backend])
        yield made, engines
    finally:
        for server_url, (backend, database_url) in zip(SERVER_URLS, made.items()):
            engines[backend].dispose()  # its pooled connection would keep the database in use
            force = " WITH (FORCE)" if backend == "postgresql" else ""
            execute(server_url, f"DROP DATABASE IF EXISTS {make_url(database_url).database}{force}")


@pytest.fixture
def database(request):  # sqlite, unless @pytest.mark.databases parametrizes it
    return getattr(request, "param", "sqlite")


@pytest.fixture
def database_uri(request, database, step_package, seeded_db_file, tmp_path):  # this test's copy of what init-db made
    seed = seeded_db_file(step_package, request.node.get_closest_marker("real_password_hashes") is not None)
    if database == "sqlite":
        if seed.exists():  # step01: no database
            shutil.copyfile(seed, tmp_path / "app.sqlite")
        return f"sqlite:///{tmp_path / 'app.sqlite'}"
    urls, engines = request.getfixturevalue("server_databases")
    copy_database(f"sqlite:///{seed}", engines[database], request.getfixturevalue("models").db.metadata)
    return urls[database]


def copy_database(source_url, target, metadata):
    """The source's rows in fresh tables of the target (ids from 1 again): a third of init-db's cost on a server."""
    source = create_engine(source_url)
    try:
        metadata.drop_all(target)
        metadata.create_all(target)
        with source.connect() as src, target.begin() as dst:
            for table in metadata.sorted_tables:
                generated = [c.name for c in table.primary_key.columns if c.autoincrement]
                rows = src.execute(table.select().order_by(*table.primary_key.columns)).mappings().all()
                for row in rows:  # without the generated id, so that each server's counter stays right
                    dst.execute(table.insert().values({k: v for k, v in row.items() if k not in generated}))
    finally:
        source.dispose()


@pytest.fixture
def make_app(step_package, database_uri):  # make_app(**config): the step's app on this test's database
    with contextlib.ExitStack() as made:
        def make(**overrides):
            app = step_package.create_app(config_for(database_uri, **overrides))
            made.callback(release, app)
            return app

        yield make


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def auth(app):  # headers that let a request through /users: a Bearer token from step03 on
    if "flask-jwt-extended" not in app.extensions:
        return {}
    with app.app_context():
        return {"Authorization": "Bearer " + create_access_token(identity=ADMIN["username"])}


@pytest.fixture
def serve(step, database_uri):
    """serve(config=None, env=None): the step's app as `flask run` builds it, on this test's database, from a thread."""
    with contextlib.ExitStack() as servers:
        def start(config=None, env=None):
            return servers.enter_context(AppServer(build_app(step, database_uri, config=config, env=env)))

        yield start


@pytest.fixture
def get_with_error():
    """(app, path, headers) -> (status, JSON body, the exception the app reported): a 500 must come from the token."""
    def get(app, path, headers):
        raised = []
        with got_request_exception.connected_to(lambda sender, exception, **extra: raised.append(exception), app):
            response = app.test_client().get(path, headers=headers)
        return response.status_code, response.get_json(), (raised[0] if raised else None)

    return get


# Tokens: as the app signs them, and as an attacker forges them --------------------------------------------------
def signing_key(app):  # (key, algorithm, headers) the app signs with: its secret and HS256, or its kid's key (09 on)
    with app.app_context():
        kid = jwt.get_unverified_header(create_access_token(identity=ADMIN["username"])).get("kid")
    if kid is None:
        return app.config["JWT_SECRET_KEY"], "HS256", {}
    key = load_pem_private_key((Path(app.config["KEYS_DIR"]) / f"{kid}.pem").read_bytes(), None)  # as rotate-keys wrote
    return key, app.config["JWT_ALGORITHM"], {"kid": kid}


def another_key(app):  # a key of the app's own kind that the app does not have
    return Ed25519PrivateKey.generate() if app.config["JWT_ALGORITHM"] == "EdDSA" else "another-key-" * 4


def sign_as(app, claims, key=None, algorithm=None):
    """A token with these claims, signed as the app signs them (or with this key, or this algorithm)."""
    own_key, own_algorithm, headers = signing_key(app)
    return jwt.encode(claims, own_key if key is None else key, algorithm=algorithm or own_algorithm, headers=headers)


def forged_tokens(app):  # every kind of token an attacker can send; the first is valid
    key, algorithm, _ = signing_key(app)  # JWT_SECRET_KEY and HS256; from step09 on, a private key and EdDSA
    with app.app_context():
        valid = create_access_token(identity=ADMIN["username"])
        claims = jwt.decode(valid, options={"verify_signature": False})
        tokens = [valid, create_refresh_token(identity=ADMIN["username"]),
                  create_access_token(identity=ADMIN["username"], expires_delta=timedelta(seconds=-1)),
                  create_access_token(identity="inactive@gmail.com"), create_access_token(identity="nobody@gmail.com")]
    now = int(datetime.now(timezone.utc).timestamp())
    return tokens + [
        sign_as(app, claims, another_key(app)),
        sign_as(app, claims, "", "none"),
        sign_as(app, claims, key if isinstance(key, str) else "k" * 48, "HS384"),
        sign_as(app, claims, "k" * 64, "HS512"),
        sign_as(app, {**claims, "nbf": now + 3600}),
        sign_as(app, {k: v for k, v in claims.items() if k != "sub"}),
        sign_as(app, {**claims, "sub": 1}), sign_as(app, {**claims, "sub": ["admin@gmail.com"]}),
        sign_as(app, {**claims, "sub": None}), sign_as(app, {**claims, "exp": "tomorrow"}),
        valid[:-5],  # truncated
        ".".join(valid.split(".")[:2]),  # two segments
        "!!!." + valid.split(".", 1)[1],  # header not base64
        "eyJub3QiOiAianNvbiJ9Cg." + valid.split(".", 1)[1],  # header base64 but not a JWT header
        "bm90IGpzb24." + valid.split(".", 1)[1],  # header not JSON
        "undefined", "null", "", "a.b.c", "...",
    ]


# Generated bad input (tests/test_bad_input.py, test_step06_revoke.py) ---------------------------------------------
def run(examples):
    """Hypothesis' settings for a generated test of `examples` requests; a learner's run sends a quarter of them."""
    from needs import STRICT  # the plugin's, set by now
    return settings(max_examples=examples if STRICT else examples // 4, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@functools.cache
def bad_input():
    """What a client can put in a request, as hypothesis strategies."""
    nasty = st.sampled_from([
        "", " ", "\x00", "a\x00b", "\ud800", "x\udfffy", "😀", "\u202e", "\n", "\r\n", "\\", "%s", "{}", "'", '"',
        "' OR '1'='1", "admin@gmail.com' --", "'; DROP TABLE user; --", "admin@gmail.com\x00", " admin@gmail.com",
        "ADMIN@GMAIL.COM", "用户名", "x" * 5000, "\ufeffadmin@gmail.com", "admin@gmail.com\n",
    ])
    text = st.text(st.characters() | st.characters(categories=["Cs"]), max_size=60)  # lone surrogates too
    scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | text | nasty
    json_values = st.recursive(
        scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4), max_leaves=12)
    login_objects = st.builds(lambda fields, extra: {**extra, **fields}, st.fixed_dictionaries({}, optional={
        "username": st.sampled_from([ADMIN["username"], "inactive@gmail.com", "nobody@gmail.com"]) | nasty | text
        | json_values,
        "password": st.sampled_from([ADMIN["password"], "654321"]) | nasty | text | json_values,
    }), st.dictionaries(text, json_values, max_size=3))

    def encode_json(value, ascii_only):
        return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")

    header_text = st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=80)  # what HTTP can carry

    def authorization_values(tokens):
        token = st.sampled_from(tokens) | header_text
        return st.one_of(
            st.builds(lambda t: f"Bearer {t}", token),
            st.sampled_from(["Bearer", "Bearer ", "bearer", "JWT", "Basic YWRtaW46MTIzNDU2", "Token abc", "", " "]),
            st.builds(lambda t, pre, sep: f"{pre}{sep}{t}", token,
                      st.sampled_from(["Bearer", "bearer", "BEARER", "JWT"]), st.sampled_from([" ", "  ", "\t", ""])),
            st.builds(lambda t: f"Bearer {t} {t}", token),
            st.builds(lambda n: "Bearer " + "a" * n, st.integers(1000, 12000)),  # very long
        )

    return SimpleNamespace(TEXT=text, NASTY=nasty, LOGIN_OBJECTS=login_objects, encode_json=encode_json,
                           authorization_values=authorization_values, BODIES=st.one_of(
        st.builds(encode_json, json_values | login_objects, st.booleans()),
        st.binary(max_size=200),  # not JSON, not even UTF-8
        st.builds(lambda n: b"[" * n + b"]" * n, st.integers(1, 8000)),  # very deep nesting
        st.builds(lambda n: b'{"a":' * n + b"1" + b"}" * n, st.integers(1, 3000)),
        st.just(b'{"username": "admin@gmail.com", "password": "' + b"x" * 20000 + b'"}'),  # over the 16 KiB limit
        st.sampled_from([b"", b"null", b"{", b'{"username": }', b"\xff\xfe{}", b'\xef\xbb\xbf{"username": "a"}']),
    ), CONTENT_TYPES=st.sampled_from([
        "application/json", "application/json; charset=utf-8", "application/json; charset=latin-1", "APPLICATION/JSON",
        "application/vnd.api+json", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "", None,
    ]))
