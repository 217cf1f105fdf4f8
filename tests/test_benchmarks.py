"""Each benchmark in benchmarks/ runs briefly on the finished step, so that a change to a step or to tutorial/ cannot
break one unnoticed. The numbers are not read (tests never assert timings): status 0 and the last line. The Python
client for 0.3 s per measurement; users.py with wrk (whole seconds) if installed. loadtest.py runs in
test_step06_revoke::test_load_mixed_requests; tiers.py runs the whole suite from fresh clones."""
import os
import shutil
import subprocess
import sys

import pytest

from tutorial.live import clean_env
from tutorial.steps import ROOT

QUICK = ["--seconds", "0.3", "--client", "python"]
WRK = ["--seconds", "1", "--client", "wrk" if shutil.which("wrk") else "python"]
RUNS = [  # (script, its arguments, how its last line begins)
    ("bench.py", QUICK, "POST /login"),
    ("flood.py", [*QUICK, "--rounds", "1"], "flood ratio during/quiet: "),
    ("keys.py", [*QUICK, "--runs", "1", "--repeat", "20"], "run by run: "),
    ("users.py", [*WRK, "--rounds", "1"], "users ratio finished/article: "),
]

pytestmark = [pytest.mark.needs("redis", "gunicorn"), pytest.mark.schedule_first]  # seconds long (tests/conftest.py)


@pytest.mark.parametrize("script, arguments, last_line", RUNS, ids=[run[0] for run in RUNS])
def test_the_benchmark_runs_on_the_finished_step(script, arguments, last_line):
    env = clean_env({"REDIS_URL": os.environ["TEST_REDIS_URL"]})
    env.pop("KEYS_DIR")  # conftest's key folder: a learner's shell has none, and the script must make its own
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *arguments], cwd=ROOT, env=env,
                          capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip().splitlines()[-1].startswith(last_line), done.stdout
