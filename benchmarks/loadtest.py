"""The load test: mixed requests against a running step06 server, from a bounded client on 127.0.0.1.

Virtual users, a few at a time (`concurrency` threads), each: log in, list the users with its access token,
refresh it now and then, send bad tokens (garbage, another key, alg none, the wrong type), log out every
token it holds, and check that each one is now refused. Then a sweep sends every revoked token again, until
`total` requests have been sent. Logins hash the password with scrypt on purpose (~0.15 s of CPU each), so
they are kept to about 1 request in 140.

The test suite runs it against gunicorn with 4 workers on PostgreSQL and Redis
(tests/test_step06_revoke.py::test_load_mixed_requests, with 1,000). On a server of your own:

    uv run python benchmarks/loadtest.py --url http://127.0.0.1:5000

It prints what it sent and what came back, and exits with status 1 on a 5xx, a revoked token accepted, or
any answer other than the expected one.
"""
import argparse
import concurrent.futures
import http.client
import itertools
import json
import re
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import jwt

ADMIN = {"username": "admin@gmail.com", "password": "123456"}
REQUESTS_PER_USER = 97  # what one virtual user sends (see user())
SWEEP_SHARE = 0.3  # the part of `total` left for the final sweep of revoked tokens

# For gunicorn's --access-logformat: which worker answered (pid) each check of a revoked token (header X-Load-Check).
ACCESS_LOG_FORMAT = '"%(r)s" %(s)s pid=%(p)s check=%({x-load-check}i)s'

# What each kind of request must get: (HTTP status, the envelope's code).
EXPECTED = {
    "login": (200, 200), "listing": (200, 200), "refresh": (200, 200), "logout": (200, 200),
    "revoked": (401, 211),
    "garbage": (401, 204), "other key": (401, 205), "alg none": (401, 206),
    "refresh token on /users": (401, 207), "access token on /refresh": (401, 210), "no token": (401, 203),
}


@dataclass
class Report:
    sent: int = 0
    kinds: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    server_errors: int = 0
    revoked_accepted: int = 0
    unexpected: list = field(default_factory=list)
    seconds: float = 0.0
    concurrency: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, kind, status, body):
        with self.lock:
            self.sent += 1
            self.kinds[kind] += 1
            self.statuses[status] += 1
            self.server_errors += status >= 500
            self.revoked_accepted += kind == "revoked" and status < 400
            if (status, body.get("code") if isinstance(body, dict) else None) != EXPECTED[kind]:
                self.unexpected.append((kind, status, body))

    def summary(self):
        kinds = ", ".join(f"{n} {kind}" for kind, n in self.kinds.most_common())
        statuses = ", ".join(f"{n} × {status}" for status, n in sorted(self.statuses.items()))
        return (f"{self.sent} requests in {self.seconds:.1f} s ({self.sent / max(self.seconds, 1e-9):.0f}/s), "
                f"{self.concurrency} at a time: {kinds}. Answers: {statuses}. 5xx: {self.server_errors}; "
                f"revoked tokens accepted: {self.revoked_accepted}; unexpected answers: {len(self.unexpected)}")


class Client:
    def __init__(self, url, report):
        parts = urlsplit(url)
        self.host, self.port, self.report = parts.hostname, parts.port or 80, report

    def send(self, kind, method, path, token=None, body=None, check=None):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        if check is not None:
            headers["X-Load-Check"] = check
        data = None
        if body is not None:
            data, headers["Content-Type"] = json.dumps(body), "application/json"
        connection = http.client.HTTPConnection(self.host, self.port, timeout=60)
        try:
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            status, raw = response.status, response.read()
        finally:
            connection.close()
        try:
            answer = json.loads(raw)
        except ValueError:
            answer = raw[:200]
        self.report.record(kind, status, answer)
        return answer


def bad_tokens(sample_access):
    """Tokens no server should accept, made without its key."""
    claims = jwt.decode(sample_access, options={"verify_signature": False})
    return [
        ("garbage", "GET", "/users", "abc"),
        ("other key", "GET", "/users", jwt.encode(claims, "not-the-key-" * 4, algorithm="HS256")),
        ("alg none", "GET", "/users", jwt.encode(claims, None, algorithm="none")),
        ("no token", "POST", "/logout", None),
        ("access token on /refresh", "POST", "/refresh", sample_access),
    ]


