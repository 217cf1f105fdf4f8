"""step06_revoke: refresh tokens, logout through a blocklist in Redis, several workers and several hosts.

The Redis tests run when TEST_REDIS_URL names a Redis server (.ci/run sets it; e.g. redis://127.0.0.1:6379/0),
and are skipped otherwise (failed under CI=true: tests/needs.py), so that `uv run pytest` needs nothing but
Python. A Redis that is named and does not answer makes them fail. Each test uses keys of its own (a random BLOCKLIST_PREFIX) and deletes only those:
nothing else in that Redis database is touched. The gunicorn tests do not run on Windows, where gunicorn does not.
"""
import concurrent.futures
import os
import re
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest
from flask_jwt_extended import create_access_token, decode_token
from hypothesis import given
from hypothesis import strategies as st

from conftest import (ACCESS_LINE, ADMIN, DATABASES, LEAKS, ROOT, TEST_SECRET, another_key, bad_input, forged_tokens, run,
                      sign_as, signing_keys)
from tcp_proxy import TcpProxy
from tutorial.live import REVOKE_VARIABLES, AppServer, GunicornServer, build_app, issued_tokens, post_for_tokens, release, run_flask

REDIS_URL = os.environ.get("TEST_REDIS_URL")
needs_redis = pytest.mark.needs("redis")
needs_gunicorn = pytest.mark.needs("gunicorn")


@pytest.fixture(params=["memory", pytest.param("redis", marks=needs_redis)])
def blocklist(request):
    """Both kinds of blocklist, for what is true of each within one process."""
    if request.param == "memory":
        return SimpleNamespace(config={"BLOCKLIST": "memory"}, keys=None)
    return request.getfixturevalue("redis_blocklist")


def login(client):
    response = client.post("/login", json=ADMIN)
    assert response.status_code == 200, response.get_json()
    return tuple({"Authorization": f"Bearer {token}"} for token in tokens_of(response))


def tokens_of(response):
    """(access, refresh) from a /login or /refresh answer: its body (step06), or its cookies (step07 on)."""
    return issued_tokens(response.get_json(), response.headers.getlist("Set-Cookie"))


def answer(response):
    return response.status_code, response.get_json()


REVOKED = (401, {"code": 211, "message": "token revoked"})


# Two tokens: a short-lived access token, a long-lived refresh token ----------------------------------


@pytest.mark.since("step06_revoke", until="step06_revoke")  # step07: the tokens are cookies (test_step07_cookies.py)
@pytest.mark.databases
def test_login_returns_an_access_token_and_a_refresh_token(app, client):
    body = client.post("/login", json=ADMIN).get_json()
    assert set(body) == {"code", "message", "token", "userid", "refresh_token"}
    with app.app_context():
        access, refresh = decode_token(body["token"]), decode_token(body["refresh_token"])
    assert (access["type"], refresh["type"]) == ("access", "refresh")
    assert access["sub"] == refresh["sub"] == ADMIN["username"]
    assert access["exp"] - access["iat"] == 15 * 60  # minutes
    assert refresh["exp"] - refresh["iat"] == 30 * 24 * 60 * 60  # days


@pytest.mark.since("step06_revoke", until="step06_revoke")  # step07: a new access cookie (test_step07_cookies.py)
def test_refresh_returns_a_new_access_token(app, client):
    access, refresh = login(client)
    status, body = answer(client.post("/refresh", headers=refresh))
    assert (status, body["code"], body["message"], set(body)) == (200, 200, "success", {"code", "message", "token"})
    with app.app_context():
        assert decode_token(body["token"])["type"] == "access"
    assert client.get("/users", headers={"Authorization": f"Bearer {body['token']}"}).status_code == 200


@pytest.mark.since("step06_revoke")
def test_each_token_is_accepted_only_where_it_belongs(client):
    access, refresh = login(client)
    assert answer(client.post("/refresh", headers=access)) == (401, {"code": 210, "message": "refresh token required"})
    assert answer(client.get("/users", headers=refresh)) == (401, {"code": 207, "message": "access token required"})


