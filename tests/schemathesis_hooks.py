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


def login_tokens(credentials=ADMIN):
    """{"access", "refresh"} from POST /login: the body's token and refresh_token, else (step07 on) its cookies."""
    request = urllib.request.Request(os.environ["TUTORIAL_API_URL"] + "/login", data=json.dumps(credentials).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        body = json.loads(response.read())
        cookies = SimpleCookie()
        for header in response.headers.get_all("Set-Cookie") or []:
            cookies.load(header)
    cookie = lambda name: cookies[name].value if name in cookies else None  # noqa: E731
    return {"access": body.get("token") or cookie("access_token_cookie"),
            "refresh": body.get("refresh_token") or cookie("refresh_token_cookie")}


def own_user_tokens(admin_access):  # a new user with the article's password (POST /users as the admin), logged in
    user = {"username": f"pw-{uuid.uuid4().hex[:12]}@example.com", "password": ADMIN["password"]}
    request = urllib.request.Request(os.environ["TUTORIAL_API_URL"] + "/users", data=json.dumps(user).encode(), method="POST",
                                     headers={"Content-Type": "application/json", "Authorization": f"Bearer {admin_access}"})
    urllib.request.urlopen(request, timeout=10).close()
    return login_tokens(user)


def this_run(case, ctx):
    return f"{os.environ['TUTORIAL_API_URL']} {os.environ.get('TUTORIAL_API_RUN', '')}"  # a port may serve again later


@schemathesis.auth(refresh_interval=3600, cache_by_key=this_run)  # one login a run; /logout logs in again each time
class Tokens:
    def get(self, case, ctx):
        return login_tokens()

    def set(self, case, tokens, ctx):
        requirements = case.operation.definition.raw.get("security", [])
        names = {name for requirement in requirements for name in requirement}
        if not names:
            return  # /hello, /login: no token
        if case.operation.path == "/logout":
            tokens = login_tokens()  # a token nothing else uses: revoking it spoils nothing
        if case.operation.path == "/users/me/password":
            tokens = own_user_tokens(tokens["access"])  # a password change ends every token of its user
        token = tokens["refresh"] if "refreshToken" in names and "accessToken" not in names else tokens["access"]
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {token}"}
