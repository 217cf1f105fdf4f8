"""The article's Postman walk-through (postman/), run by newman against the steps as real servers.

newman is the npm package pinned in package.json / package-lock.json: `npm ci` at the repository root
installs it into node_modules/ (.ci/run does). Without Node.js and newman the runs are skipped (failed under
CI=true: tests/needs.py). The collection runs against the finished step (the highest
stepNN) and step 04 with errorStyle=envelope, and against step 03 under --debug with errorStyle=library;
every assertion must pass.
"""
import json
import subprocess
from pathlib import Path

import pytest

import needs
from tutorial.live import LiveServer, flask_cli
from tutorial.pytest_summary import summary_lines
from tutorial.steps import reference_steps

ROOT = Path(__file__).resolve().parents[1]
COLLECTION = ROOT / "postman" / "flask-jwt.postman_collection.json"
ENVIRONMENT = ROOT / "postman" / "local.postman_environment.json"

FINISHED = reference_steps()[-1]  # the highest stepNN present
# (step, flask run options, errorStyle): step 03 only under --debug; the envelope from step 04 on, checked on
# the first step that has it and on the finished one.
RUNS = [("step03_jwt", ("--debug",), "library"), ("step04_errors", (), "envelope"), ("step06_revoke", (), "envelope"),
        (FINISHED, (), "envelope")]  # step07 on: the token from the cookie jar


def run_newman(server, error_style, report):
    done = subprocess.run(
        [str(needs.found("newman")), "run", str(COLLECTION), "--environment", str(ENVIRONMENT),
         "--env-var", f"baseUrl={server.url}", "--env-var", f"errorStyle={error_style}",
         "--reporters", "cli,json", "--reporter-json-export", str(report), "--color", "off", "--disable-unicode"],
        cwd=ROOT, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=120,
    )
    assert report.exists(), f"newman wrote no report:\n{done.stdout}{done.stderr}"
    return done, json.loads(report.read_text(encoding="utf-8"))["run"]


@pytest.fixture
def seeded(tmp_path):
    """A database made by the step's own init-db."""
    def make(step_name):
        db_file = tmp_path / f"{step_name}.sqlite"
        flask_cli(step_name, db_file, "init-db")
        return db_file
    return make


@pytest.mark.needs("newman")
@pytest.mark.parametrize("step_name, flask_args, error_style", RUNS, ids=[run[0] for run in RUNS])
def test_the_postman_collection_passes(step_name, flask_args, error_style, seeded, tmp_path, request):
    with LiveServer(step_name, seeded(step_name), *flask_args) as server:
        server.wait_until_ready()
        done, run = run_newman(server, error_style, tmp_path / "newman.json")

    requests, assertions = run["stats"]["requests"], run["stats"]["assertions"]
    failures = [f"{f['source']['name']}: {f['error']['test']}: {f['error']['message']}" for f in run["failures"]]
    assert done.returncode == 0 and not failures, "\n".join(failures) + "\n" + done.stdout[-3000:]
    items = json.loads(COLLECTION.read_text(encoding="utf-8"))["item"]
    assert requests["total"] == len(items) and requests["failed"] == 0
    assert all(execution.get("assertions") for execution in run["executions"])  # every request tested something
    summary_lines(request.config)[f"newman {step_name}"] = (
        f"newman, {step_name}{' ' + ' '.join(flask_args) if flask_args else ''} (errorStyle={error_style}):"
        f" {requests['total']} requests, {assertions['total']} assertions, {assertions['failed']} failed"
    )


@pytest.mark.needs("newman")
def test_the_collection_sees_the_articles_token_expired(seeded, tmp_path):
    """Request 6 against a step started as the README says, with 2-second tokens: the article's answer."""
    env = {"JWT_ACCESS_TOKEN_EXPIRES": "2"}
    with LiveServer("step05_config", seeded("step05_config"), env=env) as server:
        server.wait_until_ready()
        done, run = run_newman(server, "envelope", tmp_path / "newman.json")
    failures = [f"{f['source']['name']}: {f['error']['test']}: {f['error']['message']}" for f in run["failures"]]
    assert done.returncode == 0 and not failures, "\n".join(failures) + "\n" + done.stdout[-3000:]
    expired = next(e for e in run["executions"] if e["item"]["name"] == "6. Users with an expired token")
    assert expired["response"]["code"] == 401
    assert "refused: token expired, the article's answer" in {a["assertion"] for a in expired["assertions"]}


@pytest.mark.needs("newman")
def test_a_failed_assertion_fails_the_run(seeded, tmp_path):
    """Step 03 without --debug answers every token problem with a 500 (fixed in step 04): newman says so."""
    with LiveServer("step03_jwt", seeded("step03_jwt")) as server:
        server.wait_until_ready()
        done, run = run_newman(server, "library", tmp_path / "newman.json")
    failed = {f["source"]["name"] for f in run["failures"]}
    assert done.returncode != 0
    # Request 7 sends no token either (step 03 sets no cookie): the same 500 as request 2.
    assert failed == {"2. Users without a token", "5. Users with a malformed token", "7. Users with the cookie only (step 07 on)"}


def test_every_request_tests_its_status_and_body():
    collection = json.loads(COLLECTION.read_text(encoding="utf-8"))
    assert collection["info"]["schema"] == "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"
    for item in collection["item"]:
        tests = "\n".join(line for event in item["event"] if event["listen"] == "test" for line in event["script"]["exec"])
        assert "pm.response.to.have.status(" in tests, item["name"]
        assert "pm.response.json()" in tests, item["name"]
        assert item["request"]["url"]["raw"].startswith("{{baseUrl}}/"), item["name"]
    environment = json.loads(ENVIRONMENT.read_text(encoding="utf-8"))
    assert {v["key"]: v["value"] for v in environment["values"]} == {"baseUrl": "http://127.0.0.1:5000", "errorStyle": "envelope"}


def test_newman_is_pinned():
    package = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))
    lock = json.loads((ROOT / "package-lock.json").read_text(encoding="utf-8"))
    pinned = package["devDependencies"]["newman"]
    assert pinned[0].isdigit(), "an exact version, not a range"
    assert lock["packages"]["node_modules/newman"]["version"] == pinned
