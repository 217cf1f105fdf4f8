"""Schemathesis hooks (SCHEMATHESIS_HOOKS=schemathesis_hooks): real tokens from a real login (TUTORIAL_API_URL) for
every case, the one its operation's document asks for (accessToken or refreshToken). POST /logout gets a fresh one of
its own (it revokes it), PUT /users/me/password (step08) a new user's (it ends every token of its user): the shared
tokens stay valid. Tokens are cached per TUTORIAL_API_URL and TUTORIAL_API_RUN: runs in one process never share them.
"""
import json
import os
import urllib.request
import uuid
from http.cookies import SimpleCookie

import schemathesis

ADMIN = {"username": "admin@gmail.com", "password": "123456"}


def post(path, body, **headers):
    request = urllib.request.Request(os.environ["TUTORIAL_API_URL"] + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json", **headers}, method="POST")
    return urllib.request.urlopen(request, timeout=10)


def login_tokens(credentials=ADMIN):
    """{"access", "refresh"} from POST /login: the body's token and refresh_token, else (step07 on) its cookies."""
    with post("/login", credentials) as response:
        body = json.loads(response.read())
        cookies = SimpleCookie("; ".join(response.headers.get_all("Set-Cookie") or []))
    return {"access": body.get("token") or getattr(cookies.get("access_token_cookie"), "value", None),
            "refresh": body.get("refresh_token") or getattr(cookies.get("refresh_token_cookie"), "value", None)}


@schemathesis.auth(refresh_interval=3600, cache_by_key=lambda case, ctx: os.environ["TUTORIAL_API_URL"]
                   + os.environ.get("TUTORIAL_API_RUN", ""))  # one login a run (a port may serve again later)
class Tokens:
    def get(self, case, ctx):
        return login_tokens()

    def set(self, case, tokens, ctx):
        names = {name for requirement in case.operation.definition.raw.get("security", []) for name in requirement}
        if not names:
            return  # /hello, /login: no token
        if case.operation.path == "/logout":
            tokens = login_tokens()  # a token nothing else uses: revoking it spoils nothing
        if case.operation.path == "/users/me/password":  # a password change ends every token of its user: a new one's
            user = {"username": f"pw-{uuid.uuid4().hex[:12]}@example.com", "password": ADMIN["password"]}
            post("/users", user, Authorization=f"Bearer {tokens['access']}").close()
            tokens = login_tokens(user)
        token = tokens["refresh"] if "refreshToken" in names and "accessToken" not in names else tokens["access"]
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
