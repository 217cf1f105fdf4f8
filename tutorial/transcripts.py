"""READMEs that cannot lie: run every ```console block of the step READMEs and compare what it prints.

sybil's Markdown lexer finds the blocks; each becomes an example that `evaluate` runs as the HTML comment on the
line right before it says (every console block of a step README must have one):

    <!-- transcript: run [--debug] [NAME=VALUE ...] [create_app='{"JWT_ACCESS_TOKEN_EXPIRES": 2}'] -->
        The step's app, built in this process with these variables and create_app settings on a copy of what its
        `init-db` made, served over real HTTP (tutorial.live.AppServer); with --debug a real `flask run --debug`
        (its debug mode is the lesson). The `$ ` lines run in one bash (`TOKEN=$(...)` carries on), against the
        server's address for http://127.0.0.1:5000; each must exit with 0.
    <!-- transcript: cli [init-db] [NAME=VALUE ...] -->
        Each `$ [NAME=VALUE ...] uv run flask --app <step> ...` line runs in this process as Flask's `runner` fixture
        runs a command (click's CliRunner), prompts answered, on one database (empty, or init-db's); a line printing
        `Error: ...` must exit non-zero, others 0; a `run` that would serve is a mistake.
    <!-- transcript: skip REASON -->
        Run by another test, which the reason names (tests/<file>.py::<test>) and which must exist.

Every setting an annotation gives (NAME=VALUE, create_app, --debug) must also be in a code block the page shows
(where it starts the server): a learner cannot see an HTML comment.

Outputs are compared line by line after normalising JWTs (to their claim names), UUIDs, Flask's log times,
epoch seconds and trailing spaces.

    uv run python -m tutorial.transcripts [STEP ...]            # check, show the differences
    uv run python -m tutorial.transcripts --update [STEP ...]   # rewrite the outputs that differ; review with git diff
"""
import argparse
import atexit
import base64
import difflib
import json
import logging
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from sybil import Document, Region
from sybil.parsers.markdown.lexers import RawFencedCodeBlockLexer

from tutorial.live import AppServer, LiveServer, WouldServe, build_app, clean_env, invoke_flask, release
from tutorial.steps import ROOT, reference_steps, steps_dir

README_URL = "http://127.0.0.1:5000"  # where the READMEs' curl lines send their requests
ANNOTATION = re.compile(r"^\s*<!--\s*transcript:\s*(.*?)\s*-->\s*$")
FENCED = RawFencedCodeBlockLexer(re.compile(r"[ \t]*(?P<language>[^`\s]*)[^\n]*\n"))  # sybil's lexer, any language
NAME_VALUE = re.compile(r"[A-Z_][A-Z0-9_]*=.*")
PASSWORD = "transcript-test-password"  # typed at a password prompt


class TranscriptError(Exception):
    """A block that cannot be run as annotated (a mistake in the README, not a mismatch)."""


@dataclass
class Command:
    line: int  # the `$ ` line's index in the README's lines (0-based)
    text: str  # the command, without "$ "
    output: list  # the README's output lines
    actual: str = None  # what the command printed, after a run
    returncode: int = None


@dataclass(eq=False)
class Block:
    readme: Path
    number: int  # among the README's console blocks, from 1
    line: int  # the opening fence's index in the README's lines (0-based)
    annotation: str  # the text after "transcript:", or None
    commands: list = field(default_factory=list)
    stray: str = None  # a line of output before the first `$ ` line (an error)
    run: object = None  # its run in the background (a Future), once started

    step = property(lambda self: self.readme.parent.name)  # the folder the README is in
    where = property(lambda self: f"{shown(self.readme)}:{self.line + 1}")
    id = property(lambda self: f"{self.step}-{self.number}")

    def spec(self):
        if self.stray is not None:
            raise TranscriptError(f"output before the first `$ ` line: {self.stray!r}")
        return parse_annotation(self.annotation)


