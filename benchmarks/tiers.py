"""How long the two test tiers take, each from a fresh clone: the learner's and CI's.

    uv run python benchmarks/tiers.py                 # both tiers, once, from a clone of HEAD
    uv run python benchmarks/tiers.py --runs 5        # five times each (also: are they green every time?)
    uv run python benchmarks/tiers.py --tier ci       # one tier only

The learner's tier: `uv sync`, then `uv run pytest`, with PATH holding only what a learner with Python and uv
has — node, npm, chromium and chromedriver are taken out of it — and no TEST_* variable, no CI. Bytecode is
written as on a learner's machine (PYTHONDONTWRITEBYTECODE is unset). It must pass, skipping what needs more.
CI's tier: `bash .ci/run` in the clone (Redis, MariaDB, PostgreSQL, newman, Chromium, CI=true): nothing skips.

Printed per run: pytest's own wall time (the "in N s" of its last line), the whole command's, and the
result line. The machine's load average is printed before and after: on a shared machine it explains a lot.
Nothing here is asserted; tests never check timings.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOT_FOR_LEARNERS = re.compile(r"^(node|nodejs|npm|npx|chromium.*|chromedriver|google-chrome.*|chrome)$")
SERVICES = {
    "TEST_REDIS_URL": "redis://127.0.0.1:6379/0",
    "TEST_DATABASE_URLS": "mysql+pymysql://root@127.0.0.1:3306/ postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
}


def uv_program():
    """The real uv program (not a pyenv shim, which needs pyenv on PATH)."""
    if os.environ.get("UV_BIN"):
        return os.environ["UV_BIN"]
    if shutil.which("pyenv"):
        done = subprocess.run(["pyenv", "which", "uv"], capture_output=True, text=True, encoding="utf-8")
        if done.returncode == 0:
            return done.stdout.strip()
    return shutil.which("uv")


def learner_path(folder):
    """A folder of links to every program on PATH but Node.js and Chromium, and uv: a learner's PATH."""
    folder.mkdir()
    for directory in os.environ["PATH"].split(os.pathsep):
        if not os.path.isdir(directory) or "node_modules" in directory:
            continue
        for entry in os.scandir(directory):
            link = folder / entry.name
            if NOT_FOR_LEARNERS.match(entry.name) or link.exists() or not os.access(entry.path, os.X_OK):
                continue
            link.symlink_to(entry.path)
    (folder / "uv").unlink(missing_ok=True)
    (folder / "uv").symlink_to(uv_program())
    return str(folder)


def clone(workdir, commit):
    target = workdir / "clone"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(target)], check=True)
    subprocess.run(["git", "-C", str(target), "checkout", "--quiet", commit], check=True)
    return target


def run(command, cwd, env, log):
    started = time.monotonic()
    with open(log, "w", encoding="utf-8") as out:
        done = subprocess.run(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    return done.returncode, time.monotonic() - started


def pytest_result(log):
    """pytest's last line: ('734 passed, 124 skipped', 52.3), or (the log's last line, None)."""
    lines = Path(log).read_text(encoding="utf-8", errors="replace").splitlines()
    for line in reversed(lines):
        match = re.search(r"=*\s*(.*?) in ([\d.]+)s", line)
        if match and re.search(r"\d+ (passed|failed|error)", line):
            return match[1], float(match[2])
    return (lines[-1] if lines else "no output"), None


def learner_tier(workdir, commit):
    repo = clone(workdir, commit)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TEST_") and k not in ("CI", "PYTHONDONTWRITEBYTECODE", "UV_COMPILE_BYTECODE", "VIRTUAL_ENV")}
    env["PATH"] = learner_path(workdir / "bin")
    env["UV_FROZEN"] = "1"
    code, setup = run(["uv", "sync"], repo, env, workdir / "setup.log")
    if code:
        return code, setup, None, f"uv sync failed: see {workdir / 'setup.log'}", workdir / "setup.log"
    code, seconds = run(["uv", "run", "pytest"], repo, env, workdir / "pytest.log")
    summary, pytest_seconds = pytest_result(workdir / "pytest.log")
    return code, seconds, pytest_seconds, summary, workdir / "pytest.log"


def ci_tier(workdir, commit):
    repo = clone(workdir, commit)
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env.update({k: os.environ.get(k, v) for k, v in SERVICES.items()})
    code, seconds = run(["bash", ".ci/run"], repo, env, workdir / "ci.log")
    summary, pytest_seconds = pytest_result(workdir / "ci.log")
    return code, seconds, pytest_seconds, summary, workdir / "ci.log"


TIERS = {"learner": learner_tier, "ci": ci_tier}


def load():
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "?"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tier", choices=[*TIERS, "both"], default="both")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--commit", default="HEAD", help="what to clone (default: HEAD; commit first)")
    parser.add_argument("--keep", action="store_true", help="keep the clones and logs")
    options = parser.parse_args(argv)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", options.commit], check=True,
                            capture_output=True, text=True, encoding="utf-8").stdout.strip()
    tiers = list(TIERS) if options.tier == "both" else [options.tier]
    print(f"commit {commit}, {os.cpu_count()} cores, load average {load()}", flush=True)
    failed = 0
    for number in range(1, options.runs + 1):
        for tier in tiers:
            workdir = Path(tempfile.mkdtemp(prefix=f"tiers-{tier}-"))
            code, seconds, pytest_seconds, summary, log = TIERS[tier](workdir, commit)
            failed += code != 0
            shown = f"{pytest_seconds:6.1f} s" if pytest_seconds is not None else "     ?  "
            print(f"run {number} {tier:8} pytest {shown}   whole {seconds:6.1f} s   exit {code}   {summary}"
                  f"   (load {load()})", flush=True)
            if code or options.keep:
                print(f"    log: {log}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
