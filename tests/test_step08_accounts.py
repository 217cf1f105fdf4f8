"""step08_accounts: roles and an admin API, fresh tokens, a password change that ends every session, login limits.

Since step07 a login answers its tokens as cookies. Most tests here read them from the Set-Cookie headers
(tokens_from) and send them back as Bearer headers, which need no CSRF value, through a client without a cookie
jar; the "cookies" tests use the jar as a browser does, with the X-CSRF-TOKEN header on every PATCH, POST and PUT.
The Redis tests need TEST_REDIS_URL (see tests/test_step06_revoke.py); their keys carry a prefix of their own and
are deleted at the end.
"""
import concurrent.futures
import http.client
import json
import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
from flask_jwt_extended import create_access_token, decode_token

from conftest import ACCESS_LINE, ADMIN, TEST_SECRET
from tutorial.live import AppServer, GunicornServer, build_app, issued_tokens

needs_redis, needs_gunicorn = pytest.mark.needs("redis"), pytest.mark.needs("gunicorn")
USER = {"username": "learner@example.com", "password": "learner-password"}


def answer(response):
    return response.status_code, response.get_json()


def tokens_from(response):
    """(access, refresh) Bearer headers from the cookies an answer sets (None for a cookie it does not set).
    `response`: a Flask test response, or an http.client response whose JSON body was read into `.json`."""
    if hasattr(response, "getheader"):
        body, set_cookies = response.json, response.headers.get_all("Set-Cookie") or []
    else:
        body, set_cookies = response.get_json(), response.headers.getlist("Set-Cookie")
    return tuple({"Authorization": f"Bearer {token}"} if token else None for token in issued_tokens(body, set_cookies))


def login(client, credentials=ADMIN):
    response = client.post("/login", json=credentials)
    assert response.status_code == 200, response.get_json()
    return tokens_from(response)


def bearer(app, username=ADMIN["username"], **kwargs):
    with app.app_context():
        return {"Authorization": "Bearer " + create_access_token(identity=username, **kwargs)}


def claims(app, headers):
    with app.app_context():
        return decode_token(headers["Authorization"][7:])


@pytest.fixture
def client(app):
    """No cookie jar: the tokens travel as Bearer headers only (a jar would add the last login's cookies)."""
    return app.test_client(use_cookies=False)


@pytest.fixture
def user(client, app):
    """A plain user, made by the admin through POST /users: (its userid, its fresh access token)."""
    response = client.post("/users", json={**USER, "role": "user"}, headers=bearer(app, fresh=True))
    assert response.status_code == 201, response.get_json()
    return SimpleNamespace(id=response.get_json()["userid"], access=login(client, USER)[0])


@pytest.fixture
def redis_prefixes(redis_blocklist):
    """Settings for this test's own part of Redis (blocklist and login counters): conftest.redis_blocklist."""
    return redis_blocklist.config


# Roles ----------------------------------------------------------------------------------------------------


@pytest.mark.since("step08_accounts")
def test_init_db_makes_the_articles_user_an_admin_and_create_user_takes_a_role(app, runner, models):
    assert runner.invoke(args=["create-user", "a@example.com", "--password", "pw"]).output == "Created user a@example.com.\n"
    result = runner.invoke(args=["create-user", "b@example.com", "--password", "pw", "--role", "admin"])
    assert result.output == "Created user b@example.com (admin).\n"
    assert runner.invoke(args=["create-user", "c@example.com", "--password", "pw", "--role", "root"]).exit_code == 2
    with app.app_context():
        roles = {u.username: u.role for u in models.User.get_users()}
    assert roles == {ADMIN["username"]: "admin", "a@example.com": "user", "b@example.com": "admin"}


@pytest.mark.since("step08_accounts")
def test_the_login_token_carries_the_role_and_is_fresh_the_refreshed_one_is_not(app, client):
    access, refresh = login(client)
    assert (claims(app, access)["role"], claims(app, access)["fresh"]) == ("admin", True)
    renewed = tokens_from(client.post("/refresh", headers=refresh))[0]
    assert claims(app, renewed)["fresh"] is False


