from flask import request
from flask_jwt_extended import create_access_token, create_refresh_token, get_jwt, get_jwt_identity, jwt_required
from flask_restful import Resource, abort

from .blocklist import revoke_token
from .models import User


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
            return {"code": 201, "message": "user not exist", "token": None, "userid": None}, 401
        if not password_correct:
            return {"code": 202, "message": "wrong password", "token": None, "userid": None}, 401
        if not user.active:  # the article stored `active` but never read it
            return {"code": 208, "message": "user inactive", "token": None, "userid": None}, 403
        # The identity becomes the token's "sub" claim, which must be a string: the username is one.
        token = create_access_token(identity=user.username)  # short-lived (minutes): sent with every request
        refresh_token = create_refresh_token(identity=user.username)  # long-lived: sent only to POST /refresh
        return {"code": 200, "message": "success", "token": token, "userid": user.id, "refresh_token": refresh_token}


class Refresh(Resource):
    @jwt_required(refresh=True)  # a refresh token only: an access token here answers 210
    def post(self):
        # A new access token for the same user; load_user has checked that the user still exists and is active.
        return {"code": 200, "message": "success", "token": create_access_token(identity=get_jwt_identity())}


class Logout(Resource):
    @jwt_required(verify_type=False)  # either token: a client that logs out fully calls it with each of its two
    def post(self):
        claims = get_jwt()
        revoke_token(claims)  # from now on, every worker and host answers this token 211 "token revoked"
        return {"code": 200, "message": f"{claims['type']} token revoked"}


class Users(Resource):
    @jwt_required()  # with the parentheses: the article's bare @jwt_required no longer works (4.x)
    def get(self):
        users = [{"userid": user.id, "username": user.username} for user in User.get_users()]
        return {"code": 200, "message": "success", "users": users, "identity": get_jwt_identity()}
