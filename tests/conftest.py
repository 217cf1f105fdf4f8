"""Fixtures shared by every step's tests.

The package under test is chosen in one place, the `step` fixture: a test checks the step its file is
named after (tests/test_step02_db.py checks step02_db), or, when marked `@pytest.mark.since("step02_db")`,
that step and every later one, because what a step teaches must keep working after it.

The database is chosen by the `database` fixture: SQLite, or, for tests marked `@pytest.mark.databases`,
every database the environment configures (see db_servers.py).

What a test needs beyond Python and uv (Redis, Node.js, Chromium, ...) is declared with
`@pytest.mark.needs(...)` (tests/needs.py): skipped with a reason on a learner's machine, failed under CI=true.
"""
import importlib
import importlib.util
import os
import shutil
import uuid
from pathlib import Path
from types import SimpleNamespace

import jwt
import pytest

import db_servers
from tutorial.live import CONFIG_VARIABLES, LiveServer
from tutorial.pytest_summary import summary_lines
from tutorial.steps import STEPS_DIR_VARIABLE, import_step, reference_steps

pytest_plugins = ["needs"]  # @pytest.mark.needs(...): tests/needs.py

ROOT = Path(__file__).resolve().parents[1]
STEPS = reference_steps()

ADMIN = {"username": "admin@gmail.com", "password": "123456"}  # the article's user, made by init-db
TEST_SECRET = "a-test-only-secret-that-is-32-bytes-or-longer"


@pytest.fixture(scope="session", autouse=True)
def clean_environment(tmp_path_factory):
    """The learner's own settings (FLASK_CONFIG, JWT_SECRET_KEY, ...) must not change what tests see."""
    with pytest.MonkeyPatch.context() as mp:
        for name in CONFIG_VARIABLES:
            mp.delenv(name, raising=False)
        # Steps that sign with a key pair (step09 on) read their private keys from KEYS_DIR, in every mode: one
        # key for this session's apps and servers, as JWT_SECRET_KEY is one secret (earlier steps ignore it).
        mp.setenv("KEYS_DIR", str(signing_keys(tmp_path_factory.mktemp("keys"))))
        yield


def signing_keys(folder):
    """A folder with one signing key, made by the newest step that has keys.py (none: left empty)."""
    for name in reversed(STEPS):
        if (Path(import_step(name).__file__).parent / "keys.py").is_file():
            importlib.import_module(f"{name}.keys").new_key(folder)
            break
    return folder


@pytest.fixture
def redis_blocklist():
    """This test's own part of the Redis at TEST_REDIS_URL (declare @pytest.mark.needs("redis")): settings for the
    app (REDIS_URL, a fresh BLOCKLIST_PREFIX and, for step08 on, LOGIN_LIMIT_PREFIX), the client, and keys() (this
    test's blocklist keys). Every key with this test's tag is deleted at the end; no other key is touched."""
    import redis

    url = os.environ["TEST_REDIS_URL"]
    client = redis.Redis.from_url(url, socket_timeout=5)
    client.ping()  # a Redis that TEST_REDIS_URL names and that does not answer fails the test here
    tag = uuid.uuid4().hex[:12]
    prefix = f"test-blocklist-{tag}:"
    keys = lambda: sorted(k.decode() for k in client.scan_iter(match=prefix + "*"))  # noqa: E731
    config = {"REDIS_URL": url, "BLOCKLIST_PREFIX": prefix, "LOGIN_LIMIT_PREFIX": f"test-login-{tag}"}
    yield SimpleNamespace(config=config, client=client, prefix=prefix, keys=keys)
    for key in client.scan_iter(match=f"*{tag}*"):
        client.delete(key)
    client.close()


# Without TEST_DATABASE_URLS, one "servers" case per test stands for the servers: skipped, or failed under CI=true.
DATABASES = ["sqlite"] + ([db_servers.backend(url) for url in db_servers.SERVER_URLS]
                          or [pytest.param("servers", marks=pytest.mark.needs("database servers"))])


def pytest_addoption(parser):
    parser.addoption("--all-steps", action="store_true",
                     help="run every step's copy of a carried-forward check, not only the introducing step's and the "
                          "finished app's (also CI=true, --require-all, -k, -m)")


def carried_forward_on_ends_only(config):
    """A learner's plain `uv run pytest`: a check that every later step carries forward (since) runs on the step
    that introduces it and on the finished app; the steps in between are CI's (their code is copied forward).
    A check of the repository itself (finished_step_for_learners), whose verdict no machine changes, runs on the
    finished step only."""
    strict = config.pluginmanager.get_plugin("needs").strict  # tests/needs.py, loaded as a plugin (pytest_plugins)
    return not (config.getoption("all_steps") or strict(config) or config.getoption("keyword")
                or config.getoption("markexpr") or os.environ.get(STEPS_DIR_VARIABLE))


