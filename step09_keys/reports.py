"""A second service, which holds no secret: it checks the login service's tokens with the public keys that the
login service publishes (JWKS_URL), and answers GET /reports with the caller's identity.

    flask --app step09_keys.reports run --port 5001

It can check a token, never make one: whoever reads its code, settings or memory learns nothing that signs.
Logouts: with REDIS_URL (the login service's Redis and BLOCKLIST_PREFIX) it reads the same blocklist, and a
logged-out token is refused here at once; production requires it. Without (development, BLOCKLIST=memory) it
cannot see the login service's logouts: a revoked or stolen access token then works here until it expires, so
the access token's lifetime (JWT_ACCESS_TOKEN_EXPIRES, 15 minutes) is how long a logout can take to count.
It has no user table either: the token of a deleted or deactivated user, or one made before a password change
(step 08's checks of the user's row), works here until it expires, whatever the blocklist says.
"""
import os
import threading
import time

from flask import Flask, current_app
from flask.helpers import get_debug_flag
from flask_cors import CORS
from flask_jwt_extended import JWTManager, get_jwt_identity, jwt_required
from flask_restful import Resource
from jwt import PyJWKClient
from jwt.exceptions import InvalidAlgorithmError, PyJWKClientError, PyJWTError
from werkzeug.exceptions import ServiceUnavailable

from .blocklist import init_blocklist
from .config import (AUDIENCES, CONFIGS, DEV_ORIGINS, ISSUER, ConfigError, check_cors_origins, choose_blocklist,
                     env_seconds)
from .errors import Api, register_key_errors, register_token_errors
from .keys import UnknownKeyId

DEV_JWKS_URL = "http://127.0.0.1:5000/.well-known/jwks.json"  # the login service of `flask --app step09_keys run`
REPORTS = [{"reportid": 1, "title": "sign-ups this month"}, {"reportid": 2, "title": "logins this week"}]


class KeySetUnavailable(ServiceUnavailable):
    """The JWKS cannot be fetched (or is unusable): no token can be checked, so none is let through (fail closed)."""

    description = "key set unavailable"


class KeySetClient(PyJWKClient):
    """PyJWT's JWKS client fetches the key set; this class keeps it JWKS_CACHE_SECONDS, and finds a key by kid.

    Only a key set with a key this service can check with (EdDSA, a kid) is kept. Anything else — unreachable, no
    answer within the timeout, an error status, not JSON, not a key set, no usable key — answers 503, and the next
    request fetches again; a good set kept before stays. PyJWT's own cache would keep some of those for its lifespan.
    A kid it does not know refetches the set (a rotation), at most once per JWKS_REFETCH_SECONDS, so made-up kids
    cannot turn every request into a fetch. PyJWT's own cooldown counts every fetch, so a key rotated just after a
    routine fetch would be refused for that long: here only these refetches count."""

    def __init__(self, url, cache_seconds, refetch_seconds, timeout, algorithm):
        super().__init__(url, cache_jwk_set=False, timeout=timeout, cooldown_duration=0)
        self.cache_seconds, self.refetch_seconds, self.algorithm = cache_seconds, refetch_seconds, algorithm
        self.kept = ([], float("-inf"))  # (the usable keys, until when), replaced as one
        self.last_refetch = float("-inf")
        self.refetch_lock = threading.Lock()

    def usable_keys(self):
        try:
            keys = [key for key in self.get_signing_keys() if key.algorithm_name == self.algorithm]
            if not keys:  # e.g. only RSA keys: none can check an EdDSA signature
                raise PyJWKClientError(f"no {self.algorithm} key in the key set")
        except (PyJWTError, ValueError, RecursionError, OSError) as error:  # PyJWT, JSON, UTF-8, the connection
            current_app.logger.warning("key set unavailable from %s: %s", self.uri, error)
            raise KeySetUnavailable() from error
        self.kept = (keys, time.monotonic() + self.cache_seconds)
        return keys

    def public_key(self, kid):
        keys, until = self.kept
        fetched = time.monotonic() >= until
        key = self.match_kid(self.usable_keys() if fetched else keys, kid)
        with self.refetch_lock:  # a set fetched just now is not fetched again
            if key is None and not fetched and time.monotonic() - self.last_refetch >= self.refetch_seconds:
                self.last_refetch = time.monotonic()
                key = self.match_kid(self.usable_keys(), kid)
        if key is None:
            raise UnknownKeyId(f"no key {kid!r}")
        return key.key