@pytest.mark.since("step08_accounts")
def test_a_user_gets_403_on_the_admin_api_and_an_admin_succeeds(app, client, user):
    forbidden = (403, {"code": 220, "message": "admin required"})
    assert answer(client.post("/users", json={"username": "x@example.com", "password": "pw"}, headers=user.access)) == forbidden
    assert answer(client.patch("/users/1", json={"active": False}, headers=user.access)) == forbidden
    assert client.get("/users", headers=user.access).status_code == 200  # what every user may do, it still may
    status, body = answer(client.post("/users", json={"username": "x@example.com", "password": "pw"}, headers=bearer(app)))
    assert (status, body["code"], set(body)) == (201, 200, {"code", "message", "userid"})


@pytest.mark.since("step08_accounts")
def test_the_role_is_read_from_the_user_row_not_from_the_token(app, client, models):
    """A token that says "admin" is not enough: an admin demoted a second ago is refused with the same token."""
    admin = bearer(app, fresh=True)
    body = client.post("/users", json={"username": "second@example.com", "password": "pw", "role": "admin"}, headers=admin).get_json()
    second = bearer(app, "second@example.com", fresh=True, additional_claims={"role": "admin"})
    assert client.post("/users", json={"username": "y@example.com", "password": "pw"}, headers=second).status_code == 201
    assert answer(client.patch(f"/users/{body['userid']}", json={"role": "user"}, headers=admin))[1]["user"]["role"] == "user"
    assert answer(client.post("/users", json={"username": "z@example.com", "password": "pw"}, headers=second)) == (
        403, {"code": 220, "message": "admin required"})


def assert_user_refused(app, client, models, body, expected):
    assert answer(client.post("/users", json=body, headers=bearer(app))) == expected
    with app.app_context():
        assert [u.username for u in models.User.get_users()] == [ADMIN["username"]]


@pytest.mark.since("step08_accounts")
@pytest.mark.databases
def test_creating_a_user_that_exists_is_refused_and_writes_nothing(app, client, models):
    """The database's unique index refuses it: each server's driver raises its own IntegrityError."""
    assert_user_refused(app, client, models, {"username": ADMIN["username"], "password": "pw"},
                        (409, {"code": 224, "message": "username already exists"}))


@pytest.mark.since("step08_accounts")
@pytest.mark.databases
@pytest.mark.parametrize("username, expected", [  # the rule of create-user (step02), on the admin API
    ("ADMIN@gmail.com", (409, {"code": 224, "message": "username already exists"})),
    (" ａｄｍｉｎ@gmail.com ", (409, {"code": 224, "message": "username already exists"})),
    ("admin\u200b@gmail.com", (400, {"code": 400, "message": "username must not contain control or invisible characters"})),
    ("\u202eadmin@gmail.com", (400, {"code": 400, "message": "username must not contain control or invisible characters"})),
    ("\u0430dmin@gmail.com", (400, {"code": 400, "message": "username must not mix Latin letters with Cyrillic or Greek ones"})),
], ids=["case", "full-width and spaces", "zero-width space", "right-to-left override", "Cyrillic a"])
def test_creating_a_look_alike_of_a_user_is_refused_on_every_database(app, client, models, username, expected):
    assert_user_refused(app, client, models, {"username": username, "password": "pw"}, expected)


@pytest.mark.since("step08_accounts")
def test_spellings_of_one_username_share_its_login_limit(make_app):
    client = make_app(LOGIN_LIMIT="2 per minute", LOGIN_LIMIT_PER_ADDRESS="100 per minute").test_client()
    for username in ["admin@gmail.com", "ADMIN@gmail.com"]:  # two failures, however spelled
        assert client.post("/login", json={"username": username, "password": "x"}).status_code == 401
    assert client.post("/login", json={"username": "Admin@Gmail.com", "password": "x"}).status_code == 429


