"""The article's app/config.py: settings from environment variables, with its three bugs fixed."""
import os
from datetime import timedelta

import click
from flask.helpers import get_debug_flag

DEV_SECRET_KEY = "dev-only-key-change-me-it-must-be-32-bytes-or-more"  # never in production
DEV_ORIGINS = "http://localhost:8000, http://127.0.0.1:8000"  # frontend/, served by python -m http.server


class ConfigError(click.ClickException):
    """A setting the app cannot run with. The flask command prints it as one line: "Error: ..."."""


def env_seconds(name, default):
    # Bug 2: a variable is a string, and flask-jwt-extended cannot add "3600" to a datetime.
    value = os.environ.get(name)
    if value is None:
        return timedelta(seconds=default)
    try:
        seconds = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be a whole number of seconds, not {value!r}") from None
    if seconds <= 0:
        raise ConfigError(f"{name} must be more than 0 seconds, not {value!r}")
    return timedelta(seconds=seconds)


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
        self.RESTFUL_JSON = {"ensure_ascii": False}  # Chinese as characters, not \uXXXX escapes
        self.MAX_CONTENT_LENGTH = 16 * 1024  # a login is tiny: refuse megabytes (413) before reading them
        # The front ends (other origins) that may call the API; the article allowed every origin. flask-cors reads it.
        origins = os.environ.get("CORS_ORIGINS", self.DEFAULT_CORS_ORIGINS)
        self.CORS_ORIGINS = [origin.strip() for origin in origins.split(",") if origin.strip()]


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


def check_config(app):
    """Stop now, with one clear line, rather than fail at the first request (or run unsafely)."""
    key = app.config["JWT_SECRET_KEY"]
    if app.config["CONFIG_NAME"] == "development":
        if key == DEV_SECRET_KEY:
            app.logger.warning("JWT_SECRET_KEY is not set: using the development placeholder key.")
        return
    if key == DEV_SECRET_KEY or len(key.encode()) < 32:
        raise ConfigError("JWT_SECRET_KEY must be set to a random value of at least 32 bytes, "
                          "e.g. python -c \"import secrets; print(secrets.token_hex(32))\"")
    if app.config["CONFIG_NAME"] == "production" and app.debug:
        raise ConfigError("FLASK_DEBUG must be off in production")