@pytest.mark.since("step06_revoke")
def test_refresh_is_refused_once_the_user_is_gone(client, app, models):
    access, refresh = login(client)
    with app.app_context():
        models.db.session.execute(models.db.update(models.User).values(active=False))
        models.db.session.commit()
    assert answer(client.post("/refresh", headers=refresh)) == (401, {"code": 209, "message": "user inactive or deleted"})


@pytest.mark.since("step06_revoke")
def test_refresh_token_lifetime_comes_from_the_environment(step_package, monkeypatch, tmp_path):
    monkeypatch.setenv("SQLALCHEMY_DATABASE_URI", f"sqlite:///{tmp_path / 'env.sqlite'}")
    monkeypatch.setenv("JWT_REFRESH_TOKEN_EXPIRES", "3600")
    app = step_package.create_app()
    assert app.config["JWT_REFRESH_TOKEN_EXPIRES"] == timedelta(seconds=3600)


# Logout: the token's jti goes on the blocklist -------------------------------------------------------


@pytest.mark.since("step06_revoke")
def test_logout_revokes_the_access_token_it_is_called_with(make_app, blocklist):
    client = make_app(**blocklist.config).test_client()
    access, refresh = login(client)
    assert answer(client.post("/logout", headers=access)) == (200, {"code": 200, "message": "access token revoked"})
    assert answer(client.get("/users", headers=access)) == REVOKED
    assert answer(client.post("/logout", headers=access)) == REVOKED  # once is enough
    # The refresh token was not revoked: it still makes new access tokens, which work.
    new, _ = tokens_of(client.post("/refresh", headers=refresh))
    assert client.get("/users", headers={"Authorization": f"Bearer {new}"}).status_code == 200


@pytest.mark.since("step06_revoke")
def test_logging_out_fully_revokes_both_tokens(make_app, blocklist):
    client = make_app(**blocklist.config).test_client()
    access, refresh = login(client)
    assert answer(client.post("/logout", headers=access))[0] == 200
    assert answer(client.post("/logout", headers=refresh)) == (200, {"code": 200, "message": "refresh token revoked"})
    assert answer(client.post("/refresh", headers=refresh)) == REVOKED
    assert answer(client.get("/users", headers=access)) == REVOKED
    # A new login is a new pair of tokens: logging out ended the tokens, not the account.
    access, refresh = login(client)
    assert client.get("/users", headers=access).status_code == 200


@pytest.mark.since("step06_revoke")
def test_logout_needs_a_valid_token(app, client):
    assert answer(client.post("/logout")) == (401, {"code": 203, "message": "missing token"})
    assert answer(client.post("/logout", headers={"Authorization": "Bearer abc"})) == (401, {"code": 204, "message": "invalid token"})
    forged = sign_as(app, {"sub": ADMIN["username"], "jti": "x", "type": "access"}, another_key(app))
    assert answer(client.post("/logout", headers={"Authorization": f"Bearer {forged}"}))[1]["code"] == 205


@pytest.mark.since("step06_revoke")
def test_an_expired_token_cannot_be_logged_out_and_needs_not_be(app, client):
    with app.app_context():
        expired = create_access_token(identity=ADMIN["username"], expires_delta=timedelta(seconds=-1))
    assert answer(client.post("/logout", headers={"Authorization": f"Bearer {expired}"})) == (
        401, {"code": 201, "message": "token expired"})


