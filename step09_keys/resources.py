import json
from pathlib import Path

from flask import after_this_request, current_app, request
from flask_jwt_extended import (create_access_token, create_refresh_token, decode_token, get_jwt, get_jwt_identity,
                                jwt_required, set_access_cookies, verify_jwt_in_request)
from flask_jwt_extended.exceptions import CSRFError, NoAuthorizationError
from flask_restful import Resource, abort

from .blocklist import revoke_token
from .cookies import csrf_tokens_for_body, set_login_cookies, unset_all_cookies
from .models import User

CHALLENGE = {"WWW-Authenticate": "Bearer"}  # RFC 9110: a 401 names the scheme that works here (the token login gives)


class Hello(Resource):
    def get(self):
        # Only what this request carries counts: the server remembers nothing between requests.
        name = request.args.get("name", "stranger")
        return {"code": 200, "message": f"hello, {name}"}


def json_object():
    """The request's body, which must be a JSON object like {"username": ..., "password": ...}."""
    try:
        body = request.get_json()  # 415 if the body is not JSON, 400 if it is broken
    except RecursionError:  # "[[[[...": nested deeper than Python's JSON parser can go
        body = None
    if not isinstance(body, dict):
        abort(400, message="the body must be a JSON object")
    return body


def text_field(body, name, missing_message):
    """What reqparse's type=str let through, checked: a string (not 123 or a list), not empty, and text
    every database can store (no NUL character, no lone UTF-16 surrogate)."""
    value = body.get(name)
    if value is None or value == "":
        abort(400, message=missing_message)  # the article's message
    if not isinstance(value, str):
        abort(400, message=f"{name} must be a string")
    try:
        value.encode("utf-8")  # fails on a lone surrogate, which JSON can spell "\ud800"
    except UnicodeEncodeError:
        abort(400, message=f"{name} is not valid text")
    if "\x00" in value:  # PostgreSQL cannot store it
        abort(400, message=f"{name} is not valid text")
    return value


class Login(Resource):
    def post(self):
        body = json_object()
        username = text_field(body, "username", "用户名不能为空")
        password = text_field(body, "password", "密码不能为空")
        user_exists, password_correct, user = User.authenticate(username, password)
        if not user_exists:
            return {"code": 201, "message": "user not exist", "userid": None}, 401, CHALLENGE
        if not password_correct:
            return {"code": 202, "message": "wrong password", "userid": None}, 401, CHALLENGE
        if not user.active:  # the article stored `active` but never read it
            return {"code": 208, "message": "user inactive", "userid": None}, 403
        # The identity becomes the token's "sub" claim, which must be a string: the username is one.
        token = create_access_token(identity=user.username)  # short-lived (minutes): sent with every request
        refresh_token = create_refresh_token(identity=user.username)  # long-lived: sent only to /refresh and /logout
        after_this_request(lambda response: set_login_cookies(response, token, refresh_token) or response)
        # No token in the body: a script (an XSS bug included) never sees one. The cookies carry them.
        return {"code": 200, "message": "success", "userid": user.id,
                **csrf_tokens_for_body(access_token=token, refresh_token=refresh_token)}


class Refresh(Resource):
    @jwt_required(refresh=True)  # the refresh cookie with its X-CSRF-TOKEN, or a Bearer refresh token: 210 for an access token
    def post(self):
        # A new access token for the same user; load_user has checked that the user still exists and is active.
        token = create_access_token(identity=get_jwt_identity())
        after_this_request(lambda response: set_access_cookies(response, token) or response)
        return {"code": 200, "message": "success", **csrf_tokens_for_body(access_token=token)}


class Logout(Resource):
    def post(self):
        if request.headers.get("Authorization"):  # curl, Postman, another service: the token it sends, as in step06
            verify_jwt_in_request(verify_type=False, locations=["headers"])
            claims = get_jwt()
            revoke_token(claims)  # from now on, every worker and host answers this token 211 "token revoked"
            return {"code": 200, "message": f"{claims['type']} token revoked"}
        # A browser sends its cookies: both tokens are revoked and every cookie unset, even when the access token
        # has expired already (#134, #528). Not @jwt_required, which would refuse that expired token first.
        config = current_app.config
        tokens = [request.cookies.get(config[name]) for name in ("JWT_ACCESS_COOKIE_NAME", "JWT_REFRESH_COOKIE_NAME")]
        tokens = [token for token in tokens if token]
        if not tokens:
            raise NoAuthorizationError("Missing cookie")  # 203, as for every request with no token
        csrf = None
        if config["JWT_COOKIE_CSRF_PROTECT"]:  # the same double-submit check as every other POST: 212, 213
            csrf = request.headers.get("X-CSRF-TOKEN") or request.form.get("csrf_token")
            if not csrf:
                raise CSRFError("Missing CSRF token")
        # The first token checks the CSRF value (the access cookie's, or the refresh cookie's when it is the only one).
        claims = [decode_token(token, csrf if i == 0 else None, allow_expired=True) for i, token in enumerate(tokens)]
        for token_claims in claims:
            revoke_token(token_claims)
        after_this_request(lambda response: unset_all_cookies(response) or response)
        return {"code": 200, "message": "logged out"}


class Users(Resource):
    @jwt_required()  # with the parentheses: the article's bare @jwt_required no longer works (4.x)
    def get(self):
        users = [{"userid": user.id, "username": user.username} for user in User.get_users()]
        return {"code": 200, "message": "success", "users": users, "identity": get_jwt_identity()}


class OpenAPI(Resource):
    def get(self):
        # This step's contract, kept beside its code: for Postman (Import > Link), Swagger UI or schemathesis.
        return json.loads(Path(__file__).with_name("openapi.json").read_text(encoding="utf-8"))
