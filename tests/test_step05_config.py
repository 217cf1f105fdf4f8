"""step05_config: settings from the environment (and .env), the article's three bugs, start-up checks."""
import os
import secrets
from pathlib import Path

import jwt
import pytest
import sqlalchemy
from flask_jwt_extended import create_access_token, decode_token

from conftest import ADMIN, ROOT
from tutorial.live import CONFIG_VARIABLES, AppServer, build_app, flask_cli, post_for_tokens, run_flask

KEY = secrets.token_hex(32)  # 64 hex characters, as the README tells production to use


@pytest.fixture
def env(monkeypatch, tmp_path):
    """Set environment variables for the app made by create_app(); its database lives in tmp_path."""
    monkeypatch.setenv("SQLALCHEMY_DATABASE_URI", f"sqlite:///{tmp_path / 'env.sqlite'}")
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:6379/0")  # step06 on, production needs it; nothing here connects

    def setenv(**variables):
        for name, value in variables.items():
            monkeypatch.setenv(name, value)

    return setenv


# Bug 1: DEBUG = os.environ.get('FLASK_DEBUG') or True -------------------------------------------


@pytest.mark.since("step05_config")
@pytest.mark.already_holds  # Flask reads FLASK_DEBUG right; the article's config broke it, and this one must not
@pytest.mark.parametrize(
    "value, debug",
    [("0", False), ("false", False), ("False", False), ("no", False), ("", False),
     ("1", True), ("true", True), ("yes", True)],
)
def test_flask_debug_means_what_it_says(step_package, env, value, debug):
    env(FLASK_DEBUG=value)
    assert bool(os.environ.get("FLASK_DEBUG") or True) is True  # the article's line: always on
    assert step_package.create_app().debug is debug


# Bug 2: JWT_ACCESS_TOKEN_EXPIRES from the environment is a string -------------------------------


@pytest.mark.since("step05_config")
@pytest.mark.already_holds  # the library's behaviour, shown; test_token_lifetime_is_read_as_seconds is the fix
def test_token_lifetime_as_a_string_fails_at_the_first_login(make_app):
    app = make_app(JWT_ACCESS_TOKEN_EXPIRES="3600")  # what os.environ.get gives the article's config
    with app.app_context(), pytest.raises(RuntimeError, match="JWT_ACCESS_TOKEN_EXPIRES"):
        create_access_token(identity=ADMIN["username"])


@pytest.mark.since("step05_config")
def test_token_lifetime_is_read_as_seconds(step_package, env):
    env(JWT_ACCESS_TOKEN_EXPIRES="3600")
    app = step_package.create_app()
    with app.app_context():
        claims = decode_token(create_access_token(identity="a"))
    assert claims["exp"] - claims["iat"] == 3600


# Start-up refuses what would fail later, naming the variable ---------------------------------------


@pytest.mark.since("step05_config")
@pytest.mark.parametrize(
    "variables, named",
    [
        ({"JWT_ACCESS_TOKEN_EXPIRES": "abc"}, "JWT_ACCESS_TOKEN_EXPIRES"),
        ({"JWT_ACCESS_TOKEN_EXPIRES": "-5"}, "JWT_ACCESS_TOKEN_EXPIRES"),
        ({"JWT_ACCESS_TOKEN_EXPIRES": "0"}, "JWT_ACCESS_TOKEN_EXPIRES"),
        ({"JWT_ACCESS_TOKEN_EXPIRES": "1.5"}, "JWT_ACCESS_TOKEN_EXPIRES"),
        ({"DATABASE_TIMEOUT": "soon"}, "DATABASE_TIMEOUT"),
        ({"DATABASE_TIMEOUT": "0"}, "DATABASE_TIMEOUT"),  # 0 would mean: wait forever
        ({"FLASK_CONFIG": "prod"}, "FLASK_CONFIG"),
        ({"FLASK_CONFIG": "production"}, "JWT_SECRET_KEY"),  # Bug 3: no fallback key in production
        ({"FLASK_CONFIG": "production", "JWT_SECRET_KEY": "jwt-key"}, "JWT_SECRET_KEY"),  # the article's
        ({"FLASK_CONFIG": "testing", "JWT_SECRET_KEY": "jwt-key"}, "JWT_SECRET_KEY"),
        ({"FLASK_CONFIG": "production", "JWT_SECRET_KEY": KEY, "FLASK_DEBUG": "1"}, "FLASK_DEBUG"),
    ],
)
def test_bad_settings_stop_start_up_naming_the_variable(step_package, env, variables, named):
    env(**variables)
    with pytest.raises(step_package.config.ConfigError, match=named):
        step_package.create_app()


