"""Generated bad input, from step04 on: no request a client can send gets a 5xx, a traceback or SQL text (the app in
production mode, where an unhandled error is a 500). What schemathesis cannot send, as the OpenAPI document does not
describe it: other paths and methods, bodies wrong at the byte level, forged tokens (strategies: conftest.py)."""
import urllib.parse

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from conftest import LEAKS, bad_input, forged_tokens, run

B = bad_input()  # the strategies: tests/conftest.py

pytestmark = [pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning"),  # short keys on purpose
              pytest.mark.ends_only]  # seconds a step


@pytest.fixture
def app(make_app, models):  # production mode, and an inactive user (a deleted one's token: test_step04_errors)
    app = make_app(TESTING=False, DEBUG=False)
    with app.app_context():
        models.db.session.execute(models.User.__table__.insert().values(
            username="inactive@gmail.com", password=models.generate_password_hash("123456"), active=False))  # cheap
        models.db.session.commit()
    return app


# One request; its answer: under 500, an envelope, no leak.
def send(client, method, path, headers=None, data=None, content_type=None):
    response = client.open(path, method=method, headers=headers or {}, data=data, content_type=content_type)
    assert response.status_code < 500, (method, path, headers, data, content_type, response.data[:300])
    text = response.get_data(as_text=True)
    assert not any(leak in text for leak in LEAKS), text[:300]
    if method not in ("HEAD", "OPTIONS"):
        body = response.get_json(silent=True)
        assert isinstance(body, dict), (method, path, data, text[:300])
        assert isinstance(body.get("code"), int) and isinstance(body.get("message"), (str, dict)), body
    return response


METHODS = st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "FOO"])
# A path may not start with "//": the test client would read what follows as a host name.
PATHS = st.sampled_from(["/hello", "/login", "/users", "/", "/nope", "/users/1", "/login/", "/login//", "/hello/",
                        "/fresh-login", "/users/2", "/users/me/password", "/users/99999999999999999999"]) \
    | st.builds(lambda path: "/" + urllib.parse.quote(path.encode("utf-8", "surrogatepass"), safe=""), B.TEXT)
QUERIES = st.just("") \
    | st.builds(lambda q: "?name=" + urllib.parse.quote(q.encode("utf-8", "surrogatepass")), B.TEXT | B.NASTY)


@pytest.mark.since("step04_errors")
def test_any_request_to_any_path(client):
    tokens = forged_tokens(client.application)  # the first valid

    @run(400)
    @given(METHODS, PATHS, QUERIES, B.BODIES, B.CONTENT_TYPES, st.none() | B.authorization_values(tokens))
    def check(method, path, query, body, content_type, authorization):
        send(client, method, path + query, headers={} if authorization is None else {"Authorization": authorization},
             data=body if method not in ("GET", "HEAD") else None, content_type=content_type)

    check()


@pytest.mark.since("step04_errors")
def test_login_bodies(client):

    @run(300)
    @given(B.BODIES | st.builds(B.encode_json, B.LOGIN_OBJECTS, st.booleans()), B.CONTENT_TYPES)
    @example(b"[" * 8000 + b"]" * 8000, None)  # deeper than the JSON parser goes: every run tries it
    def check(body, content_type):
        send(client, "POST", "/login", data=body, content_type=content_type or "application/json")

    check()


@pytest.mark.since("step04_errors")
def test_authorization_headers(client):
    tokens = forged_tokens(client.application)

    @run(300)
    @given(B.authorization_values(tokens))
    def check(authorization):
        response = send(client, "GET", "/users", headers={"Authorization": authorization})
        if response.status_code == 200:  # only the admin's own valid token gets through
            assert authorization.split()[-1] == tokens[0], authorization

    check()


@pytest.mark.since("step04_errors")
def test_every_forged_token_is_refused_with_its_envelope(client):
    for token in forged_tokens(client.application)[1:]:
        response = send(client, "GET", "/users", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401, (token, response.get_json())
