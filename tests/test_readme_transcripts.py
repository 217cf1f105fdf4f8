"""The step READMEs cannot lie: every ```console block runs for real, and its output must be what the README shows.

How a block runs is written in an HTML comment on the line right before it (tutorial/transcripts.py has
the details):

    <!-- transcript: run [--debug] [NAME=VALUE ...] [create_app='{"JWT_ACCESS_TOKEN_EXPIRES": 2}'] -->
        `flask run` on a fresh database made by init-db; the `$ ` lines run in one bash against it
        (http://127.0.0.1:5000 becomes the server's address; `sleep 3` sleeps 3 seconds)
    <!-- transcript: cli [init-db] [NAME=VALUE ...] -->
        each `$ [NAME=VALUE ...] uv run flask --app <step> ...` line in a terminal, prompts answered
    <!-- transcript: skip REASON -->

Tokens, UUIDs, log timestamps and epoch seconds are normalised; everything else must match, character for
character. A translation (README.zh-CN.md) must show the same blocks as its README. A README without any
annotation (a new step's, until its author adds them) is skipped and named in the summary.

After changing a step's code, rewrite the outputs from a real run, then review them with git diff:

    uv run python -m tutorial.transcripts --update
"""
import re

import pytest

import needs
from conftest import collected_cases
from tutorial import transcripts
from tutorial.pytest_summary import summary_count, summary_lines
from tutorial.transcripts import (
    ROOT, TranscriptError, check, commands_outside_console_blocks, normalise, parse_annotation, parse_readme,
    problems, step_readmes, translation_problems, translations,
)

READMES = step_readmes()
PARSE_ERRORS = {}


def parsed(readme):
    try:
        return parse_readme(readme)
    except TranscriptError as error:  # reported by test_the_console_blocks_can_be_read, not a collection error
        PARSE_ERRORS[readme] = str(error)
        return []


BLOCKS = {readme: parsed(readme) for readme in READMES}
ANNOTATED = {readme for readme, blocks in BLOCKS.items() if any(block.annotation for block in blocks)}
ALL_BLOCKS = [block for blocks in BLOCKS.values() for block in blocks]
def _kind(block):
    try:
        return block.spec().kind
    except TranscriptError:
        return None  # reported by the test itself


NEEDS = {"run": pytest.mark.needs("bash"), "cli": pytest.mark.needs("pty")}  # run: bash and curl; cli: a Unix pty


def block_param(block):
    marks = [NEEDS[_kind(block)]] if block.readme in ANNOTATED and _kind(block) in NEEDS else []
    return pytest.param(block, marks=marks, id=block.id)


TEST = "test_console_block_shows_what_runs"


@pytest.fixture(scope="session")
def ran(request):
    """{block: the error its run raised, or None} for every block this run checks (the cases left after -k, whose
    needs are there), run four at a time, each in its own folder on its own free port: a block mostly waits (for a
    server to start, for `sleep 3`), so the waits overlap (transcripts.run_blocks)."""
    blocks = [item.callspec.params["block"] for item in collected_cases(request, TEST)
              if all(needs.available(name) for marker in item.iter_markers("needs") for name in marker.args)]
    return transcripts.run_blocks([b for b in blocks if b.readme in ANNOTATED and _kind(b)], workers=4, log=lambda line: None)


@pytest.mark.xdist_group("transcripts")  # one worker runs them all, on one shared run (ran)
@pytest.mark.parametrize("block", [block_param(b) for b in ALL_BLOCKS])
def test_console_block_shows_what_runs(block, request, ran):
    if block.readme not in ANNOTATED:
        summary_lines(request.config)["transcripts: not annotated"] = (
            "README transcripts: not annotated, so not checked: "
            + ", ".join(transcripts.shown(r) for r in READMES if r not in ANNOTATED)
        )
        pytest.skip(f"{transcripts.shown(block.readme)} has no <!-- transcript: ... --> annotation yet")
    spec = block.spec()  # an unannotated or malformed block of an annotated README fails here
    if spec.kind == "skip":  # run by another test, which the annotation names and which must exist
        named = re.search(r"(tests/\w+\.py)::(\w+)", spec.reason)
        assert named and f"def {named[2]}(" in (ROOT / named[1]).read_text(encoding="utf-8"), \
            f"{block.where}: a block left to another test names it: <!-- transcript: skip ... tests/<file>.py::<test> -->"
        return
    if ran[block] is not None:  # a TranscriptError, or a RuntimeError: a server that did not start
        pytest.fail(f"{block.where}: {ran[block]}")
    found = problems(block)
    assert not found, "\n\n".join(found) + "\n\nIf the code is right, rewrite the README: uv run python -m tutorial.transcripts --update"
    summary_count(request.config, "transcripts",
                  "README transcripts: {commands} commands in {blocks} console blocks checked against real servers",
                  commands=len(block.commands), blocks=1)


