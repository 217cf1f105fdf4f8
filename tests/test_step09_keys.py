"""step09_keys: tokens signed with an Ed25519 private key, a JWKS, key rotation, and a second service (reports.py)
that checks tokens with the public keys only.

Each test has its own keys folder (KEYS_DIR in tmp_path). The login service that reports.py fetches its JWKS from
is the test's own app, served over real HTTP on a free port from a thread (login_http, AppServer), or the step
under `flask run` (the walk-through).
"""
import base64
import functools
import hashlib
import hmac
import http.server
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
import time
from datetime import timedelta
from types import SimpleNamespace

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from flask_jwt_extended import create_access_token, create_refresh_token

from conftest import ADMIN, ROOT
from tutorial.live import REVOKE_VARIABLES, AppServer, LiveServer, clean_env, free_port, issued_tokens, run_flask
from tutorial.transcripts import normalise, parse_readme

PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "oth", "k"}  # RFC 7518 §6: what a public JWK must never carry


def bearer(token):
    return {"Authorization": f"Bearer {token}"}


def answer(response):
    return response.status_code, response.get_json()


def login_tokens(response):
    """The access and refresh tokens a /login or /refresh answer issued: in its cookies (step07 on)."""
    return issued_tokens(response.get_json(), response.headers.getlist("Set-Cookie"))


def claims_of(token):
    return jwt.decode(token, options={"verify_signature": False})


@pytest.fixture
def keys_dir(tmp_path):
    return tmp_path / "keys"


@pytest.fixture
def login_app(make_app, keys_dir):
    return make_app(KEYS_DIR=str(keys_dir))


def token(app, **kwargs):
    with app.app_context():
        return create_access_token(identity=ADMIN["username"], **kwargs)