@pytest.mark.since("step08_accounts")
@pytest.mark.parametrize("body, expected", [  # checked before the database is asked: the same on every database
    ({"password": "pw"}, (400, {"code": 400, "message": "用户名不能为空"})),
    ({"username": "n@example.com"}, (400, {"code": 400, "message": "密码不能为空"})),
    ({"username": "n@example.com", "password": "pw", "role": "root"}, (400, {"code": 400, "message": "role must be user or admin"})),
    ({"username": "n" * 46, "password": "pw"}, (400, {"code": 400, "message": "a username has at most 45 characters"})),
    ({"username": 5, "password": "pw"}, (400, {"code": 400, "message": "username must be a string"})),
    ([], (400, {"code": 400, "message": "the body must be a JSON object"})),
])
def test_creating_a_user_refuses_bad_bodies_and_writes_nothing(app, client, models, body, expected):
    assert_user_refused(app, client, models, body, expected)


# Deactivation ----------------------------------------------------------------------------------------------


@pytest.mark.since("step08_accounts")
def test_deactivating_ends_the_users_tokens_at_once_and_restoring_lets_it_log_in_again(app, client, user):
    admin = bearer(app, fresh=True)
    status, body = answer(client.patch(f"/users/{user.id}", json={"active": False}, headers=admin))
    assert (status, body["user"]) == (200, {"userid": user.id, "username": USER["username"], "active": False, "role": "user"})
    assert answer(client.get("/users", headers=user.access)) == (401, {"code": 209, "message": "user inactive or deleted"})
    assert answer(client.post("/login", json=USER))[1]["code"] == 208  # the article's "user inactive"
    assert client.patch(f"/users/{user.id}", json={"active": True}, headers=admin).status_code == 200
    assert client.get("/users", headers=login(client, USER)[0]).status_code == 200


@pytest.mark.since("step08_accounts")
@pytest.mark.parametrize("path, body, expected", [
    ("/users/999", {"active": False}, (404, {"code": 225, "message": "user not found"})),
    ("/users/99999999999999999999", {"active": False}, (404, {"code": 225, "message": "user not found"})),
    ("/users/1", {"active": False}, (403, {"code": 227, "message": "an admin cannot deactivate or demote themselves"})),
    ("/users/2", {"active": "no"}, (400, {"code": 400, "message": "active must be true or false"})),
    ("/users/2", {"role": "owner"}, (400, {"code": 400, "message": "role must be user or admin"})),
    ("/users/2", {"name": "x"}, (400, {"code": 400, "message": "the body must hold active or role"})),
    ("/users/2", [False], (400, {"code": 400, "message": "the body must be a JSON object"})),
])
def test_patching_a_user_refuses_what_it_cannot_do(app, client, user, models, path, body, expected):
    assert answer(client.patch(path, json=body, headers=bearer(app, fresh=True))) == expected
    with app.app_context():
        assert [(u.active, u.role) for u in models.User.get_users()] == [(True, "admin"), (True, "user")]


# Fresh tokens --------------------------------------------------------------------------------------------


@pytest.mark.since("step08_accounts")
def test_a_refreshed_token_is_refused_for_sensitive_changes_and_a_fresh_one_accepted(app, client, user):
    _, refresh = login(client)
    stale = tokens_from(client.post("/refresh", headers=refresh))[0]
    needs_fresh = (401, {"code": 221, "message": "fresh token required"})
    assert answer(client.patch(f"/users/{user.id}", json={"active": False}, headers=stale)) == needs_fresh
    assert answer(client.put("/users/me/password", json={"old_password": "123456", "new_password": "n"}, headers=stale)) == needs_fresh
    assert client.get("/users", headers=stale).status_code == 200  # good enough for everything else

    response = client.post("/fresh-login", json=ADMIN)
    assert answer(response) == (200, {"code": 200, "message": "success", "userid": 1})  # as /login answers: no token
    fresh, refresh_cookie = tokens_from(response)
    assert refresh_cookie is None  # an access token only: the refresh token the client holds stays as it is
    assert claims(app, fresh)["fresh"] is True
    assert client.patch(f"/users/{user.id}", json={"active": False}, headers=fresh).status_code == 200


