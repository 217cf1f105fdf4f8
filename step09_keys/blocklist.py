"""The blocklist: the ids (`jti`) of revoked tokens, each kept until its token would have expired anyway.

A JWT is checked with the key alone, so "log out" needs server state: a list that every request looks in.
Every worker and every host must read the same list, or a logout on one is not seen by the others: it lives in
Redis (REDIS_URL). MemoryBlocklist, a dict in this process, is the wrong way for anything but a single process
(`flask run`); it is kept so that development needs nothing but Python, and to show why (BLOCKLIST=memory).
"""
import math
import threading
import time
from datetime import timedelta

import redis
from flask import current_app
from redis.backoff import NoBackoff
from redis.retry import Retry
from werkzeug.exceptions import ServiceUnavailable


class BlocklistUnavailable(ServiceUnavailable):
    """Redis cannot be reached. errors.Api answers it 503 in the envelope: a list that cannot be read must
    not let a revoked token through (fail closed), and a logout that was not recorded must not say it was."""

    description = "token blocklist unavailable"


class RedisBlocklist:
    """One key per revoked token, <BLOCKLIST_PREFIX><jti>, which Redis deletes when the token expires."""

    def __init__(self, url, prefix):
        # Redis answers in well under a millisecond: wait 1 s at most for an answer, and retry once at once (a
        # pooled connection that Redis closed is replaced). redis-py's default retries 3 times with back-off.
        # Connecting takes a millisecond too; 0.25 s at most, because Windows does not refuse a connection to a
        # closed port at once: it tries again for about 2 s, and every request would wait that long for its 503.
        self.redis = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=0.25, retry=Retry(NoBackoff(), 1))
        self.prefix = prefix

    def revoke(self, jti, seconds):
        self._call(self.redis.set, self.prefix + jti, 1, ex=seconds)

    def is_revoked(self, jti):
        return self._call(self.redis.exists, self.prefix + jti) == 1

    @staticmethod
    def _call(command, *args, **kwargs):
        try:
            return command(*args, **kwargs)
        except redis.RedisError as error:
            current_app.logger.warning("token blocklist unavailable: %s", error)
            raise BlocklistUnavailable() from error


class MemoryBlocklist:
    """THE WRONG WAY with more than one process: each gunicorn worker, each host, has a dict of its own,
    and a token revoked in one is still accepted by the others."""

    def __init__(self):
        self.until = {}  # jti -> the time after which the entry can go
        self.lock = threading.Lock()  # threaded servers answer several requests at once

    def revoke(self, jti, seconds):
        now = time.time()
        with self.lock:
            self.until = {j: t for j, t in self.until.items() if t > now}  # forget the expired ones
            self.until[jti] = math.inf if seconds is None else now + seconds

    def is_revoked(self, jti):
        return self.until.get(jti, 0) > time.time()


def init_blocklist(app, jwt):
    """Make the app's blocklist (BLOCKLIST: redis or memory) and check every token against it."""
    if app.config["BLOCKLIST"] == "redis":
        blocklist = RedisBlocklist(app.config["REDIS_URL"], app.config["BLOCKLIST_PREFIX"])
    else:
        blocklist = MemoryBlocklist()
    app.extensions["blocklist"] = blocklist

    @jwt.token_in_blocklist_loader
    def token_revoked(jwt_header, jwt_payload):  # after the signature, expiry and type checks
        return blocklist.is_revoked(str(jwt_payload["jti"]))


def revoke_token(jwt_payload):
    """Put this token on the blocklist until it expires, plus the leeway another host may still allow it."""
    leeway = current_app.config["JWT_DECODE_LEEWAY"]
    if isinstance(leeway, timedelta):
        leeway = leeway.total_seconds()
    expires = jwt_payload.get("exp")  # every token this app makes has one; without it, a token never expires
    seconds = None if expires is None else max(1, math.ceil(expires + leeway - time.time()))
    current_app.extensions["blocklist"].revoke(str(jwt_payload["jti"]), seconds)
