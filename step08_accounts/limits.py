"""Login attempts limited (Flask-Limiter): a password guesser gets 429 before any password is hashed.

Two counters, both of failed logins only (a user who types the password right is never slowed down):
LOGIN_LIMIT per username and client address, LOGIN_LIMIT_PER_ADDRESS per client address (many usernames from one
address). Like step06's blocklist they live in Redis, shared by every worker and host; in this process's memory
(BLOCKLIST=memory) each gunicorn worker counts on its own, so a client gets `workers x LOGIN_LIMIT` tries.
"""
import io
import json
import time
from contextlib import contextmanager
from functools import cached_property

from flask import current_app, request
from flask_limiter import Limiter
from flask_limiter.errors import RateLimitExceeded
from flask_restful.representations.json import output_json
from werkzeug.middleware.proxy_fix import ProxyFix

from .errors import TooManyAttempts
from .models import normalize_username


LOGIN_ENDPOINTS = ("login", "freshlogin")  # the views that call login_attempts()


def client_address():
    """The address the connection came from; X-Forwarded-For counts only through ProxyFix (trust_proxies)."""
    return request.remote_addr or "unknown"


def username_and_address():
    # The body was checked before the limit; ADMIN@gmail.com counts as admin@gmail.com, as login finds it.
    return f"{client_address()}/{normalize_username(request.get_json()['username'])}"


def failed(response):
    return response.status_code == 401  # 201 user not exist, 202 wrong password


def init_login_limits(app):
    """One Limiter per app (its storage is the app's Redis), and the two limits that login_attempts() checks."""
    redis = app.config["BLOCKLIST"] == "redis"
    limiter = Limiter(
        client_address, app=app, storage_uri=app.config["REDIS_URL"] if redis else "memory://",
        # Wait 1 s at most for Redis, as the blocklist does; its errors become 503 (errors.py: fail closed).
        storage_options={"socket_timeout": 1, "socket_connect_timeout": 1, "wrap_exceptions": True} if redis else {},
        key_prefix=app.config["LOGIN_LIMIT_PREFIX"], strategy="fixed-window",
    )
    # Made once; each request's username and address come from the key functions. Shared: /login and
    # /fresh-login count into the same two counters (the same password guessing).
    limits = [
        limiter.shared_limit(app.config["LOGIN_LIMIT"], "login-user", key_func=username_and_address, deduct_when=failed),
        limiter.shared_limit(app.config["LOGIN_LIMIT_PER_ADDRESS"], "login-address", key_func=client_address, deduct_when=failed),
    ]
    app.extensions["login_limiter"] = limiter
    app.extensions["login_limits"] = limits
    app.extensions["login_windows_full"] = {}
    # No default limits: the check Flask-Limiter runs before every request (GET /users too) would find none, and
    # its after-request hook (it counts the failed logins) and its teardown have work on the login views only.
    app.before_request_funcs[None].remove(limiter._check_request_limit)
    for hooks in (app.after_request_funcs[None], app.teardown_request_funcs[None]):
        hooks[:] = [on_login_views(hook) if limiter in (getattr(hook, "__self__", None), *getattr(hook, "args", ())) else hook
                    for hook in hooks]
    app.before_request(refuse_known_full)
    app.wsgi_app = RefuseKnownFull(app)  # inside ProxyFix (trust_proxies): it sees the client's address
    trust_proxies(app)


def trust_proxies(app):
    """Behind TRUSTED_PROXY_HOPS reverse proxies, the client's address is the one the last of them added to
    X-Forwarded-For. With 0 (the default) the header is ignored: anyone can send one, with any address."""
    hops = app.config["TRUSTED_PROXY_HOPS"]
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops)


@contextmanager
def login_attempts():
    """Around the password check: 429 (TooManyAttempts) at once if this username and address, or this address,
    failed too often; otherwise the check runs, and a 401 answer counts one more failure in each (`failed`)."""
    per_user, per_address = current_app.extensions["login_limits"]
    with known_full(username_and_address()), per_user:  # Flask-Limiter tests each limit as its `with` begins
        with known_full(client_address()), per_address:
            yield


