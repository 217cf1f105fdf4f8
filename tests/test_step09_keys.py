"""step09_keys: tokens signed with an Ed25519 private key, a JWKS, key rotation, and a second service (reports.py)
that checks tokens with the public keys only.

Each test has its own keys folder (KEYS_DIR in tmp_path). The login service that reports.py fetches its JWKS from
is the test's own app, served over real HTTP on a free port from a thread (login_http, AppServer), or the step
under `flask run` (the walk-through).
"""
import base64
import hashlib
import hmac
import http.server
import json
import os
import re
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
    threading.Thread(target=evil.serve_forever, daemon=True).start()
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
