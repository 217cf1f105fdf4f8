"""The article's app/config.py: settings from environment variables, with its three bugs fixed."""
import os
import re
from datetime import timedelta

import click
import limits
from flask.helpers import get_debug_flag

DEV_SECRET_KEY = "dev-only-key-change-me-it-must-be-32-bytes-or-more"  # never in production
DEV_ORIGINS = "http://localhost:8000, http://127.0.0.1:8000"  # frontend/, served by python -m http.server
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"  # for BLOCKLIST=redis without REDIS_URL, outside production
ISSUER = "tutorial-login"  # the "iss" of every token: who made it
AUDIENCES = ["tutorial-users", "tutorial-reports"]  # its "aud": the services it is for, this one and reports.py


class ConfigError(click.ClickException):
    """A setting the app cannot run with. The flask command prints it as one line: "Error: ..."."""


def env_seconds(name, default, allow_zero=False):
    # Bug 2: a variable is a string, and flask-jwt-extended cannot add "3600" to a datetime.
    value = os.environ.get(name)
    if value is None:
        return timedelta(seconds=default)
    try:
        seconds = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number of seconds, not {value!r}") from None
    if seconds < 0 or seconds == 0 and not allow_zero:
        raise ConfigError(f"{name} must be {'0 or more' if allow_zero else 'more than 0'} seconds, not {value!r}")
    return timedelta(seconds=seconds)


def env_flag(name, default):
    value = os.environ.get(name)
    if value is None:
        return default
    if value.lower() in ("1", "true", "yes", "on"):
        return True
    if value.lower() in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, not {value!r}")


def env_count(name, default):
    value = os.environ.get(name, str(default))
    if not value.isdigit():
        raise ConfigError(f"{name} must be a whole number, 0 or more, not {value!r}")
    return int(value)


def check_login_limits(app):
    """A limit Flask-Limiter cannot read would fail at the first login: say so at start-up instead."""
    for name in ("LOGIN_LIMIT", "LOGIN_LIMIT_PER_ADDRESS"):
        try:
            limits.parse_many(app.config[name])
        except ValueError:
            raise ConfigError(f"{name} must be a limit such as '5 per minute', not {app.config[name]!r}") from None


def warn_memory_login_limits(app):
    """Once the blocklist is chosen: the login counters live where it does (limits.py)."""
    if app.config["BLOCKLIST"] == "memory" and app.config["CONFIG_NAME"] != "production":  # production refuses it
        app.logger.warning("Failed logins are counted in this process's memory (as the blocklist is): correct for a "
                           "single process such as flask run; several workers or hosts each count on their own.")


