"""Workshop mode (tutorial/cli.py): `tutorial start`, `check`, `diff`, and the READMEs' diff blocks, each test in
a temporary workspace of its own. The learner-mistake copies are all checked in one process (`checked`)."""
import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from tutorial import checking, cli, diffs
from tutorial.steps import ROOT, StepError

pytestmark = pytest.mark.schedule_first  # checks are processes of their own (tests/conftest.py)

# Database servers, Redis and strict mode, which a learner's laptop has not: the verdicts are the tool's to prove.
SERVERS_AND_STRICTNESS = ("TEST_DATABASE_URLS", "TEST_REDIS_URL", "CI", "TUTORIAL_REQUIRE_ALL")


def copy_step(step, workspace, file=None, right=None, wrong=None):
    """The reference step's code copied into `workspace`, `right` in `file` replaced by `wrong` (None: put first)."""
    shutil.copytree(ROOT / step, workspace / step, ignore=shutil.ignore_patterns("__pycache__", "README*"))
    if file is not None:
        path = workspace / step / file
        source = path.read_text(encoding="utf-8")
        assert right is None or source.count(right) == 1, f"{step}/{file} has not one {right!r}: update the change"
        path.write_text(wrong + source if right is None else source.replace(right, wrong), encoding="utf-8")


# Each hint of checking.HINTS (the start of its fix): the learner mistake that shows it, made in a copy of the reference
# step as (step, file, right, wrong, -k). test_a_hint_names_its_mistake_and_no_other checks them all in one process.
MISTAKES = {
    "write @jwt_required() with": ("step03_jwt", "resources.py", "    @jwt_required()", "    @jwt_required", "users_with_a_token"),
    "give @jwt.expired_token_loader": ("step04_errors", "errors.py", "def expired_token(jwt_header, jwt_payload):", "def expired_token():",
                                       "log_in_then_use_an_expired_token"),
    "the identity must be": ("step03_jwt", "resources.py", "identity=user.username)", "identity=user.id)", "login_returns_a_signed"),
    "the login answer carries no token": ("step03_jwt", "resources.py", '"token": token,', '"token": None,', "login_returns_a_signed"),
    "look the user up": ("step03_jwt", "__init__.py", "    jwt.user_lookup_loader(load_user)", "    pass", "stops_working"),
    "the server answered an HTML page": ("step03_jwt", "resources.py", "    @jwt_required()", "    # forgotten", "flask_run_with_and"),
    "without --debug this step": ("step03_jwt", "__init__.py", "from_mapping(\n", "from_mapping(\n        PROPAGATE_EXCEPTIONS=True,\n",
                                  "with_and_without_debug"),
    "build the API with step 04's Api": ("step04_errors", "__init__.py", "from .errors import Api,", "from flask_restful import Api\nfrom .errors import",
                                         "flask_run_without_debug"),
    "the answer is flask-jwt-extended's own": ("step04_errors", "errors.py", "    @jwt.expired_token_loader\n", "", "flask_run_without_debug"),
    "store and look up a username": ("step02_db", "models.py", 'return unicodedata.normalize("NFKC", username).strip().casefold()',
                                     "return username", "look_alike"),
    "open a replaced SQLite file again": ("step04_errors", "models.py", "            reopen_a_replaced_file(db.engine)", "            pass",
                                          "replaced_while_the_app_runs"),
    "read the role from the user's row": ("step08_accounts", "accounts.py", "current_user.role !=", '__import__("flask_jwt_extended").get_jwt().get("role") !=',
                                          "role_is_read_from_the_user_row"),
    "put the signing key's kid": ("step09_keys", "keys.py", '        return {"kid": g.signing_key.kid}', "        return {}", "login_token_is_eddsa"),
}
NOT_ON_WINDOWS = "open a replaced SQLite file again"  # its test skips there: Windows cannot replace an open file
if os.name == "nt":
    del MISTAKES[NOT_ON_WINDOWS]