@pytest.mark.since("step08_accounts")
def test_fresh_login_checks_the_password_as_login_does(client):
    assert answer(client.post("/fresh-login", json={**ADMIN, "password": "nope"}))[1]["code"] == 202
    assert answer(client.post("/fresh-login", json={"username": "no@example.com", "password": "x"}))[1]["code"] == 201
    assert answer(client.post("/fresh-login", json={"username": ADMIN["username"]})) == (400, {"code": 400, "message": "密码不能为空"})


# A password change ends every earlier token ----------------------------------------------------------------


@pytest.mark.since("step08_accounts")
def test_a_password_change_ends_every_earlier_token_access_and_refresh(app, client):
    access, refresh = login(client)
    other_device = login(client)  # logged in somewhere else too
    renewed = tokens_from(client.post("/refresh", headers=refresh))[0]
    changed = client.put("/users/me/password", json={"old_password": "123456", "new_password": "new-pass"}, headers=access)
    assert answer(changed) == (200, {"code": 200, "message": "password changed"})
    ended = (401, {"code": 223, "message": "token ended by a password change"})
    for headers in (access, renewed, other_device[0]):
        assert answer(client.get("/users", headers=headers)) == ended
    for headers in (refresh, other_device[1]):
        assert answer(client.post("/refresh", headers=headers)) == ended
    new_access, new_refresh = tokens_from(changed)
    assert client.get("/users", headers=new_access).status_code == 200  # the answer's own tokens work
    assert client.post("/refresh", headers=new_refresh).status_code == 200
    assert answer(client.post("/login", json=ADMIN))[1]["code"] == 202  # the old password no longer works
    assert client.post("/login", json={**ADMIN, "password": "new-pass"}).status_code == 200



@pytest.mark.since("step08_accounts")
def test_a_wrong_old_password_changes_nothing(client, app):
    access, _ = login(client)
    assert answer(client.put("/users/me/password", json={"old_password": "654321", "new_password": "x"}, headers=access)) == (
        403, {"code": 226, "message": "old password wrong"})
    assert answer(client.put("/users/me/password", json={"old_password": "123456"}, headers=access)) == (
        400, {"code": 400, "message": "new_password must not be empty"})
    assert client.get("/users", headers=access).status_code == 200
    assert client.post("/login", json=ADMIN).status_code == 200


@needs_redis
@pytest.mark.since("step08_accounts")
@pytest.mark.databases(servers_only=True, later_steps_on_one=True)  # step09 on one server
def test_deactivation_and_a_password_change_end_tokens_on_two_instances(step, step_package, database_uri, redis_prefixes):
    """Two hosts, one database server, one Redis: what one host changes, the other honours at its next request."""
    host = {"FLASK_CONFIG": "production", "JWT_SECRET_KEY": TEST_SECRET, "SQLALCHEMY_DATABASE_URI": database_uri, **redis_prefixes}
    # Two apps built apart, served apart (AppServer: in this process, sharing nothing but what the settings name).
    with AppServer(build_app(step, None, env=host)) as a, AppServer(build_app(step, None, env=host)) as b:
        admin = live_tokens(a, "/login", ADMIN)[0]  # a Bearer header made from the access cookie
        status, body = a.request("POST", "/users", json_body=USER, headers=admin)
        assert status == 201, body
        learner, learner_refresh = live_tokens(b, "/login", USER)
        assert b.request("GET", "/users", headers=learner)[0] == 200
        assert a.request("PATCH", f"/users/{body['userid']}", json_body={"active": False}, headers=admin)[0] == 200
        assert b.request("GET", "/users", headers=learner) == (401, {"code": 209, "message": "user inactive or deleted"})
        assert b.request("POST", "/refresh", headers=learner_refresh)[0] == 401

        other = live_tokens(b, "/login", ADMIN)  # the admin, logged in on b too
        changed = live(a, "PUT", "/users/me/password", {"old_password": ADMIN["password"], "new_password": "n3w"}, admin)
        assert changed.status == 200, changed.json
        ended = (401, {"code": 223, "message": "token ended by a password change"})
        assert b.request("GET", "/users", headers=other[0]) == ended
        assert b.request("POST", "/refresh", headers=other[1]) == ended
        assert b.request("GET", "/users", headers=admin) == ended  # the token the change was made with, too
        assert b.request("GET", "/users", headers=tokens_from(changed)[0])[0] == 200


