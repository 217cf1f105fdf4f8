"""Every error answers in the article's envelope {code, message}, and token errors reach their handlers."""
import math
import time

import flask_restful
from flask import current_app
from flask_jwt_extended.exceptions import JWTExtendedException, WrongTokenError
from limits.errors import StorageError
from jwt.exceptions import InvalidAlgorithmError, InvalidSignatureError, PyJWTError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException, TooManyRequests


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
            return self.make_response({"code": e.code, "message": message}, e.code)
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


def register_token_errors(app, jwt):
    """Each token problem gets its own code in the envelope, and HTTP 401 (RFC 6750)."""

    @jwt.expired_token_loader
    def expired_token(jwt_header, jwt_payload):  # 4.x passes these two; the article's callback took none
        return {"code": 201, "message": "token expired"}, 401  # the article's answer, with status 401

    @jwt.unauthorized_loader
    def missing_token(reason):  # no Authorization header, or not "Bearer <token>"
        return {"code": 203, "message": "missing token"}, 401

    @jwt.user_lookup_error_loader
    def user_gone(jwt_header, jwt_payload):  # a valid token, but its user was deleted or made inactive
        return {"code": 209, "message": "user inactive or deleted"}, 401

    @jwt.invalid_token_loader
    def invalid_token(reason):  # not a usable JWT: segments, base64, JSON, claims
        return {"code": 204, "message": "invalid token"}, 401

    # The library hands the next three to invalid_token_loader too, with only a message string.
    # A handler for the exception's own class is more specific, so Flask chooses it instead.
    @app.errorhandler(InvalidSignatureError)
    def bad_signature(e):  # signed with another key, or changed after it was signed
        return {"code": 205, "message": "bad token signature"}, 401

    @app.errorhandler(InvalidAlgorithmError)
    def algorithm_not_allowed(e):  # alg "none", HS512 ...: only HS256 is accepted
        return {"code": 206, "message": "token algorithm not allowed"}, 401

    @app.errorhandler(WrongTokenError)
    def wrong_token_type(e):
        if str(e) == "Only refresh tokens are allowed":  # the library's words for an access token on /refresh
            return {"code": 210, "message": "refresh token required"}, 401
        return {"code": 207, "message": "access token required"}, 401  # a refresh token where an access token is needed

    @jwt.revoked_token_loader
    def revoked_token(jwt_header, jwt_payload):  # logged out: its jti is on the blocklist (blocklist.py)
        return {"code": 211, "message": "token revoked"}, 401

    @jwt.needs_fresh_token_loader
    def fresh_token_required(jwt_header, jwt_payload):  # a token from /refresh where a password login is needed
        return {"code": 221, "message": "fresh token required"}, 401

    @app.errorhandler(TokenEnded)
    def token_ended(e):  # every token made before a password change, access and refresh alike
        return {"code": 223, "message": "token ended by a password change"}, 401
