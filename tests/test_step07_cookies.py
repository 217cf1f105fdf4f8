"""step07_cookies: tokens in HttpOnly cookies, the article's CSRF settings made real, implicit refresh, a logout
that clears every cookie, CORS with credentials. The browser half (Chromium, a hostile page) is in
tests/test_browser.py; here the Flask test client, which keeps cookies as a browser does.
"""
import re
from datetime import timedelta

import jwt
import pytest
from flask import Flask
from flask_cors import CORS
from flask_jwt_extended import create_access_token, decode_token

from conftest import ADMIN, TEST_SECRET

JWT_COOKIES = ("access_token_cookie", "refresh_token_cookie")
ALL_COOKIES = {("access_token_cookie", "/"), ("csrf_access_token", "/"), ("refresh_token_cookie", "/refresh"),
               ("refresh_token_cookie", "/logout"), ("csrf_refresh_token", "/")}
MISSING = (401, {"code": 212, "message": "CSRF token missing"})
MISMATCH = (401, {"code": 213, "message": "CSRF tokens do not match"})
REVOKED = (401, {"code": 211, "message": "token revoked"})


def set_cookies(response):
    """{(name, path): {"value": ..., "httponly": bool, "secure": bool, "samesite": ..., "expires": ...}}"""
    cookies = {}
    for header in response.headers.getlist("Set-Cookie"):
        first, *attributes = header.split("; ")
        name, _, value = first.partition("=")
        parts = dict(a.partition("=")[::2] for a in attributes)
        cookies[(name, parts.get("Path", "/"))] = {
            "value": value, "httponly": "HttpOnly" in parts, "secure": "Secure" in parts,
            "samesite": parts.get("SameSite"), "expires": parts.get("Expires"), "domain": parts.get("Domain")}
    return cookies


def cookie(client, name, path="/"):
    found = client.get_cookie(name, path=path)
    return found.value if found else None


def answer(response):
    return response.status_code, response.get_json()


def login(client):
    response = client.post("/login", json=ADMIN)
    assert response.status_code == 200, response.get_json()
    return response


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


# Login: four cookies, no token in the body ------------------------------------------------------------


@pytest.mark.since("step07_cookies")
@pytest.mark.databases
def test_login_sets_the_cookies_and_no_token_in_the_body(app, client):
    response = login(client)
    assert response.get_json() == {"code": 200, "message": "success", "userid": 1}  # nothing a script could steal
    cookies = set_cookies(response)
    assert set(cookies) == ALL_COOKIES
    for (name, path), attributes in cookies.items():
        assert attributes["httponly"] is (name in JWT_COOKIES), name  # the JWTs: never readable by script
        assert (attributes["samesite"], attributes["secure"]) == ("Lax", False), name  # Secure: production only
    with app.app_context():
        access = decode_token(cookies[("access_token_cookie", "/")]["value"])
        refresh = decode_token(cookies[("refresh_token_cookie", "/refresh")]["value"])
    assert (access["type"], refresh["type"], access["sub"]) == ("access", "refresh", ADMIN["username"])
    assert cookies[("refresh_token_cookie", "/logout")]["value"] == cookies[("refresh_token_cookie", "/refresh")]["value"]
    # The double-submit values: the readable cookies equal the tokens' csrf claims.
    assert cookies[("csrf_access_token", "/")]["value"] == access["csrf"]
    assert cookies[("csrf_refresh_token", "/")]["value"] == refresh["csrf"]


@pytest.mark.since("step07_cookies")
@pytest.mark.parametrize("credentials, active, status, code, message", [
    ({**ADMIN, "password": "654321"}, True, 401, 202, "wrong password"),
    ({**ADMIN, "username": "nobody@gmail.com"}, True, 401, 201, "user not exist"),
    (ADMIN, False, 403, 208, "user inactive"),
])
def test_refused_logins_keep_the_article_codes_and_set_no_cookie(app, client, models, credentials, active, status, code, message):
    if not active:
        with app.app_context():
            models.db.session.execute(models.db.update(models.User).values(active=False))
            models.db.session.commit()
    response = client.post("/login", json=credentials)
    assert answer(response) == (status, {"code": code, "message": message, "userid": None})
    assert response.headers.getlist("Set-Cookie") == []


@pytest.mark.since("step07_cookies", until="step07_cookies")  # step08's login needs Redis: test_step08_accounts.py
def test_production_cookies_are_secure(step_package, monkeypatch, tmp_path):
    for name, value in {"FLASK_CONFIG": "production", "JWT_SECRET_KEY": TEST_SECRET, "REDIS_URL": "redis://127.0.0.1:1/0",
                        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'prod.sqlite'}"}.items():
        monkeypatch.setenv(name, value)
    app = step_package.create_app()
    app.test_cli_runner().invoke(args=["init-db"])
    cookies = set_cookies(app.test_client().post("/login", json=ADMIN))
    assert set(cookies) == ALL_COOKIES and all(c["secure"] for c in cookies.values())  # sent over HTTPS only


