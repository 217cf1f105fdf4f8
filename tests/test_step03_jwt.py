"""step03_jwt: login issues an access token; /users requires it. Library defaults for errors."""
import jwt
import pytest
from flask_jwt_extended import create_access_token, decode_token, jwt_required
from flask_jwt_extended.exceptions import JWTExtendedException
from flask_restful import Api, Resource

from conftest import ADMIN
from tutorial.live import LiveServer, issued_tokens

INTERNAL_ERROR = {"message": "Internal Server Error"}  # flask-restful's answer to an unhandled error
TOKEN_ERRORS = (JWTExtendedException, jwt.exceptions.PyJWTError)  # how the library reports a token problem


# (Authorization header, status and body flask-jwt-extended answers when its errors reach Flask)
TOKEN_PROBLEMS = [
    ({}, 401, {"msg": "Missing Authorization Header"}),
    ({"Authorization": "Bearer abc"}, 422, {"msg": "Not enough segments"}),
    ({"Authorization": "JWT abc"}, 401, {"msg": "Missing 'Bearer' type in 'Authorization' header. Expected 'Authorization: Bearer <JWT>'"}),
]


@pytest.mark.since("step03_jwt")
@pytest.mark.databases
def test_login_returns_a_signed_access_token(app, client):
    response = client.post("/login", json=ADMIN)
    body = response.get_json()
    assert (body["code"], body["userid"]) == (200, 1)
    token, _ = issued_tokens(body, response.headers.getlist("Set-Cookie"))  # in the body, or a cookie (step07 on)
    header = jwt.get_unverified_header(token)
    assert (header["alg"], header["typ"]) == (app.config["JWT_ALGORITHM"], "JWT")  # HS256 (EdDSA from step09)
    with app.app_context():
        claims = decode_token(token)  # checked with the app's own key
    assert claims["sub"] == ADMIN["username"]
    assert claims["type"] == "access"
    assert claims["jti"]  # a unique id per token: what a blocklist keys on (step06)
    lifetime = app.config["JWT_ACCESS_TOKEN_EXPIRES"]
    assert claims["exp"] - claims["iat"] == lifetime.total_seconds()


@pytest.mark.since("step03_jwt")
def test_token_signed_with_another_key_is_refused(client):
    forged = jwt.encode({"sub": ADMIN["username"], "type": "access"}, "another-key-" * 4, algorithm="HS256")
    response = client.get("/users", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code in (401, 422)
    assert "users" not in response.get_json()


@pytest.mark.since("step03_jwt")
def test_users_with_a_token_says_who_is_asking(client, auth):
    response = client.get("/users", headers=auth)
    assert response.status_code == 200
    assert response.get_json()["identity"] == ADMIN["username"]


@pytest.mark.since("step03_jwt")
@pytest.mark.databases
@pytest.mark.parametrize("change", ["deactivate", "delete"])
def test_token_stops_working_when_its_user_is_deactivated_or_deleted(app, models, client, auth, change):
    assert client.get("/users", headers=auth).status_code == 200
    with app.app_context():
        admin = models.db.select(models.User).filter_by(username=ADMIN["username"])
        user = models.db.session.execute(admin).scalar_one()
        if change == "deactivate":
            user.active = False
        else:
            models.db.session.delete(user)
        models.db.session.commit()
    response = client.get("/users", headers=auth)  # the same, still unexpired, token
    assert response.status_code == 401
    assert "users" not in response.get_json()


@pytest.mark.parametrize("headers, status, body", TOKEN_PROBLEMS)
@pytest.mark.parametrize("mode", [{"TESTING": True}, {"TESTING": False, "DEBUG": True}], ids=["testing", "debug"])
def test_token_problems_reach_the_library_under_debug_or_tests(make_app, mode, headers, status, body):
    client = make_app(**mode).test_client()
    response = client.get("/users", headers=headers)
    assert (response.status_code, response.get_json()) == (status, body)


@pytest.mark.parametrize("headers, status, body", TOKEN_PROBLEMS)
def test_without_debug_every_token_problem_is_a_500(make_app, get_with_error, headers, status, body):
    """flask-restful's error handler swallows the library's errors (flask-restful #796): step04 fixes it."""
    status, answer, error = get_with_error(make_app(TESTING=False, DEBUG=False), "/users", headers)
    assert (status, answer) == (500, INTERNAL_ERROR)
    assert isinstance(error, TOKEN_ERRORS), f"the 500 comes from {error!r}, not from the token"


def test_flask_run_with_and_without_debug(step, database_uri):
    """What a learner sees: the same request, 401 under `flask run --debug`, 500 without (the server is the lesson)."""
    with LiveServer(step, database_uri, "--debug") as debug, LiveServer(step, database_uri) as production:
        assert debug.request("GET", "/users") == (401, {"msg": "Missing Authorization Header"})
        assert production.request("GET", "/users") == (500, INTERNAL_ERROR)


@pytest.mark.since("step03_jwt")
def test_cors_preflight_for_users_allows_the_authorization_header(client):
    assert client.get("/users").status_code == 401  # /users refuses a request without a token ...
    response = client.options(
        "/users",
        headers={
            "Origin": "http://localhost:8000",
            "Access-Control-Request-Method": "GET",
            "Access-Control-Request-Headers": "Authorization",
        },
    )
    assert response.status_code == 200  # ... but not the preflight, which never carries one
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()


@pytest.mark.since("step03_jwt")
def test_refusal_carries_cors_header_so_the_front_end_can_read_it(client):
    response = client.get("/users", headers={"Origin": "http://localhost:8000"})
    assert response.status_code == 401
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:8000"


# What a learner copying the article's 3.x code meets on 4.x -------------------------------------


def test_bare_jwt_required_checks_nothing_and_crashes(app):
    class Article(Resource):
        @jwt_required  # the article's 3.x spelling
        def get(self):
            return {"code": 200}

    Api(app).add_resource(Article, "/article")
    client = app.test_client()
    assert client.get("/users").status_code == 401  # the step's own @jwt_required() checks the token ...
    with pytest.raises(TypeError, match="not JSON serializable"):
        client.get("/article")  # ... the bare one nothing: no token at all, and no 401 either


def test_integer_identity_is_refused(app, client):
    with app.app_context():
        token = create_access_token(identity=1)  # the user's id, as many 3.x examples did
    response = client.get("/users", headers={"Authorization": f"Bearer {token}"})
    assert (response.status_code, response.get_json()) == (422, {"msg": "Subject must be a string"})


def test_article_secret_is_too_short_for_hs256(make_app):
    app = make_app(JWT_SECRET_KEY="jwt-key")  # the article's 7-byte key
    with app.app_context(), pytest.warns(jwt.warnings.InsecureKeyLengthWarning):
        create_access_token(identity=ADMIN["username"])