@needs_redis
@pytest.mark.since("step06_revoke")
@pytest.mark.parametrize("leeway", [0, 30])
def test_a_redis_entry_lives_as_long_as_its_token(make_app, redis_blocklist, leeway):
    """So the list never grows without bound: Redis deletes each entry when its token would have expired
    anyway (plus JWT_DECODE_LEEWAY, the time another host still accepts it)."""
    app = make_app(**redis_blocklist.config, JWT_DECODE_LEEWAY=leeway)
    client = app.test_client()
    access, refresh = login(client)
    client.post("/logout", headers=access)
    client.post("/logout", headers=refresh)
    with app.app_context():
        jtis = {decode_token(h["Authorization"][7:])["type"]: decode_token(h["Authorization"][7:])["jti"]
                for h in (access, refresh)}
    assert redis_blocklist.keys() == sorted(redis_blocklist.prefix + jti for jti in jtis.values())
    ttl = {kind: redis_blocklist.client.ttl(redis_blocklist.prefix + jti) for kind, jti in jtis.items()}
    assert 15 * 60 + leeway - 5 <= ttl["access"] <= 15 * 60 + leeway
    assert 30 * 24 * 3600 + leeway - 5 <= ttl["refresh"] <= 30 * 24 * 3600 + leeway


@pytest.mark.since("step06_revoke")
def test_the_memory_blocklist_forgets_expired_entries(step_package, monkeypatch):
    clock = [1000.0]
    monkeypatch.setattr(step_package.blocklist.time, "time", lambda: clock[0])
    memory = step_package.blocklist.MemoryBlocklist()
    memory.revoke("a", 10)
    assert memory.is_revoked("a") and not memory.is_revoked("b")
    clock[0] += 11
    assert not memory.is_revoked("a")  # its token has expired: nothing left to refuse
    memory.revoke("b", 10)
    assert list(memory.until) == ["b"]  # "a" is gone: the dict does not grow without bound


# Redis unreachable: 503, never a revoked token let through ---------------------------------------------


@pytest.mark.since("step06_revoke", until="step07_cookies")  # step08 refuses the login too (its limiter fails closed)
def test_redis_unreachable_answers_503_on_protected_endpoints(make_app, closed_port, caplog):
    app = make_app(REDIS_URL=f"redis://127.0.0.1:{closed_port}/0", TESTING=False)
    client = app.test_client()
    access, refresh = login(client)  # logging in does not need the blocklist
    unavailable = (503, {"code": 503, "message": "token blocklist unavailable"})
    started = time.monotonic()
    assert answer(client.get("/users", headers=access)) == unavailable  # fail closed
    assert answer(client.post("/refresh", headers=refresh)) == unavailable
    assert answer(client.post("/logout", headers=access)) == unavailable  # the client knows it is not logged out
    assert time.monotonic() - started < 5  # no long retries
    assert client.get("/hello").status_code == 200
    assert "token blocklist unavailable: " in caplog.text  # the reason is in the server's log, not in the answer


@needs_redis
@pytest.mark.since("step06_revoke")
def test_redis_cut_then_back_without_a_restart(make_app, redis_blocklist):
    """A real connection, really cut: 503 while Redis is away, and the same app works again when it is back,
    with what was revoked before still revoked."""
    parts = urlsplit(REDIS_URL)
    proxy = TcpProxy(parts.hostname, parts.port or 6379)
    try:
        credentials = parts.netloc.rpartition("@")[0]
        url = parts._replace(netloc=(credentials + "@" if credentials else "") + f"127.0.0.1:{proxy.port}").geturl()
        client = make_app(**{**redis_blocklist.config, "REDIS_URL": url}, TESTING=False).test_client()
        (gone, _), (access, _) = login(client), login(client)
        assert client.post("/logout", headers=gone).status_code == 200
        assert client.get("/users", headers=access).status_code == 200  # a pooled connection is open now

        proxy.cut()
        assert answer(client.get("/users", headers=access))[0] == 503
        assert answer(client.get("/users", headers=gone))[0] == 503  # not let through while the list is away

        proxy.restore()
        assert client.get("/users", headers=access).status_code == 200
        assert answer(client.get("/users", headers=gone)) == REVOKED
    finally:
        proxy.close()


# Start-up: the blocklist settings ---------------------------------------------------------------------


