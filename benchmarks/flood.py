"""GET /users throughput, quietly and while one client floods POST /login with wrong passwords, on one server.

    uv run python benchmarks/flood.py                      # the highest step (step08 on limits failed logins)
    uv run python benchmarks/flood.py --step step06_revoke # the same flood against a step without a limit

The script makes a SQLite database in a temporary folder (init-db) and, from step09 on, a signing key (the step's own
`flask rotate-keys`, into a KEYS_DIR of its own), starts the step under gunicorn with its
gunicorn.conf.py and 2 workers, in production mode, with Redis at $REDIS_URL (default redis://127.0.0.1:6379/0;
keys under prefixes of its own, deleted at the end), logs in once for a token, then runs wrk twice on GET /users:
alone, then while a second wrk sends wrong-password logins over --flood-connections connections, --rounds times. It
prints the rates and, last, the median of the rounds' ratios. The step's login limits are its defaults
(LOGIN_LIMIT, LOGIN_LIMIT_PER_ADDRESS).
Everything runs on 127.0.0.1: client, flood and server share the machine's cores. Not on Windows. Without wrk,
--client python (threads of this process; its rates are lower, for a quick check).
"""
import argparse
import os
import re
import secrets
import shutil
import statistics
import sys
import tempfile
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench import ADMIN, forget, python_client, redis_or_exit, start, wrk  # noqa: E402
from tutorial.steps import reference_steps  # noqa: E402


def flood(measure, url, seconds, connections, results):
    """Wrong-password logins, as fast as the server answers them: (requests/s, requests, non-2xx)."""
    results["flood"] = measure(url, "/login", seconds, connections, body={**ADMIN, "password": "wrong-password"})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--step", default=reference_steps()[-1])
    parser.add_argument("--client", choices=["wrk", "python"], default="wrk")
    parser.add_argument("--seconds", type=float, default=10, help="per measurement (default: %(default)s; 0.3 for a quick check)")
    parser.add_argument("--connections", type=int, default=8, help="GET /users at a time (default: %(default)s)")
    parser.add_argument("--flood-connections", type=int, default=16, help="logins at a time (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=3, help="quiet, then flooded, per round (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.client == "wrk" and not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk (or brew install wrk), or use --client python")
    measure = wrk if args.client == "wrk" else python_client
    redis_url, store = redis_or_exit()
    tag = secrets.token_hex(6)
    with tempfile.TemporaryDirectory(prefix="flood-") as tmp:
        server, token = start(args.step, tmp, redis_url, tag, args.workers)
        try:
            load = os.getloadavg()[0]
            print(f"{args.step} under gunicorn ({args.workers} sync workers, production, SQLite, Redis); "
                  + (f"GET /users: wrk -t1 -c{args.connections} -d{args.seconds:g}s" if args.client == "wrk" else "Python client")
                  + "; flood: wrong-password POST /login over "
                  f"{args.flood_connections} connections; {os.cpu_count()} CPU cores shared; load average {load:.2f}\n")
            ratios = []
            for number in range(args.rounds):  # quiet, then flooded, in each round: a change in load hits both alike
                quiet, count, bad = measure(server.url, "/users", args.seconds, args.connections, token)
                print(f"GET /users, quiet:        {quiet:8.1f} requests/s  ({count} requests, {bad} not 2xx)")
                results, margin = {}, min(1, args.seconds)  # the flood runs this long before and after the measurement
                flooding = threading.Thread(target=flood, args=(measure, server.url, args.seconds + 2 * margin,
                                                                args.flood_connections, results))
                flooding.start()
                threading.Event().wait(margin)
                loud, count, bad = measure(server.url, "/users", args.seconds, args.connections, token)
                flooding.join()
                print(f"GET /users, during flood: {loud:8.1f} requests/s  ({count} requests, {bad} not 2xx)")
                rate, count, refused = results["flood"]
                print(f"the flood:                {rate:8.1f} logins/s    ({count} requests)")
                ratios.append(loud / quiet)
            statuses = re.findall(r'" (\d{3}) ', server.output())
            print("the flood's answers: " + ", ".join(f"{statuses.count(s)} x {s}" for s in sorted(set(statuses)) if s != "200"))
            print(f"\nround by round: {', '.join(f'{r:.2f}' for r in ratios)}")
            print(f"flood ratio during/quiet: {statistics.median(ratios):.2f}x (GET /users, {args.step})")
        finally:
            server.stop()
            forget(store, tag)
    return 0


if __name__ == "__main__":
    sys.exit(main())