def user(client, number, revoked):
    """One virtual user, REQUESTS_PER_USER requests; its tokens end up revoked, in `revoked`."""
    body = client.send("login", "POST", "/login", body=ADMIN)
    access, refresh = body["token"], body["refresh_token"]
    held = [("GET", "/users", access)]
    bad = itertools.cycle(bad_tokens(access) + [("refresh token on /users", "GET", "/users", refresh)])
    for _ in range(5):  # 5 x (12 listings, 2 bad tokens, 1 refresh)
        for _ in range(12):
            client.send("listing", "GET", "/users", held[-1][2])
        for _ in range(2):
            kind, method, path, token = next(bad)
            client.send(kind, method, path, token)
        held.append(("GET", "/users", client.send("refresh", "POST", "/refresh", refresh)["token"]))
    held.append(("POST", "/refresh", refresh))
    for _, _, token in held:  # log out every token: 6 access tokens and the refresh token
        client.send("logout", "POST", "/logout", token)
    for i, (method, path, token) in enumerate(held * 2):  # each is refused now, twice
        client.send("revoked", method, path, token, check=f"revoked-{number}-{i % len(held)}")
    with client.report.lock:
        revoked.extend((f"revoked-{number}-{i}", method, path, token) for i, (method, path, token) in enumerate(held))


def run(url, total=10_000, concurrency=8):
    """Send `total` mixed requests to the server at `url`; return the Report."""
    report = Report(concurrency=concurrency)
    client = Client(url, report)
    users = max(1, int(total * (1 - SWEEP_SHARE)) // REQUESTS_PER_USER)
    revoked = []
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(concurrency) as pool:
        for future in [pool.submit(user, client, n, revoked) for n in range(users)]:
            future.result()
        sweep = itertools.islice(itertools.cycle(revoked), max(0, total - report.sent))
        list(pool.map(lambda item: client.send("revoked", item[1], item[2], item[3], check=item[0]), sweep))
    report.seconds = time.monotonic() - started
    return report


@dataclass
class Coverage:
    workers: set  # the pids of every worker that answered
    checks: Counter  # worker pid -> revoked-token checks it answered
    tokens: dict  # revoked token -> the workers that were asked about it
    accepted_after_logout: int

    def summary(self):
        spread = Counter(len(workers) for workers in self.tokens.values())
        per_worker = ", ".join(str(n) for _, n in sorted(self.checks.items()))
        return (f"{len(self.workers)} workers answered; revoked-token checks per worker: {per_worker}; "
                f"{len(self.tokens)} revoked tokens, checked on this many workers each: "
                + ", ".join(f"{k} workers: {n} tokens" for k, n in sorted(spread.items(), reverse=True))
                + f"; accepted after logout (server log): {self.accepted_after_logout}")


def worker_coverage(log):
    """From gunicorn's access log (ACCESS_LOG_FORMAT): which workers refused which revoked tokens."""
    line = re.compile(r'" (\d{3}) pid=<(\d+)> check=(\S+)')
    workers, checks, tokens, accepted = set(), Counter(), {}, 0
    for status, pid, check in line.findall(log):
        workers.add(pid)
        if check.startswith("revoked-"):
            checks[pid] += 1
            tokens.setdefault(check, set()).add(pid)
            accepted += int(status) < 400
    return Coverage(workers, checks, tokens, accepted)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:5000", help="the server (default: %(default)s)")
    parser.add_argument("--total", type=int, default=10_000, help="requests to send (default: %(default)s)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests at a time (default: %(default)s)")
    args = parser.parse_args(argv)
    report = run(args.url, args.total, args.concurrency)
    print(report.summary())
    for kind, status, body in report.unexpected[:10]:
        print(f"unexpected: {kind}: HTTP {status} {body}")
    return 1 if report.server_errors or report.revoked_accepted or report.unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