def live(server, method, path, json_body=None, headers=None):
    """One request to a live server: the http.client response, its JSON body in `.json` (for tokens_from)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    connection.request(method, path, body=json.dumps(json_body) if json_body is not None else None,
                       headers={"Content-Type": "application/json", **(headers or {})})
    response = connection.getresponse()
    response.json = json.loads(response.read())
    connection.close()
    return response


def live_tokens(server, path, credentials):
    response = live(server, "POST", path, credentials)
    assert response.status == 200, response.json
    return tokens_from(response)


# Login attempts limited ------------------------------------------------------------------------------------

WRONG = {**ADMIN, "password": "654321"}
TOO_MANY = {"code": 222, "message": "too many login attempts"}


@pytest.fixture(params=["memory", pytest.param("redis", marks=needs_redis)])
def limit_storage(request):
    """Within one process both storages count the same; across processes only Redis does (see the gunicorn tests)."""
    if request.param == "memory":
        return {"BLOCKLIST": "memory"}
    return request.getfixturevalue("redis_prefixes")


@pytest.mark.since("step08_accounts")
def test_failed_logins_are_limited_with_429_and_retry_after(make_app, limit_storage):
    client = make_app(LOGIN_LIMIT="3 per minute", **limit_storage).test_client()
    assert [client.post("/login", json=WRONG).status_code for _ in range(3)] == [401, 401, 401]
    response = client.post("/login", json=WRONG)
    status, body = answer(response)
    assert (status, {k: body[k] for k in TOO_MANY}) == (429, TOO_MANY)
    assert response.headers["Retry-After"] == str(body["retry_after"]) and 1 <= body["retry_after"] <= 61
    again = client.post("/login", json=ADMIN)  # the right password waits too: it is not checked
    assert (answer(again)[0], {k: answer(again)[1][k] for k in TOO_MANY}, "Retry-After" in again.headers) == (429, TOO_MANY, True)
    assert answer(client.post("/fresh-login", json=ADMIN))[0] == 429  # the same guessing, the same counter
    assert answer(client.post("/login", json={"username": "other@example.com", "password": "x"}))[1]["code"] == 201


@pytest.mark.since("step08_accounts")
def test_the_limit_is_checked_before_the_password_hash(make_app, models, monkeypatch):
    client = make_app(LOGIN_LIMIT="2 per minute").test_client()
    hashed = []
    real = models.check_password_hash
    monkeypatch.setattr(models, "check_password_hash", lambda *args: hashed.append(1) or real(*args))
    statuses = [client.post("/login", json=WRONG).status_code for _ in range(6)]
    assert (statuses, len(hashed)) == ([401, 401, 429, 429, 429, 429], 2)  # no hash for a refused attempt


@pytest.mark.already_holds  # step06 limits nothing at all; here, the limit must not catch a user who types it right
@pytest.mark.since("step08_accounts")
def test_only_failed_logins_count(make_app):
    client = make_app(LOGIN_LIMIT="2 per minute", LOGIN_LIMIT_PER_ADDRESS="2 per minute").test_client()
    assert [client.post("/login", json=ADMIN).status_code for _ in range(5)] == [200] * 5


@pytest.mark.since("step08_accounts")
def test_one_address_trying_many_usernames_is_limited_too(make_app):
    client = make_app(LOGIN_LIMIT="5 per minute", LOGIN_LIMIT_PER_ADDRESS="3 per minute").test_client()
    statuses = [client.post("/login", json={"username": f"u{i}@example.com", "password": "x"}).status_code for i in range(5)]
    assert statuses == [401, 401, 401, 429, 429]


@pytest.mark.since("step08_accounts")
def test_a_client_cannot_escape_the_limit_with_its_own_x_forwarded_for(make_app):
    client = make_app(LOGIN_LIMIT="2 per minute").test_client()
    statuses = [client.post("/login", json=WRONG, headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code for i in range(5)]
    assert statuses == [401, 401, 429, 429, 429]  # no proxy configured: the header is ignored


@pytest.mark.since("step08_accounts")
def test_behind_one_trusted_proxy_each_client_is_counted_on_its_own(make_app):
    """TRUSTED_PROXY_HOPS=1: the address the proxy appended is the client's (the proxy itself is 127.0.0.1)."""
    client = make_app(LOGIN_LIMIT="2 per minute", TRUSTED_PROXY_HOPS=1).test_client()
    first = [client.post("/login", json=WRONG, headers={"X-Forwarded-For": "203.0.113.1"}).status_code for _ in range(3)]
    second = client.post("/login", json=WRONG, headers={"X-Forwarded-For": "203.0.113.2"}).status_code
    spoofed = client.post("/login", json=WRONG, headers={"X-Forwarded-For": "198.51.100.9, 203.0.113.1"}).status_code
    assert (first, second, spoofed) == ([401, 401, 429], 401, 429)  # only the last, trusted, hop counts