@pytest.mark.parametrize("readme", READMES, ids=transcripts.shown)
def test_the_console_blocks_can_be_read(readme):
    assert readme not in PARSE_ERRORS, PARSE_ERRORS.get(readme)


@pytest.mark.parametrize(
    "readme, translation", [(r, t) for r in READMES for t in translations(r)], ids=transcripts.shown
)
def test_translation_shows_the_same_transcripts(readme, translation):
    """Checked through the original's run: the same commands, the same outputs."""
    found = translation_problems(BLOCKS[readme], translation)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("readme", [t for r in READMES for t in [r, *translations(r)]], ids=transcripts.shown)
def test_every_curl_line_is_in_a_console_block(readme):
    """A curl line in a ```bash block would never be run by these tests."""
    assert commands_outside_console_blocks(readme) == []


# The checker itself --------------------------------------------------------------------------------------


@pytest.mark.needs("bash")
def test_a_readme_out_of_step_with_its_code_fails_and_update_rewrites_it(tmp_path):
    original = (ROOT / "step01_basic" / "README.md").read_text(encoding="utf-8")
    assert "<!-- transcript: run -->" in original and "hello, Alice" in original
    copy = tmp_path / "step01_basic" / "README.md"  # the folder's name is the step that runs
    copy.parent.mkdir()
    copy.write_text(original.replace("hello, Alice", "hello, Bob").replace("HTTP 200\n$", "HTTP 201\n$"), encoding="utf-8")

    checked, ran, found, unannotated = check([copy], update=True, log=lambda line: None)

    assert (checked, ran, unannotated) == (3, 2, [])
    assert len(found) == 1 and "-HTTP 201" in found[0] and '-{"code": 200, "message": "hello, Bob"}' in found[0]
    assert copy.read_text(encoding="utf-8") == original  # rewritten from the real run


def test_update_keeps_an_output_that_matches(tmp_path):
    """Outputs equal up to normalisation (another token, another time) are left alone: no churn."""
    command = transcripts.Command(1, "curl ...", ["eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln", "HTTP 200"])
    command.actual = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.b3RoZXI\nHTTP 200\n"
    readme = tmp_path / "README.md"
    readme.write_text("```console\n$ curl ...\neyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln\nHTTP 200\n```\n", encoding="utf-8")
    block = transcripts.Block(readme, "step01_basic", 1, 0, "run", [command])
    assert transcripts.rewrite(readme, [block]) == 0


def test_normalise_keeps_what_a_learner_must_see_and_drops_what_changes():
    token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJhZG1pbiIsImV4cCI6MTc5NTcwMzg4OH0.sig"
    assert normalise(f'"token": "{token}",  \n[2026-11-26 15:14:04,340] WARNING in config: x\n\n') == [
        '"token": "<JWT exp,sub>",', "[<time>] WARNING in config: x",
    ]
    assert normalise('{"code":201,"message":"token expired"}') != normalise('{"code": 201, "message": "token expired"}')


@pytest.mark.parametrize(
    "text, problem",
    [
        (None, "no <!-- transcript"),
        ("serve", "starts with run, cli or skip"),
        ("skip", "needs a reason"),
        ("run --debug PORT", "'PORT' means nothing"),
        ("cli --debug", "'--debug' means nothing"),
        ("run create_app='{2}'", "JSON object"),
    ],
)
def test_a_malformed_annotation_is_an_error(text, problem):
    with pytest.raises(TranscriptError, match=re.escape(problem)):
        parse_annotation(text)


def test_annotation_words():
    spec = parse_annotation("""run --debug FLASK_CONFIG=production create_app='{"JWT_ACCESS_TOKEN_EXPIRES": 2}'""")
    assert (spec.kind, spec.flask_args, spec.env, spec.config) == (
        "run", ["--debug"], {"FLASK_CONFIG": "production"}, {"JWT_ACCESS_TOKEN_EXPIRES": 2},
    )
    assert parse_annotation("cli init-db").init_db


def test_the_readmes_are_annotated():
    """Steps 01-05 are; a later step's README may come without annotations for a while (skipped above)."""
    assert {transcripts.shown(r) for r in ANNOTATED} >= {f"{s}/README.md" for s in (
        "step01_basic", "step02_db", "step03_jwt", "step04_errors", "step05_config")}
