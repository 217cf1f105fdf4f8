"""step04_errors: token errors reach their handlers with or without debug; every error in the envelope."""
import contextlib
import os
import shutil
import sqlite3
import threading
from datetime import timedelta

import jwt
import pytest
from flask import jsonify
from flask_jwt_extended import create_access_token, create_refresh_token
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from conftest import ADMIN, another_key, config_for, sign_as
from tutorial.live import issued_tokens, release
from tcp_proxy import TcpProxy

MODES = pytest.mark.parametrize(
    "mode",
    [{"TESTING": False, "DEBUG": False}, {"TESTING": False, "DEBUG": True}, {"TESTING": True}],
    ids=["production", "debug", "testing"],
)
PRODUCTION = {"TESTING": False, "DEBUG": False}


@pytest.fixture(scope="module")
def apps_for_refusals(seeded_db_file, tmp_path_factory):
    """One app per step and mode, for the many cases whose requests are refused before they change anything (bad
    requests, unusable tokens): an app and a database of each case's own would only repeat the same set-up."""
    made = {}

    def get(package, mode):
        key = (package.__name__, tuple(sorted(mode.items())))
        if key not in made:
            copy = tmp_path_factory.mktemp(package.__name__) / "app.sqlite"
            shutil.copyfile(seeded_db_file(package), copy)
            made[key] = package.create_app(config_for(f"sqlite:///{copy}", **mode))
        return made[key]

    yield get
    for app in made.values():
        release(app)


@pytest.fixture
def refusing_app(step_package, apps_for_refusals):
    """refusing_app(**mode): the step's shared app in this mode (apps_for_refusals), seeded as make_app's are."""
    return lambda **mode: apps_for_refusals(step_package, mode)


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def access_token(app, **kwargs):
    with app.app_context():
        return create_access_token(identity=ADMIN["username"], **kwargs)


def refresh_token(app):
    with app.app_context():
        return create_refresh_token(identity=ADMIN["username"])


def valid_claims(app):
    return jwt.decode(access_token(app), options={"verify_signature": False})


# A token problem: (how to make the request's headers for an app, the envelope's code and message)
TOKEN_PROBLEMS = {
    "no header": (lambda app: {}, 203, "missing token"),
    "another scheme": (lambda app: {"Authorization": "JWT abc"}, 203, "missing token"),
    "Bearer alone": (lambda app: {"Authorization": "Bearer"}, 204, "invalid token"),
    "not a JWT": (lambda app: bearer("abc"), 204, "invalid token"),
    "Bearer undefined": (lambda app: bearer("undefined"), 204, "invalid token"),  # a front end's empty variable
    "expired": (lambda app: bearer(access_token(app, expires_delta=timedelta(seconds=-1))), 201, "token expired"),
    "another key": (lambda app: bearer(sign_as(app, valid_claims(app), another_key(app))), 205, "bad token signature"),
    "alg none": (lambda app: bearer(jwt.encode(valid_claims(app), None, "none")), 206, "token algorithm not allowed"),
    "HS512": (lambda app: bearer(jwt.encode(valid_claims(app), "k" * 64, "HS512")), 206, "token algorithm not allowed"),
    "refresh token": (lambda app: bearer(refresh_token(app)), 207, "access token required"),
}


@pytest.mark.since("step04_errors")
@pytest.mark.parametrize("problem", TOKEN_PROBLEMS)
@MODES
def test_every_token_problem_gets_its_own_envelope(refusing_app, mode, problem):
    app = refusing_app(**mode)
    headers, code, message = TOKEN_PROBLEMS[problem]
    response = app.test_client().get("/users", headers=headers(app))
    assert (response.status_code, response.get_json()) == (401, {"code": code, "message": message})