# step06 on: test_production_without_redis_url_is_one_line runs the same command line, one setting further
@pytest.mark.since("step05_config", until="step05_config")
@pytest.mark.ends_only  # a flask process
def test_the_flask_command_says_it_in_one_line(step):
    done = run_flask(step, None, "init-db", env={"FLASK_CONFIG": "production"})
    assert done.returncode == 1
    assert done.stderr.startswith("Error: JWT_SECRET_KEY must be set")
    assert len(done.stderr.strip().splitlines()) == 1  # no traceback


@pytest.mark.since("step05_config")
@pytest.mark.parametrize("name, testing", [("development", False), ("testing", True), ("production", False)])
def test_flask_config_chooses_the_variant(step_package, env, name, testing):
    env(FLASK_CONFIG=name, JWT_SECRET_KEY=KEY)
    app = step_package.create_app()
    assert (app.config["CONFIG_NAME"], app.testing, app.debug) == (name, testing, False)


@pytest.mark.since("step05_config", until="step08_accounts")  # step09 signs with key pairs: the secret signs nothing
def test_development_without_a_key_warns_and_uses_the_placeholder(step_package, env, caplog):
    app = step_package.create_app()
    assert app.config["JWT_SECRET_KEY"] == step_package.config.DEV_SECRET_KEY
    assert len(app.config["JWT_SECRET_KEY"].encode()) >= 32  # no InsecureKeyLengthWarning, unlike 'jwt-key'
    assert "JWT_SECRET_KEY is not set" in caplog.text


# What the running app uses is what the environment says -------------------------------------------


