"""A step's own app for the schemathesis runs, with one change: the hash checked for an unknown username is cheap.

Schemathesis sends hundreds of logins with made-up usernames; each one checks the step's dummy hash, slow on purpose
(scrypt, ~150 ms), which alone would spend the run's budget; so would the users step08's POST /users makes. The
code path stays the same, only the hash's cost changes (as tests/test_bad_input.py does in process). Started by
tests/test_schemathesis.py as `flask --app "fast_login_app:create_app('step04_errors', {...})" run`, with this folder on PYTHONPATH.
"""
import importlib

from werkzeug.security import generate_password_hash

from tutorial.steps import import_step

FAST = "pbkdf2:sha256:1"


def create_app(step, config):
    package = import_step(step)
    models = importlib.import_module(f"{step}.models")
    fast = generate_password_hash("no user has this password", method=FAST)
    models.dummy_hash = lambda: fast
    if hasattr(models.User, "set_password"):  # step08 on: the users POST /users makes are hashed fast too
        real = models.generate_password_hash
        models.generate_password_hash = lambda password, method=FAST: real(password, method)
    return package.create_app(config)