def pytest_collection_modifyitems(config, items):
    # Tests of several seconds first: xdist hands out the tests in this order (after its groups), so that no worker is
    # left running a long one at the end while the other has nothing to do. sort() keeps the order among the rest.
    items.sort(key=lambda item: item.get_closest_marker("schedule_first") is None)
    if not carried_forward_on_ends_only(config):
        return
    keep, drop = [], []
    for item in items:
        since = item.get_closest_marker("since")
        step = getattr(item, "callspec", None) and item.callspec.params.get("step")
        ends = since and (since.args[0], min(since.kwargs.get("until", STEPS[-1]), STEPS[-1]))
        if item.get_closest_marker("finished_step_for_learners"):
            since, ends = True, (STEPS[-1],)
        (drop if since and step and step not in ends else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
    config.stash[LEFT_OUT] = len(drop)
    if hasattr(config, "workeroutput"):  # an xdist worker: its controller prints the summary
        config.workeroutput["carried_forward_left_out"] = len(drop)


LEFT_OUT = pytest.StashKey[int]()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):  # xdist's controller: every worker collected, and left out, the same
    node.config.stash[LEFT_OUT] = node.workeroutput.get("carried_forward_left_out", 0)


def pytest_configure(config):
    summary_lines(config)  # the summary plugin, also in xdist's controller, where the lines are printed
    config.addinivalue_line("markers", "since(first, until=None): check this step and the later ones")
    config.addinivalue_line("markers", "databases(servers_only=False, later_steps_on_one=False): run on every configured database")
    config.addinivalue_line("markers", "finished_step_for_learners: a check of the repository itself, per step: a "
                            "learner's run keeps the finished step's case, CI runs every one (carried_forward_on_ends_only)")
    config.addinivalue_line("markers", "real_password_hashes: the step's own password hash method (not FAST_HASH)")
    config.addinivalue_line("markers", "schedule_first: a test of several seconds, handed out before the quick ones")
    config.addinivalue_line("markers", "already_holds: a test the step introduces for a behaviour its start copy already has")


def pytest_report_header(config):
    servers = [f"{db_servers.backend(u)} ({db_servers.server_version(u)})" for u in db_servers.SERVER_URLS]
    return "databases: " + ", ".join(["sqlite"] + servers) + ("" if servers else " (set TEST_DATABASE_URLS for more)")