# Copies that do not import (a line put first in resources.py), and what the error line says.
BROKEN = {
    "syntax error": ("def get(self)\n", "SyntaxError"),  # a missing colon
    "missing module": ("from .modelz import User\n", "ModuleNotFoundError: No module named 'step03_jwt.modelz'"),
    "missing name": ("from .models import Usr\n", "ImportError: cannot import name 'Usr'"),
}
OTHER_COPIES = {  # (step, file, right, wrong, -k) as in MISTAKES
    "forgotten decorator": ("step03_jwt", "resources.py", "    @jwt_required()", "    # @jwt_required() forgotten",
                            "cors_header or another_key or hello_answers"),
    **{name: ("step03_jwt", "resources.py", None, "# my version\n" + line, None) for name, (line, _) in BROKEN.items()},
}


@pytest.fixture(scope="session")
def checked(tmp_path_factory):
    """{copy: its CheckResult or StepError}, each in a workspace of its own, all checked in one process (run_checks)."""
    checks = {}
    for name, (step, file, right, wrong, select) in {**MISTAKES, **OTHER_COPIES}.items():
        folder = tmp_path_factory.mktemp("copy")
        copy_step(step, folder, file, right, wrong)
        checks[name] = checking.Check(folder, [step], select)
    folder = tmp_path_factory.mktemp("skeleton")
    with contextlib.redirect_stdout(io.StringIO()):
        assert cli.main(["start", "01", "--workspace", str(folder)]) == 0
    checks["skeleton"] = checking.Check(folder, ["step01_basic"], "hello_answers_json")
    with pytest.MonkeyPatch.context() as learner:
        for name in SERVERS_AND_STRICTNESS:
            learner.delenv(name, raising=False)
        results = checking.run_checks(list(checks.values()))
    return {name: result if isinstance(result, StepError) else result[check.steps[0]]
            for (name, check), result in zip(checks.items(), results)}


def verdicts(checked, name):
    """The CheckResult of a copy, and what `tutorial check` prints for it."""
    if isinstance(checked[name], StepError):  # the copy did not import, or ran no test
        raise checked[name]
    out = io.StringIO()
    cli.print_verdicts(checked[name], colour=False, out=out)
    return checked[name], out.getvalue()