def parse_annotation(text):
    """The annotation's words: kind (run, cli or skip), reason, flask_args, env, config, init_db."""
    if text is None:
        raise TranscriptError("no <!-- transcript: ... --> annotation on the line before ```console")
    try:
        words = shlex.split(text)
    except ValueError as error:
        raise TranscriptError(f"transcript annotation {text!r}: {error}") from None
    if not words or words[0] not in ("run", "cli", "skip"):
        raise TranscriptError(f"a transcript annotation starts with run, cli or skip, not {text!r}")
    spec = SimpleNamespace(kind=words[0], reason=" ".join(words[1:]), flask_args=[], env={}, config={}, init_db=False)
    if spec.kind == "skip" and not spec.reason:
        raise TranscriptError("`transcript: skip` needs a reason")
    for word in words[1:] if spec.kind != "skip" else ():
        if spec.kind == "run" and word.startswith("--"):
            spec.flask_args.append(word)
        elif spec.kind == "cli" and word == "init-db":
            spec.init_db = True
        elif word.startswith("create_app="):
            try:
                spec.config.update(json.loads(word.removeprefix("create_app=")))
            except ValueError as error:
                raise TranscriptError(f"create_app= takes a JSON object: {error}") from None
        elif NAME_VALUE.fullmatch(word):
            spec.env.update([word.split("=", 1)])
        else:
            raise TranscriptError(f"{word!r} means nothing in a `transcript: {spec.kind}` annotation")
    return spec


def console_blocks(document):
    """The sybil parser: one Region per ```console block, parsed into a Block, evaluated by `evaluate`."""
    lines = document.text.splitlines()
    for number, region in enumerate((r for r in FENCED(document) if r.lexemes["language"] == "console"), 1):
        first = document.text.count("\n", 0, region.start)
        annotation = ANNOTATION.match(lines[first - 1]) if first else None
        block = Block(Path(document.path), number, first, annotation and annotation[1])
        for index, line in enumerate(region.lexemes["source"].splitlines(), first + 1):
            if line.startswith("$ "):
                block.commands.append(Command(index, line[2:], []))
            elif block.commands:
                block.commands[-1].output.append(line)
            elif line.strip() and block.stray is None:
                block.stray = line
        yield Region(region.start, region.end, block, evaluate)


def parse(readme):
    """The README as a sybil Document: its examples are its console blocks."""
    return Document.parse(str(readme), console_blocks, encoding="utf-8")


def parse_readme(readme):
    return [example.parsed for example in parse(readme).examples()]


def shown(path):
    """A README's path as the messages show it: step01_basic/README.md."""
    return f"{Path(path).parent.name}/{Path(path).name}"


def step_readmes():
    return [ROOT / step / "README.md" for step in reference_steps() if (ROOT / step / "README.md").is_file()]


def translations(readme):
    """The README's translations beside it: README.zh-CN.md, ..."""
    return sorted(Path(readme).parent.glob(f"{Path(readme).stem}.*{Path(readme).suffix}"))


def commands_outside_console_blocks(readme):
    """curl lines in fenced blocks other than ```console: they would escape the check."""
    return [f"{shown(readme)}:{example.line + index}: {line.strip()}"
            for example in Document.parse(str(readme), FENCED, encoding="utf-8").examples()
            if example.region.lexemes["language"] != "console"
            for index, line in enumerate(example.region.lexemes["source"].splitlines(), 1) if re.match(r"\s*(\$ )?curl\s", line)]


JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
LOG_TIME = re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(,\d+)?\]")
EPOCH = re.compile(r"\b1[6-9]\d{8}\b")  # seconds since 1970, 2020 to 2033


def jwt_shape(match):
    """A token, replaced by what does not change from run to run: the names of its claims."""
    try:
        payload = match[0].split(".")[1]
        return f"<JWT {','.join(sorted(json.loads(base64.urlsafe_b64decode(payload + '=' * (-len(payload) % 4)))))}>"
    except ValueError:
        return "<JWT ?>"