@pytest.mark.since("step04_errors")
@pytest.mark.databases
def test_log_in_then_use_an_expired_token(make_app):
    """The article's flow, made deterministic: a lifetime that is already over when the token is made."""
    client = make_app(**PRODUCTION, JWT_ACCESS_TOKEN_EXPIRES=timedelta(seconds=-1)).test_client()
    response = client.post("/login", json=ADMIN)
    token, _ = issued_tokens(response.get_json(), response.headers.getlist("Set-Cookie"))  # body, or cookie (step07 on)
    response = client.get("/users", headers=bearer(token))
    assert (response.status_code, response.get_json()) == (401, {"code": 201, "message": "token expired"})


def test_flask_run_without_debug_answers_the_envelope(serve, step_package):
    server = serve()  # as `flask run` without --debug builds it: what used to be a 500 in step03
    expired = access_token(step_package.create_app(), expires_delta=timedelta(seconds=-1))  # the step's own key
    assert server.request("GET", "/users") == (401, {"code": 203, "message": "missing token"})
    assert server.request("GET", "/users", headers=bearer(expired)) == (401, {"code": 201, "message": "token expired"})


# The PROPAGATE_EXCEPTIONS story, on step03's code -------------------------------------------------


@pytest.mark.parametrize("step", ["step03_jwt"])
def test_article_failure_an_expired_token_is_a_500(make_app, get_with_error):
    app = make_app(**PRODUCTION)
    status, answer, error = get_with_error(app, "/users", bearer(access_token(app, expires_delta=timedelta(seconds=-1))))
    assert (status, answer) == (500, {"message": "Internal Server Error"})
    assert isinstance(error, jwt.exceptions.ExpiredSignatureError), f"the 500 comes from {error!r}, not from the expiry"


@pytest.mark.parametrize("step", ["step03_jwt"])
def test_article_fix_lets_token_errors_through_and_every_other_error_too(make_app, models, monkeypatch):
    app = make_app(**PRODUCTION, PROPAGATE_EXCEPTIONS=True)  # the article's flag
    client = app.test_client()
    response = client.get("/users", headers=bearer(access_token(app, expires_delta=timedelta(seconds=-1))))
    assert (response.status_code, response.get_json()) == (401, {"msg": "Token has expired"})
    monkeypatch.setattr(models.User, "get_users", lambda: 1 / 0)  # a bug that has nothing to do with tokens
    with pytest.raises(ZeroDivisionError):  # escapes Flask: the WSGI server answers with its own HTML page
        client.get("/users", headers=bearer(access_token(app)))


@pytest.mark.since("step04_errors")
def test_an_unrelated_bug_is_still_a_json_500_and_logged(make_app, models, monkeypatch, caplog):
    app = make_app(**PRODUCTION)
    monkeypatch.setattr(models.User, "get_users", lambda: 1 / 0)
    response = app.test_client().get("/users", headers=bearer(access_token(app)))
    assert (response.status_code, response.get_json()) == (500, {"code": 500, "message": "internal server error"})
    assert "ZeroDivisionError" in caplog.text  # the traceback is in the server's log, not in the answer
    assert "ZeroDivisionError" not in response.get_data(as_text=True)