def test_a_copy_of_the_reference_passes_every_test_of_its_step(tmp_path):
    copy_step("step03_jwt", tmp_path)
    copy = (tmp_path / "step03_jwt").as_posix()
    learner = {k: v for k, v in os.environ.items() if k not in SERVERS_AND_STRICTNESS}
    done = subprocess.run(  # as a learner runs it, output piped
        [sys.executable, "-m", "tutorial", "check", "03", "--workspace", str(tmp_path)], cwd=ROOT, capture_output=True,
        text=True, encoding="utf-8", errors="replace", env={**learner, "PYTHONIOENCODING": "utf-8"}, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith(f"Checking {copy} with the tests of step03_jwt ...\n")
    assert "taught in step 01, still true" in done.stdout and "new in this step" in done.stdout
    assert re.search(rf"^{re.escape(copy)} passes: (\d+) of \1 behaviours pass \(\d+ tests, 0 failed\)", done.stdout,
                     re.M)
    assert "FAILED" not in done.stdout and "Traceback" not in done.stdout and "_pytest" not in done.stdout


@pytest.mark.xdist_group("checked")  # one worker checks the copies (checked)
def test_check_names_the_behaviour_that_breaks_and_the_learners_line(checked, monkeypatch, capsys):
    result, printed = verdicts(checked, "forgotten decorator")
    # Verdicts in words, not pytest tracebacks: the behaviours that need the token fail...
    assert "FAILED  Refusal carries cors header so the front end can read it" in printed
    assert "FAILED  Token signed with another key is refused" in printed
    # ...with the learner's line that raised, and the rest still passes.
    assert re.search(r"raised in .*/copy\d*/step03_jwt/resources\.py, line \d+", printed)
    assert "passed  Hello answers json" in printed
    assert "Traceback" not in printed and "_pytest" not in printed
    # `check` prints them after its first line, says the copy does not pass yet, and exits with 1 (--reference: ROOT).
    monkeypatch.setattr(checking, "run_checks", lambda checks: [{"step03_jwt": result}] if checks == [
        checking.Check(ROOT, ["step03_jwt"], "cors")] else None)
    assert cli.main(["check", "03", "--reference", "-k", "cors"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("Checking the reference step03_jwt with the tests of step03_jwt ...\n" + printed)
    assert f"\nthe reference step03_jwt does not pass yet: {cli.summary(result)}, in " in out


@pytest.mark.xdist_group("checked")
@pytest.mark.parametrize("name", BROKEN)
def test_a_workspace_that_does_not_import_names_the_file_and_line(checked, name):
    with pytest.raises(StepError) as error:  # and no test ran
        verdicts(checked, name)
    assert re.fullmatch(rf".*/step03_jwt/resources\.py, line 2: {re.escape(BROKEN[name][1])}.*", str(error.value))


@pytest.mark.parametrize("args, message", [
    (["check", "99"], "there is no step '99': the steps are 01, 02,"),
    (["start", "step99_nope"], "there is no step 'step99_nope'"),
    (["diff", "02", "42"], "there is no step '42'"),
    (["check", "03"], "step03_jwt does not exist: start the step with "),
])
def test_learner_mistakes_are_one_line_and_exit_2(tmp_path, capsys, args, message):
    assert cli.main([*args, *(["--workspace", str(tmp_path)] if args[0] != "diff" else [])]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.count("\n") == 1


def test_start_copies_the_previous_step_and_refuses_to_overwrite(tmp_path, capsys):
    for step in diffs.reference_steps():
        assert cli.main(["start", step[4:6], "--workspace", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert not re.findall(r"^#.*|\]\(#.*", out, re.M)  # a terminal shows neither a diagram nor where #section is
    assert "a skeleton: there is no previous step" in out  # step 01
    copy = tmp_path / "step03_jwt"
    assert sorted(p.name for p in copy.iterdir()) == diffs.step_files(ROOT / "step02_db")  # code only, no README
    assert (copy / "resources.py").read_text(encoding="utf-8") == (ROOT / "step02_db" / "resources.py").read_text(encoding="utf-8")
    assert "Article section: 什么是JWT" in out
    assert "The concept" in out and "A JSON Web Token is three base64url pieces" in out
    assert "`JWTManager(app)`" in out  # the hand-written "What changed" bullets...
    assert "+++ step03_jwt" not in out  # ...but not the answer

    (copy / "resources.py").write_text("# my work\n", encoding="utf-8")
    assert cli.main(["start", "03", "--workspace", str(tmp_path)]) == 2
    assert "already exists: your work is kept" in capsys.readouterr().err
    assert (copy / "resources.py").read_text(encoding="utf-8") == "# my work\n"
    assert cli.main(["start", "03", "--workspace", str(tmp_path), "--force"]) == 0
    assert (copy / "resources.py").read_text(encoding="utf-8") == (ROOT / "step02_db" / "resources.py").read_text(encoding="utf-8")


@pytest.mark.xdist_group("checked")
def test_start_01_makes_a_skeleton_that_imports(checked):
    _, printed = verdicts(checked, "skeleton")  # checked with -k hello_answers_json: it imports ...
    assert "FAILED  Hello answers json" in printed  # ... and fails: nothing is written yet
    assert "assert 404 == 200" in printed


def test_diff_is_plain_when_piped_coloured_on_a_terminal_and_skips_readmes_and_caches(capsys, monkeypatch):
    def diff(*args):  # in this process: its captured output is no terminal, as a pipe is not
        assert cli.main(["diff", *args]) == 0
        return capsys.readouterr().out

    plain = diff("02", "03")
    assert "\033[" not in plain
    assert plain.startswith("--- step02_db/__init__.py\n+++ step03_jwt/__init__.py\n@@ ")
    assert "+    @jwt_required()" in plain
    assert "README" not in plain and "__pycache__" not in plain
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)  # a terminal...
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert "\033[32m+" in diff("02", "03")
    monkeypatch.setenv("NO_COLOR", "1")  # ... unless NO_COLOR is set
    assert diff("02", "03") == plain


def test_every_step_readme_shows_the_current_diff_from_the_previous_step():
    stale = [path.relative_to(ROOT).as_posix() for path in diffs.readme_diffs()]
    assert not stale, f"the generated diff in {', '.join(stale)} is out of date: run `{diffs.COMMAND}`"
    for step in diffs.reference_steps()[1:]:  # at the end of the "What changed" section, after the hand-written part
        section = cli.readme_section((ROOT / step / "README.md").read_text(encoding="utf-8"), "What changed from step")
        assert section.index(diffs.START) > 0 and section.endswith(diffs.END), step
    assert "<details><summary>The full diff</summary>" in section and "```diff\n--- step08_accounts/" in section
    # the operations openapi.json adds, not its JSON
    block, added = diffs.readme_block("step06_revoke"), diffs.operations("step06_revoke").keys() - diffs.operations("step05_config").keys()
    assert added and all(f"\n+ {operation} → " in block for operation in added)
    assert "openapi.json\n" not in block and "openapi.json" in diffs.step_diff("step05_config", "step06_revoke")


@pytest.mark.xdist_group("checked")
@pytest.mark.parametrize("hint", checking.HINTS, ids=lambda hint: hint.fix[:40])
def test_a_hint_names_its_mistake_and_no_other(checked, hint):
    readme, _, anchor = hint.link.partition("#")
    headings = [line.lstrip("#").strip().lower() for line in (ROOT / readme).read_text(encoding="utf-8").splitlines()
                if line.startswith("#")]
    assert anchor in [re.sub(r"[^\w\- ]", "", heading).replace(" ", "-") for heading in headings]  # GitHub's anchors
    if os.name == "nt" and hint.fix.startswith(NOT_ON_WINDOWS):
        pytest.skip("Windows cannot replace an open file: the test this hint answers skips there")
    mine = [name for name in MISTAKES if hint.fix.startswith(name)]
    assert len(mine) == 1, "one learner mistake in MISTAKES shows this hint"
    for name in MISTAKES:  # each copies a step with one mistake (different copies of one step, in turn: none shadows)
        result, printed = verdicts(checked, name)
        assert not result.passed, printed
        assert (f"likely fix: {hint.fix} (see {hint.link})" in printed) == (name in mine), f"{name}:\n{printed}"


@pytest.mark.parametrize("readme", ["README.md", "README.zh-CN.md"])
def test_the_landing_pages_console_blocks_are_executed_step_readme_blocks(readme):
    """The root README's console blocks are not run themselves: each must be a block that a step README shows
    and tests/test_readme_transcripts.py runs (the step README's annotation says how)."""
    text = (ROOT / readme).read_text(encoding="utf-8")
    landing = [textwrap.dedent(block) for block in re.findall(r"^[ \t]*```console\n(.*?)^[ \t]*```", text, re.M | re.S)]
    annotated = {block for path in ROOT.glob("step[0-9][0-9]_*/README.md") for block in re.findall(
        r"^<!-- transcript: run[^\n]*-->\n```console\n(.*?)^```", path.read_text(encoding="utf-8"), re.M | re.S)}
    assert landing, f"{readme} shows no console block"
    for block in landing:
        assert block in annotated, f"{readme}: this block is in no step README as an executed block:\n{block}"