@pytest.mark.since("step08_accounts")
def test_redis_unreachable_refuses_logins_with_503_fail_closed(make_app, models, monkeypatch, closed_port, caplog):
    """Counting nothing would let a guesser try without limit while Redis is away. Every protected endpoint
    answers 503 then anyway (step06's blocklist), so a login would only hand out tokens nothing accepts."""
    client = make_app(REDIS_URL=f"redis://127.0.0.1:{closed_port}/0", TESTING=False).test_client()
    hashed = []
    monkeypatch.setattr(models, "check_password_hash", lambda *args: hashed.append(1))
    assert answer(client.post("/login", json=ADMIN)) == (503, {"code": 503, "message": "login limiter unavailable"})
    assert hashed == []
    assert answer(client.get("/users", headers=bearer(client.application))) == (503, {"code": 503, "message": "token blocklist unavailable"})
    assert client.get("/hello").status_code == 200
    assert "login limiter unavailable: " in caplog.text


@pytest.mark.since("step08_accounts")
@pytest.mark.parametrize("variables, expected", [
    ({}, ("5 per minute", "20 per minute", 0)),
    ({"LOGIN_LIMIT": "10/hour", "LOGIN_LIMIT_PER_ADDRESS": "100 per day; 30 per minute", "TRUSTED_PROXY_HOPS": "2"},
     ("10/hour", "100 per day; 30 per minute", 2)),
])
def test_login_limits_come_from_the_environment(step_package, monkeypatch, tmp_path, variables, expected):
    monkeypatch.setenv("SQLALCHEMY_DATABASE_URI", f"sqlite:///{tmp_path / 'env.sqlite'}")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    config = step_package.create_app().config
    assert (config["LOGIN_LIMIT"], config["LOGIN_LIMIT_PER_ADDRESS"], config["TRUSTED_PROXY_HOPS"]) == expected


@pytest.mark.since("step08_accounts")
@pytest.mark.parametrize("variables, message", [
    ({"LOGIN_LIMIT": "five"}, "LOGIN_LIMIT must be a limit such as '5 per minute', not 'five'"),
    ({"LOGIN_LIMIT_PER_ADDRESS": "3 per fortnight"}, "LOGIN_LIMIT_PER_ADDRESS must be a limit such as '5 per minute'"),
    ({"TRUSTED_PROXY_HOPS": "-1"}, "TRUSTED_PROXY_HOPS must be a whole number, 0 or more, not '-1'"),
])
def test_bad_login_limit_settings_stop_the_start(step_package, monkeypatch, tmp_path, variables, message):
    monkeypatch.setenv("SQLALCHEMY_DATABASE_URI", f"sqlite:///{tmp_path / 'env.sqlite'}")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(step_package.config.ConfigError, match=re.escape(message)):
        step_package.create_app()


# Several workers: the lesson of step06, again --------------------------------------------------------------


def assert_logins_are_limited(make_app):
    """In process, before 4 workers start: a copy without the limit fails in milliseconds, not seconds."""
    client = make_app(LOGIN_LIMIT="1 per minute").test_client()
    assert [client.post("/login", json=WRONG).status_code for _ in range(2)] == [401, 429]


