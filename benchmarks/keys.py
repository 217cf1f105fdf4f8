"""What asymmetric keys cost (step09_keys): signing and verifying one token with EdDSA (Ed25519), RS256 and HS256,
and GET /users requests per second of step09 next to the step before it, on the same server setup.

    uv run python benchmarks/keys.py                  # wrk, 8 connections, 10 s per run, 3 runs per step
    uv run python benchmarks/keys.py --client python  # no wrk: a bounded Python client (threads)

Part 1 times PyJWT alone, in this process, on the claims of a real step09 token. Part 2 starts both steps under
gunicorn as benchmarks/bench.py does (2 workers, production, SQLite, Redis at $REDIS_URL), then measures them
alternating (previous, step09, previous, ...) so that a change in the machine's load hits both alike, and prints
the ratio of the medians.
"""
import argparse
import os
import secrets
import shutil
import statistics
import sys
import tempfile
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import jwt  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa  # noqa: E402

from benchmarks.bench import forget, python_client, redis_or_exit, start, stop, wrk  # noqa: E402
from tutorial.steps import previous_step  # noqa: E402

STEP = "step09_keys"
CLAIMS = {"fresh": False, "iat": 1796165268, "jti": "d24115f0-7233-4c2b-ab66-1e9d601c40f2", "type": "access",
          "sub": "admin@gmail.com", "nbf": 1796165268, "csrf": "38731fb7-9197-4e8f-8ac2-18d0615a9150",
          "aud": ["tutorial-users", "tutorial-reports"], "iss": "tutorial-login", "exp": 4102444800}


def per_token(repeat):
    """(algorithm, sign µs, verify µs, token length) for each algorithm."""
    ed = ed25519.Ed25519PrivateKey.generate()
    rs = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    secret = secrets.token_hex(32)
    rows = []
    for name, sign_key, verify_key in [("HS256", secret, secret), ("EdDSA", ed, ed.public_key()), ("RS256", rs, rs.public_key())]:
        headers = {"kid": "20261201T224748.123456Z-29f7"} if name != "HS256" else None
        token = jwt.encode(CLAIMS, sign_key, name, headers=headers)
        sign = min(timeit.repeat(lambda: jwt.encode(CLAIMS, sign_key, name, headers=headers), number=repeat, repeat=3)) / repeat
        verify = min(timeit.repeat(lambda: jwt.decode(token, verify_key, algorithms=[name], audience="tutorial-users"),
                                   number=repeat, repeat=3)) / repeat
        rows.append((name, sign * 1e6, verify * 1e6, len(token)))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--client", choices=["wrk", "python"], default="wrk")
    parser.add_argument("--seconds", type=float, default=10, help="per run (default: %(default)s; 0.3 for a quick check)")
    parser.add_argument("--runs", type=int, default=3, help="runs per step (default: %(default)s)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=2000, help="tokens per timing in part 1")
    args = parser.parse_args(argv)
    if args.client == "wrk" and not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk (or brew install wrk), or use --client python")

    print(f"One token (PyJWT {jwt.__version__}, the claims of a step09 access token), best of 3 x {args.repeat}:")
    for name, sign, verify, length in per_token(args.repeat):
        print(f"  {name:6} sign {sign:7.1f} µs   verify {verify:7.1f} µs   token {length} characters")

    redis_url, store = redis_or_exit()
    tag = secrets.token_hex(6)
    measure = wrk if args.client == "wrk" else python_client
    before = previous_step(STEP)
    rates = {before: [], STEP: []}
    print(f"\nGET /users under gunicorn ({args.workers} workers, production, SQLite, Redis), "
          + (f"wrk -t1 -c{args.connections} -d{args.seconds:g}s" if args.client == "wrk" else f"Python client, {args.connections} threads")
          + f", {args.runs} runs each, alternating; load average at start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="bench-keys-") as tmp:
        servers = {}
        try:
            for step in (before, STEP):  # both started first, then measured in turn
                servers[step] = start(step, tmp, redis_url, tag, args.workers)
            for run in range(args.runs):
                for step in (before, STEP):
                    server, token = servers[step]
                    rate, count, bad = measure(server.url, "/users", args.seconds, args.connections, token)
                    if bad:
                        sys.exit(f"{step}: {bad} answers to GET /users were not 2xx")
                    rates[step].append(rate)
                    print(f"  run {run + 1}: {step:16} {rate:8.1f} requests/s")
        finally:
            stop([server for server, _ in servers.values()])
            forget(store, tag)
    medians = {step: statistics.median(values) for step, values in rates.items()}
    print(f"\nmedian: {before} {medians[before]:.1f}, {STEP} {medians[STEP]:.1f} requests/s: "
          f"{medians[STEP] / medians[before]:.2f} x; load average at the end: {os.getloadavg()[0]:.1f}")
    # Each run's pair ran back to back: its ratio is less moved by a change in the machine's load than the medians.
    pairs = [mine / theirs for theirs, mine in zip(rates[before], rates[STEP])]
    print(f"run by run: {', '.join(f'{ratio:.2f}' for ratio in pairs)} x; median {statistics.median(pairs):.2f} x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
