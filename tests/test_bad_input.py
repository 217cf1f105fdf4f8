"""Generated bad input: from step04 on, no request a client can send gets a 5xx, a traceback or SQL text.

Hypothesis sends the requests through Flask's test client to the app in production mode, where an unhandled error
would be a 500 (strategies: tests/conftest.py; a learner's run sends a quarter of CI's examples). Kept here is what
schemathesis (tests/test_schemathesis.py) does not send, as the OpenAPI document does not describe it: paths and
methods it does not list; bodies wrong at the byte level (not UTF-8, BOMs, lone surrogates, NULs, JSON nested thousands
deep, over the size limit, odd Content-Types); tokens an attacker forges (another key, alg "none", HS384/HS512, claims
of the wrong type, a deleted user's, a refresh token); and no traceback, SQL or driver name in any answer.
"""
import urllib.parse

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from werkzeug.security import generate_password_hash

from conftest import FAST_HASH, LEAKS, bad_input, forged_tokens, run

B = bad_input()  # the strategies: tests/conftest.py

pytestmark = [pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"),  # short keys on purpose
              pytest.mark.ends_only]  # seconds a step


@pytest.fixture
def app(make_app, models):
    """The step in production mode, an inactive user and a doomed one (passwords hashed fast)."""
    app = make_app(TESTING=False, DEBUG=False)
    with app.app_context():
        for name, active in (("inactive@gmail.com", False), ("ghost@gmail.com", True)):
            models.db.session.execute(models.User.__table__.insert().values(
                username=name, password=generate_password_hash("123456", method=FAST_HASH), active=active))
        models.db.session.commit()
    return app


@pytest.fixture
def send(app):
    """send(method, path, ...) makes one request and checks the answer: under 500, the envelope, no leak."""
    client = app.test_client()

    def send(method, path, headers=None, data=None, content_type=None):
        response = client.open(path, method=method, headers=headers or {}, data=data, content_type=content_type)
        assert response.status_code < 500, (method, path, headers, data, content_type, response.data[:300])
        text = response.get_data(as_text=True)
        assert not any(leak in text for leak in LEAKS), text[:300]
        if method not in ("HEAD", "OPTIONS"):
            body = response.get_json(silent=True)
            assert isinstance(body, dict), (method, path, data, text[:300])
            assert isinstance(body.get("code"), int) and isinstance(body.get("message"), (str, dict)), body
        return response

    return send


METHODS = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "FOO"])
# A path may not start with "//": the test client would read what follows as a host name.
PATHS = st.sampled_from(["/hello", "/login", "/users", "/", "/nope", "/users/1", "/login/", "/login//", "/hello/",
                        "/fresh-login", "/users/2", "/users/me/password", "/users/99999999999999999999"]) \
    | st.builds(lambda path: "/" + urllib.parse.quote(path.encode("utf-8", "surrogatepass"), safe=""), B.TEXT)
QUERIES = st.just("") \
    | st.builds(lambda q: "?name=" + urllib.parse.quote(q.encode("utf-8", "surrogatepass")), B.TEXT | B.NASTY)


@pytest.fixture
def tokens(app, models):  # the forged tokens, the first valid; ghost@gmail.com deleted once its token exists
    made = forged_tokens(app)
    with app.app_context():
        models.db.session.execute(models.db.delete(models.User).filter_by(username="ghost@gmail.com"))
        models.db.session.commit()
    return made


@pytest.mark.since("step04_errors")
def test_any_request_to_any_path(send, tokens):

    @run(400)
    @given(METHODS, PATHS, QUERIES, B.BODIES, B.CONTENT_TYPES, st.none() | B.authorization_values(tokens))
    def check(method, path, query, body, content_type, authorization):
        send(method, path + query, headers={"Authorization": authorization} if authorization is not None else {},
             data=body if method not in ("GET", "HEAD") else None, content_type=content_type)

    check()


@pytest.mark.since("step04_errors")
def test_login_bodies(send):

    @run(300)
    @given(B.BODIES | st.builds(B.encode_json, B.LOGIN_OBJECTS, st.booleans()), B.CONTENT_TYPES)
    @example(b"[" * 8000 + b"]" * 8000, None)  # deeper than the JSON parser goes: every run tries it
    def check(body, content_type):
        send("POST", "/login", data=body, content_type=content_type or "application/json")

    check()


@pytest.mark.since("step04_errors")
def test_authorization_headers(send, tokens):

    @run(300)
    @given(B.authorization_values(tokens))
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
