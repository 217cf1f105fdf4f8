"""Who may do what: the role of a user, and what a token says about how it was made.

The role is put into the access token (the "role" claim) for clients, e.g. a front end that shows an admin menu.
The server does not trust that copy: admin_required reads the role from the user's row, which load_user loads
at every request anyway, so an admin who is demoted loses the admin API at once, not when the token expires.

`fresh` says how *this token* was made: True for a password typed just now (POST /login, POST /fresh-login),
False for one that POST /refresh made from a refresh token, which may be days old. It says nothing else about
the user. Sensitive changes ask for a fresh token: @jwt_required(fresh=True), else 221.
"""
from functools import wraps

from flask_jwt_extended import current_user, verify_jwt_in_request


def account_claims(user):
    """What every token of this user carries besides its identity (sub)."""
    return {"role": user.role, "token_version": user.token_version}  # token_version: see models.load_user


# RFC 6750 §3.1: the token is good, but not for this; another token of the same user would not help either.
INSUFFICIENT = {"WWW-Authenticate": 'Bearer error="insufficient_scope", error_description="admin required"'}


def admin_required(fresh=False):
    """Like @jwt_required(fresh=...), and the user must be an admin (flask-jwt-extended's custom_decorators)."""

    def decorator(fn):
        @wraps(fn)
        def wrapper(*args, **kwargs):
            verify_jwt_in_request(fresh=fresh)  # 401 for a missing, invalid, revoked or (if fresh) non-fresh token
            if current_user.role != "admin":  # the row, read at this request: never the token's claim
                return {"code": 220, "message": "admin required"}, 403, INSUFFICIENT  # 403: who you are is known
            return fn(*args, **kwargs)

        return wrapper

    return decorator
