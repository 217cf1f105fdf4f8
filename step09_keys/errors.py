"""Every error answers in the article's envelope {code, message}, and token errors reach their handlers."""
import flask_restful
from flask import current_app
from flask_jwt_extended.exceptions import JWTExtendedException, WrongTokenError
from jwt.exceptions import InvalidAlgorithmError, InvalidSignatureError, PyJWTError
from jwt.exceptions import InvalidAudienceError, InvalidIssuerError, MissingRequiredClaimError
from sqlalchemy.exc import OperationalError
from werkzeug.exceptions import HTTPException

from .keys import UnknownKeyId


class Api(flask_restful.Api):
    """flask-restful's Api, with one change: how errors raised inside a Resource are answered."""

    def handle_error(self, e):
        if isinstance(e, (JWTExtendedException, PyJWTError)):
            # Not flask-restful's business: re-raised, it goes on to Flask, where flask-jwt-extended's
            # handlers answer it. Without this, flask-restful answers 500 (flask-restful #796).
            raise e
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
    def algorithm_not_allowed(e):  # alg "none", HS256, RS256 ...: only EdDSA is accepted (keys.py)
        return {"code": 206, "message": "token algorithm not allowed"}, 401

    @app.errorhandler(WrongTokenError)
    def wrong_token_type(e):
        if str(e) == "Only refresh tokens are allowed":  # the library's words for an access token on /refresh
            return {"code": 210, "message": "refresh token required"}, 401
        return {"code": 207, "message": "access token required"}, 401  # a refresh token where an access token is needed

    @jwt.revoked_token_loader
    def revoked_token(jwt_header, jwt_payload):  # logged out: its jti is on the blocklist (blocklist.py)
        return {"code": 211, "message": "token revoked"}, 401


def register_key_errors(app):
    """Step 09: what a token signed with a key pair can be refused for, beyond step 06's reasons."""

    @app.errorhandler(UnknownKeyId)
    def unknown_key(e):  # no kid, a made-up one, or a key retired (or not yet fetched, on reports.py)
        return {"code": 230, "message": "unknown key id"}, 401

    @app.errorhandler(InvalidAudienceError)
    def wrong_audience(e):  # a token made for another service
        return {"code": 231, "message": "wrong token audience"}, 401

    @app.errorhandler(InvalidIssuerError)
    def wrong_issuer(e):  # made by someone else than the login service
        return {"code": 232, "message": "wrong token issuer"}, 401

    @app.errorhandler(MissingRequiredClaimError)
    def missing_claim(e):  # no aud or no iss at all
        if e.claim in ("aud", "iss"):
            return wrong_audience(e) if e.claim == "aud" else wrong_issuer(e)
        return {"code": 204, "message": "invalid token"}, 401
