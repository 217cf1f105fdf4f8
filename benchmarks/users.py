"""GET /users requests per second of the finished step next to the article's own app, on the same server setup.

    uv run python benchmarks/users.py                    # wrk, 8 connections, 10 s per run, 5 rounds
    uv run python benchmarks/users.py --steps step05_config,step09_keys   # more steps beside the article's app
    uv run python benchmarks/users.py --client python    # no wrk: a bounded Python client (threads)

The article's app is benchmarks/article_app.py: flask-restful's Users behind @jwt_required() and its one query, on
today's libraries. Each app runs under gunicorn with the finished step's gunicorn.conf.py and 2 workers, in
production mode where it has one, on a SQLite database made by the finished step's init-db, with Redis at $REDIS_URL
(default redis://127.0.0.1:6379/0; keys under prefixes of their own, deleted at the end). All servers start first;
then each round measures every app once, one after the other, so that a change in the machine's load hits all
alike. The last line is the median of the rounds' ratios (each round's apps ran back to back). Not on Windows.
"""
import argparse
import os
import secrets
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.bench import forget, python_client, redis_or_exit, start, stop, wrk  # noqa: E402
from tutorial.live import GunicornServer  # noqa: E402
from tutorial.steps import reference_steps  # noqa: E402

ARTICLE = "article"
FINISHED = reference_steps()[-1]


class Server(GunicornServer):
    """An app under gunicorn with the finished step's gunicorn.conf.py (its access log, preload_app), whatever its own."""

    def command(self, step, db_file, *gunicorn_args, config=None):
        command = super().command(FINISHED, db_file, *gunicorn_args, config=config)
        module = "benchmarks.article_app" if step == ARTICLE else step
        command[-1] = command[-1].replace(FINISHED, module, 1)  # "<module>:create_app({...})"
        return command


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", default=FINISHED, help="comma-separated (default: %(default)s)")
    parser.add_argument("--client", choices=["wrk", "python"], default="wrk")
    parser.add_argument("--seconds", type=float, default=10, help="per run (default: %(default)s; 0.3 for a quick check)")
    parser.add_argument("--rounds", type=int, default=5, help="(default: %(default)s)")
    parser.add_argument("--connections", type=int, default=8, help="requests at a time (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default: %(default)s)")
    args = parser.parse_args(argv)
    if args.client == "wrk" and not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk (or brew install wrk), or use --client python")
    measure = wrk if args.client == "wrk" else python_client
    redis_url, store = redis_or_exit()
    tag = secrets.token_hex(6)
    apps = [ARTICLE, *args.steps.split(",")]
    rates = {app: [] for app in apps}
    print(f"GET /users under gunicorn ({args.workers} sync workers, {FINISHED}/gunicorn.conf.py, SQLite, Redis), "
          + (f"wrk -t1 -c{args.connections} -d{args.seconds:g}s" if args.client == "wrk" else f"Python client, {args.connections} threads")
          + f", {args.rounds} rounds; load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="bench-users-") as tmp:
        servers = {}
        try:
            for app in apps:
                servers[app] = start(app, tmp, redis_url, tag, args.workers, Server, tables_from=FINISHED if app == ARTICLE else None)
            for number in range(args.rounds):
                for app in apps:
                    server, token = servers[app]
                    rate, count, bad = measure(server.url, "/users", args.seconds, args.connections, token)
                    if bad:
                        sys.exit(f"{app}: {bad} answers to GET /users were not 2xx")
                    rates[app].append(rate)
                print(f"  round {number + 1}: " + ", ".join(f"{app} {rates[app][-1]:.1f}" for app in apps) + " requests/s")
        finally:
            stop([server for server, _ in servers.values()])
            forget(store, tag)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    for app in apps[1:]:
        ratios = [mine / theirs for mine, theirs in zip(rates[app], rates[ARTICLE])]
        print(f"median {app} {statistics.median(rates[app]):.1f}, article {statistics.median(rates[ARTICLE]):.1f} "
              f"requests/s; round by round: {', '.join(f'{r:.2f}' for r in ratios)}")
    for app in sorted(apps[1:], key=lambda app: app == FINISHED):  # the last line: the finished step's
        ratios = [mine / theirs for mine, theirs in zip(rates[app], rates[ARTICLE])]
        name = "finished" if app == FINISHED else app
        print(f"users ratio {name}/article: {statistics.median(ratios):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