def on_login_views(hook):
    def hook_on_login_views(value):  # the response (after_request) or the exception (teardown_request)
        return hook(value) if request.endpoint in LOGIN_ENDPOINTS else value

    return hook_on_login_views


def login_keys(address, body):
    """The keys of login_attempts' two windows, in its order: this username from this address (when the body names
    one), then this address."""
    username = body.get("username") if isinstance(body, dict) else None
    return ([f"{address}/{normalize_username(username)}"] if isinstance(username, str) else []) + [address]


def known_full_until(full, keys):
    """When the first of these windows that is known full (known_full) ends, or None."""
    now = time.time()
    return next((full[key] for key in keys if full.get(key, 0) > now), None)


def refuse_known_full():
    """A login whose window is known full (known_full): 429 before the view runs. RefuseKnownFull answers most
    such logins before Flask; this answers the rest (a browser's, which gets its CORS headers here)."""
    if request.endpoint not in LOGIN_ENDPOINTS or request.method != "POST":
        return None
    try:
        body = request.get_json(silent=True)  # a body that is not JSON: the view answers it
    except RecursionError:  # nested deeper than the JSON parser goes: the view answers 400
        body = None
    until = known_full_until(current_app.extensions["login_windows_full"], login_keys(client_address(), body))
    if until is not None:
        response = output_json(*TooManyAttempts(until).answer())  # the envelope, as errors.Api writes it
        response.mimetype = "application/json"
        return response
    return None


class RefuseKnownFull:
    """WSGI middleware: a POST to a login path whose window is known full gets its 429 before Flask builds a request,
    runs its hooks and routes it, so that a flood of failed logins costs the workers little. A request with an
    Origin (a browser's: its answer needs the CORS headers) and anything unusual go on to Flask (refuse_known_full)."""

    def __init__(self, app):
        self.app, self.wsgi_app = app, app.wsgi_app

    @cached_property
    def paths(self):  # read at the first request: the routes are added after init_login_limits
        return {rule.rule for rule in self.app.url_map.iter_rules() if rule.endpoint in LOGIN_ENDPOINTS}

    def __call__(self, environ, start_response):
        length = environ.get("CONTENT_LENGTH") or ""
        if (environ["REQUEST_METHOD"] != "POST" or environ.get("PATH_INFO") not in self.paths or "HTTP_ORIGIN" in environ
                or not length.isdigit() or int(length) > self.app.config["MAX_CONTENT_LENGTH"]):
            return self.wsgi_app(environ, start_response)
        raw = environ["wsgi.input"].read(int(length))
        environ["wsgi.input"] = io.BytesIO(raw)  # Flask reads the same body if the login goes on
        try:
            body = json.loads(raw) if environ.get("CONTENT_TYPE", "").startswith("application/json") else None
        except (ValueError, RecursionError):  # the view answers a broken body
            body = None
        until = known_full_until(self.app.extensions["login_windows_full"],
                                 login_keys(environ.get("REMOTE_ADDR") or "unknown", body))
        if until is None:
            return self.wsgi_app(environ, start_response)
        envelope, status, headers = TooManyAttempts(until).answer()
        payload = json.dumps(envelope).encode() + b"\n"  # as errors.Api writes it (ASCII only)
        start_response(f"{status} Too Many Requests", [("Content-Type", "application/json"),
                                                        ("Content-Length", str(len(payload))), *headers.items()])
        return [payload]


@contextmanager
def known_full(key):
    """A fixed window that is full stays full until it ends: each process remembers that, and refuses a flood's
    next attempts without asking Redis again (the window ends at the same instant for every worker and host)."""
    full = current_app.extensions["login_windows_full"]  # key -> when its window ends (time.time())
    if full.get(key, 0) > time.time():
        raise TooManyAttempts(full[key])
    try:
        yield
    except RateLimitExceeded:
        now = time.time()
        if len(full) > 10_000:  # forget the windows that ended: the dict does not grow without bound
            for stale in [k for k, until in full.items() if until <= now]:
                del full[stale]
        full[key] = current_app.extensions["login_limiter"].current_limit.reset_at
        raise TooManyAttempts(full[key]) from None
