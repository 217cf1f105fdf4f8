"""The article's Postman walk-through (postman/), run by newman (pinned in package.json; `npm ci`) against the steps.

The collection runs against steps 04, 06 and the finished one (errorStyle=envelope) and step 03 in debug mode
(errorStyle=library); every assertion must pass. Each app is built as `flask run` builds it, on a copy of the step's
seeded database, served from the test process (tests/conftest.py `serve`); one node process runs every collection run
(tests/run_newman.mjs). Without Node.js and newman: skipped, failed under CI=true (tests/needs.py).
"""
import json
import re
import shutil
import subprocess
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

import needs
from tutorial.steps import reference_steps

# Every run on one worker, whose one node process runs them all (tests/run_newman.mjs).
pytestmark = pytest.mark.xdist_group("postman")

ROOT = Path(__file__).resolve().parents[1]
COLLECTION = ROOT / "postman" / "flask-jwt.postman_collection.json"
ENVIRONMENT = ROOT / "postman" / "local.postman_environment.json"

FINISHED = reference_steps()[-1]  # the highest stepNN present
# (step, settings, errorStyle): step 03 only in debug mode (`flask run --debug`); the envelope from step 04 on,
# checked on the first step that has it and on the finished one.
RUNS = [("step03_jwt", {"DEBUG": True}, "library"), ("step04_errors", {}, "envelope"), ("step06_revoke", {}, "envelope"),
        (FINISHED, {}, "envelope")]  # step07 on: the token from the cookie jar
RUN_DONE = re.compile(r"newman run done: (\d+)$")


@pytest.fixture(scope="module")
def newman():
    """run(server, error_style, report) -> (exit status and CLI output, the run's JSON report): newman's Node API in one
    node process for the module (tests/run_newman.mjs), not one per run that loads newman again (~0.5 s of CPU)."""
    needs.found("newman")  # node and node_modules/newman, or skipped (failed under CI)
    proc = subprocess.Popen([shutil.which("node"), str(ROOT / "tests" / "run_newman.mjs"), str(COLLECTION), str(ENVIRONMENT)],
                            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            encoding="utf-8", errors="replace")

    def run(server, error_style, report):
        proc.stdin.write(json.dumps({"baseUrl": server.url, "errorStyle": error_style, "report": str(report)}) + "\n")
        proc.stdin.flush()
        hung = threading.Timer(120, proc.kill)  # a run that hangs ends node: the reading below stops, the test fails
        hung.start()
        output, done = [], None
        for line in iter(proc.stdout.readline, ""):
            if done := RUN_DONE.match(line):
                break
            output.append(line)
        hung.cancel()
        assert done and report.exists(), "newman ended (killed after 120 s?) or wrote no report:\n" + "".join(output)
        return SimpleNamespace(returncode=int(done[1]), stdout="".join(output)), json.loads(report.read_text(encoding="utf-8"))["run"]

    yield run
    proc.stdin.close()
    proc.wait(timeout=30)


def assert_passed(done, run):
    failures = [f"{f['source']['name']}: {f['error']['test']}: {f['error']['message']}" for f in run["failures"]]
    assert done.returncode == 0 and not failures, "\n".join(failures) + "\n" + done.stdout[-3000:]


@pytest.mark.needs("newman")
@pytest.mark.parametrize("step, config, error_style", RUNS, ids=[run[0] for run in RUNS])
def test_the_postman_collection_passes(step, config, error_style, newman, serve, tmp_path):
    done, run = newman(serve(config=config), error_style, tmp_path / "newman.json")
    requests, assertions = run["stats"]["requests"], run["stats"]["assertions"]
    assert_passed(done, run)
    items = json.loads(COLLECTION.read_text(encoding="utf-8"))["item"]
    assert requests["total"] == len(items) and requests["failed"] == 0
    assert all(execution.get("assertions") for execution in run["executions"])  # every request tested something
    print(f"newman, {step} {config} (errorStyle={error_style}): {requests['total']} requests, "
          f"{assertions['total']} assertions, {assertions['failed']} failed")  # shown with -rP


@pytest.mark.needs("newman")
@pytest.mark.parametrize("step", ["step05_config"])
def test_the_collection_sees_the_articles_token_expired(newman, serve, tmp_path):
    """Request 6 against a step built as the README starts it, with 2-second tokens: the article's answer."""
    done, run = newman(serve(env={"JWT_ACCESS_TOKEN_EXPIRES": "2"}), "envelope", tmp_path / "newman.json")
    assert_passed(done, run)
    expired = next(e for e in run["executions"] if e["item"]["name"] == "6. Users with an expired token")
    assert expired["response"]["code"] == 401
    assert "refused: token expired, the article's answer" in {a["assertion"] for a in expired["assertions"]}


@pytest.mark.needs("newman")
@pytest.mark.parametrize("step", ["step03_jwt"])
def test_a_failed_assertion_fails_the_run(newman, serve, tmp_path):
    """Step 03 without --debug answers every token problem with a 500 (fixed in step 04): newman says so."""
    done, run = newman(serve(), "library", tmp_path / "newman.json")
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
