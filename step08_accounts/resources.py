from flask import request
from flask_jwt_extended import (
    create_access_token, create_refresh_token, current_user, get_jwt, get_jwt_identity, jwt_required,
)
from flask_restful import Resource, abort
from sqlalchemy.exc import IntegrityError

from .accounts import account_claims, admin_required
from .blocklist import revoke_token
from .limits import login_attempts
from .models import ROLES, User, db


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
        with login_attempts():  # 429 here, before the slow password hash, once this client failed too often
            user_exists, password_correct, user = User.authenticate(username, password)
        if not user_exists:
            return {"code": 201, "message": "user not exist", "token": None, "userid": None}, 401
        if not password_correct:
            return {"code": 202, "message": "wrong password", "token": None, "userid": None}, 401
        if not user.active:  # the article stored `active` but never read it
            return {"code": 208, "message": "user inactive", "token": None, "userid": None}, 403
        # The identity becomes the token's "sub" claim, which must be a string: the username is one.
        # fresh=True: this token comes from a password typed just now (accounts.py).
        token = create_access_token(identity=user.username, fresh=True, additional_claims=account_claims(user))
        refresh_token = create_refresh_token(identity=user.username, additional_claims=account_claims(user))
        return {"code": 200, "message": "success", "token": token, "userid": user.id, "refresh_token": refresh_token}


class Refresh(Resource):
    @jwt_required(refresh=True)  # a refresh token only: an access token here answers 210
    def post(self):
        # A new access token for the same user; load_user has checked that the user still exists and is active.
        # Not fresh: no password was typed for it (accounts.py).
        token = create_access_token(identity=get_jwt_identity(), fresh=False, additional_claims=account_claims(current_user))
        return {"code": 200, "message": "success", "token": token}


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

    @admin_required()
    def post(self):
        """Create a user: {"username", "password", "role"} (role: user, the default, or admin)."""
        body = json_object()
        username = text_field(body, "username", "用户名不能为空")
        password = text_field(body, "password", "密码不能为空")
        role = body.get("role", "user")
        if role not in ROLES:
            abort(400, message="role must be user or admin")
        if len(username) > User.username.type.length:
            abort(400, message=f"a username has at most {User.username.type.length} characters")
        user = User(username, password, role=role)
        db.session.add(user)
        try:
            db.session.commit()
        except IntegrityError:  # unique username, checked by the database itself: even two admins at once
            db.session.rollback()
            return {"code": 224, "message": "username already exists"}, 409
        return {"code": 200, "message": "success", "userid": user.id}, 201


# --- step08: accounts ------------------------------------------------------------------------------------


def account(user):
    return {"userid": user.id, "username": user.username, "active": user.active, "role": user.role}


class UserAdmin(Resource):
    @admin_required(fresh=True)  # a sensitive change: only with a password typed just now
    def patch(self, userid):
        """{"active": false} deactivates (its tokens stop at once: load_user), {"active": true} restores;
        {"role": "user"} or {"role": "admin"} changes the role (admin_required reads it at every request)."""
        body = json_object()
        changes = {name: body[name] for name in ("active", "role") if name in body}
        if not changes:
            abort(400, message="the body must hold active or role")
        if "active" in changes and not isinstance(changes["active"], bool):
            abort(400, message="active must be true or false")
        if "role" in changes and changes["role"] not in ROLES:
            abort(400, message="role must be user or admin")
        user = db.session.get(User, userid)
        if user is None:
            return {"code": 225, "message": "user not found"}, 404
        if user.id == current_user.id:  # or the last admin could lock everyone out of the admin API
            return {"code": 227, "message": "an admin cannot deactivate or demote themselves"}, 403
        for name, value in changes.items():
            setattr(user, name, value)
        db.session.commit()
        return {"code": 200, "message": "success", "user": account(user)}


class FreshLogin(Resource):
    def post(self):
        """The password again, for a fresh access token only: the refresh token the client holds stays as it is."""
        body = json_object()
        username = text_field(body, "username", "用户名不能为空")
        password = text_field(body, "password", "密码不能为空")
        with login_attempts():  # the same limits as /login: the same password guessing
            user_exists, password_correct, user = User.authenticate(username, password)
        if not user_exists:
            return {"code": 201, "message": "user not exist", "token": None}, 401
        if not password_correct:
            return {"code": 202, "message": "wrong password", "token": None}, 401
        if not user.active:
            return {"code": 208, "message": "user inactive", "token": None}, 403
        token = create_access_token(identity=user.username, fresh=True, additional_claims=account_claims(user))
        return {"code": 200, "message": "success", "token": token}


class Password(Resource):
    @jwt_required(fresh=True)
    def put(self):
        """{"old_password", "new_password"}: every token made before this change stops, on every worker and
        host, with no blocklist entry per token: the user's token_version goes up (models.load_user)."""
        body = json_object()
        old = text_field(body, "old_password", "old_password must not be empty")
        new = text_field(body, "new_password", "new_password must not be empty")
        user = current_user
        if not User.authenticate(user.username, old)[1]:  # a stolen token alone cannot change the password
            return {"code": 226, "message": "old password wrong"}, 403
        user.set_password(new)
        user.token_version += 1
        db.session.commit()
        # The client's own tokens ended too: here are new ones, made with the new token_version.
        token = create_access_token(identity=user.username, fresh=True, additional_claims=account_claims(user))
        refresh_token = create_refresh_token(identity=user.username, additional_claims=account_claims(user))
        return {"code": 200, "message": "password changed", "token": token, "refresh_token": refresh_token}
