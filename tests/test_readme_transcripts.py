"""The step READMEs cannot lie: every ```console block runs and prints what the README shows (tutorial/transcripts.py;
after changing a step's code: uv run python -m tutorial.transcripts --update, then git diff)."""
import re

import pytest
from sybil.example import SybilFailure

import needs
from tutorial import transcripts
from tutorial.transcripts import ROOT, normalise, shown

READMES = transcripts.step_readmes()


def case(example):
    kind = (example.parsed.annotation or "").split(" ")[0]  # a malformed annotation fails in the test
    return pytest.param(example, id=example.parsed.id, marks=[pytest.mark.needs("bash")] if kind == "run" else [])  # and curl


@pytest.fixture(scope="session")
def started(request):
    """The blocks this run checks (the cases left after -k, whose needs are there), started together on this worker."""
    cases = [item for item in request.session.items if item.originalname == "test_console_block_shows_what_runs"
             and all(needs.look(name)[1] is None for marker in item.iter_markers("needs") for name in marker.args)]
    pool = transcripts.start([item.callspec.params["example"].parsed for item in cases])
    yield
    pool.shutdown(cancel_futures=True)  # after -x, say: what has not started never will


@pytest.mark.xdist_group("transcripts")  # one worker runs them all, their waits overlapping (started)
@pytest.mark.parametrize("example", [case(e) for readme in READMES for e in transcripts.parse(readme).examples()])
def test_console_block_shows_what_runs(example, started):
    example.evaluate()  # the block's run against the README; a difference fails, with the diff


@pytest.mark.parametrize("readme", READMES, ids=shown)
def test_every_step_readme_says_how_to_run_it_and_runs_every_curl_line(readme):
    """A "Run it" section whose code blocks start the step (with the settings its console blocks need), and no curl
    line in a block other than ```console, which these tests would never run (the Chinese twin has the same blocks)."""
    section = re.search(r"^## Run it.*?$(.*?)(?=^## |\Z)", readme.read_text(encoding="utf-8"), re.M | re.S)
    assert section and f"--app {readme.parent.name}" in section[1], f"{shown(readme)}: no ## Run it section that starts the step"
    assert transcripts.commands_outside_console_blocks(readme) == []


# The checker itself --------------------------------------------------------------------------------------
@pytest.mark.needs("bash")
def test_a_readme_out_of_step_with_its_code_fails_and_update_rewrites_it(tmp_path):
    original = (ROOT / "step01_basic" / "README.md").read_text(encoding="utf-8")
    assert "<!-- transcript: run -->" in original and "hello, Alice" in original
    copy = tmp_path / "step01_basic" / "README.md"  # the folder's name is the step that runs
    copy.parent.mkdir()
    copy.write_text(original.replace("hello, Alice", "hello, Bob").replace("HTTP 200\n$", "HTTP 201\n$"), encoding="utf-8")

    with pytest.raises(SybilFailure, match=re.escape('-{"code": 200, "message": "hello, Bob"}')):
        next(transcripts.parse(copy).examples()).evaluate()  # as a test case
    ran, found = transcripts.check([copy], update=True)  # as --update

    assert [len(block.commands) for block in ran] == [2, 1]
    assert len(found) == 1 and "-HTTP 201" in found[0] and '-{"code": 200, "message": "hello, Bob"}' in found[0]
    assert copy.read_text(encoding="utf-8") == original  # rewritten from the real run


def test_update_keeps_an_output_equal_up_to_what_changes_from_run_to_run(tmp_path):
    """Another token (the same claims), another time, end spaces: left alone, no churn; what a learner sees is not."""
    readme = tmp_path / "README.md"
    token = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0"  # header and claims; the signature differs
    readme.write_text(f"```console\n$ curl ...\n{token}.c2ln\n[2026-11-26 15:14:04,340] x\n```\n", encoding="utf-8")
    [block] = transcripts.parse_readme(readme)
    block.commands[0].actual = f"{token}.b3RoZXI  \n[2026-12-07 09:00:00,001] x\n\n"
    assert transcripts.rewrite(readme, [block]) == 0
    assert normalise(block.commands[0].actual) == ["<JWT sub>", "[<time>] x"]
    block.commands[0].actual = '{"code":201}\n'  # JSON's spacing is what the learner sees
    assert transcripts.rewrite(readme, [block]) == 1
    assert readme.read_text(encoding="utf-8").endswith('$ curl ...\n{"code":201}\n```\n')
    assert normalise('{"code":201}') != normalise('{"code": 201}')


@pytest.mark.parametrize("text, problem", [
    ("```console", "no <!-- transcript"),
    ("<!-- transcript: serve -->\n```console", "starts with run, cli or skip"),
    ("<!-- transcript: skip -->\n```console", "needs a reason"),
    ("<!-- transcript: skip the walkthrough test runs it -->\n```console", "names the test that runs it"),
    ("<!-- transcript: skip tests/test_readme_transcripts.py::test_missing -->\n```console", "names the test that runs it"),
    ("<!-- transcript: run --debug PORT -->\n```console", "'PORT' means nothing"),
    ("<!-- transcript: cli --debug -->\n```console", "'--debug' means nothing"),
    ("<!-- transcript: run create_app='{2}' -->\n```console", "JSON object"),
    ("<!-- transcript: run -->\n```console\nHTTP 200", "output before the first `$ ` line: 'HTTP 200'"),
])
def test_a_malformed_block_is_an_error(text, problem, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"{text}\n$ curl ...\n```\n", encoding="utf-8")
    with pytest.raises(SybilFailure, match=re.escape(problem)):
        next(transcripts.parse(readme).examples()).evaluate()


@pytest.mark.parametrize("page, annotation, missing", [
    ("<!-- LOGIN_LIMIT=3/minute uv run flask --app step08_accounts run -->", "run LOGIN_LIMIT=3/minute",
     ["LOGIN_LIMIT=3/minute"]),  # hidden in a comment
    ("```bash\nLOGIN_LIMIT=5/minute uv run flask --app step08_accounts run\n```", "run LOGIN_LIMIT=3/minute",
     ["LOGIN_LIMIT=3/minute"]),
    ("```bash\nLOGIN_LIMIT=3/minute uv run flask --app step08_accounts run\n```", "run LOGIN_LIMIT=3/minute", []),
    ("", """run --debug create_app='{"JWT_ACCESS_TOKEN_EXPIRES": 2}'""",
     ["create_app JWT_ACCESS_TOKEN_EXPIRES=2", "--debug"]),
    ("""```bash\nuv run flask --app 'step04_errors:create_app({"JWT_ACCESS_TOKEN_EXPIRES": 2})' run --debug\n```""",
     """run --debug create_app='{"JWT_ACCESS_TOKEN_EXPIRES": 2}'""", []),
])
def test_a_block_needs_its_settings_shown_on_the_page(page, annotation, missing, tmp_path):
    """What the block's server is started with must be on the page, not only in its (hidden) annotation."""
    readme = tmp_path / "README.md"
    readme.write_text(f"{page}\n\n<!-- transcript: {annotation} -->\n```console\n$ curl ...\n```\n", encoding="utf-8")
    [block] = transcripts.parse_readme(readme)
    assert transcripts.unshown_settings(block) == missing
    block.commands[0].actual, block.commands[0].returncode = "", 0  # as after a run that printed what it shows
    assert bool(transcripts.problems(block)) == bool(missing)
