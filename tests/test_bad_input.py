"""Generated bad input: from step04 on, no request a client can send gets a 5xx, a traceback or SQL text.

Hypothesis generates the requests and sends them through Flask's test client to the app in production mode (no
debug, no testing), where an unhandled error would be a 500. pytest's summary prints how many requests each step
answered.

tests/test_schemathesis.py generates requests too, from each step's OpenAPI document, and checks them against it.
What is kept here is what schemathesis does not send, because the document does not describe it:
- paths and methods the document does not list (any percent-encoded path; TRACE, FOO ...), with any body;
- bodies that are not what the document says at the byte level: not UTF-8, BOMs, lone surrogates ("\\ud800"),
  NUL characters, JSON nested thousands deep, a body over the size limit, odd Content-Type spellings;
- Authorization headers with tokens an attacker forges: signed with another key, alg "none", HS384/HS512, claims
  of the wrong type, a deleted user's, a refresh token; schemathesis only leaves the token out or garbles it;
- the leak check: no traceback, SQL or driver name in any answer.
"""
import json
import urllib.parse
from datetime import datetime, timedelta, timezone

import jwt
import pytest
from flask_jwt_extended import create_access_token, create_refresh_token
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.security import generate_password_hash

from conftest import ADMIN, BAD_INPUT_CASES, FAST_HASH, another_key, sign_as, signing_key

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")  # short keys on purpose

PRODUCTION = {"TESTING": False, "DEBUG": False}
LEAKS = ("Traceback (most recent call last)", "sqlalchemy", "sqlite3.", "pymysql", "psycopg", 'File "')


def run(examples):
    return settings(
        max_examples=examples, deadline=None, database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


@pytest.fixture
def app(make_app, models):
    """The step in production mode, its users' passwords hashed fast, an inactive user and a doomed one."""
    app = make_app(**PRODUCTION)
    with app.app_context():
        db, User = models.db, models.User
        for name, active in (("inactive@gmail.com", False), ("ghost@gmail.com", True)):
            db.session.execute(User.__table__.insert().values(
                username=name, password=generate_password_hash("123456", method=FAST_HASH), active=active))
        db.session.commit()
    return app


@pytest.fixture
def send(app, step):
    """send(method, path, ...) makes one request and checks the answer: under 500, the envelope, no leak."""
    client = app.test_client()
    counted = BAD_INPUT_CASES.setdefault(step, [0])

    def send(method, path, headers=None, data=None, content_type=None):
        response = client.open(path, method=method, headers=headers or {}, data=data, content_type=content_type)
        counted[0] += 1
        assert response.status_code < 500, (method, path, headers, data, content_type, response.data[:300])
        text = response.get_data(as_text=True)
        assert not any(leak in text for leak in LEAKS), text[:300]
        if method not in ("HEAD", "OPTIONS"):
            body = response.get_json(silent=True)
            assert isinstance(body, dict), (method, path, data, text[:300])
            assert isinstance(body.get("code"), int) and isinstance(body.get("message"), (str, dict)), body
        return response

    return send


# --- what a client can put in a request -------------------------------------------------------------

NASTY = st.sampled_from([
    "", " ", "\x00", "a\x00b", "\ud800", "x\udfffy", "😀", "\u202e", "\n", "\r\n", "\\", "%s", "{}", "'", '"',
    "' OR '1'='1", "admin@gmail.com' --", "'; DROP TABLE user; --", "admin@gmail.com\x00", " admin@gmail.com",
    "ADMIN@GMAIL.COM", "用户名", "x" * 5000, "\ufeffadmin@gmail.com", "admin@gmail.com\n",
])
TEXT = st.text(st.characters() | st.characters(categories=["Cs"]), max_size=60)  # lone surrogates too
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | TEXT | NASTY
JSON_VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
                           max_leaves=12)
USERNAMES = st.sampled_from([ADMIN["username"], "inactive@gmail.com", "ghost@gmail.com"]) | NASTY | TEXT | JSON_VALUES
PASSWORDS = st.sampled_from([ADMIN["password"], "654321"]) | NASTY | TEXT | JSON_VALUES

LOGIN_OBJECTS = st.builds(
    lambda fields, extra: {**extra, **fields},
    st.fixed_dictionaries({}, optional={"username": USERNAMES, "password": PASSWORDS}),
    st.dictionaries(TEXT, JSON_VALUES, max_size=3),
)


def encode_json(value, ascii_only):
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


BODIES = st.one_of(
    st.builds(encode_json, JSON_VALUES | LOGIN_OBJECTS, st.booleans()),
    st.binary(max_size=200),  # not JSON, not even UTF-8
    st.builds(lambda n: b"[" * n + b"]" * n, st.integers(1, 8000)),  # very deep nesting
    st.builds(lambda n: b'{"a":' * n + b"1" + b"}" * n, st.integers(1, 3000)),
    st.just(b'{"username": "admin@gmail.com", "password": "' + b"x" * 20000 + b'"}'),  # over the 16 KiB limit
    st.sampled_from([b"", b"null", b"{", b'{"username": }', b"\xff\xfe{}", b'\xef\xbb\xbf{"username": "a"}']),
)
CONTENT_TYPES = st.sampled_from([
    "application/json", "application/json; charset=utf-8", "application/json; charset=latin-1", "APPLICATION/JSON",
    "application/vnd.api+json", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "", None,
])
METHODS = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "FOO"])
# A path may not start with "//": the test client would read what follows as a host name.
PATHS = st.sampled_from(["/hello", "/login", "/users", "/", "/nope", "/users/1", "/login/", "/login//", "/hello/",
                        "/fresh-login", "/users/2", "/users/me/password", "/users/99999999999999999999"]) | st.builds(  # step08's
    lambda path: "/" + urllib.parse.quote(path.encode("utf-8", "surrogatepass"), safe=""), TEXT)