@pytest.mark.since("step04_errors")
@pytest.mark.already_holds  # step 03 propagates everything in tests; the fix must not change that
def test_an_unrelated_bug_still_fails_loudly_in_tests(make_app, models, monkeypatch):
    app = make_app(TESTING=True)
    monkeypatch.setattr(models.User, "get_users", lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        app.test_client().get("/users", headers=bearer(access_token(app)))


# Every other error, in the envelope ---------------------------------------------------------------


@pytest.mark.since("step04_errors")
@pytest.mark.parametrize(
    "method, path, data, content_type, status, message",
    [
        ("GET", "/nope", None, None, 404, None),
        ("PUT", "/login", None, None, 405, None),
        ("POST", "/login", '{"username": ', "application/json", 400, None),
        ("POST", "/login", "username=admin", "application/x-www-form-urlencoded", 415, None),
        ("POST", "/login", "5", "application/json", 400, "the body must be a JSON object"),
        ("POST", "/login", '"username"', "application/json", 400, "the body must be a JSON object"),
        ("POST", "/login", "[]", "application/json", 400, "the body must be a JSON object"),
        ("POST", "/login", "null", "application/json", 400, "the body must be a JSON object"),
        ("POST", "/login", "{}", "application/json", 400, "用户名不能为空"),
        ("POST", "/login", '{"username": "admin@gmail.com"}', "application/json", 400, "密码不能为空"),
        ("POST", "/login", '{"username": "admin@gmail.com", "password": null}', "application/json", 400, "密码不能为空"),
        ("POST", "/login", '{"username": "", "password": "123456"}', "application/json", 400, "用户名不能为空"),
        ("POST", "/login", '{"username": 123, "password": "123456"}', "application/json", 400, "username must be a string"),
        ("POST", "/login", '{"username": ["admin@gmail.com"], "password": "1"}', "application/json", 400, "username must be a string"),
        ("POST", "/login", '{"username": "admin@gmail.com", "password": true}', "application/json", 400, "password must be a string"),
        ("POST", "/login", '{"username": "a\\u0000b", "password": "1"}', "application/json", 400, "username is not valid text"),
        ("POST", "/login", '{"username": "a", "password": "\\ud800"}', "application/json", 400, "password is not valid text"),
        ("POST", "/login", '{"username": "a", "password": "' + "x" * 20000 + '"}', "application/json", 413, None),
        ("POST", "/login", b'{"username": "\xff\xfe"}', "application/json", 400, None),  # not UTF-8
    ],
)
@MODES
def test_bad_requests_answer_the_envelope(refusing_app, mode, method, path, data, content_type, status, message):
    response = refusing_app(**mode).test_client().open(path, method=method, data=data, content_type=content_type)
    body = response.get_json()
    assert response.status_code == status
    assert set(body) == {"code", "message"} and body["code"] == status
    if message:
        assert body["message"] == message
        assert message.encode() in response.data  # readable characters, not \uXXXX escapes


@pytest.mark.since("step04_errors")
@pytest.mark.parametrize("change", ["deactivate", "delete"])
@MODES
def test_token_of_a_deactivated_or_deleted_user_gets_the_envelope(make_app, models, mode, change):
    app = make_app(**mode)
    headers = bearer(access_token(app))
    with app.app_context():
        user = models.db.session.execute(models.db.select(models.User)).scalar_one()
        if change == "deactivate":
            user.active = False
        else:
            models.db.session.delete(user)
        models.db.session.commit()
    response = app.test_client().get("/users", headers=headers)
    assert (response.status_code, response.get_json()) == (401, {"code": 209, "message": "user inactive or deleted"})


@pytest.mark.since("step04_errors")
@pytest.mark.already_holds  # step 03 answers them so already; the generated tests (test_bad_input) look further
@pytest.mark.databases
def test_odd_usernames_are_just_unknown_users_on_every_database(client):
    for username in ["😀@例子.cn", "' OR '1'='1", "admin@gmail.com'; DROP TABLE user; --", "a" * 1000, "x\u0001\u001fy"]:
        response = client.post("/login", json={"username": username, "password": "123456"})
        assert (response.status_code, response.get_json()["code"]) == (401, 201), username
        assert client.post("/login", json=ADMIN).status_code == 200, username  # and the table is still there


# The database goes away, and comes back -------------------------------------------------------------

UNAVAILABLE = (503, {"code": 503, "message": "database unavailable"})


@pytest.mark.since("step04_errors")
def test_unreachable_sqlite_file_answers_503(make_app, tmp_path, auth):
    client = make_app(**PRODUCTION, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/no/such/folder.sqlite").test_client()
    assert (lambda r: (r.status_code, r.get_json()))(client.get("/users", headers=auth)) == UNAVAILABLE
    assert (lambda r: (r.status_code, r.get_json()))(client.post("/login", json=ADMIN)) == UNAVAILABLE


@pytest.mark.since("step04_errors")
@pytest.mark.databases(servers_only=True, later_steps_on_one=True)  # the engine options and the 503 are copied forward
@pytest.mark.parametrize("pre_ping", [True, False], ids=["step's pool_pre_ping", "without pool_pre_ping"])
def test_database_connection_cut_answers_503_then_recovers_without_restart(make_app, database_uri, auth, pre_ping):
    url = make_url(database_uri)
    proxy = TcpProxy(url.host, url.port)  # a real connection, really cut below
    through_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    options = {} if pre_ping else {"SQLALCHEMY_ENGINE_OPTIONS": {}}
    client = make_app(**PRODUCTION, SQLALCHEMY_DATABASE_URI=through_proxy, **options).test_client()

    def users():
        response = client.get("/users", headers=auth)
        return response.status_code, response.get_json()

    try:
        assert users()[0] == 200  # a connection is now pooled
        proxy.cut()  # the database goes away while the app runs
        assert users() == UNAVAILABLE
        assert (lambda r: (r.status_code, r.get_json()))(client.post("/login", json=ADMIN)) == UNAVAILABLE
        proxy.restore()
        assert users()[0] == 200  # back as soon as the database is, no restart

        proxy.cut()  # a restart between two requests: the pooled connection is dead, nobody noticed yet
        proxy.restore()
        if pre_ping:
            assert users()[0] == 200  # checked before use, and replaced
        else:
            assert users() == UNAVAILABLE  # the dead connection was used: one request fails ...
            assert users()[0] == 200  # ... and then SQLAlchemy has replaced it
    finally:
        proxy.close()



def holding(seconds, action):
    """A timer that does `action` after `seconds` and remembers it did: so that a copy without the step's timeouts
    fails the test instead of hanging it, and the test can tell its own rescue from the app's answer."""
    timer = threading.Timer(seconds, lambda: (action(), done.set()))
    done = threading.Event()
    timer.daemon = True
    timer.start()
    return timer, done


SHORT = {"DATABASE_TIMEOUT": timedelta(seconds=1)}  # the least the step accepts: whole seconds
# The tests' own rescue, three times the app's longest answer with SHORT, so that a copy without timeouts fails within
# seconds (the start copy's check runs each of these tests):
HUNG_RESCUE = 6  # libpq connects for 2 s at least; PyMySQL's read times out (1 s), then its new connection (1 s)
LOCKED_RESCUE = 3  # PyMySQL's read timeout, PostgreSQL's statement_timeout: 1 s


def assert_a_database_gone_answers_503(make_app, database_uri, auth):
    """At once, before a test waits for a timeout: a copy without the step's 503 fails here, not after the rescue."""
    url = make_url(database_uri)
    proxy = TcpProxy(url.host, url.port)
    proxy.cut()
    try:
        gone = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        response = make_app(**PRODUCTION, SQLALCHEMY_DATABASE_URI=gone).test_client().get("/users", headers=auth)
        assert (response.status_code, response.get_json()) == UNAVAILABLE
    finally:
        proxy.close()


# Seconds of waiting each, for the same code in every later step (models.py): on the first and last step only.
@pytest.mark.since("step04_errors")
@pytest.mark.ends_only
@pytest.mark.databases(servers_only=True)
def test_a_database_that_stops_answering_answers_503_by_itself(make_app, database, database_uri, auth):
    """Without timeouts, PyMySQL and psycopg wait for the first byte forever (a worker killed by gunicorn)."""
    assert_a_database_gone_answers_503(make_app, database_uri, auth)
    url = make_url(database_uri)
    proxy = TcpProxy(url.host, url.port)
    through_proxy = url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    client = make_app(**PRODUCTION, **SHORT, SQLALCHEMY_DATABASE_URI=through_proxy).test_client()

    def users():
        response = client.get("/users", headers=auth)
        return response.status_code, response.get_json()

    try:
        assert users()[0] == 200  # a connection is now pooled
        # Connections accepted, never answered: a server stuck, or a balancer whose server is gone. The open one
        # stays silent on MariaDB (read_timeout); libpq has no read timeout, so on PostgreSQL it is dropped.
        proxy.hang(drop_open=database == "postgresql")
        timer, rescued = holding(HUNG_RESCUE, proxy.cut)
        assert users() == UNAVAILABLE
        assert not rescued.is_set()  # the app gave up by itself, while the database still did not answer
        timer.cancel()
        proxy.cut()
        proxy.restore()  # the server answers again
        assert users()[0] == 200  # and the app works again, without a restart
    finally:
        proxy.close()


LOCKS = {  # another connection holds the user table, e.g. a long migration
    "mysql": "LOCK TABLES user WRITE",
    "postgresql": 'LOCK TABLE "user" IN ACCESS EXCLUSIVE MODE',
}


@pytest.mark.since("step04_errors")
@pytest.mark.ends_only
@pytest.mark.databases(servers_only=True)  # SQLite's driver waits 5 s anyway, by default
def test_a_table_locked_too_long_answers_503(make_app, database, database_uri, auth):
    """PyMySQL's read timeout, PostgreSQL's statement_timeout: each ends the wait (both wait forever by default)."""
    assert_a_database_gone_answers_503(make_app, database_uri, auth)
    client = make_app(**PRODUCTION, **SHORT).test_client()
    engine = create_engine(database_uri)
    holder = engine.raw_connection()
    try:
        holder.cursor().execute(LOCKS[database])
        unlock = holder.commit if database == "postgresql" else lambda: holder.cursor().execute("UNLOCK TABLES")
        timer, rescued = holding(LOCKED_RESCUE, unlock)
        response = client.get("/users", headers=auth)
        assert (response.status_code, response.get_json()) == UNAVAILABLE
        assert not rescued.is_set()  # the app gave up by itself, while the table was still locked
        timer.cancel()
        unlock()
        assert client.get("/users", headers=auth).status_code == 200
    finally:
        holder.close()
        engine.dispose()


@pytest.mark.since("step04_errors")
@pytest.mark.skipif(os.name == "nt", reason="Windows refuses to replace a file that is open: stop the app to restore it")
def test_a_sqlite_file_replaced_while_the_app_runs_is_read_again(make_app, database_uri, auth, models, tmp_path):
    """A backup restored: the file removed and another moved in, while the app holds the old one open. Without
    reopening, reads come from the removed file (200, stale) and writes fail (readonly) until a restart."""
    app = make_app(**PRODUCTION)
    client = app.test_client()

    def usernames():
        response = client.get("/users", headers=auth)
        assert response.status_code == 200, response.get_json()
        return [user["username"] for user in response.get_json()["users"]]

    path = make_url(database_uri).database
    assert usernames() == [ADMIN["username"]]  # a connection is now pooled, on this file
    backup = tmp_path / "backup.sqlite"
    shutil.copyfile(path, backup)
    with contextlib.closing(sqlite3.connect(backup)) as conn, conn:  # the backup holds another user
        conn.executescript("CREATE TEMP TABLE copy AS SELECT * FROM user WHERE id = 1;"
                           "UPDATE copy SET id = 2, username = 'restored@example.com';"
                           "INSERT INTO user SELECT * FROM copy;")
    os.replace(backup, path)  # what mv does: the old file is removed, the app still has it open
    assert usernames() == [ADMIN["username"], "restored@example.com"]
    with app.app_context():  # and a write lands in the file that is there now
        models.db.session.execute(models.db.update(models.User).filter_by(id=2).values(active=False))
        models.db.session.commit()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        assert conn.execute("SELECT active FROM user WHERE id = 2").fetchone() == (0,)


# What a learner copying the article's 3.x callback meets on 4.x -----------------------------------


def test_article_callback_without_arguments_fails_at_the_first_expired_token(app):
    expired = bearer(access_token(app, expires_delta=timedelta(seconds=-1)))
    answer = app.test_client().get("/users", headers=expired)
    assert (answer.status_code, answer.get_json()) == (401, {"code": 201, "message": "token expired"})  # the step's
    jwt_manager = app.extensions["flask-jwt-extended"]

    @jwt_manager.expired_token_loader
    def expired_token_callback():  # the article's 3.x signature
        return jsonify({"code": 201, "message": "token expired"})

    with pytest.raises(TypeError, match="takes 0 positional arguments but 2 were given"):
        app.test_client().get("/users", headers=bearer(access_token(app, expires_delta=timedelta(seconds=-1))))


def test_article_callback_returning_jsonify_alone_answers_200(app):
    expired = bearer(access_token(app, expires_delta=timedelta(seconds=-1)))
    answer = app.test_client().get("/users", headers=expired)
    assert (answer.status_code, answer.get_json()) == (401, {"code": 201, "message": "token expired"})  # the step's
    jwt_manager = app.extensions["flask-jwt-extended"]

    @jwt_manager.expired_token_loader
    def expired_token_callback(jwt_header, jwt_payload):  # 4.x signature, the article's body
        return jsonify({"code": 201, "message": "token expired"})

    response = app.test_client().get("/users", headers=bearer(access_token(app, expires_delta=timedelta(seconds=-1))))
    assert (response.status_code, response.get_json()) == (200, {"code": 201, "message": "token expired"})


# HTTP as the RFCs say: an error keeps the headers its status requires (issue 15) -------------------


@pytest.mark.since("step04_errors")
@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "POST"])
def test_an_unlisted_method_answers_405_with_allow(make_app, method):
    response = make_app(**PRODUCTION).test_client().open("/hello", method=method)  # GET only (POST /users: step08)
    assert (response.status_code, response.get_json()["code"]) == (405, 405)  # the envelope (step 03 had no code) ...
    assert "GET" in {m.strip() for m in response.headers["Allow"].split(",")}  # ... and Allow (RFC 9110 §15.5.6: MUST)