def wrong_logins_on_every_worker(server, count=24):
    """`count` wrong-password logins (again, until two workers answered), one connection each, 4 at a time.
    Returns (the statuses, in order of sending as far as it goes; worker pid -> the statuses it answered, from its log)."""
    server.wait_until_ready()
    statuses = []
    for _ in range(5):  # a worker that answers fast (a 429 from memory) may take every connection: send more
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            statuses += pool.map(lambda _: server.request("POST", "/login", json_body=WRONG)[0], range(count))
        by_worker = {}
        for m in map(ACCESS_LINE.search, server.output().splitlines()):
            if m and m["request"] == "POST /login":
                by_worker.setdefault(m["pid"], []).append(int(m["status"]))
        if len(by_worker) > 1:
            break
    return statuses, by_worker


@needs_gunicorn
@needs_redis
@pytest.mark.since("step08_accounts")
@pytest.mark.ends_only  # gunicorn, 4 workers
def test_the_login_limit_holds_across_4_workers_with_redis(step, database_uri, redis_prefixes, make_app):
    assert_logins_are_limited(make_app)
    with GunicornServer(step, database_uri, workers=4, env={**redis_prefixes, "LOGIN_LIMIT": "3 per minute"}) as server:
        statuses, by_worker = wrong_logins_on_every_worker(server)
    assert len(by_worker) > 1, "one worker answered everything: the test proves nothing"
    # Counted after the answer: attempts sent at the same moment may each pass before any is counted (at most
    # 3 + the 3 others in flight); never a count of its own per worker.
    assert 3 <= statuses.count(401) <= 6 and set(statuses) == {401, 429}, statuses


@needs_gunicorn
@pytest.mark.since("step08_accounts")
@pytest.mark.ends_only  # gunicorn, 4 workers
def test_a_login_limit_in_memory_fails_with_4_workers(step, database_uri, make_app):
    """The wrong way, on purpose: each worker counts on its own, so a client gets up to 4 x 3 tries."""
    assert_logins_are_limited(make_app)
    with GunicornServer(step, database_uri, workers=4, env={"BLOCKLIST": "memory", "LOGIN_LIMIT": "3 per minute"}) as server:
        statuses, by_worker = wrong_logins_on_every_worker(server)
    assert len(by_worker) > 1, "one worker answered everything: the test proves nothing"
    # Each worker lets its first three through (fewer if it answered fewer): more than the limit in all.
    assert {pid: got.count(401) for pid, got in by_worker.items()} == {pid: min(3, len(got)) for pid, got in by_worker.items()}, by_worker
    assert statuses.count(401) > 3, statuses


# Cookies, as a browser sends them: every change needs the X-CSRF-TOKEN header --------------------------


def csrf(jar_client, name="csrf_access_token"):
    return {"X-CSRF-TOKEN": jar_client.get_cookie(name).value}


@pytest.mark.since("step08_accounts")
def test_with_cookies_the_admin_api_needs_the_csrf_header(app):
    browser = app.test_client()  # keeps the cookies login sets
    assert browser.post("/login", json=ADMIN).status_code == 200
    new_user = {"username": "cookie@example.com", "password": "pw"}
    assert answer(browser.post("/users", json=new_user)) == (401, {"code": 212, "message": "CSRF token missing"})
    status, body = answer(browser.post("/users", json=new_user, headers=csrf(browser)))
    assert status == 201, body
    path = f"/users/{body['userid']}"
    assert answer(browser.patch(path, json={"active": False}))[1]["code"] == 212
    assert answer(browser.patch(path, json={"active": False}, headers=csrf(browser)))[1]["user"]["active"] is False


@pytest.mark.since("step08_accounts")
def test_fresh_login_sets_a_fresh_access_cookie_after_a_refresh(app, user):
    browser = app.test_client()
    assert browser.post("/login", json=ADMIN).status_code == 200
    assert browser.post("/refresh", headers=csrf(browser, "csrf_refresh_token")).status_code == 200  # not fresh now
    path = f"/users/{user.id}"
    assert answer(browser.patch(path, json={"active": False}, headers=csrf(browser)))[1]["code"] == 221
    response = browser.post("/fresh-login", json=ADMIN)
    assert {c.partition("=")[0] for c in response.headers.getlist("Set-Cookie")} == {"access_token_cookie", "csrf_access_token"}
    assert claims(app, {"Authorization": "Bearer " + browser.get_cookie("access_token_cookie").value})["fresh"] is True
    assert browser.patch(path, json={"active": False}, headers=csrf(browser)).status_code == 200