@pytest.mark.since("step07_cookies")
@pytest.mark.parametrize("same_site, secure", [("Strict", False), ("None", True)])
def test_same_site_comes_from_the_environment(make_app, same_site, secure):
    client = make_app(JWT_COOKIE_SAMESITE=same_site, JWT_COOKIE_SECURE=secure).test_client()
    cookies = set_cookies(login(client))
    assert {(c["samesite"], c["secure"]) for c in cookies.values()} == {(same_site, secure)}


# The cookie authenticates; POSTs need the CSRF header -------------------------------------------------


@pytest.mark.since("step07_cookies")
def test_the_access_cookie_lets_get_users_through_without_csrf(client):
    login(client)
    status, body = answer(client.get("/users"))  # GET changes nothing: no CSRF value needed
    assert (status, body["identity"]) == (200, ADMIN["username"])


@pytest.mark.since("step07_cookies")
@pytest.mark.parametrize("path, csrf_cookie", [("/refresh", "csrf_refresh_token"), ("/logout", "csrf_access_token")])
@pytest.mark.parametrize("send, expected", [
    ("nothing", MISSING),
    ("wrong header", MISMATCH),
    ("the other csrf cookie", MISMATCH),  # access and refresh each have their own value
    ("json field", MISSING),  # JWT_CSRF_CHECK_FORM reads form fields, never a JSON body
    ("form field", 200),  # JWT_CSRF_CHECK_FORM: a plain HTML form's csrf_token field
    ("header", 200),
])
def test_a_cookie_post_needs_the_csrf_value(client, path, csrf_cookie, send, expected):
    login(client)
    value = cookie(client, csrf_cookie)
    other = cookie(client, "csrf_access_token" if csrf_cookie == "csrf_refresh_token" else "csrf_refresh_token")
    request = {
        "nothing": {}, "wrong header": {"headers": {"X-CSRF-TOKEN": "not-the-value"}},
        "the other csrf cookie": {"headers": {"X-CSRF-TOKEN": other}}, "json field": {"json": {"csrf_token": value}},
        "form field": {"data": {"csrf_token": value}}, "header": {"headers": {"X-CSRF-TOKEN": value}},
    }[send]
    status, body = answer(client.post(path, **request))
    if expected == 200:
        assert (status, body["code"]) == (200, 200)
    else:
        assert (status, body) == expected
        assert client.get("/users").status_code == 200  # a refused POST changed nothing


@pytest.mark.since("step07_cookies")
def test_the_csrf_cookie_is_never_the_token(client):
    login(client)  # #157: the readable cookie is a random value, not a credential
    assert cookie(client, "csrf_access_token")
    assert answer(client.get("/users", headers=bearer(cookie(client, "csrf_access_token")))) == (
        401, {"code": 204, "message": "invalid token"})


@pytest.mark.already_holds
@pytest.mark.since("step07_cookies")
def test_a_bearer_header_needs_no_csrf_and_wins_over_cookies(make_app, auth):
    """A browser never adds an Authorization header by itself, so another site cannot forge one: no CSRF check.
    When a client sends both, the header is the token used."""
    client = make_app().test_client()
    client.post("/login", json=ADMIN)  # the cookie jar holds this login's tokens
    assert answer(client.post("/logout", headers=auth)) == (200, {"code": 200, "message": "access token revoked"})
    assert answer(client.get("/users", headers=auth)) == REVOKED  # the header's token was revoked ...
    assert client.get("/users").get_json()["code"] in (200, 203)  # ... not the cookie's (200 from step07 on; none before)


@pytest.mark.since("step07_cookies")
def test_csrf_protection_off_is_the_wrong_way(make_app, caplog):
    client = make_app(JWT_COOKIE_CSRF_PROTECT=False).test_client()
    assert "JWT_COOKIE_CSRF_PROTECT is off" in caplog.text
    login(client)
    assert answer(client.post("/logout")) == (200, {"code": 200, "message": "logged out"})  # anyone's page could do this


# A front end on another site: the CSRF values in the body -------------------------------------------