BAD_INPUT_CASES = {}  # step -> [requests sent by tests/test_bad_input.py], printed in the summary
_BAD_INPUT_SENT = {}  # step -> how many of them were already reported
BAD_INPUT_PROPERTY = "bad-input-requests"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Each test's new bad-input requests travel in its report, to be counted where reports arrive (under
    pytest-xdist, in the controller, not in the worker that ran the test)."""
    report = yield
    if call.when == "teardown":
        for step, (count,) in BAD_INPUT_CASES.items():
            if count > _BAD_INPUT_SENT.get(step, 0):
                report.user_properties.append((BAD_INPUT_PROPERTY, (step, count - _BAD_INPUT_SENT.get(step, 0))))
                _BAD_INPUT_SENT[step] = count
    return report


_BAD_INPUT_TOTALS = {}


def pytest_runtest_logreport(report):
    for key, value in report.user_properties:
        if key == BAD_INPUT_PROPERTY and report.when == "teardown":
            step, count = value
            _BAD_INPUT_TOTALS[step] = _BAD_INPUT_TOTALS.get(step, 0) + count


def pytest_terminal_summary(terminalreporter):
    if carried_forward_on_ends_only(terminalreporter.config):
        left = terminalreporter.config.stash.get(LEFT_OUT, 0)
        terminalreporter.write_line(
            f"left to CI: {left} cases — carried-forward checks on the steps in between (each ran on the step that "
            f"introduces it and on the finished app, {STEPS[-1]}) and the start-copy checks of the earlier steps; "
            "to run them: uv run pytest --all-steps (CI does)")
    for step, count in sorted(_BAD_INPUT_TOTALS.items()):
        terminalreporter.write_line(f"bad input: {step} was sent {count} generated requests")


def pytest_generate_tests(metafunc):
    since = metafunc.definition.get_closest_marker("since")
    steps = []
    if since:
        first, until = since.args[0], since.kwargs.get("until", STEPS[-1])
        steps = [s for s in STEPS if first <= s <= until]
    checked = metafunc.config.getoption("tutorial_step", None)  # tutorial check: the cases of other steps would be deselected
    marker = metafunc.definition.get_closest_marker("databases")
    names = (DATABASES[1:] if marker.kwargs.get("servers_only") else DATABASES) if marker else None
    if marker and steps and marker.kwargs.get("later_steps_on_one"):
        # The first step runs on every database; each later step on one, taken in turn from those configured,
        # so that every server still sees later steps without repeating the whole test on each of them.
        # (servers_only: taken in turn from the servers; without any, the one "servers" case stands for them.)
        servers = [db_servers.backend(url) for url in db_servers.SERVER_URLS]
        real = servers if marker.kwargs.get("servers_only") else ["sqlite", *servers]
        turn = [names[0]] if not real else real[1:] + real[:1]  # the first step's first database comes last
        cases = [pytest.param(steps[0], *n.values, marks=n.marks) if hasattr(n, "marks") else (steps[0], n) for n in names]
        cases += [pytest.param(s, *n.values, marks=n.marks) if hasattr(n, "marks") else (s, n)
                  for s, n in ((s, turn[i % len(turn)]) for i, s in enumerate(steps[1:]))]
        if checked:
            cases = [case for case in cases if getattr(case, "values", case)[0] in checked]
        metafunc.parametrize(("step", "database"), cases, indirect=["database"])
        return
    if steps:
        metafunc.parametrize("step", [s for s in steps if s in checked] if checked else steps)
    if marker:
        metafunc.parametrize("database", names, indirect=True)


def collected_cases(request, test):
    """The collected cases of the test function named `test` that this run runs (after -k and a learner's run leaves
    some out): for a session fixture that does their slow part for all of them at once."""
    return [item for item in request.session.items if getattr(item, "originalname", "") == test]


@pytest.fixture
def step(request):
    """The step package a test checks, by name; `since` parametrizes it over several steps."""
    return request.module.__name__.rpartition(".")[2].removeprefix("test_")


# The tests' password hashes: werkzeug's own code path, without the cost (scrypt, ~0.15 s a hash) that makes a
# guesser slow and would make these tests spend half their time hashing. Tests of the hash itself are marked
# @pytest.mark.real_password_hashes and get the step's own method, also for the article's user init-db makes.
FAST_HASH = "pbkdf2:sha256:1"


def real_hashes(request):
    return request.node.get_closest_marker("real_password_hashes") is not None


@pytest.fixture
def step_package(step, request, monkeypatch):
    """The step's package, imported from the repository root, or from $TUTORIAL_STEPS_DIR (tutorial check); its
    password hashes cheap (FAST_HASH) unless the test is marked real_password_hashes."""
    package = import_step(step)
    if not real_hashes(request) and importlib.util.find_spec(package.__name__ + ".models"):  # step01: no users
        models = importlib.import_module(package.__name__ + ".models")
        real = models.generate_password_hash
        cheap_dummy = real("no user has this password", method=FAST_HASH)
        monkeypatch.setattr(models, "generate_password_hash", lambda password, method=FAST_HASH: real(password, method))
        monkeypatch.setattr(models, "dummy_hash", lambda: cheap_dummy)
    return package


@pytest.fixture
def models(step_package):
    """The step's models module (db, User), from step02 on."""
    return importlib.import_module(step_package.__name__ + ".models")


def signing_key(app):
    """(key, algorithm, headers) with which the app signs its tokens: JWT_SECRET_KEY and HS256; from step09 on, its
    current private key, EdDSA, and that key's kid in the header. Tests forge tokens with it, or with another_key."""
    if "keys" in app.extensions:
        key = app.extensions["keys"].signing_key()
        return key.private, app.config["JWT_ALGORITHM"], {"kid": key.kid}
    return app.config["JWT_SECRET_KEY"], "HS256", {}


def another_key(app):
    """A key of the app's own kind that the app does not have."""
    if "keys" in app.extensions:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        return Ed25519PrivateKey.generate()
    return "another-key-" * 4


OWN_KEY = object()


def sign_as(app, claims, key=OWN_KEY, algorithm=None):
    """A token with these claims, signed as the app signs them (or with this key, or this algorithm)."""
    own_key, own_algorithm, headers = signing_key(app)
    return jwt.encode(claims, own_key if key is OWN_KEY else key, algorithm=algorithm or own_algorithm, headers=headers)