def test_production_server_uses_the_database_and_key_from_the_environment(step, step_package, env, tmp_path):
    db_file = tmp_path / "from-env" / "users.sqlite"
    db_file.parent.mkdir()
    variables = {"FLASK_CONFIG": "production", "JWT_SECRET_KEY": KEY, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{db_file}"}
    env(**variables)
    assert "Created user" in step_package.create_app().test_cli_runner().invoke(args=["init-db"]).output
    assert db_file.exists()  # where the URI says

    with AppServer(build_app(step, None, env=variables)) as server:  # built as `flask run` builds it, from these
        status, body = server.request("POST", "/login", json_body=ADMIN)
        assert status == 200
        assert jwt.decode(body["token"], KEY, algorithms=["HS256"])["sub"] == ADMIN["username"]  # signed with KEY
        expired = jwt.encode(
            {**jwt.decode(body["token"], KEY, algorithms=["HS256"]), "exp": 1}, KEY, algorithm="HS256"
        )  # the same token, with an expiry long past: no test waits for a lifetime
        assert server.request("GET", "/users", headers={"Authorization": f"Bearer {expired}"}) == (
            401, {"code": 201, "message": "token expired"},
        )


@pytest.mark.since("step05_config")
@pytest.mark.databases(later_steps_on_one=True)  # the URI is step05's concept; later steps' models: test_step02_db.py
def test_article_walkthrough_on_a_fresh_database(step, step_package, models, database_uri, monkeypatch):
    """SQLALCHEMY_DATABASE_URI is all that changes between SQLite, MariaDB/MySQL and PostgreSQL."""
    engine = sqlalchemy.create_engine(database_uri)
    models.db.metadata.drop_all(engine)  # a fresh, empty database
    engine.dispose()
    env = {"SQLALCHEMY_DATABASE_URI": database_uri}
    # init-db as `flask --app <step> init-db` runs it, create_app() reading the environment, but in this process
    # (the command line itself: test_dotenv_file_is_read_by_the_flask_command and the one-line tests).
    monkeypatch.setenv("SQLALCHEMY_DATABASE_URI", database_uri)
    app = step_package.create_app()
    assert "Created user admin@gmail.com" in app.test_cli_runner().invoke(args=["init-db"]).output
    assert "already exists" in app.test_cli_runner().invoke(args=["init-db"]).output  # twice: nothing duplicated
    with app.app_context():  # its pooled connection: a server allows only so many
        models.db.engine.dispose()

    with AppServer(build_app(step, None, env=env)) as server:
        status, body, (token, _) = post_for_tokens(server, "/login", ADMIN)  # the token: in the body, or a cookie (step07 on)
        assert (status, body["code"], body["message"], body["userid"]) == (200, 200, "success", 1)
        headers = {"Authorization": f"Bearer {token}"}
        status, body = server.request("GET", "/users", headers=headers)
        assert (status, body["users"]) == (200, [{"userid": 1, "username": ADMIN["username"]}])
        assert server.request("GET", "/users") == (401, {"code": 203, "message": "missing token"})
        status, body = server.request("POST", "/login", json_body={**ADMIN, "password": "654321"})
        assert (status, body["code"], body["message"]) == (401, 202, "wrong password")


def test_dotenv_file_is_read_by_the_flask_command(step_package, tmp_path):
    """The committed .env.example, copied to .env, is valid; the flask command reads it from its folder."""
    db_file = tmp_path / "from-dotenv.sqlite"
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    (tmp_path / ".env").write_text(example + f"\nSQLALCHEMY_DATABASE_URI=sqlite:///{db_file.as_posix()}\n", encoding="utf-8")
    package_dir = Path(step_package.__file__).parent  # the reference step, or a learner's copy
    output = flask_cli(str(package_dir), None, "init-db", cwd=tmp_path, dotenv=True)
    assert "Created user" in output
    assert db_file.exists()


def test_env_example_documents_every_variable_the_config_reads(step_package):
    source = (Path(step_package.__file__).parent / "config.py").read_text(encoding="utf-8")
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    for name in CONFIG_VARIABLES:
        assert f"{name}=" in example  # documented
        assert f'"{name}"' in source or name == "FLASK_DEBUG" and "get_debug_flag()" in source  # and read


# Which other origins may call the API --------------------------------------------------------------


@pytest.mark.since("step05_config")
@pytest.mark.parametrize(
    "variables, origin, allowed",
    [
        pytest.param({}, "http://localhost:8000", True, marks=pytest.mark.already_holds),  # development: frontend/
        ({}, "http://evil.example", False),
        ({"FLASK_CONFIG": "production", "JWT_SECRET_KEY": KEY}, "http://localhost:8000", False),  # none by default
        pytest.param({"CORS_ORIGINS": "https://app.example.com, http://localhost:3000"}, "http://localhost:3000", True,
                     marks=pytest.mark.already_holds),  # step 04 allows every origin
        ({"CORS_ORIGINS": "https://app.example.com"}, "http://localhost:8000", False),
    ],
)
def test_cors_origins_come_from_the_environment(step_package, env, variables, origin, allowed):
    env(**variables)
    client = step_package.create_app().test_client()
    response = client.options("/users", headers={
        "Origin": origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "Authorization"})
    assert response.headers.get("Access-Control-Allow-Origin") == (origin if allowed else None)


# The article's cookie settings do nothing for header tokens ------------------------------------------


@pytest.mark.since("step05_config", until="step06_revoke")  # step07 puts tokens in cookies, where they act
@pytest.mark.already_holds  # they did nothing before this step either: the test shows it
def test_article_csrf_settings_do_nothing_with_header_tokens(make_app, auth):
    app = make_app(JWT_COOKIE_CSRF_PROTECT=True, JWT_CSRF_CHECK_FORM=True)  # the article's two lines
    assert list(app.config["JWT_TOKEN_LOCATION"]) == ["headers"]  # they act only on tokens sent in cookies
    assert app.test_client().get("/users", headers=auth).status_code == 200