@pytest.mark.since("step06_revoke")
@pytest.mark.parametrize(
    "variables, message",
    [
        ({"FLASK_CONFIG": "production"}, "REDIS_URL must be set in production"),
        ({"FLASK_CONFIG": "production", "BLOCKLIST": "redis"}, "REDIS_URL must be set in production"),
        ({"FLASK_CONFIG": "production", "REDIS_URL": "redis://127.0.0.1:6379/0", "BLOCKLIST": "memory"},
         "BLOCKLIST must be redis in production"),
        ({"BLOCKLIST": "set"}, "BLOCKLIST must be redis or memory, not 'set'"),
        ({"JWT_REFRESH_TOKEN_EXPIRES": "30d"}, "JWT_REFRESH_TOKEN_EXPIRES must be a whole number of seconds"),
        ({"JWT_DECODE_LEEWAY": "-1"}, "JWT_DECODE_LEEWAY must be 0 or more seconds"),
    ],
)
def test_blocklist_settings_are_checked_at_start_up(step_package, monkeypatch, tmp_path, variables, message):
    monkeypatch.setenv("SQLALCHEMY_DATABASE_URI", f"sqlite:///{tmp_path / 'env.sqlite'}")
    monkeypatch.setenv("JWT_SECRET_KEY", TEST_SECRET)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(step_package.config.ConfigError, match=re.escape(message)):
        step_package.create_app()


@pytest.mark.since("step06_revoke")
@pytest.mark.ends_only  # a flask process
def test_production_without_redis_url_is_one_line(step):
    done = run_flask(step, None, "init-db", env={"FLASK_CONFIG": "production", "JWT_SECRET_KEY": TEST_SECRET})
    assert (done.returncode, done.stderr) == (1, "Error: REDIS_URL must be set in production, e.g. REDIS_URL=redis://127.0.0.1:6379/0\n")


@pytest.mark.since("step06_revoke")
@pytest.mark.parametrize("variables, expected", [
    ({}, ("memory", None)),  # a learner's laptop: no Redis needed, with a warning
    ({"REDIS_URL": "redis://10.0.0.5:6379/1"}, ("redis", "redis://10.0.0.5:6379/1")),
    ({"BLOCKLIST": "redis"}, ("redis", "redis://127.0.0.1:6379/0")),  # the default URL, outside production
    ({"REDIS_URL": "redis://10.0.0.5:6379/1", "BLOCKLIST": "memory"}, ("memory", "redis://10.0.0.5:6379/1")),
])
def test_which_blocklist_the_settings_choose(step_package, monkeypatch, tmp_path, caplog, variables, expected):
    monkeypatch.setenv("SQLALCHEMY_DATABASE_URI", f"sqlite:///{tmp_path / 'env.sqlite'}")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    app = step_package.create_app()
    assert (app.config["BLOCKLIST"], app.config["REDIS_URL"]) == expected
    kind = type(app.extensions["blocklist"]).__name__
    assert kind == {"memory": "MemoryBlocklist", "redis": "RedisBlocklist"}[expected[0]]
    warned = "The token blocklist is in this process's memory" in caplog.text
    assert warned is (expected[0] == "memory")


def test_env_example_documents_the_new_variables(step_package):
    source = (Path(step_package.__file__).parent / "config.py").read_text(encoding="utf-8")  # the checked copy's, not the reference's
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    for name in REVOKE_VARIABLES:
        assert f"{name}=" in example and f'"{name}"' in source


# Bad input: /refresh and /logout never answer 5xx -------------------------------------------------------