def cli(app, *args):
    result = app.test_cli_runner().invoke(args=list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture
def login_http(login_app):
    """The login app, over real HTTP on a free port (from this process), for reports.py to fetch its JWKS from."""
    with AppServer(login_app) as server:
        yield SimpleNamespace(url=server.url, jwks_url=server.url + "/.well-known/jwks.json")


@pytest.fixture
def make_reports(step_package, login_http):
    import importlib

    reports = importlib.import_module(step_package.__name__ + ".reports")

    def make(**overrides):
        return reports.create_app({"TESTING": True, "JWKS_URL": login_http.jwks_url, **overrides})

    return make


# Tokens: EdDSA, a kid, iss and aud ---------------------------------------------------------------------


def test_a_login_token_is_eddsa_with_a_kid_an_issuer_and_audiences(login_app, keys_dir):
    access, refresh = login_tokens(login_app.test_client().post("/login", json=ADMIN))
    for made in (access, refresh):
        header = jwt.get_unverified_header(made)
        assert (header["alg"], header["typ"]) == ("EdDSA", "JWT")
        assert (keys_dir / f"{header['kid']}.pem").is_file()  # the key that signed it
        claims = claims_of(made)
        assert (claims["iss"], claims["aud"]) == ("tutorial-login", ["tutorial-users", "tutorial-reports"])
    # Checked with the public key alone, as any other service would:
    public = serialization.load_pem_private_key((keys_dir / f"{jwt.get_unverified_header(access)['kid']}.pem").read_bytes(), None).public_key()
    claims = jwt.decode(access, public, algorithms=["EdDSA"], audience="tutorial-reports", issuer="tutorial-login")
    assert claims["sub"] == ADMIN["username"]
    assert len(access) < 600  # an Ed25519 signature is 86 characters; an RS256 (2048-bit) one is 342


def test_the_first_key_is_made_on_first_use_in_development(step_package, keys_dir, monkeypatch):
    monkeypatch.setenv("KEYS_DIR", str(keys_dir))
    app = step_package.create_app({"SQLALCHEMY_DATABASE_URI": "sqlite://"})
    assert not keys_dir.exists()  # nothing made at start-up ...
    token(app)
    files = list(keys_dir.glob("*.pem"))
    assert len(files) == 1  # ... one key at the first token
    if os.name == "posix":
        assert files[0].stat().st_mode & 0o077 == 0  # readable by its owner only
    monkeypatch.delenv("KEYS_DIR")
    assert step_package.create_app().config["KEYS_DIR"] == os.path.join(step_package.create_app().instance_path, "keys")
    assert "instance/" in (ROOT / ".gitignore").read_text(encoding="utf-8").split()  # never committed


def test_production_without_a_key_refuses_to_start_in_one_line(step, tmp_path):
    env = {"FLASK_CONFIG": "production", "JWT_SECRET_KEY": "x" * 32, "REDIS_URL": "redis://127.0.0.1:6379/0",
           "KEYS_DIR": str(tmp_path / "empty")}
    done = run_flask(step, tmp_path / "app.sqlite", "init-db", env=env)  # any command: create_app refuses
    assert done.returncode == 1
    assert done.stderr.startswith(f"Error: no signing key in {tmp_path / 'empty'} (KEYS_DIR): make one with flask --app {step} rotate-keys")
    assert len(done.stderr.strip().splitlines()) == 1


# The JWKS ------------------------------------------------------------------------------------------------


def test_the_jwks_has_public_keys_only_with_cache_headers(login_app, keys_dir):
    client = login_app.test_client()
    token(login_app)
    cli(login_app, "rotate-keys")  # two keys: the signing one, and the one before
    response = client.get("/.well-known/jwks.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    keys = response.get_json()["keys"]
    assert len(keys) == 2
    for key in keys:
        assert set(key) == {"kty", "crv", "x", "kid", "alg", "use"} and not PRIVATE_MEMBERS & set(key)
        assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("OKP", "Ed25519", "EdDSA", "sig")
        private = serialization.load_pem_private_key((keys_dir / f"{key['kid']}.pem").read_bytes(), None)
        raw = private.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
        assert base64.urlsafe_b64encode(raw).rstrip(b"=").decode() not in response.get_data(as_text=True)
        assert jwt.PyJWK(key).key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == \
            private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert response.headers["Cache-Control"] == "public, max-age=300"  # short, next to token lifetimes: rotation
    again = client.get("/.well-known/jwks.json", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304


def pem(private):
    return private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


@pytest.mark.skipif(os.name == "nt", reason="Windows has no POSIX modes: the keys folder takes its parent's permissions")
def test_the_keys_folder_and_files_are_private_whatever_the_umask(login_app, keys_dir):
    umask = os.umask(0o000)  # every file and folder made now would be readable and writable by everyone
    try:
        token(login_app)  # the first key, and its folder, made on first use
        cli(login_app, "rotate-keys")
    finally:
        os.umask(umask)
    assert stat.S_IMODE(keys_dir.stat().st_mode) == 0o700  # nobody else may list it, or place a key in it
    assert [stat.S_IMODE(path.stat().st_mode) for path in keys_dir.glob("*.pem")] == [0o600, 0o600]


def test_a_broken_key_file_is_skipped_with_a_warning_while_running(login_app, keys_dir, caplog):
    client = login_app.test_client()
    good = jwt.get_unverified_header(token(login_app))["kid"]
    half = keys_dir / "29991231T000000.000000Z-0bad.pem"  # the newest name: it would sign, were it a key
    half.write_bytes(pem(Ed25519PrivateKey.generate())[:40])  # a copy still under way
    (keys_dir / "notes.pem").write_text("not a key", encoding="utf-8")  # a stray file
    access = login_tokens(client.post("/login", json=ADMIN))[0]
    assert jwt.get_unverified_header(access)["kid"] == good  # signed with the last good key
    assert kids(client) == [good]
    assert client.get("/users", headers=bearer(access)).status_code == 200
    client.get("/.well-known/jwks.json")
    said = [record.getMessage() for record in caplog.records if record.levelname == "WARNING" and ".pem" in record.getMessage()]
    assert sorted(said) == sorted(set(said)) and len(said) == 2  # each file once, not at every request
    assert any(str(half) in line for line in said) and any(str(keys_dir / "notes.pem") in line for line in said)
    half.write_bytes(pem(Ed25519PrivateKey.generate()))  # the copy ends, in place: the folder itself is unchanged
    assert jwt.get_unverified_header(token(login_app))["kid"] == half.stem


@pytest.mark.parametrize("fault", ["not a key", "a stray name", "a folder"])
def test_production_refuses_to_start_with_a_broken_key_file_in_one_line(step_package, keys_dir, monkeypatch, fault):
    shutil.copytree(os.environ["KEYS_DIR"], keys_dir)  # the session's signing key, and next to it:
    broken = keys_dir / ("notes.pem" if fault == "a stray name" else "29991231T000000.000000Z-0bad.pem")
    if fault == "a folder":
        broken.mkdir()
    else:
        broken.write_bytes(b"not a key" if fault == "not a key" else pem(Ed25519PrivateKey.generate()))
    for name, value in {"FLASK_CONFIG": "production", "JWT_SECRET_KEY": "x" * 32, "REDIS_URL": "redis://127.0.0.1:1/0",
                        "KEYS_DIR": str(keys_dir)}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(step_package.config.ConfigError, match=f"^{re.escape(str(broken))} is not a key made by rotate-keys") as refused:
        step_package.create_app()
    assert "\n" not in refused.value.message


def test_login_and_the_jwks_answer_503_when_no_key_can_be_made(make_app, tmp_path):
    blocked = tmp_path / "a-file"
    blocked.write_text("KEYS_DIR names a file, not a folder", encoding="utf-8")
    client = make_app(KEYS_DIR=str(blocked)).test_client()
    unavailable = (503, {"code": 503, "message": "signing keys unavailable"})
    assert answer(client.post("/login", json=ADMIN)) == unavailable
    response = client.get("/.well-known/jwks.json")
    assert answer(response) == unavailable and response.headers["Cache-Control"] == "no-store"


@pytest.mark.needs("redis")
def test_production_without_its_keys_folder_answers_503_not_an_empty_key_set(make_app, keys_dir, monkeypatch, redis_blocklist):
    monkeypatch.setenv("FLASK_CONFIG", "production")
    shutil.copytree(os.environ["KEYS_DIR"], keys_dir)
    app = make_app(KEYS_DIR=str(keys_dir), **redis_blocklist.config)
    client = app.test_client()
    valid = token(app)
    assert client.get("/.well-known/jwks.json").status_code == 200
    shutil.move(keys_dir, keys_dir.with_name("away"))  # the folder is gone (an unmounted volume, a bad deploy)
    unavailable = (503, {"code": 503, "message": "signing keys unavailable"})
    response = client.get("/.well-known/jwks.json")
    assert answer(response) == unavailable  # not {"keys": []}, which every verifier would keep for max-age
    assert response.headers["Cache-Control"] == "no-store"
    assert answer(client.post("/login", json=ADMIN)) == unavailable
    assert answer(client.get("/users", headers=bearer(valid))) == unavailable  # the token may be fine: not a 401
    shutil.move(keys_dir.with_name("away"), keys_dir)  # back: served again, nothing was kept
    assert client.get("/.well-known/jwks.json").status_code == 200
    assert client.get("/users", headers=bearer(valid)).status_code == 200


# Rotation --------------------------------------------------------------------------------------------------


def kids(client):
    return [key["kid"] for key in client.get("/.well-known/jwks.json").get_json()["keys"]]


def test_rotation_signs_with_the_new_key_and_old_tokens_stay_valid(login_app):
    client = login_app.test_client()
    old = token(login_app)
    old_refresh = login_tokens(client.post("/login", json=ADMIN))[1]
    output = cli(login_app, "rotate-keys")
    new = token(login_app)
    old_kid, new_kid = jwt.get_unverified_header(old)["kid"], jwt.get_unverified_header(new)["kid"]
    assert old_kid != new_kid and f"New signing key {new_kid}" in output
    assert kids(client) == [old_kid, new_kid]
    assert client.get("/users", headers=bearer(old)).status_code == 200
    assert client.get("/users", headers=bearer(new)).status_code == 200
    renewed = login_tokens(client.post("/refresh", headers=bearer(old_refresh)))[0]  # a refresh token of the old key
    assert jwt.get_unverified_header(renewed)["kid"] == new_kid  # renews with the new key
    assert "Kept key" in cli(login_app, "retire-keys")  # its tokens can be valid for 30 days more: kept
    assert client.get("/users", headers=bearer(old)).status_code == 200


def test_the_old_key_leaves_by_itself_once_no_token_it_signed_can_be_valid(make_app, keys_dir):
    app = make_app(KEYS_DIR=str(keys_dir), JWT_ACCESS_TOKEN_EXPIRES=timedelta(seconds=1),
                   JWT_REFRESH_TOKEN_EXPIRES=timedelta(seconds=2))
    client = app.test_client()
    token(app)
    cli(app, "rotate-keys")
    assert len(kids(client)) == 2  # the refresh token of the old key may still be valid: 2 s
    time.sleep(2.2)
    assert len(kids(client)) == 1  # no token of the old key can be: it left the JWKS, without a command
    assert "Retired key" in cli(app, "retire-keys")  # and its file goes
    assert len(list(keys_dir.glob("*.pem"))) == 1


def test_retire_now_refuses_the_old_keys_tokens(login_app):
    client = login_app.test_client()
    old = token(login_app)
    cli(login_app, "rotate-keys")
    assert "Retired key" in cli(login_app, "retire-keys", "--now")  # a leaked key
    assert answer(client.get("/users", headers=bearer(old))) == (401, {"code": 230, "message": "unknown key id"})
    assert client.get("/users", headers=bearer(token(login_app))).status_code == 200


# The reports service ---------------------------------------------------------------------------------------


def test_reports_accepts_a_login_token_and_holds_no_key(login_app, make_reports):
    reports = make_reports()
    client = reports.test_client()
    status, body = answer(client.get("/reports", headers=bearer(token(login_app))))
    assert (status, body["code"], body["identity"]) == (200, 200, ADMIN["username"]) and body["reports"]
    for name, value in reports.config.items():  # no secret: no HMAC key, no private key
        assert not (isinstance(value, str) and ("PRIVATE KEY" in value or name == "JWT_SECRET_KEY"))
    assert reports.config.get("JWT_PRIVATE_KEY") is None and "keys" not in reports.extensions
    assert answer(client.get("/reports")) == (401, {"code": 203, "message": "missing token"})
    with login_app.app_context():
        refresh = create_refresh_token(identity=ADMIN["username"])
    assert answer(client.get("/reports", headers=bearer(refresh)))[1]["code"] == 207


def test_reports_accepts_the_access_cookie_too(login_app, make_reports):
    client = make_reports().test_client()
    client.set_cookie("access_token_cookie", token(login_app))
    assert client.get("/reports").status_code == 200


def test_reports_picks_up_a_new_key_without_a_restart(login_app, make_reports):
    client = make_reports().test_client()
    old = token(login_app)
    assert client.get("/reports", headers=bearer(old)).status_code == 200  # JWKS fetched and cached
    cli(login_app, "rotate-keys")
    new = token(login_app)
    assert client.get("/reports", headers=bearer(new)).status_code == 200  # unknown kid: refetched
    assert client.get("/reports", headers=bearer(old)).status_code == 200


def test_unknown_kids_refetch_at_most_once_per_interval(login_app, make_reports, login_http, monkeypatch):
    reports = make_reports(JWKS_REFETCH_SECONDS=60)
    client = reports.test_client()
    fetches = []
    from jwt import PyJWKClient

    real = PyJWKClient.fetch_data
    monkeypatch.setattr(PyJWKClient, "fetch_data", lambda self: fetches.append(1) or real(self))
    valid = token(login_app)
    assert client.get("/reports", headers=bearer(valid)).status_code == 200
    claims = claims_of(valid)
    for n in range(20):  # made-up kids: one refetch, then none for 60 s
        forged = jwt.encode(claims, Ed25519PrivateKey.generate(), "EdDSA", headers={"kid": f"made-up-{n}"})
        assert answer(client.get("/reports", headers=bearer(forged)))[1]["code"] == 230
    assert len(fetches) == 2  # the first fetch, and one refetch


def test_reports_fails_closed_when_the_jwks_cannot_be_fetched(login_app, step_package):
    import importlib

    reports = importlib.import_module(step_package.__name__ + ".reports")
    app = reports.create_app({"TESTING": True, "JWKS_URL": f"http://127.0.0.1:{free_port()}/.well-known/jwks.json"})
    response = app.test_client().get("/reports", headers=bearer(token(login_app)))
    assert answer(response) == (503, {"code": 503, "message": "key set unavailable"})


@pytest.fixture
def jwks_server():
    """A JWKS_URL that answers what the test sets: .answer = (status, content type, body); None: no answer at all."""
    released = threading.Event()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.server.answer is None:
                released.wait(60)  # hangs until the test ends; the client gives up first (its timeout)
                return
            status, content_type, body = self.server.answer
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads, server.block_on_close, server.answer = True, False, None
    # shutdown() waits for serve_forever's next poll (0.5 s by default), at the end of each test
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    server.url = f"http://127.0.0.1:{server.server_port}/.well-known/jwks.json"
    yield server
    released.set()
    server.shutdown()
    server.server_close()


def as_json(value, status=200):
    return status, "application/json", json.dumps(value).encode()


@functools.cache
def rsa_jwk():  # ~0.1 s to make an RSA key: one for the run
    return json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(generate_private_key(65537, 2048).public_key()))


def key_set_faults(kid):
    """What a JWKS_URL can answer that holds no key to check a token with: {name: answer, or None for none}."""
    ours = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(Ed25519PrivateKey.generate().public_key()))
    rsa = rsa_jwk()
    return {
        "an empty key set (a login service without its keys, before this step's fix)": as_json({"keys": []}),
        "no keys member": as_json({}),
        "keys not a list": as_json({"keys": {**ours, "kid": kid}}),
        "a JSON list": as_json([{**ours, "kid": kid}]),
        "an HTML page (a proxy's error page, with status 200)": (200, "text/html", b"<html><body>Bad gateway</body></html>"),
        "not UTF-8": (200, "application/json", b"\xff\xfe{"),
        "a key that cannot be read": as_json({"keys": [{**ours, "kid": kid, "x": "not base64url!"}]}),
        "a key of another algorithm (RSA)": as_json({"keys": [{**rsa, "kid": kid, "use": "sig"}]}),
        "a key without a kid": as_json({"keys": [ours]}),
        "an error status": as_json({"code": 503, "message": "down"}, status=503),
        "no answer (a timeout)": None,
    }


@pytest.mark.parametrize("fault", list(key_set_faults("kid")))
def test_reports_answers_503_for_a_key_set_it_cannot_use_and_fetches_it_again(login_app, step_package, jwks_server, fault, caplog):
    import importlib

    reports = importlib.import_module(step_package.__name__ + ".reports")
    valid = token(login_app)
    jwks_server.answer = key_set_faults(jwt.get_unverified_header(valid)["kid"])[fault]
    client = reports.create_app({"TESTING": True, "JWKS_URL": jwks_server.url, "JWKS_TIMEOUT_SECONDS": 0.5}).test_client()
    assert answer(client.get("/reports", headers=bearer(valid))) == (503, {"code": 503, "message": "key set unavailable"})
    assert f"key set unavailable from {jwks_server.url}" in caplog.text  # and the log says why
    jwks_server.answer = (200, "application/json", login_app.test_client().get("/.well-known/jwks.json").get_data())
    assert client.get("/reports", headers=bearer(valid)).status_code == 200  # the failure was not kept: fetched again


def test_a_key_set_that_breaks_later_does_not_replace_the_good_one(login_app, step_package, jwks_server):
    import importlib

    reports = importlib.import_module(step_package.__name__ + ".reports")
    valid = token(login_app)
    jwks_server.answer = (200, "application/json", login_app.test_client().get("/.well-known/jwks.json").get_data())
    client = reports.create_app({"TESTING": True, "JWKS_URL": jwks_server.url, "JWKS_REFETCH_SECONDS": 0}).test_client()
    assert client.get("/reports", headers=bearer(valid)).status_code == 200
    jwks_server.answer = as_json({"keys": []})  # broken from now on
    unknown = jwt.encode(claims_of(valid), Ed25519PrivateKey.generate(), "EdDSA", headers={"kid": "20991231T000000.000000Z-ffff"})
    assert answer(client.get("/reports", headers=bearer(unknown))) == (503, {"code": 503, "message": "key set unavailable"})
    assert client.get("/reports", headers=bearer(valid)).status_code == 200  # the key set fetched before still checks


@pytest.mark.parametrize("origins", ["*", ".*", "https?://.*", ".+", "http://localhost:8000, .*", "null"])
def test_reports_refuses_cors_origins_that_are_not_listed_exactly(step_package, monkeypatch, origins):
    import importlib

    reports = importlib.import_module(step_package.__name__ + ".reports")
    monkeypatch.setenv("CORS_ORIGINS", origins)  # reports sends CORS with credentials too: the access cookie
    with pytest.raises(step_package.config.ConfigError, match="^CORS_ORIGINS (cannot be|must list)"):
        reports.create_app({"TESTING": True, "JWKS_URL": "http://127.0.0.1:1/.well-known/jwks.json"})


@pytest.mark.needs("redis")
def test_reports_honours_logouts_through_the_same_redis(make_app, keys_dir, make_reports, redis_blocklist):
    blocklist = redis_blocklist
    login = make_app(KEYS_DIR=str(keys_dir), **blocklist.config)
    access = token(login)
    client = make_reports(**blocklist.config).test_client()
    assert client.get("/reports", headers=bearer(access)).status_code == 200
    assert login.test_client().post("/logout", headers=bearer(access)).status_code == 200
    assert answer(client.get("/reports", headers=bearer(access))) == (401, {"code": 211, "message": "token revoked"})


def test_reports_in_production_needs_the_jwks_url_and_redis(step, step_package, monkeypatch):
    done = run_flask(f"{step}.reports", None, "run", env={"FLASK_CONFIG": "production"})
    assert done.returncode == 1 and done.stderr.startswith("Error: JWKS_URL must be set in production")
    assert len(done.stderr.strip().splitlines()) == 1
    # The next setting it checks, in this process: a ConfigError, which the command line says in one line as above.
    import importlib

    reports = importlib.import_module(step_package.__name__ + ".reports")
    for name in REVOKE_VARIABLES:  # as run_flask leaves out the learner's own (REDIS_URL, BLOCKLIST, ...)
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("FLASK_CONFIG", "production")
    monkeypatch.setenv("JWKS_URL", "https://login.example/.well-known/jwks.json")
    with pytest.raises(step_package.config.ConfigError, match="^REDIS_URL must be set in production"):
        reports.create_app()


# Attacks, on both services -----------------------------------------------------------------------------------


class Recorder(http.server.BaseHTTPRequestHandler):
    """A server an attacker points jku/x5u at: it answers with the attacker's key set, and counts requests."""

    requests = []
    body = b"{}"

    def do_GET(self):
        Recorder.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(Recorder.body)

    def log_message(self, *args):
        pass


def hs256(claims, header, secret):
    """An HS256 token made by hand: PyJWT itself refuses a PEM public key as an HMAC secret."""
    encode = lambda data: base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=")  # noqa: E731
    signing_input = encode({**header, "alg": "HS256"}) + b"." + encode(claims)
    signature = base64.urlsafe_b64encode(hmac.new(secret, signing_input, hashlib.sha256).digest()).rstrip(b"=")
    return (signing_input + b"." + signature).decode()


@pytest.mark.already_holds  # keys.py remembers accepted signatures: that must never let other bytes through
def test_a_signature_accepted_before_does_not_pass_with_other_bytes(login_app):
    client = login_app.test_client()
    valid, other = token(login_app), token(login_app)  # two tokens, two signatures, both accepted below
    assert [client.get("/users", headers=bearer(t)).status_code for t in (valid, other)] == [200, 200]
    header, payload, signature = valid.split(".")
    changed = base64.urlsafe_b64encode(json.dumps({**claims_of(valid), "sub": "someone@else.com"}).encode()).rstrip(b"=")
    for forged in (f"{header}.{changed.decode()}.{signature}", f"{header}.{payload}.{other.split('.')[2]}"):
        assert answer(client.get("/users", headers=bearer(forged))) == (401, {"code": 205, "message": "bad token signature"})


def test_attacks_are_refused_by_both_services(login_app, make_reports, keys_dir):
    reports = make_reports().test_client()
    login = login_app.test_client()
    valid = token(login_app)
    kid = jwt.get_unverified_header(valid)["kid"]
    claims = claims_of(valid)
    public_pem = serialization.load_pem_private_key((keys_dir / f"{kid}.pem").read_bytes(), None).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    attacker = Ed25519PrivateKey.generate()
    attacker_jwk = json.loads(jwt.algorithms.OKPAlgorithm.to_jwk(attacker.public_key()))
    Recorder.body = json.dumps({"keys": [{**attacker_jwk, "kid": kid, "use": "sig"}]}).encode()
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    threading.Thread(target=evil.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    evil_url = f"http://127.0.0.1:{evil.server_port}/jwks.json"
    cli(login_app, "rotate-keys")
    removed = valid  # signed with the key retired below
    cli(login_app, "retire-keys", "--now")
    kid = jwt.get_unverified_header(token(login_app))["kid"]  # the signing key now
    claims = {**claims, "jti": "forged"}
    sign = lambda payload, headers: jwt.encode(payload, attacker, "EdDSA", headers=headers)  # noqa: E731
    def own(**changes):  # signed with the service's real key, with other claims (None: without that claim)
        changed = {name: value for name, value in {**claims, **changes}.items() if value is not None}
        return jwt.encode(changed, login_app.extensions["keys"].signing_key().private, "EdDSA", headers={"kid": kid})

    attacks = {
        "algorithm confusion: HS256 keyed with the public key's PEM": (hs256(claims, {"kid": kid, "typ": "JWT"}, public_pem), 206),
        "alg none": (jwt.encode(claims, None, "none", headers={"kid": kid}), 206),
        "jwk header with the attacker's key": (sign(claims, {"kid": "attacker", "jwk": attacker_jwk}), 230),
        "jwk header with the real kid": (sign(claims, {"kid": kid, "jwk": attacker_jwk}), 205),
        "jku header pointing elsewhere": (sign(claims, {"kid": kid, "jku": evil_url}), 205),
        "x5u header pointing elsewhere": (sign(claims, {"kid": kid, "x5u": evil_url}), 205),
        "unknown kid": (sign(claims, {"kid": "20991231T000000.000000Z-ffff"}), 230),
        "no kid": (sign(claims, {}), 230),
        "a token of a removed key": (removed, 230),
        "another audience": (own(aud="another-app"), 231),
        "no audience": (own(aud=None), 231),
        "another issuer": (own(iss="someone-else"), 232),
    }
    for name, (forged, code) in attacks.items():
        for service, client, path in (("login", login, "/users"), ("reports", reports, "/reports")):
            status, body = answer(client.get(path, headers=bearer(forged)))
            assert (status, body["code"]) == (401, code), f"{name} on {service}: {body}"
    assert Recorder.requests == []  # nobody followed jku or x5u
    evil.shutdown()
    for service, client, path in (("login", login, "/users"), ("reports", reports, "/reports")):
        assert client.get(path, headers=bearer(token(login_app))).status_code == 200, service


# The two services, as the README runs them -----------------------------------------------------------------

KID = re.compile(r"\b\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{4}\b")
UTC_TIME = re.compile(r"\b\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\b")


def comparable(text, keys_dir):
    text = text.replace(str(keys_dir), ".../instance/keys")
    return normalise(UTC_TIME.sub("<time>", KID.sub("<kid>", text)))


def walkthrough_block(step):
    for block in parse_readme(ROOT / step / "README.md"):
        if block.annotation and "test_the_readme_walkthrough_with_two_services" in block.annotation:
            return block
    raise AssertionError(f"{step}/README.md has no block annotated for this test")


@pytest.mark.needs("bash")  # the block's commands run in bash, with curl
@pytest.mark.schedule_first  # seconds long (tests/conftest.py)
def test_the_readme_walkthrough_with_two_services(step, database_uri, tmp_path):
    """The README's two-service block, run as written: the login service under `flask run` on a free port (for
    :5000), reports.py under `flask run` on another (for :5001), the block's commands in one bash. The transcript
    runner starts one server per block, so this block is checked here."""
    keys_dir = tmp_path / "keys"
    env = {"KEYS_DIR": str(keys_dir)}
    block = walkthrough_block(step)
    with LiveServer(step, database_uri, env=env) as login:
        login.wait_until_ready()
        reports_env = {"JWKS_URL": login.url + "/.well-known/jwks.json", "JWKS_CACHE_SECONDS": "1"}
        with LiveServer(f"{step}.reports", None, env=reports_env) as reports:
            reports.wait_until_ready()
            outputs = tmp_path / "outputs"
            outputs.mkdir()
            script = ["set +e"]
            for number, command in enumerate(block.commands):
                text = command.text.replace("http://127.0.0.1:5000", login.url).replace("http://127.0.0.1:5001", reports.url)
                text = text.replace("uv run flask", f"{sys.executable} -m flask")
                script.append(f"{{ {text}\n}} >{outputs}/{number}.out 2>&1 </dev/null; echo $? >{outputs}/{number}.rc")
            subprocess.run(["bash", "-c", "\n".join(script)], cwd=ROOT, env=clean_env(env), timeout=120, check=True)
    differences = []
    for number, command in enumerate(block.commands):
        actual = (outputs / f"{number}.out").read_text(encoding="utf-8").replace(login.url, "http://127.0.0.1:5000").replace(reports.url, "http://127.0.0.1:5001")
        status = (outputs / f"{number}.rc").read_text(encoding="utf-8").strip()
        if status != "0" or comparable(actual, keys_dir) != comparable("\n".join(command.output), keys_dir):
            differences.append(f"$ {command.text}\n(exit status {status})\n{actual}")
    assert not differences, "the README's walk-through differs from what ran:\n" + "\n".join(differences)
