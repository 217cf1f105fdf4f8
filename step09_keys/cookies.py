"""The tokens as cookies: set at login, renewed on the way out (implicit refresh), all removed at logout.

access_token_cookie (path /) and refresh_token_cookie are HttpOnly: no script can read them, so an XSS bug
cannot steal them. Because the browser sends them by itself, every POST that a cookie authenticates must
also carry the X-CSRF-TOKEN header (or a form's csrf_token field) equal to the readable csrf_access_token
or csrf_refresh_token cookie: another site can make the browser send our cookies, but cannot read them.
"""
import time
from datetime import timedelta

from flask import current_app
from flask_jwt_extended import (create_access_token, current_user, get_csrf_token, get_jwt, get_jwt_request_location,
                                set_access_cookies, set_refresh_cookies)

from .accounts import account_claims

LOGOUT_PATH = "/logout"  # the refresh cookie is set twice: for /refresh (to use it) and for /logout (to revoke it)


def set_login_cookies(response, access_token, refresh_token):
    set_access_cookies(response, access_token)
    set_refresh_cookies(response, refresh_token)
    config = current_app.config
    response.set_cookie(config["JWT_REFRESH_COOKIE_NAME"], refresh_token, path=LOGOUT_PATH, httponly=True,
                        secure=config["JWT_COOKIE_SECURE"], samesite=config["JWT_COOKIE_SAMESITE"],
                        domain=config["JWT_COOKIE_DOMAIN"])


def unset_all_cookies(response):
    """Every cookie login set, each with the path and domain it was set with: a cookie is removed only by a
    Set-Cookie with the same name, path and domain (#295). Max-Age=0 as well as an Expires in 1970, which
    some clients (curl) do not read as "gone"."""
    config = current_app.config
    for name, path, httponly in ((config["JWT_ACCESS_COOKIE_NAME"], config["JWT_ACCESS_COOKIE_PATH"], True),
                                 (config["JWT_ACCESS_CSRF_COOKIE_NAME"], config["JWT_ACCESS_CSRF_COOKIE_PATH"], False),
                                 (config["JWT_REFRESH_COOKIE_NAME"], config["JWT_REFRESH_COOKIE_PATH"], True),
                                 (config["JWT_REFRESH_COOKIE_NAME"], LOGOUT_PATH, True),
                                 (config["JWT_REFRESH_CSRF_COOKIE_NAME"], config["JWT_REFRESH_CSRF_COOKIE_PATH"], False)):
        response.delete_cookie(name, path=path, domain=config["JWT_COOKIE_DOMAIN"], secure=config["JWT_COOKIE_SECURE"],
                               httponly=httponly, samesite=config["JWT_COOKIE_SAMESITE"])


def csrf_tokens_for_body(**tokens):
    """A front end on another site cannot read our csrf_* cookies (JWT_CSRF_IN_COOKIES=False): it gets the
    values in the answer instead, {"csrf_access_token": ..., "csrf_refresh_token": ...} (#33, #177, #428)."""
    if current_app.config["JWT_CSRF_IN_COOKIES"] or not current_app.config["JWT_COOKIE_CSRF_PROTECT"]:
        return {}
    return {f"csrf_{kind}": get_csrf_token(token) for kind, token in tokens.items()}


def init_cookies(app):
    @app.after_request
    def renew_expiring_access_cookie(response):
        # Acts only when this request verified an access token from a cookie: not on /hello or /login, and not
        # when the token was refused (#462, #442). A token from the Authorization header is the client's business.
        if get_jwt_request_location() != "cookies" or response.status_code >= 400:
            return response
        access_cookie = app.config["JWT_ACCESS_COOKIE_NAME"] + "="
        if any(header.startswith(access_cookie) for header in response.headers.getlist("Set-Cookie")):
            return response  # the endpoint set a new one already (PUT /users/me/password): it stays
        claims = get_jwt()
        within = app.config["IMPLICIT_REFRESH_WITHIN"]
        within = within.total_seconds() if isinstance(within, timedelta) else within  # a number of seconds too
        if claims["type"] == "access" and claims["exp"] - time.time() < within:
            # Not fresh (no password was typed for it), with the user's role and token_version as they are now.
            token = create_access_token(identity=claims["sub"], fresh=False, additional_claims=account_claims(current_user))
            set_access_cookies(response, token)
            if not app.config["JWT_CSRF_IN_COOKIES"]:  # a front end on another site cannot read the new CSRF cookie
                response.headers["X-CSRF-TOKEN"] = get_csrf_token(token)
        return response
