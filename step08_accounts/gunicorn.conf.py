"""gunicorn's settings for the finished app in production (gunicorn does not run on Windows):

    gunicorn -c step08_accounts/gunicorn.conf.py 'step08_accounts:create_app()'

run from the repository root, with the production variables set (step08_accounts/README.md). The command line
wins over this file: --bind 0.0.0.0:8000, --workers 4.
"""
import os

# Where to listen: behind a reverse proxy or a load balancer, on this host only. The port flask run uses.
bind = "127.0.0.1:5000"
# Sync workers, one request at a time each: (2 x CPU cores) + 1, as gunicorn's documentation suggests.
workers = int(os.environ.get("WEB_CONCURRENCY", 2 * (os.cpu_count() or 1) + 1))
# Build the app once, in the master process, then fork the workers: they start at once and share its memory
# pages. Safe because create_app opens no connection: each worker opens its own database and Redis connections
# at its first request. (A blocklist in memory is still one per worker: each gets its own copy at the fork.)
preload_app = True
timeout = 30  # a worker silent for longer is killed and replaced
# One line per request to standard output, with the id of the worker (pid) that answered it.
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms pid=%(p)s'
# Recent gunicorn listens on a control socket, at one path per user account: two servers on one machine (two
# instances, the tests, the notebook) would take it from each other. Nothing here uses it.
control_socket_disable = True


def post_worker_init(worker):
    """Say in the log when each worker can answer."""
    worker.log.info("Worker ready (pid: %s)", worker.pid)