@pytest.mark.since("step07_cookies")
def test_csrf_values_in_the_body_for_a_front_end_on_another_site(make_app):
    client = make_app(JWT_CSRF_IN_COOKIES=False).test_client()
    response = login(client)
    body = response.get_json()
    assert set(body) == {"code", "message", "userid", "csrf_access_token", "csrf_refresh_token"}
    assert {name for name, _ in set_cookies(response)} == set(JWT_COOKIES)  # no csrf_* cookie to read
    assert answer(client.post("/refresh"))[1]["code"] == 212
    status, refreshed = answer(client.post("/refresh", headers={"X-CSRF-TOKEN": body["csrf_refresh_token"]}))
    assert (status, set(refreshed)) == (200, {"code", "message", "csrf_access_token"})  # the new access token's
    assert answer(client.post("/logout", headers={"X-CSRF-TOKEN": body["csrf_access_token"]}))[1]["code"] == 213
    assert answer(client.post("/logout", headers={"X-CSRF-TOKEN": refreshed["csrf_access_token"]}))[0] == 200


# Refresh: explicit, and implicit --------------------------------------------------------------------


@pytest.mark.since("step07_cookies")
def test_refresh_sets_a_new_access_cookie(app, client):
    login(client)
    old = cookie(client, "access_token_cookie")
    response = client.post("/refresh", headers={"X-CSRF-TOKEN": cookie(client, "csrf_refresh_token")})
    assert answer(response) == (200, {"code": 200, "message": "success"})
    assert {name for name, _ in set_cookies(response)} == {"access_token_cookie", "csrf_access_token"}
    new = cookie(client, "access_token_cookie")
    with app.app_context():
        assert decode_token(new)["type"] == "access" and decode_token(new)["jti"] != decode_token(old)["jti"]
    assert client.get("/users").status_code == 200


@pytest.mark.since("step07_cookies")
def test_an_access_cookie_close_to_expiry_is_renewed_on_the_way_out(make_app):
    client = make_app(IMPLICIT_REFRESH_WITHIN=timedelta(minutes=16)).test_client()  # longer than its 15 minutes
    login(client)
    old = cookie(client, "access_token_cookie")
    response = client.get("/users")
    assert response.status_code == 200
    assert {name for name, _ in set_cookies(response)} == {"access_token_cookie", "csrf_access_token"}
    assert cookie(client, "access_token_cookie") != old
    # The hook acts only on a request that verified an access cookie (#462, #442):
    assert set_cookies(client.get("/hello")) == {}  # no token checked
    assert set_cookies(client.get("/users", headers=bearer(old))) == {}  # a header token: the client's business
    client.delete_cookie("access_token_cookie")
    assert set_cookies(client.get("/users")) == {}  # refused (203): nothing renewed


@pytest.mark.since("step07_cookies")
def test_no_implicit_refresh_far_from_expiry(client):
    login(client)
    response = client.get("/users")
    assert response.status_code == 200  # authenticated by the access cookie
    assert set_cookies(response) == {}  # 15 minutes left, more than the 5 of IMPLICIT_REFRESH_WITHIN


# Logout: both tokens revoked, every cookie unset ------------------------------------------------------


def unset(response):
    return {key for key, c in set_cookies(response).items() if c["value"] == "" and "1970" in (c["expires"] or "")}


@pytest.mark.since("step07_cookies")
@pytest.mark.parametrize("expired", [False, True])
def test_logout_revokes_both_tokens_and_unsets_every_cookie(app, client, expired):
    """Also when the access cookie has expired already (#134, #528): logout must not need a valid one."""
    login(client)
    if expired:  # what a tab left open past the access token's 15 minutes holds
        with app.app_context():
            stale = create_access_token(identity=ADMIN["username"], expires_delta=timedelta(seconds=-1))
        client.set_cookie("access_token_cookie", stale)
        client.set_cookie("csrf_access_token", jwt.decode(stale, options={"verify_signature": False})["csrf"])
        assert answer(client.get("/users")) == (401, {"code": 201, "message": "token expired"})
    access, refresh = cookie(client, "access_token_cookie"), cookie(client, "refresh_token_cookie", "/refresh")
    response = client.post("/logout", headers={"X-CSRF-TOKEN": cookie(client, "csrf_access_token")})
    assert answer(response) == (200, {"code": 200, "message": "logged out"})
    assert unset(response) == ALL_COOKIES  # each with the path it was set with (#295)
    assert client.get_cookie("access_token_cookie") is None and client.get_cookie("csrf_refresh_token") is None
    assert answer(client.post("/refresh", headers=bearer(refresh))) == REVOKED  # a copy of it is useless now
    if not expired:
        assert answer(client.get("/users", headers=bearer(access))) == REVOKED


@pytest.mark.since("step07_cookies")
def test_logout_with_only_the_refresh_cookie_checks_its_csrf_value(client):
    login(client)
    client.delete_cookie("access_token_cookie")  # say, a stale tab
    assert answer(client.post("/logout", headers={"X-CSRF-TOKEN": cookie(client, "csrf_access_token")})) == MISMATCH
    response = client.post("/logout", headers={"X-CSRF-TOKEN": cookie(client, "csrf_refresh_token")})
    assert response.status_code == 200 and unset(response) == ALL_COOKIES


