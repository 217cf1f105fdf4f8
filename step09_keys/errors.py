"""Every error answers in the article's envelope {code, message}, and token errors reach their handlers."""
import math
import time

import flask_restful
from flask import current_app
from flask_jwt_extended.exceptions import CSRFError, JWTExtendedException, WrongTokenError
from jwt.exceptions import InvalidAlgorithmError, InvalidSignatureError, PyJWTError
from jwt.exceptions import InvalidAudienceError, InvalidIssuerError, MissingRequiredClaimError
from limits.errors import StorageError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, TooManyRequests

from .keys import UnknownKeyId


class Api(flask_restful.Api):
    """flask-restful's Api, with one change: how errors raised inside a Resource are answered."""

    def handle_error(self, e):
        if isinstance(e, (JWTExtendedException, PyJWTError)):
            # Not flask-restful's business: re-raised, it goes on to Flask, where flask-jwt-extended's
            # handlers answer it. Without this, flask-restful answers 500 (flask-restful #796).
            raise e
        if isinstance(e, TooManyAttempts):  # limits.py: too many failed logins, answered before any hash
            return self.make_response(*e.answer())
        if isinstance(e, StorageError):  # Redis unreachable: refuse the login rather than count nothing (fail closed)
            current_app.logger.warning("login limiter unavailable: %s", e)
            return self.make_response({"code": 503, "message": "login limiter unavailable"}, 503)
        if isinstance(e, HTTPException):  # 400, 404, 405, 415 ...
            message = getattr(e, "data", {}).get("message", e.description)
            if isinstance(message, dict):  # reqparse's {"username": "用户名不能为空"}
                message = next(iter(message.values()))
            # The headers HTTP requires travel with the envelope: Allow on a 405, Retry-After on a 429 or 503 ...
            headers = {k: v for k, v in e.get_headers() if k.lower() != "content-type"}
            return self.make_response({"code": e.code, "message": message}, e.code, headers=headers)
        if isinstance(e, OperationalError):  # the database is down, unreachable, or not initialised
            current_app.logger.warning("database unavailable: %s", e.orig)
            return self.make_response({"code": 503, "message": "database unavailable"}, 503)
        super().handle_error(e)  # a bug: logged (and re-raised under debug or testing) ...
        return self.make_response({"code": 500, "message": "internal server error"}, 500)  # ... still JSON


class TokenEnded(JWTExtendedException):
    """A token made before its user's last password change (models.load_user)."""


class TooManyAttempts(TooManyRequests):
    """A login limit is reached (limits.py) until `until` (a time.time() value)."""

    def __init__(self, until):
        super().__init__()
        self.until = until

    def answer(self):
        """429, with Retry-After: the seconds until the limit that was reached lets this client try again."""
        seconds = max(1, math.ceil(self.until - time.time()))
        return {"code": 222, "message": "too many login attempts", "retry_after": seconds}, 429, {"Retry-After": str(seconds)}


def invalid_token(code, message):
    """A 401 for a token that was sent but cannot be used: the envelope, and the challenge RFC 6750 §3 asks for."""
    challenge = f'Bearer error="invalid_token", error_description="{message}"'
    return {"code": code, "message": message}, 401, {"WWW-Authenticate": challenge}


CSRF_CHALLENGE = {"WWW-Authenticate": "Bearer"}  # the token itself may be fine: no error="invalid_token"


def register_token_errors(app, jwt):
    """Each token problem gets its own code in the envelope, and HTTP 401 with a WWW-Authenticate challenge."""

    @jwt.expired_token_loader
    def expired_token(jwt_header, jwt_payload):  # 4.x passes these two; the article's callback took none
        return invalid_token(201, "token expired")  # the article's answer, with status 401

    @jwt.unauthorized_loader
    def missing_token(reason):  # no Authorization header (or not "Bearer <token>"), and no access cookie
        return {"code": 203, "message": "missing token"}, 401, {"WWW-Authenticate": "Bearer"}  # no token, no error code (RFC 6750 §3.1)

    @jwt.user_lookup_error_loader
    def user_gone(jwt_header, jwt_payload):  # a valid token, but its user was deleted or made inactive
        return invalid_token(209, "user inactive or deleted")

    @jwt.invalid_token_loader
    def unusable_token(reason):  # not a usable JWT: segments, base64, JSON, claims
        return invalid_token(204, "invalid token")

    # The library hands the next three to invalid_token_loader too, with only a message string.
    # A handler for the exception's own class is more specific, so Flask chooses it instead.
    @app.errorhandler(InvalidSignatureError)
    def bad_signature(e):  # signed with another key, or changed after it was signed
        return invalid_token(205, "bad token signature")

    @app.errorhandler(InvalidAlgorithmError)
    def algorithm_not_allowed(e):  # alg "none", HS256, RS256 ...: only EdDSA is accepted (keys.py)
        return invalid_token(206, "token algorithm not allowed")

    @app.errorhandler(WrongTokenError)
    def wrong_token_type(e):
        if str(e) == "Only refresh tokens are allowed":  # the library's words for an access token on /refresh
            return invalid_token(210, "refresh token required")
        return invalid_token(207, "access token required")  # a refresh token where an access token is needed

    @jwt.revoked_token_loader
    def revoked_token(jwt_header, jwt_payload):  # logged out: its jti is on the blocklist (blocklist.py)
        return invalid_token(211, "token revoked")

    @app.errorhandler(CSRFError)  # a cookie sent on a POST without the X-CSRF-TOKEN header (or form field) to match
    def csrf_refused(e):
        if str(e) == "Missing CSRF token":  # the library's words; the other: "CSRF double submit tokens do not match"
            return {"code": 212, "message": "CSRF token missing"}, 401, CSRF_CHALLENGE
        return {"code": 213, "message": "CSRF tokens do not match"}, 401, CSRF_CHALLENGE

    @jwt.needs_fresh_token_loader
    def fresh_token_required(jwt_header, jwt_payload):  # a token from /refresh where a password typed just now is needed
        return invalid_token(221, "fresh token required")  # POST /fresh-login makes one

    @app.errorhandler(TokenEnded)
    def token_ended(e):  # every token made before a password change, access and refresh alike (models.load_user)
        return invalid_token(223, "token ended by a password change")


def register_key_errors(app):
    """Step 09: what a token signed with a key pair can be refused for, beyond step 08's reasons."""

    @app.errorhandler(UnknownKeyId)
    def unknown_key(e):  # no kid, a made-up one, or a key retired (or not yet fetched, on reports.py)
        return invalid_token(230, "unknown key id")

    @app.errorhandler(InvalidAudienceError)
    def wrong_audience(e):  # a token made for another service
        return invalid_token(231, "wrong token audience")

    @app.errorhandler(InvalidIssuerError)
    def wrong_issuer(e):  # made by someone else than the login service
        return invalid_token(232, "wrong token issuer")

    @app.errorhandler(MissingRequiredClaimError)
    def missing_claim(e):  # no aud or no iss at all
        if e.claim in ("aud", "iss"):
            return wrong_audience(e) if e.claim == "aud" else wrong_issuer(e)
        return invalid_token(204, "invalid token")