class Reports(Resource):
    @jwt_required()  # an access token from the login service, checked with its public key
    def get(self):
        return {"code": 200, "message": "success", "identity": get_jwt_identity(), "reports": REPORTS}


class ReportsConfig:
    """What this service reads from the environment: where the public keys are, and the blocklist. No key."""

    def __init__(self):
        self.CONFIG_NAME = os.environ.get("FLASK_CONFIG", "development")
        if self.CONFIG_NAME not in CONFIGS:
            raise ConfigError(f"FLASK_CONFIG must be one of {', '.join(CONFIGS)}, not {self.CONFIG_NAME!r}")
        self.TESTING = self.CONFIG_NAME == "testing"
        self.DEBUG = get_debug_flag()
        self.JWKS_URL = os.environ.get("JWKS_URL")  # unset: DEV_JWKS_URL, outside production
        self.JWKS_CACHE_SECONDS = env_seconds("JWKS_CACHE_SECONDS", 300).total_seconds()  # the login's JWKS_MAX_AGE
        self.JWKS_REFETCH_SECONDS = env_seconds("JWKS_REFETCH_SECONDS", 10, allow_zero=True).total_seconds()
        self.JWKS_TIMEOUT_SECONDS = env_seconds("JWKS_TIMEOUT_SECONDS", 5).total_seconds()  # then 503, not a hung worker
        self.JWT_ALGORITHM = "EdDSA"
        self.JWT_DECODE_ISSUER = os.environ.get("JWT_ISSUER", ISSUER)
        self.JWT_DECODE_AUDIENCE = AUDIENCES[1]  # tokens meant for this service
        self.JWT_DECODE_LEEWAY = env_seconds("JWT_DECODE_LEEWAY", 0, allow_zero=True)
        # Bearer tokens (curl, other services); and the login's access cookie, which a browser also sends here
        # (cookies are not told apart by port). GET only: nothing here needs CSRF protection.
        self.JWT_TOKEN_LOCATION = ["headers", "cookies"]
        self.REDIS_URL = os.environ.get("REDIS_URL")
        self.BLOCKLIST = os.environ.get("BLOCKLIST")
        self.BLOCKLIST_PREFIX = os.environ.get("BLOCKLIST_PREFIX", "jwt-blocklist:")
        self.RESTFUL_JSON = {"ensure_ascii": False}
        origins = os.environ.get("CORS_ORIGINS", "" if self.CONFIG_NAME == "production" else DEV_ORIGINS)
        self.CORS_ORIGINS = [origin.strip() for origin in origins.split(",") if origin.strip()]


def check_reports_config(app):
    check_cors_origins(app.config["CORS_ORIGINS"])  # credentials here too: the login's access cookie
    choose_blocklist(app)
    if app.config["CONFIG_NAME"] != "production":
        app.config["JWKS_URL"] = app.config["JWKS_URL"] or DEV_JWKS_URL
        return
    if app.debug:
        raise ConfigError("FLASK_DEBUG must be off in production")
    if not app.config["JWKS_URL"]:
        raise ConfigError("JWKS_URL must be set in production, e.g. JWKS_URL=https://login.example.com/.well-known/jwks.json")
    if not app.config["REDIS_URL"] or app.config["BLOCKLIST"] != "redis":
        raise ConfigError("REDIS_URL must be set in production: the login service's Redis, to honour its logouts")


def create_app(test_config=None):
    app = Flask(__name__)
    app.config.from_object(ReportsConfig())
    if test_config is not None:
        app.config.from_mapping(test_config)
    check_reports_config(app)

    CORS(app, supports_credentials=True)  # the front end's requests carry the access cookie
    jwt = JWTManager(app)
    keys = KeySetClient(app.config["JWKS_URL"], app.config["JWKS_CACHE_SECONDS"], app.config["JWKS_REFETCH_SECONDS"],
                        app.config["JWKS_TIMEOUT_SECONDS"], app.config["JWT_ALGORITHM"])

    @jwt.decode_key_loader
    def public_key(jwt_header, jwt_payload):  # only kid and alg are read from the unverified header
        if jwt_header.get("alg") != app.config["JWT_ALGORITHM"]:  # pinned: alg none, HS256 with the public key ...
            raise InvalidAlgorithmError("The specified alg value is not allowed")
        return keys.public_key(jwt_header.get("kid"))  # a jku, x5u or jwk header is never followed

    init_blocklist(app, jwt)  # the login service's logouts, from the same Redis
    register_token_errors(app, jwt)
    register_key_errors(app)

    api = Api(app, catch_all_404s=True)
    api.add_resource(Reports, "/reports")
    return app