@pytest.mark.since("step06_revoke")
@pytest.mark.ends_only  # generated input: seconds a step
@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # short keys on purpose
def test_refresh_and_logout_with_any_request(make_app):
    """As tests/test_bad_input.py does for every path, aimed at the two new endpoints: production mode (where
    an unhandled error would be a 500), every kind of token and header, any body."""
    app = make_app(TESTING=False, DEBUG=False)
    client = app.test_client()
    assert [client.post(path).status_code for path in ("/refresh", "/logout")] == [401, 401]  # both exist
    tokens = forged_tokens(app)  # the first is valid; it is revoked once the run logs out with it
    with app.app_context():
        tokens += [create_access_token(identity=ADMIN["username"]) for _ in range(3)]
    paths = st.sampled_from(["/refresh", "/logout", "/refresh/", "/logout?all=1"])
    methods = st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE", "OPTIONS"])

    strategies = bad_input()

    @run(600)
    @given(methods, paths, st.none() | strategies.authorization_values(tokens), strategies.BODIES, strategies.CONTENT_TYPES)
    def check(method, path, authorization, body, content_type):
        headers = {"Authorization": authorization} if authorization is not None else {}
        response = client.open(path, method=method, headers=headers, data=body if method != "GET" else None,
                               content_type=content_type)
        assert response.status_code < 500, (method, path, authorization, response.data[:300])
        text = response.get_data(as_text=True)
        assert not any(leak in text for leak in LEAKS), text[:300]
        if method != "OPTIONS":
            body = response.get_json(silent=True)
            assert isinstance(body, dict) and isinstance(body.get("code"), int), text[:300]

    check()


# Several workers: the lesson -------------------------------------------------------------------------

def requests_after_logout(server, headers, count=80, threads=8):
    """Log out with `headers`, then send `count` GET /users with the same token, `threads` at a time, so that
    every worker is busy and answers some. Returns (statuses, the logout's worker, the workers that answered)."""
    assert server.request("POST", "/logout", headers=headers)[0] == 200
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        statuses = list(pool.map(lambda _: server.request("GET", "/users", headers=headers)[0], range(count)))
    lines = [m.groupdict() for m in map(ACCESS_LINE.search, server.output().splitlines()) if m]
    logout = max(i for i, line in enumerate(lines) if line["request"] == "POST /logout")  # the last one: this one
    return statuses, lines[logout]["pid"], {line["pid"] for line in lines[logout + 1:]}


@needs_gunicorn
@pytest.mark.since("step06_revoke")
@pytest.mark.ends_only  # gunicorn, 4 workers
def test_a_blocklist_in_memory_fails_with_several_workers(step, database_uri, client):
    """The wrong way, on purpose: each of gunicorn's 4 workers has its own in-process list. The worker that
    answered the logout refuses the token; the other three still accept it."""
    assert_logout_exists(client)
    with GunicornServer(step, database_uri, workers=4, env={"BLOCKLIST": "memory"}) as server:
        access, _ = login_live(server)
        statuses, logout_worker, answered = requests_after_logout(server, access)
    assert answered - {logout_worker}, "only the worker that logged out answered: the test proves nothing"
    assert statuses.count(200) >= 1, statuses  # a logged-out token, accepted
    assert statuses.count(401) >= 1, statuses  # by the workers that did not see the logout; refused by the one that did
    assert set(statuses) <= {200, 401}


@needs_gunicorn
@needs_redis
@pytest.mark.since("step06_revoke")
@pytest.mark.ends_only  # gunicorn, 4 workers
def test_a_blocklist_in_redis_holds_with_several_workers(step, database_uri, redis_blocklist, client):
    assert_logout_exists(client)
    with GunicornServer(step, database_uri, workers=4, env=redis_blocklist.config) as server:
        access, _ = login_live(server)
        statuses, logout_worker, answered = requests_after_logout(server, access)
    assert answered - {logout_worker}, "only the worker that logged out answered: the test proves nothing"
    assert statuses == [401] * len(statuses)  # refused by every worker, at once


def assert_logout_exists(client):
    """In process, before 4 workers start: a copy without logout (404) fails in milliseconds, not seconds."""
    assert client.post("/logout").status_code == 401


def login_live(server):
    status, body, tokens = post_for_tokens(server, "/login", ADMIN)
    assert status == 200, body
    return tuple({"Authorization": f"Bearer {token}"} for token in tokens)


# Two hosts: one database, one Redis, one secret --------------------------------------------------------