@pytest.mark.since("step04_errors")
@pytest.mark.parametrize("problem", TOKEN_PROBLEMS)
def test_every_token_401_carries_a_bearer_challenge(refusing_app, problem):
    app = refusing_app(**PRODUCTION)
    headers, code, message = TOKEN_PROBLEMS[problem]
    response = app.test_client().get("/users", headers=headers(app))
    # RFC 6750 §3.1: no token sent, no error code; a token that cannot be used, invalid_token and why.
    challenge = "Bearer" if code == 203 else f'Bearer error="invalid_token", error_description="{message}"'
    assert (response.status_code, response.get_json()["code"], response.headers.get("WWW-Authenticate")) == (
        401, code, challenge)


@pytest.mark.since("step04_errors")
@pytest.mark.parametrize("password", ["654321", None], ids=["wrong password", "no such user"])
def test_a_refused_login_carries_a_bearer_challenge(client, password):
    body = {"username": ADMIN["username"], "password": password} if password else {"username": "nobody", "password": "x"}
    response = client.post("/login", json=body)
    assert (response.status_code, response.headers.get("WWW-Authenticate")) == (401, "Bearer")


@pytest.mark.since("step04_errors")
def test_an_error_keeps_its_retry_after(make_app, models, monkeypatch, auth):
    from werkzeug.exceptions import ServiceUnavailable

    def busy(cls):
        raise ServiceUnavailable("busy", retry_after=30)  # as a rate limiter's 429 or a maintenance 503 would

    monkeypatch.setattr(models.User, "get_users", classmethod(busy))
    response = make_app(**PRODUCTION).test_client().get("/users", headers=auth)
    assert (response.status_code, response.get_json(), response.headers.get("Retry-After")) == (
        503, {"code": 503, "message": "busy"}, "30")


@pytest.mark.since("step04_errors")
def test_a_front_end_on_another_origin_may_read_the_challenge(client):
    response = client.get("/users", headers={"Origin": "http://localhost:8000"})  # frontend/'s origin
    exposed = {h.strip().lower() for h in response.headers.get("Access-Control-Expose-Headers", "").split(",")}
    assert response.headers.get("Access-Control-Allow-Origin") in ("http://localhost:8000", "*")
    assert {"www-authenticate", "retry-after"} <= exposed