class Config:
    """Read when the app is created, not when this module is imported."""

    CONFIG_NAME = "development"
    DEFAULT_CORS_ORIGINS = DEV_ORIGINS

    def __init__(self):
        # Bug 1: `os.environ.get('FLASK_DEBUG') or True` is always true, even for FLASK_DEBUG=0 or false.
        self.DEBUG = get_debug_flag()  # FLASK_DEBUG, read exactly as the flask command reads it
        # Default: a SQLite file in the instance/ folder, as in the earlier steps.
        self.SQLALCHEMY_DATABASE_URI = os.environ.get("SQLALCHEMY_DATABASE_URI", f"sqlite:///{__package__}.sqlite")
        self.SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}  # a pooled connection the server dropped is replaced
        self.DATABASE_TIMEOUT = env_seconds("DATABASE_TIMEOUT", 5)  # a database that stops answering: 503 after this
        # Bug 3: the article's fallback 'jwt-key' is 7 bytes; HS256 needs 32 or more (RFC 7518 §3.2).
        self.JWT_SECRET_KEY = os.environ.get("JWT_SECRET_KEY", DEV_SECRET_KEY)
        self.JWT_ACCESS_TOKEN_EXPIRES = env_seconds("JWT_ACCESS_TOKEN_EXPIRES", 15 * 60)
        # A refresh token lives longer, and is good for one thing only: a new access token (POST /refresh).
        self.JWT_REFRESH_TOKEN_EXPIRES = env_seconds("JWT_REFRESH_TOKEN_EXPIRES", 30 * 24 * 60 * 60)
        # How many seconds past its exp (or before its nbf) a token is still accepted: for hosts whose clocks differ.
        self.JWT_DECODE_LEEWAY = env_seconds("JWT_DECODE_LEEWAY", 0, allow_zero=True)
        # Where revoked tokens are listed (blocklist.py): Redis, which every worker and host shares.
        self.REDIS_URL = os.environ.get("REDIS_URL")
        self.BLOCKLIST = os.environ.get("BLOCKLIST")  # redis or memory; unset: redis if REDIS_URL is set
        self.BLOCKLIST_PREFIX = os.environ.get("BLOCKLIST_PREFIX", "jwt-blocklist:")  # the Redis keys' prefix
        # Failed logins allowed (limits.py), in Flask-Limiter's words ("5 per minute", "100 per hour; 10 per minute"):
        # per username and client address, and per client address. Counted in Redis when the blocklist is.
        self.LOGIN_LIMIT = os.environ.get("LOGIN_LIMIT", "5 per minute")
        self.LOGIN_LIMIT_PER_ADDRESS = os.environ.get("LOGIN_LIMIT_PER_ADDRESS", "20 per minute")
        self.LOGIN_LIMIT_PREFIX = os.environ.get("LOGIN_LIMIT_PREFIX", "login-limit")  # the Redis keys' prefix
        # How many reverse proxies in front of the app add to X-Forwarded-For; 0: the header is ignored.
        self.TRUSTED_PROXY_HOPS = env_count("TRUSTED_PROXY_HOPS", 0)
        # Step 09: tokens signed with an Ed25519 private key (keys.py); whoever has the public key can check them.
        self.JWT_ALGORITHM = "EdDSA"  # the only algorithm accepted too: RS256, HS256, none are refused (206)
        self.KEYS_DIR = os.environ.get("KEYS_DIR")  # the private key files; unset: the instance folder's keys/
        self.JWKS_MAX_AGE = int(env_seconds("JWKS_MAX_AGE", 300).total_seconds())  # how long verifiers may cache the JWKS
        self.JWT_ENCODE_ISSUER = self.JWT_DECODE_ISSUER = os.environ.get("JWT_ISSUER", ISSUER)
        self.JWT_ENCODE_AUDIENCE = AUDIENCES
        self.JWT_DECODE_AUDIENCE = AUDIENCES[0]  # this service accepts only tokens meant for it
        self.RESTFUL_JSON = {"ensure_ascii": False}  # Chinese as characters, not \uXXXX escapes
        self.MAX_CONTENT_LENGTH = 16 * 1024  # a login is tiny: refuse megabytes (413) before reading them
        # The front ends (other origins) that may call the API; the article allowed every origin. flask-cors reads it.
        origins = os.environ.get("CORS_ORIGINS", self.DEFAULT_CORS_ORIGINS)
        self.CORS_ORIGINS = [origin.strip() for origin in origins.split(",") if origin.strip()]
        # Cookies for browsers, and Authorization: Bearer still for curl, Postman and other services. A header
        # is never added by a browser on its own, so it needs no CSRF check; it comes first when both are sent.
        self.JWT_TOKEN_LOCATION = ["headers", "cookies"]
        self.JWT_COOKIE_SECURE = env_flag("JWT_COOKIE_SECURE", self.CONFIG_NAME == "production")  # HTTPS only
        # Lax: sent when the user follows a link to the app, not with another site's POST, fetch or iframe.
        self.JWT_COOKIE_SAMESITE = os.environ.get("JWT_COOKIE_SAMESITE", "Lax")
        self.JWT_COOKIE_DOMAIN = os.environ.get("JWT_COOKIE_DOMAIN") or None  # e.g. .example.com for sibling hosts
        self.JWT_REFRESH_COOKIE_PATH = "/refresh"  # the refresh token goes only where it is used (cookies.py: /logout too)
        # The article's two CSRF lines, which do something now that tokens travel in cookies:
        self.JWT_COOKIE_CSRF_PROTECT = env_flag("JWT_COOKIE_CSRF_PROTECT", True)  # false: THE WRONG WAY, for the demo
        self.JWT_CSRF_CHECK_FORM = True  # a plain HTML form may send the CSRF token as its csrf_token field
        # False for a front end on another site, which cannot read our cookies: the token comes in the login body.
        self.JWT_CSRF_IN_COOKIES = env_flag("JWT_CSRF_IN_COOKIES", True)
        # A request whose access cookie has less than this left gets a new one (implicit refresh; 0: never).
        self.IMPLICIT_REFRESH_WITHIN = env_seconds("IMPLICIT_REFRESH_WITHIN", 5 * 60, allow_zero=True)


class DevelopmentConfig(Config):
    CONFIG_NAME = "development"


class TestingConfig(Config):
    CONFIG_NAME = "testing"
    TESTING = True


class ProductionConfig(Config):
    CONFIG_NAME = "production"
    DEFAULT_CORS_ORIGINS = ""  # none but those CORS_ORIGINS names


CONFIGS = {c.CONFIG_NAME: c for c in (DevelopmentConfig, TestingConfig, ProductionConfig)}


