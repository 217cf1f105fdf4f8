import json
from pathlib import Path

from flask import after_this_request, current_app, request
from flask_jwt_extended import (create_access_token, create_refresh_token, current_user, decode_token, get_jwt,
                                get_jwt_identity, jwt_required, set_access_cookies, verify_jwt_in_request)
from flask_jwt_extended.exceptions import CSRFError, NoAuthorizationError
from flask_restful import Resource, abort
from sqlalchemy.exc import IntegrityError

from .accounts import account_claims, admin_required
from .blocklist import revoke_token
from .cookies import csrf_tokens_for_body, set_login_cookies, unset_all_cookies
from .limits import login_attempts
from .models import ROLES, User, db, normalize_username, username_problem

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
        with login_attempts():  # 429 here, before the slow password hash, once this client failed too often
            user_exists, password_correct, user = User.authenticate(username, password)
        if not user_exists:
            return {"code": 201, "message": "user not exist", "userid": None}, 401, CHALLENGE
        if not password_correct:
            return {"code": 202, "message": "wrong password", "userid": None}, 401, CHALLENGE
        if not user.active:  # the article stored `active` but never read it
            return {"code": 208, "message": "user inactive", "userid": None}, 403
        # The identity becomes the token's "sub" claim, which must be a string: the username is one.
        # fresh=True: this token comes from a password typed just now (accounts.py). Short-lived (minutes).
        token = create_access_token(identity=user.username, fresh=True, additional_claims=account_claims(user))
        # Long-lived: sent only to /refresh and /logout.
        refresh_token = create_refresh_token(identity=user.username, additional_claims=account_claims(user))
        after_this_request(lambda response: set_login_cookies(response, token, refresh_token) or response)
        # No token in the body: a script (an XSS bug included) never sees one. The cookies carry them.
        return {"code": 200, "message": "success", "userid": user.id,
                **csrf_tokens_for_body(access_token=token, refresh_token=refresh_token)}


class Refresh(Resource):
    @jwt_required(refresh=True)  # the refresh cookie with its X-CSRF-TOKEN, or a Bearer refresh token: 210 for an access token
    def post(self):
        # A new access token for the same user; load_user has checked that the user still exists and is active.
        # Not fresh: no password was typed for it (accounts.py). The role is the user's now, not the refresh token's.
        token = create_access_token(identity=get_jwt_identity(), fresh=False, additional_claims=account_claims(current_user))
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

    @admin_required()  # a Bearer header, or the access cookie with its X-CSRF-TOKEN (a POST)
    def post(self):
        """Create a user: {"username", "password", "role"} (role: user, the default, or admin)."""
        body = json_object()
        username = text_field(body, "username", "用户名不能为空")
        password = text_field(body, "password", "密码不能为空")
        role = body.get("role", "user")
        if role not in ROLES:
            abort(400, message="role must be user or admin")
        if problem := username_problem(username):
            abort(400, message=f"username {problem}")
        if max(len(username), len(normalize_username(username))) > User.username.type.length:
            abort(400, message=f"a username has at most {User.username.type.length} characters")
        user = User(username, password, role=role)
        db.session.add(user)
        try:
            db.session.commit()
        except IntegrityError:  # unique username, checked by the database itself: even two admins at once
            db.session.rollback()
            return {"code": 224, "message": "username already exists"}, 409
        return {"code": 200, "message": "success", "userid": user.id}, 201


MAX_ID = 2**31 - 1  # the largest id an INTEGER column holds in MySQL and PostgreSQL


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
        # /users/99999999999 is a path Flask's int converter accepts, but no database's integer column holds it.
        user = db.session.get(User, userid) if userid <= MAX_ID else None
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
        """The password again, for a fresh access token (cookie) only: the refresh token stays as it is."""
        body = json_object()
        username = text_field(body, "username", "用户名不能为空")
        password = text_field(body, "password", "密码不能为空")
        with login_attempts():  # the same limits as /login: the same password guessing
            user_exists, password_correct, user = User.authenticate(username, password)
        if not user_exists:  # the same answers as POST /login
            return {"code": 201, "message": "user not exist", "userid": None}, 401, CHALLENGE
        if not password_correct:
            return {"code": 202, "message": "wrong password", "userid": None}, 401, CHALLENGE
        if not user.active:
            return {"code": 208, "message": "user inactive", "userid": None}, 403
        token = create_access_token(identity=user.username, fresh=True, additional_claims=account_claims(user))
        after_this_request(lambda response: set_access_cookies(response, token) or response)
        return {"code": 200, "message": "success", "userid": user.id, **csrf_tokens_for_body(access_token=token)}


class Password(Resource):
    @jwt_required(fresh=True)  # a Bearer header, or the access cookie with its X-CSRF-TOKEN (a PUT)
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
        # The client's own tokens ended too: new cookies, made with the new token_version.
        token = create_access_token(identity=user.username, fresh=True, additional_claims=account_claims(user))
        refresh_token = create_refresh_token(identity=user.username, additional_claims=account_claims(user))
        after_this_request(lambda response: set_login_cookies(response, token, refresh_token) or response)
        return {"code": 200, "message": "password changed",
                **csrf_tokens_for_body(access_token=token, refresh_token=refresh_token)}


class OpenAPI(Resource):
    def get(self):
        # This step's contract, kept beside its code: for Postman (Import > Link), Swagger UI or schemathesis.
        return json.loads(Path(__file__).with_name("openapi.json").read_text(encoding="utf-8"))