@needs_redis
@pytest.mark.since("step06_revoke")
@pytest.mark.databases(servers_only=True, later_steps_on_one=True)  # each later step on one server, in turn: the database code is copied forward
def test_two_hosts_behind_a_load_balancer(step, step_package, database_uri, redis_blocklist, tmp_path):
    """Two instances of the app on two ports, as two machines would run it, in production mode, sharing the
    signing key, a MariaDB or PostgreSQL database and Redis. A third one has another key."""
    host = {"FLASK_CONFIG": "production", "JWT_SECRET_KEY": TEST_SECRET, "SQLALCHEMY_DATABASE_URI": database_uri,
            **redis_blocklist.config}
    # The third host only has to refuse, and shares nothing with the two that share: the same settings with another
    # key, in this process (create_app reads them all, so they are set only while it runs).
    with pytest.MonkeyPatch.context() as env:
        own_key = {"JWT_SECRET_KEY": "another-" + TEST_SECRET, "KEYS_DIR": str(signing_keys(tmp_path / "other"))}
        for name, value in {**host, **own_key}.items():
            env.setenv(name, value)
        other = step_package.create_app()
    # Two apps built apart, served apart (AppServer: in this process, sharing nothing but what the settings name).
    with AppServer(build_app(step, None, env=host)) as a, AppServer(build_app(step, None, env=host)) as b:
        access, refresh = login_live(a)
        status, body = b.request("GET", "/users", headers=access)  # issued by a, accepted by b
        assert (status, body["identity"], body["users"][0]["username"]) == (200, ADMIN["username"], ADMIN["username"])
        status, body, (token, _) = post_for_tokens(b, "/refresh", headers=refresh)  # a's refresh token, used on b
        renewed = {"Authorization": f"Bearer {token}"}
        assert status == 200 and a.request("GET", "/users", headers=renewed)[0] == 200  # b's new token, on a

        response = other.test_client().get("/users", headers=access)  # from step09, a kid it has no key for:
        assert (response.status_code, response.get_json()["code"]) in ((401, 205), (401, 230))  # 230 unknown key id

        assert b.request("POST", "/logout", headers=access)[0] == 200  # logged out on b ...
        assert a.request("GET", "/users", headers=access) == REVOKED  # ... refused on a, at once
        assert a.request("POST", "/logout", headers=refresh)[0] == 200
        assert b.request("POST", "/refresh", headers=refresh) == REVOKED
        assert b.request("GET", "/users", headers=renewed)[0] == 200  # not revoked: the client still holds it
    release(other)  # its pooled connection: a server allows only so many


# The load test: 1,000 mixed requests -------------------------------------------------------------------


LOAD_REQUESTS = 1_000  # each of 4 workers still refuses revoked tokens ~100 times; benchmarks/loadtest.py sends 10,000


@needs_gunicorn
@needs_redis
@pytest.mark.schedule_first  # seconds long (tests/conftest.py)
@pytest.mark.parametrize("database", DATABASES[-1:], indirect=True)  # one server is enough: PostgreSQL in .ci/run
def test_load_mixed_requests(step, database_uri, redis_blocklist, record_property, client):
    from benchmarks import loadtest

    assert_logout_exists(client)
    with GunicornServer(step, database_uri, "--access-logformat", loadtest.ACCESS_LOG_FORMAT, workers=4,
                        env={**redis_blocklist.config, "JWT_SECRET_KEY": TEST_SECRET}) as server:
        server.wait_until_ready()
        report = loadtest.run(server.url, total=LOAD_REQUESTS, concurrency=8)
        log = server.output()
    coverage = loadtest.worker_coverage(log)
    print(report.summary(), coverage.summary(), sep="\n")
    record_property("load", report.summary())
    assert report.sent == LOAD_REQUESTS
    assert report.server_errors == 0, report.summary()
    assert report.revoked_accepted == 0, report.summary()
    assert report.unexpected == [], report.unexpected[:10]
    assert len(coverage.workers) == len(coverage.checks) == 4, coverage.summary()  # every worker checked revoked tokens
    assert coverage.accepted_after_logout == 0, coverage.summary()  # on every worker, every revoked token refused