def normalise(text):
    lines = [EPOCH.sub("<epoch>", LOG_TIME.sub("[<time>]", UUID.sub("<uuid>", JWT.sub(jwt_shape, line)))).rstrip()
             for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines



def evaluate(example):
    """The sybil evaluator: the block's run (started earlier, or now) against the README; None if they agree."""
    found = outcome(example.parsed)
    return "\n\n".join(found + ["If the code is right: uv run python -m tutorial.transcripts --update"]) if found else None


def outcome(block):
    """What differs between the README and the block's run, in words; empty when the block tells the truth."""
    try:
        block.run.result() if block.run else run_block(block)
    except (TranscriptError, RuntimeError) as error:  # RuntimeError: an init-db or `flask run` that failed
        return [f"{block.where}: {error}"]
    return problems(block)


def start(blocks, workers=4):
    """Run the `cli` blocks now, one after another (CliRunner takes this process's stdout and stderr while one runs,
    so no server of ours may be logging then); the others in the background, `workers` at a time: a block mostly
    waits (for curl, for `sleep 3`), so the waits overlap. Returns the pool (shutdown(cancel_futures=True) stops it)."""
    pool = ThreadPoolExecutor(workers, thread_name_prefix="transcript")
    for block in blocks:
        if (block.annotation or "").startswith("cli"):
            block.run = Future()
            try:
                block.run.set_result(run_block(block))
            except Exception as error:  # reported by the block's own test
                block.run.set_exception(error)
    for block in blocks:
        if not block.run:
            block.run = pool.submit(run_block, block)
    return pool


def run_block(block):
    """Run the block's commands as its annotation says; fill in each command's actual output."""
    spec = block.spec()
    if spec.kind == "skip":  # run by another test, which must exist
        named = re.search(r"(tests/\w+\.py)::(\w+)", spec.reason)
        test_file = named and ROOT / named[1]
        if not (test_file and test_file.is_file() and f"def {named[2]}(" in test_file.read_text(encoding="utf-8")):
            raise TranscriptError("a skipped block names the test that runs it: tests/<file>.py::<test>")
        return
    with tempfile.TemporaryDirectory(prefix="transcript-") as workdir:
        db_file = Path(workdir) / "transcript.sqlite"
        if spec.kind == "run" or spec.init_db:
            seeded_database(block.step, db_file, spec.env, spec.config)
        (run_server_block if spec.kind == "run" else run_cli_block)(block, spec, db_file)


_SEEDED = {}  # (steps folder, step, env, config) -> the database init-db made, built once per process, then copied
_SEEDED_LOCK = threading.Lock()


def seeded_database(step, db_file, env, config):
    """Copy to db_file what the step's `init-db` makes with these settings (built in this process, once)."""
    key = (str(steps_dir()), step, json.dumps([env, config], sort_keys=True))
    with _SEEDED_LOCK:
        if key not in _SEEDED:
            seed = Path(tempfile.mkdtemp(prefix="transcript-seed-")) / "seeded.sqlite"
            atexit.register(shutil.rmtree, seed.parent, ignore_errors=True)
            app = build_app(step, seed, config=config, env=env)
            if "init-db" in app.cli.commands:  # step01 has no database
                done = app.test_cli_runner().invoke(args=["init-db"])
                if done.exit_code:
                    raise RuntimeError(f"init-db failed for {step}:\n{done.output}") from done.exception
                release(app)  # let go of the file before it is copied (Windows)
            _SEEDED[key] = seed
    if _SEEDED[key].exists():
        shutil.copyfile(_SEEDED[key], db_file)


def run_server_block(block, spec, db_file):
    if spec.flask_args:  # `flask run --debug`: its debug mode is the lesson, so the real one
        server = LiveServer(block.step, db_file, *spec.flask_args, env=spec.env, config=spec.config)
    else:
        server = AppServer(build_app(block.step, db_file, config=spec.config, env=spec.env))
    with server:
        url, outputs = server.wait_until_ready().url, db_file.parent
        script = ["set +e"]
        for number, command in enumerate(block.commands):
            out = shlex.quote((outputs / str(number)).as_posix())  # bash's paths: / also on Windows (Git Bash)
            # Braces, not a subshell: an assignment such as TOKEN=$(...) stays for the next lines.
            script.append(f"{{ {command.text.replace(README_URL, url)}\n}} >{out}.out 2>&1 </dev/null; echo $? >{out}.rc")
        try:
            subprocess.run(["bash", "-c", "\n".join(script)], cwd=outputs, env=clean_env(), timeout=120, check=True)
        except subprocess.TimeoutExpired:
            raise TranscriptError("the commands took more than 120 s") from None
    for number, command in enumerate(block.commands):
        command.actual = (outputs / f"{number}.out").read_text(encoding="utf-8", errors="replace").replace(url, README_URL)
        command.returncode = int((outputs / f"{number}.rc").read_text(encoding="ascii"))


def run_cli_block(block, spec, db_file):
    for command in block.commands:  # `[NAME=VALUE ...] uv run flask --app <step> ARGS...`
        words, env = shlex.split(command.text), dict(spec.env)
        while words and NAME_VALUE.fullmatch(words[0]):
            env.update([words.pop(0).split("=", 1)])
        words = words[2:] if words[:2] == ["uv", "run"] else words
        if words[:2] != ["flask", "--app"] or len(words) < 3 or words[2] not in reference_steps():
            raise TranscriptError(f"a `transcript: cli` line runs `uv run flask --app <step> ...`: {command.text}")
        try:  # a password prompt is answered twice (it asks again to confirm)
            command.returncode, command.actual = invoke_flask(
                words[2], db_file, *words[3:], env=env, config=spec.config, input=f"{PASSWORD}\n" * 2)
        except WouldServe:
            raise TranscriptError(f"a `cli` line must end, this one would serve: {command.text}") from None


def unshown_settings(block):
    """The annotation's settings that no visible code block of the page shows: a learner could not reproduce the
    block. A setting is shown as NAME=VALUE (or NAME=$(...), a value made on the spot, such as a new secret), a
    create_app setting also as its JSON ("NAME": VALUE), --debug as itself; HTML comments hide what they hold."""
    spec = block.spec()
    text = re.sub(r"<!--.*?-->", "", block.readme.read_text(encoding="utf-8"), flags=re.S)
    code = "\n".join(r.lexemes["source"] for r in FENCED(Document(text, str(block.readme))))

    def on_page(name, value, *spellings):
        return any(s in code for s in (f"{name}={value}", f"{name}=$(", *spellings))

    return ([f"{n}={v}" for n, v in spec.env.items() if not on_page(n, v)]
            + [f"create_app {n}={json.dumps(v)}" for n, v in spec.config.items() if not on_page(n, v, json.dumps({n: v})[1:-1])]
            + [arg for arg in spec.flask_args if arg not in code])


def problems(block):
    """The README's outputs against the run's, after the run; and the settings it needs that the page hides."""
    found, kind = [], block.spec().kind
    if missing := unshown_settings(block):
        found.append(f"{block.where}: the block needs {', '.join(missing)}, which no command on the page shows: "
                     "show it where the page starts the server (Run it)")
    for command in (c for c in block.commands if c.actual is not None):
        where = f"{shown(block.readme)}:{command.line + 1}: $ {command.text}"
        expected, actual = normalise("\n".join(command.output)), normalise(command.actual)
        if expected != actual:
            diff = difflib.unified_diff(expected, actual, "the README shows", "the command printed", lineterm="", n=2)
            found.append(f"{where}\n" + "\n".join(diff))
        if kind == "cli" and (refused := bool(actual) and actual[0].startswith("Error:")) != (command.returncode != 0):
            found.append(f"{where}\nexit status {command.returncode}, but the output "
                         + ("starts with Error:" if refused else "shows no error"))
        elif kind == "run" and command.returncode != 0:
            found.append(f"{where}\nexit status {command.returncode}:\n{command.actual}")
    return found


def translation_problems(original, translation):
    """A translation's console blocks must be the original's, block for block: same commands, same outputs
    (normalised), so the original's run checks both; the annotations may differ (they are not shown).
    Returns (problems, the translation's blocks, given the original's run where the commands are the same)."""
    theirs = parse_readme(translation)
    if len(original) != len(theirs):
        return [f"{shown(translation)}: {len(theirs)} console blocks, where {original[0].readme.name} has {len(original)}"], []
    found = []
    for ours, block in zip(original, theirs):
        if [c.text for c in ours.commands] != [c.text for c in block.commands]:
            found.append(f"{block.where}: not the same commands as {ours.where}")
            continue
        for a, b in zip(ours.commands, block.commands):
            if normalise("\n".join(a.output)) != normalise("\n".join(b.output)):
                found.append(f"{shown(translation)}:{b.line + 1}: $ {b.text}\nshows another output than {ours.readme.name}:{a.line + 1}")
            b.actual, b.returncode = a.actual, a.returncode  # what --update writes there
    return found, theirs


def rewrite(readme, blocks):
    """Replace, in the README, each output that does not match with what the command printed; how many."""
    lines = Path(readme).read_text(encoding="utf-8").splitlines(keepends=True)
    changed = [c for b in blocks for c in b.commands if c.actual is not None and normalise("\n".join(c.output)) != normalise(c.actual)]
    for command in sorted(changed, key=lambda c: c.line, reverse=True):  # from the end: earlier lines stay put
        text = command.actual.replace("\r\n", "\n").rstrip("\n")
        lines[command.line + 1:command.line + 1 + len(command.output)] = [f"{line.rstrip()}\n" for line in text.split("\n") if text]
    if changed:
        Path(readme).write_text("".join(lines), encoding="utf-8", newline="\n")  # LF, as checked out
    return len(changed)


def check(readmes, update=False, log=print):
    """Run the console blocks of these READMEs, compare their translations with them, and with `update` rewrite
    the outputs that differ. Returns (commands run, blocks run, problems)."""
    parsed = {readme: parse_readme(readme) for readme in readmes}
    blocks = [block for blocks in parsed.values() for block in blocks]
    start(blocks).shutdown(wait=False)
    found = [problem for block in blocks for problem in outcome(block)]
    for readme, original in parsed.items():
        for translation in translations(readme):
            differences, theirs = translation_problems(original, translation)
            found += differences
            if update and rewrite(translation, theirs):
                log(f"{shown(translation)}: outputs rewritten")
        if update and rewrite(readme, original):
            log(f"{shown(readme)}: outputs rewritten")
    ran = [block for block in blocks if any(c.actual is not None for c in block.commands)]
    return sum(len(block.commands) for block in ran), len(ran), found


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tutorial.transcripts", description=__doc__.split("\n\n")[0])
    parser.add_argument("steps", nargs="*", help="step packages (default: every step with a README)")
    parser.add_argument("--update", action="store_true", help="rewrite the outputs that differ from a real run")
    options = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)  # the in-process apps' logs (warnings, tracebacks of 500s): no block shows them
    started = time.monotonic()
    checked, ran, found = check([ROOT / s / "README.md" for s in options.steps] or step_readmes(), options.update)
    print("".join(f"\n{problem}\n" for problem in found), file=sys.stderr, end="")
    print(f"\n{checked} commands in {ran} blocks run in {time.monotonic() - started:.0f} s; {len(found)} differences"
          + (" (the READMEs now show what ran: review with git diff)" if options.update and found else ""))
    return 1 if found and not options.update else 0


if __name__ == "__main__":
    sys.exit(main())