def resign(token, claims, secret):
    """`token` with these claims instead, signed again as the server that made it signs: HS256 with `secret`, or,
    from step09 on (a kid in its header), EdDSA with that key's file in KEYS_DIR (the session's, which servers share)."""
    kid = jwt.get_unverified_header(token).get("kid")
    if kid is None:
        return jwt.encode(claims, secret, algorithm="HS256")
    from cryptography.hazmat.primitives import serialization

    private = serialization.load_pem_private_key((Path(os.environ["KEYS_DIR"]) / f"{kid}.pem").read_bytes(), None)
    return jwt.encode(claims, private, algorithm="EdDSA", headers={"kid": kid})


def config_for(database_uri, **overrides):
    return {"TESTING": True, "SQLALCHEMY_DATABASE_URI": database_uri, "JWT_SECRET_KEY": TEST_SECRET, **overrides}


@pytest.fixture(scope="session")
def seeded_db_file(tmp_path_factory):
    """Per step, one database made by the step's own `init-db`. Tests work on copies of it, because
    hashing the article's password is slow on purpose and should happen once, not in every test."""
    made = {}

    def get(package, real_hashes=False):  # the hash init-db stores: FAST_HASH, as step_package makes it, or the real one
        key = (package.__name__, real_hashes)
        if key not in made:
            db_file = tmp_path_factory.mktemp(package.__name__) / "seed.sqlite"
            app = package.create_app(config_for(f"sqlite:///{db_file}"))
            if "init-db" in app.cli.commands:  # step01 has no database
                result = app.test_cli_runner().invoke(args=["init-db"])
                assert result.exit_code == 0, result.output
            made[key] = db_file
        return made[key]

    return get


@pytest.fixture(scope="session")
def server_databases():
    """One throwaway database per configured server for this session, dropped at the end."""
    made = {}
    try:
        for url in db_servers.SERVER_URLS:
            made[db_servers.backend(url)] = (url, db_servers.create_database(url))
        yield {name: database_url for name, (_, database_url) in made.items()}
    finally:
        for server_url, database_url in made.values():
            db_servers.drop_database(server_url, database_url)


@pytest.fixture
def database(request):
    """The database a test runs on: sqlite, unless @pytest.mark.databases parametrizes it."""
    return getattr(request, "param", "sqlite")


@pytest.fixture
def database_uri(request, database, step_package, seeded_db_file, tmp_path):
    """This test's own database, holding what the step's init-db made (the article's user)."""
    seed = seeded_db_file(step_package, real_hashes(request))
    if database == "sqlite":
        copy = tmp_path / "app.sqlite"
        if seed.exists():
            shutil.copyfile(seed, copy)
        return f"sqlite:///{copy}"
    url = request.getfixturevalue("server_databases")[database]
    models = importlib.import_module(step_package.__name__ + ".models")
    db_servers.copy_database(f"sqlite:///{seed}", url, models.db.metadata)
    return url


@pytest.fixture
def make_app(step_package, database_uri):
    """Build the step's app on this test's database; keyword arguments override its config."""
    apps = []

    def make(**overrides):
        apps.append(step_package.create_app(config_for(database_uri, **overrides)))
        return apps[-1]

    yield make
    for app in apps:  # close pooled connections now: a server allows only so many
        if "sqlalchemy" in app.extensions:
            with app.app_context():
                app.extensions["sqlalchemy"].engine.dispose()


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
def auth(app):
    """Headers that let a request through /users: a Bearer token once the step uses JWT (step03 on)."""
    if "flask-jwt-extended" not in app.extensions:
        return {}
    from flask_jwt_extended import create_access_token

    with app.app_context():
        return {"Authorization": "Bearer " + create_access_token(identity=ADMIN["username"])}


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """Headless Chromium (tests/test_browser.py, tests/test_browser_cookies.py), started once for the session: each
    test starts clean (test_browser.fresh_browser). Skipped where Chromium or chromedriver is missing (tests/needs.py)."""
    import needs  # here, not at the top: imported before pytest_plugins loads it, its asserts would not be rewritten
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium, chromedriver = needs.found("chromium")
    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for argument in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                     "--disable-background-networking", "--disable-component-update", "--disable-sync",
                     # One renderer process for the tests' sites, not one per site and page load (~0.1 s of CPU
                     # each): cookies, SameSite and CORS are the browser's network service's, the same either way.
                     "--disable-site-isolation-trials",
                     "--window-size=1000,1040", f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, where CORS errors are told
    driver = webdriver.Chrome(options=options, service=Service(str(chromedriver)))
    yield driver
    driver.quit()


@pytest.fixture
def live_server(step, database_uri):
    """A factory: live_server("--debug") starts the step on a free port, on this test's database."""
    servers = []

    def start(*flask_args, env=None):
        servers.append(LiveServer(step, database_uri, *flask_args, env=env))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()