@pytest.mark.since("step07_cookies")
def test_a_refused_logout_changes_nothing(client):
    login(client)
    response = client.post("/logout")  # another page's request, without the CSRF value
    assert answer(response) == MISSING and response.headers.getlist("Set-Cookie") == []
    assert client.get("/users").status_code == 200


# CORS: credentials for the listed origins only --------------------------------------------------------


def preflight(client, origin, path="/logout"):
    return client.options(path, headers={"Origin": origin, "Access-Control-Request-Method": "POST",
                                         "Access-Control-Request-Headers": "content-type, x-csrf-token"})


@pytest.mark.since("step07_cookies")
def test_cors_with_credentials_only_for_the_listed_origins(make_app):
    client = make_app(CORS_ORIGINS=["http://localhost:8000"]).test_client()
    allowed = preflight(client, "http://localhost:8000").headers
    assert allowed["Access-Control-Allow-Origin"] == "http://localhost:8000"
    assert allowed["Access-Control-Allow-Credentials"] == "true"  # the browser may send cookies, and read the answer
    assert "x-csrf-token" in allowed["Access-Control-Allow-Headers"].lower()
    assert "Access-Control-Allow-Origin" not in preflight(client, "https://evil.example").headers

    # flask-cors's default origins ("*") with credentials: every Origin is echoed back, with credentials allowed.
    wrong = Flask("wrong")
    CORS(wrong, supports_credentials=True)
    echoed = preflight(wrong.test_client(), "https://evil.example").headers
    assert (echoed["Access-Control-Allow-Origin"], echoed["Access-Control-Allow-Credentials"]) == (
        "https://evil.example", "true")


@pytest.mark.since("step07_cookies")
@pytest.mark.parametrize("variables, message", [
    ({"CORS_ORIGINS": "*"}, "CORS_ORIGINS cannot be * when cookies are sent"),
    ({"CORS_ORIGINS": "http://localhost:8000, *"}, "CORS_ORIGINS cannot be * when cookies are sent"),
    ({"JWT_COOKIE_SAMESITE": "None"}, "JWT_COOKIE_SAMESITE=None needs JWT_COOKIE_SECURE=true"),
    ({"JWT_COOKIE_SAMESITE": "lax"}, "JWT_COOKIE_SAMESITE must be Lax, Strict or None, not 'lax'"),
    ({"JWT_COOKIE_SECURE": "maybe"}, "JWT_COOKIE_SECURE must be true or false, not 'maybe'"),
    ({"FLASK_CONFIG": "production", "REDIS_URL": "redis://127.0.0.1:1/0", "JWT_COOKIE_CSRF_PROTECT": "false"},
     "JWT_COOKIE_CSRF_PROTECT must be on in production"),
    ({"FLASK_CONFIG": "production", "REDIS_URL": "redis://127.0.0.1:1/0", "JWT_COOKIE_SECURE": "false"},
     "JWT_COOKIE_SECURE must be on in production"),
])
def test_cookie_settings_are_checked_at_start_up(step_package, monkeypatch, tmp_path, variables, message):
    monkeypatch.setenv("SQLALCHEMY_DATABASE_URI", f"sqlite:///{tmp_path / 'env.sqlite'}")
    monkeypatch.setenv("JWT_SECRET_KEY", TEST_SECRET)
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(step_package.config.ConfigError, match=re.escape(message)):
        step_package.create_app()


# flask-cors reads an entry with * ? [ ( ^ $ or \ as a regular expression, matched at the start of the Origin only:
# ".*" would echo back every origin, with credentials; "https://app\.example\.com" also https://app.example.com.evil.net.
@pytest.mark.since("step07_cookies")
@pytest.mark.parametrize("origins", [".*", "https?://.*", "http://.*", ".+", "http://localhost:8000, .*", r"https://app\.example\.com",
                                     "null", "http://localhost:8000/", "localhost:8000"])
def test_cors_origins_must_be_listed_exactly(step_package, monkeypatch, tmp_path, origins):
    monkeypatch.setenv("SQLALCHEMY_DATABASE_URI", f"sqlite:///{tmp_path / 'env.sqlite'}")
    monkeypatch.setenv("JWT_SECRET_KEY", TEST_SECRET)
    monkeypatch.setenv("CORS_ORIGINS", origins)
    with pytest.raises(step_package.config.ConfigError, match=r"^CORS_ORIGINS must list each front end's origin exactly"):
        step_package.create_app()
