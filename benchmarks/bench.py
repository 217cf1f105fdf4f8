"""Requests per second of the finished step under gunicorn: bare GET /hello, protected GET /users, POST /login.

    uv run python benchmarks/bench.py                  # wrk, 8 connections, 10 s per endpoint
    uv run python benchmarks/bench.py --client python  # no wrk: a bounded Python client (threads)

The script makes a SQLite database in a temporary folder (init-db) and, from step09 on, a signing key (the step's
own `flask rotate-keys`, into a KEYS_DIR of its own), starts the highest step under gunicorn with its
gunicorn.conf.py and 2 workers, in production mode, with Redis at $REDIS_URL (default
redis://127.0.0.1:6379/0, keys under a prefix of its own, deleted at the end), logs in once for a token, then
measures the three endpoints one after the other on the same server, and prints each as a ratio to /hello.
Everything runs on 127.0.0.1; the client shares the machine's cores with the server.

wrk: `apt-get install wrk` (Debian, Ubuntu), `brew install wrk` (macOS). gunicorn does not run on Windows.
"""
import argparse
import concurrent.futures
import http.client
import json
import math
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tutorial.live import GunicornServer, build_app, post_for_tokens  # noqa: E402
from tutorial.steps import reference_steps  # noqa: E402

ADMIN = {"username": "admin@gmail.com", "password": "123456"}


def wrk(url, path, seconds, connections, headers=None, body=None):
    """Run wrk once; return (requests per second, requests, non-2xx answers)."""
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, math.ceil(seconds))}s"]  # wrk counts whole seconds
    for name, value in (headers or {}).items():
        cmd += ["-H", f"{name}: {value}"]
    with tempfile.TemporaryDirectory() as tmp:
        if body is not None:  # a POST needs a Lua script
            script = Path(tmp) / "post.lua"
            script.write_text(f'wrk.method = "POST"\nwrk.body = {json.dumps(json.dumps(body))}\n'
                              'wrk.headers["Content-Type"] = "application/json"\n')
            cmd += ["-s", str(script)]
        out = subprocess.run([*cmd, url + path], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    count = int(re.search(r"(\d+) requests in", out)[1])
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    if errors:
        print(f"  wrk: {errors[0]}")
    return rate, count, int(bad[1]) if bad else 0


def python_client(url, path, seconds, connections, headers=None, body=None):
    """`connections` threads, each sending one request after another for `seconds`: (rate, requests, non-2xx)."""
    host, port = url.removeprefix("http://").split(":")
    data = json.dumps(body) if body is not None else None
    headers = {**(headers or {}), **({"Content-Type": "application/json"} if body is not None else {})}
    counts, lock, deadline = [0, 0], threading.Lock(), time.monotonic() + seconds

    def worker():
        done = bad = 0
        while time.monotonic() < deadline:
            connection = http.client.HTTPConnection(host, int(port), timeout=60)
            connection.request("POST" if body is not None else "GET", path, body=data, headers=headers)
            status = connection.getresponse().status
            connection.close()
            done, bad = done + 1, bad + (status >= 300)
        with lock:
            counts[0] += done
            counts[1] += bad

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(connections) as pool:
        for future in [pool.submit(worker) for _ in range(connections)]:
            future.result()
    return counts[0] / (time.monotonic() - started), counts[0], counts[1]


def redis_or_exit():
    """The Redis the servers will use ($REDIS_URL), and a client for it; exit with one line if it does not answer."""
    import redis

    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    store = redis.Redis.from_url(url)
    try:
        store.ping()
    except redis.RedisError as error:
        sys.exit(f"Redis does not answer at {url} ({error}): start it, or set REDIS_URL")
    return url, store


def production_env(step, folder, redis_url, tag, db_file="sqlite://"):
    """What `step` needs to start in production: a secret, Redis keys under prefixes of their own (`tag`), and from
    step09 on a signing key, made by the step's own `flask rotate-keys` in a KEYS_DIR of its own (production makes
    none). Its `flask init-db` makes the tables and the article's user in `db_file`, in this process as well."""
    keys, secret = Path(folder) / f"keys-{step}", secrets.token_hex(32)
    app = build_app(step, db_file, config={"TESTING": True, "KEYS_DIR": str(keys), "REDIS_URL": redis_url,
                                           "JWT_SECRET_KEY": secret})
    for command in ("init-db", "rotate-keys"):
        if command in app.cli.commands:
            result = app.test_cli_runner().invoke(args=[command])
            assert result.exit_code == 0, result.output
    return {"FLASK_CONFIG": "production", "JWT_SECRET_KEY": secret, "REDIS_URL": redis_url,
            "BLOCKLIST_PREFIX": f"bench-{tag}:", "LOGIN_LIMIT_PREFIX": f"bench-{tag}", "KEYS_DIR": str(keys)}


def start(step, folder, redis_url, tag, workers, server_class=GunicornServer, tables_from=None):
    """The step under gunicorn in production on a new SQLite database in `folder`, made by the init-db of `step` (or
    of `tables_from`): (server, Bearer header of a token from POST /login)."""
    db_file = Path(folder) / f"{step}.sqlite"
    env = production_env(tables_from or step, folder, redis_url, tag, db_file)
    server = server_class(step, db_file, workers=workers, env=env)
    try:
        server.wait_until_ready()
        status, body, (access, _) = post_for_tokens(server, "/login", ADMIN)  # the body's token, or the cookie's (step07 on)
        assert status == 200 and access, body
    except BaseException:
        server.stop()
        raise
    return server, {"Authorization": f"Bearer {access}"}


def stop(servers):
    """Stop the servers together: gunicorn takes about a second to stop."""
    with concurrent.futures.ThreadPoolExecutor() as pool:
        list(pool.map(lambda server: server.stop(), servers))


def forget(store, tag):
    """Delete the Redis keys a run made (every prefix holds its tag)."""
    for key in store.scan_iter(match=f"*bench-{tag}*"):
        store.delete(key)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", choices=["wrk", "python"], default="wrk")
    parser.add_argument("--seconds", type=float, default=10, help="per endpoint (default: %(default)s; 0.3 for a quick check)")
    parser.add_argument("--connections", type=int, default=8, help="requests at a time (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.client == "wrk" and not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk (or brew install wrk), or use --client python")
    redis_url, store = redis_or_exit()
    tag = secrets.token_hex(6)
    step = reference_steps()[-1]
    measure = wrk if args.client == "wrk" else python_client
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        server, token = start(step, tmp, redis_url, tag, args.workers)
        try:
            print(f"{step} under gunicorn ({args.workers} sync workers, {step}/gunicorn.conf.py, production, "
                  f"SQLite, Redis {redis_url}); client: "
                  + (f"wrk -t1 -c{args.connections} -d{args.seconds:g}s" if args.client == "wrk"
                     else f"Python, {args.connections} threads, {args.seconds:g} s")
                  + f"; {os.cpu_count()} CPU cores shared by client and server\n")
            results = {}
            for name, path, headers, payload in [
                ("GET /hello", "/hello", None, None),
                ("GET /users (valid token)", "/users", token, None),
                ("POST /login", "/login", None, ADMIN),
            ]:
                rate, count, bad = measure(server.url, path, args.seconds, args.connections, headers, payload)
                results[name] = rate
                ratio = rate / results["GET /hello"]
                print(f"{name:26} {rate:8.1f} requests/s  {ratio:5.2f} x /hello  ({count} requests, {bad} not 2xx)")
                if bad:
                    sys.exit(f"{name}: {bad} answers were not 2xx")
        finally:
            server.stop()
            forget(store, tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