def load_config():
    """The Config that FLASK_CONFIG names (development when unset)."""
    name = os.environ.get("FLASK_CONFIG", "development")
    if name not in CONFIGS:
        raise ConfigError(f"FLASK_CONFIG must be one of {', '.join(CONFIGS)}, not {name!r}")
    return CONFIGS[name]()


def choose_blocklist(app):
    """BLOCKLIST unset: redis when REDIS_URL is set, else memory (one process only, with a warning)."""
    name = app.config["BLOCKLIST"] or ("redis" if app.config["REDIS_URL"] else "memory")
    if name not in ("redis", "memory"):
        raise ConfigError(f"BLOCKLIST must be redis or memory, not {name!r}")
    app.config["BLOCKLIST"] = name
    if app.config["CONFIG_NAME"] == "production":
        return  # checked at the end of check_config: production needs REDIS_URL
    if name == "redis" and not app.config["REDIS_URL"]:
        app.config["REDIS_URL"] = DEFAULT_REDIS_URL
    if name == "memory":
        app.logger.warning("The token blocklist is in this process's memory (REDIS_URL is not set, or BLOCKLIST=memory): "
                           "correct for a single process such as flask run, not for several workers or hosts.")


def check_config(app):
    """Stop now, with one clear line, rather than fail at the first request (or run unsafely)."""
    key = app.config["JWT_SECRET_KEY"]
    check_cookie_config(app)
    check_login_limits(app)
    choose_blocklist(app)
    warn_memory_login_limits(app)
    if app.config["CONFIG_NAME"] == "development":
        if key == DEV_SECRET_KEY and app.config["JWT_ALGORITHM"].startswith("HS"):  # step 09 signs with keys.py's keys
            app.logger.warning("JWT_SECRET_KEY is not set: using the development placeholder key.")
        return
    if key == DEV_SECRET_KEY or len(key.encode()) < 32:
        raise ConfigError("JWT_SECRET_KEY must be set to a random value of at least 32 bytes, "
                          "e.g. python -c \"import secrets; print(secrets.token_hex(32))\"")
    if app.config["CONFIG_NAME"] == "production" and app.debug:
        raise ConfigError("FLASK_DEBUG must be off in production")
    if app.config["CONFIG_NAME"] == "production":  # every worker and host must see the same revoked tokens
        if not app.config["REDIS_URL"]:
            raise ConfigError("REDIS_URL must be set in production, e.g. REDIS_URL=redis://127.0.0.1:6379/0")
        if app.config["BLOCKLIST"] != "redis":
            raise ConfigError("BLOCKLIST must be redis in production: memory is correct for a single process only")


def check_cookie_config(app):
    """Cookie settings that a browser would silently ignore, or that would open the app to every site."""
    same_site = app.config["JWT_COOKIE_SAMESITE"]
    if same_site not in ("Lax", "Strict", "None"):
        raise ConfigError(f"JWT_COOKIE_SAMESITE must be Lax, Strict or None, not {same_site!r}")
    if same_site == "None" and not app.config["JWT_COOKIE_SECURE"]:  # browsers drop such a cookie (Chrome 80 on)
        raise ConfigError("JWT_COOKIE_SAMESITE=None needs JWT_COOKIE_SECURE=true")
    check_cors_origins(app.config["CORS_ORIGINS"])
    if not app.config["JWT_COOKIE_SECURE"] and app.config["CONFIG_NAME"] == "production":
        # Behind a proxy that ends TLS the browser still sees HTTPS: Secure stays on there too.
        raise ConfigError("JWT_COOKIE_SECURE must be on in production: the cookies would also travel over plain HTTP")
    if not app.config["JWT_COOKIE_CSRF_PROTECT"]:
        if app.config["CONFIG_NAME"] == "production":
            raise ConfigError("JWT_COOKIE_CSRF_PROTECT must be on in production")
        app.logger.warning("JWT_COOKIE_CSRF_PROTECT is off: any site the user visits can send requests with "
                           "the user's cookies (THE WRONG WAY, kept to show the attack).")


ORIGIN = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?")  # scheme://host[:port], as a browser sends Origin


def check_cors_origins(origins):
    r"""With credentials, every origin allowed reads answers made with the user's cookies: each is listed exactly.
    flask-cors reads an entry with * ? [ ( ^ $ or \ as a regular expression, matched at the Origin's start:
    ".*" would echo back every origin, "https://app\.example\.com" also https://app.example.com.evil.net."""
    for origin in [origins] if isinstance(origins, str) else origins:
        if origin == "*":
            raise ConfigError("CORS_ORIGINS cannot be * when cookies are sent: list the front ends' origins")
        if not ORIGIN.fullmatch(origin):
            raise ConfigError(f"CORS_ORIGINS must list each front end's origin exactly, as scheme://host[:port], "
                              f"not {origin!r}: no pattern, no path")