QUERIES = st.just("") | st.builds(lambda q: "?name=" + urllib.parse.quote(q.encode("utf-8", "surrogatepass")), TEXT | NASTY)


def forged_tokens(app):
    """Every kind of token the issue lists, made once per app (a strategy picks among them)."""
    key, algorithm, _ = signing_key(app)  # JWT_SECRET_KEY and HS256; from step09 on, a private key and EdDSA
    with app.app_context():
        valid = create_access_token(identity=ADMIN["username"])
        claims = jwt.decode(valid, options={"verify_signature": False})
        tokens = [
            valid,
            create_refresh_token(identity=ADMIN["username"]),
            create_access_token(identity=ADMIN["username"], expires_delta=timedelta(seconds=-1)),
            create_access_token(identity="inactive@gmail.com"),
            create_access_token(identity="nobody@gmail.com"),
        ]
    now = int(datetime.now(timezone.utc).timestamp())
    sign = lambda payload, k=key, alg=algorithm: sign_as(app, payload, k, alg)  # noqa: E731
    tokens += [
        sign(claims, another_key(app)),
        sign(claims, None, "none"),
        sign(claims, key if isinstance(key, str) else "k" * 48, "HS384"),
        sign(claims, "k" * 64, "HS512"),
        sign({**claims, "nbf": now + 3600}),
        sign({k: v for k, v in claims.items() if k != "sub"}),
        sign({**claims, "sub": 1}),
        sign({**claims, "sub": ["admin@gmail.com"]}),
        sign({**claims, "sub": None}),
        sign({**claims, "exp": "tomorrow"}),
        valid[:-5],  # truncated
        ".".join(valid.split(".")[:2]),  # two segments
        "!!!." + valid.split(".", 1)[1],  # header not base64
        "eyJub3QiOiAianNvbiJ9Cg." + valid.split(".", 1)[1],  # header base64 but not a JWT header
        "bm90IGpzb24." + valid.split(".", 1)[1],  # header not JSON
        "undefined", "null", "", "a.b.c", "...",
    ]
    with app.app_context():  # the last one: its user is deleted below, after the token was made
        tokens.append(create_access_token(identity="ghost@gmail.com"))
    return tokens


HEADER_TEXT = st.text(st.characters(codec="latin-1", exclude_characters="\r\n"), max_size=80)  # what HTTP can carry


def authorization_values(tokens):
    token = st.sampled_from(tokens) | HEADER_TEXT
    return st.one_of(
        st.builds(lambda t: f"Bearer {t}", token),
        st.sampled_from(["Bearer", "Bearer ", "bearer", "JWT", "Basic YWRtaW46MTIzNDU2", "Token abc", "", " "]),
        st.builds(lambda t, pre, sep: f"{pre}{sep}{t}", token, st.sampled_from(["Bearer", "bearer", "BEARER", "JWT"]),
                  st.sampled_from([" ", "  ", "\t", ""])),
        st.builds(lambda t: f"Bearer {t} {t}", token),
        st.builds(lambda n: "Bearer " + "a" * n, st.integers(1000, 12000)),  # very long
    )


@pytest.fixture
def tokens(app, models):
    """The forged tokens; the first is the admin's valid one. ghost@gmail.com is deleted once its token exists."""
    made = forged_tokens(app)
    with app.app_context():
        models.db.session.execute(models.db.delete(models.User).filter_by(username="ghost@gmail.com"))
        models.db.session.commit()
    return made


# --- the generated tests ----------------------------------------------------------------------------


@pytest.mark.since("step04_errors")
def test_any_request_to_any_path(send, tokens):

    @run(400)
    @given(METHODS, PATHS, QUERIES, BODIES, CONTENT_TYPES, st.none() | authorization_values(tokens))
    def check(method, path, query, body, content_type, authorization):
        headers = {"Authorization": authorization} if authorization is not None else {}
        send(method, path + query, headers=headers, data=body if method not in ("GET", "HEAD") else None,
             content_type=content_type)

    check()


@pytest.mark.since("step04_errors")
def test_login_bodies(send):

    @run(300)
    @given(BODIES | st.builds(encode_json, LOGIN_OBJECTS, st.booleans()), CONTENT_TYPES)
    def check(body, content_type):
        send("POST", "/login", data=body, content_type=content_type or "application/json")

    check()


@pytest.mark.since("step04_errors")
def test_authorization_headers(send, tokens):

    @run(300)
    @given(authorization_values(tokens))
    def check(authorization):
        response = send("GET", "/users", headers={"Authorization": authorization})
        if response.status_code == 200:  # only the admin's own valid token gets through
            assert authorization.split()[-1] == tokens[0], authorization

    check()


@pytest.mark.since("step04_errors")
def test_every_forged_token_is_refused_with_its_envelope(send, tokens):
    for token in tokens[1:]:
        response = send("GET", "/users", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, (token, response.get_json())