@pytest.mark.since("step08_accounts")
def test_a_password_change_with_cookies_replaces_them_and_ends_the_old_ones(app):
    browser = app.test_client()
    assert browser.post("/login", json=ADMIN).status_code == 200
    old_access = {"Authorization": "Bearer " + browser.get_cookie("access_token_cookie").value}
    change = {"old_password": ADMIN["password"], "new_password": "new-pass"}
    assert answer(browser.put("/users/me/password", json=change))[1]["code"] == 212  # another site's PUT: refused
    response = browser.put("/users/me/password", json=change, headers=csrf(browser))
    assert answer(response) == (200, {"code": 200, "message": "password changed"})
    assert {c.partition("=")[0] for c in response.headers.getlist("Set-Cookie")} >= {"access_token_cookie", "refresh_token_cookie"}
    assert answer(browser.get("/users", headers=old_access)) == (401, {"code": 223, "message": "token ended by a password change"})
    assert browser.get("/users").status_code == 200  # the new cookies work: the browser stays logged in
    assert browser.post("/refresh", headers=csrf(browser, "csrf_refresh_token")).status_code == 200


@pytest.mark.since("step08_accounts")
def test_the_implicit_refresh_keeps_the_role_and_is_not_fresh(make_app):
    app = make_app(IMPLICIT_REFRESH_WITHIN=timedelta(minutes=16))  # every access cookie is renewed at once
    browser = app.test_client()
    assert browser.post("/login", json=ADMIN).status_code == 200
    assert browser.get("/users").status_code == 200
    renewed = claims(app, {"Authorization": "Bearer " + browser.get_cookie("access_token_cookie").value})
    assert (renewed["role"], renewed["token_version"], renewed["fresh"]) == ("admin", 0, False)
    response = browser.put("/users/me/password", json={"old_password": "123456", "new_password": "x"}, headers=csrf(browser))
    assert response.get_json()["code"] == 221  # the renewed cookie is not fresh: no password was typed for it


@needs_redis
@pytest.mark.already_holds  # step07's test, with a Redis that answers: step08's login counts failures there first
@pytest.mark.since("step08_accounts")
def test_production_cookies_are_secure_with_redis(step_package, monkeypatch, tmp_path, redis_prefixes):
    for name, value in {"FLASK_CONFIG": "production", "JWT_SECRET_KEY": TEST_SECRET, **redis_prefixes,
                        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'prod.sqlite'}"}.items():
        monkeypatch.setenv(name, value)
    app = step_package.create_app()
    app.test_cli_runner().invoke(args=["init-db"])
    response = app.test_client().post("/login", json=ADMIN)
    assert response.status_code == 200, response.get_json()
    cookies = response.headers.getlist("Set-Cookie")
    assert len(cookies) == 5 and all("; Secure" in c for c in cookies)  # sent over HTTPS only


@pytest.mark.since("step08_accounts")
def test_a_browser_reads_the_429_of_a_refused_login(make_app):
    """limits.RefuseKnownFull answers a flood's logins before Flask, without CORS headers: a browser's (it sends
    Origin) goes on to Flask, so that the front end can read the 429 and its Retry-After."""
    client = make_app(LOGIN_LIMIT="2 per minute").test_client()
    origin = {"Origin": "http://localhost:8000"}  # one of the development origins (config.DEV_ORIGINS)
    statuses = [client.post("/login", json=WRONG, headers=origin).status_code for _ in range(3)]
    refused = client.post("/login", json=WRONG, headers=origin)
    exposed = refused.headers.get("Access-Control-Expose-Headers", "")
    assert (statuses, answer(refused)[1]["code"]) == ([401, 401, 429], 222)
    assert refused.headers["Access-Control-Allow-Origin"] == origin["Origin"] and "Retry-After" in exposed
