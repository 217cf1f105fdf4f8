"""READMEs that cannot lie: run every ```console block of the step READMEs and compare what it prints.

sybil's Markdown lexer finds the blocks; `evaluate` runs each as the HTML comment on the line before it says:

    <!-- transcript: run [--debug] [NAME=VALUE ...] [create_app='{"JWT_ACCESS_TOKEN_EXPIRES": 2}'] -->
        The step's app so configured, on a copy of its init-db's database, served in process (--debug: a real
        `flask run --debug`); the `$ ` lines run in one bash against it for http://127.0.0.1:5000, each exits 0.
    <!-- transcript: cli [init-db] [NAME=VALUE ...] -->
        Each `$ [NAME=VALUE ...] uv run flask --app <step> ...` line runs in process, as Flask's `runner` fixture
        runs a command, on one database; a line printing `Error: ...` exits non-zero, others 0.
    <!-- transcript: skip tests/<file>.py::<test> -->
        Run by that test, which must exist.

Outputs are compared after normalising JWTs (to their claim names), UUIDs, log times, epoch seconds, end spaces.
"""
import argparse
import atexit
import difflib
import functools
import json
import logging
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from sybil import Document, Region
from sybil.parsers.markdown.lexers import RawFencedCodeBlockLexer

from tutorial.live import AppServer, LiveServer, WouldServe, b64url_decode, build_app, clean_env, invoke_flask, release
from tutorial.steps import ROOT, reference_steps

README_URL = "http://127.0.0.1:5000"  # where the READMEs' curl lines send their requests
ANNOTATION = re.compile(r"^\s*<!--\s*transcript:\s*(.*?)\s*-->\s*$")
FENCED = RawFencedCodeBlockLexer(re.compile(r"[ \t]*(?P<language>[^`\s]*)[^\n]*\n"))  # sybil's lexer, any language
NAME_VALUE = re.compile(r"[A-Z_][A-Z0-9_]*=.*")


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
    run: object = None  # its run (a Future), once started

    step = property(lambda self: self.readme.parent.name)  # the folder the README is in
    where = property(lambda self: f"{shown(self.readme)}:{self.line + 1}")
    id = property(lambda self: f"{self.step}-{self.number}")
    slow = property(lambda self: "--debug" in (self.annotation or "")  # a real server, or a sleep: started first
                    or any(c.text.startswith("sleep ") for c in self.commands))

    @functools.cached_property
    def spec(self):
        if self.stray is not None:
            raise TranscriptError(f"output before the first `$ ` line: {self.stray!r}")
        return parse_annotation(self.annotation)


def parse_annotation(text):
    """The annotation's words: kind (run, cli or skip), reason, flask_args, env, config, init_db."""
    if text is None:
        raise TranscriptError("no <!-- transcript: ... --> annotation on the line before ```console")
    try:
        kind, *words = shlex.split(text) or [""]
    except ValueError as error:
        raise TranscriptError(f"transcript annotation {text!r}: {error}") from None
    if kind not in ("run", "cli", "skip"):
        raise TranscriptError(f"a transcript annotation starts with run, cli or skip, not {text!r}")
    spec = SimpleNamespace(kind=kind, reason=" ".join(words), flask_args=[], env={}, config={}, init_db=False)
    if kind == "skip" and not words:
        raise TranscriptError("`transcript: skip` needs a reason")
    for word in words if kind != "skip" else ():
        if kind == "run" and word.startswith("--"):
            spec.flask_args.append(word)
        elif kind == "cli" and word == "init-db":
            spec.init_db = True
        elif word.startswith("create_app="):
            try:
                spec.config.update(json.loads(word.removeprefix("create_app=")))
            except ValueError as error:
                raise TranscriptError(f"create_app= takes a JSON object: {error}") from None
        elif NAME_VALUE.fullmatch(word):
            spec.env.update([word.split("=", 1)])
        else:
            raise TranscriptError(f"{word!r} means nothing in a `transcript: {kind}` annotation")
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


def commands_outside_console_blocks(readme):
    """curl lines in fenced blocks other than ```console: they would escape the check."""
    return [f"{shown(readme)}:{example.line + index}: {line.strip()}"
            for example in Document.parse(str(readme), FENCED, encoding="utf-8").examples()
            if example.region.lexemes["language"] != "console"
            for index, line in enumerate(example.region.lexemes["source"].splitlines(), 1)
            if re.match(r"\s*(\$ )?curl\s", line)]


JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
LOG_TIME = re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(,\d+)?\]")
EPOCH = re.compile(r"\b1[6-9]\d{8}\b")  # seconds since 1970, 2020 to 2033


def jwt_shape(match):
    """A token, replaced by what does not change from run to run: the names of its claims."""
    try:
        return f"<JWT {','.join(sorted(json.loads(b64url_decode(match[0].split('.')[1]))))}>"
    except ValueError:
        return "<JWT ?>"


def normalise(text):
    text = EPOCH.sub("<epoch>", LOG_TIME.sub("[<time>]", UUID.sub("<uuid>", JWT.sub(jwt_shape, text))))
    return [line.rstrip() for line in text.rstrip().splitlines()]


def evaluate(example):
    """The sybil evaluator: the block's run (started earlier, or now) against the README; None if they agree."""
    if found := outcome(example.parsed):
        return "\n\n".join(found + ["If the code is right: uv run python -m tutorial.transcripts --update"])


def outcome(block):
    """What differs between the README and the block's run, in words; empty when the block tells the truth."""
    if block.run is None:
        start([block]).shutdown()
    try:
        block.run.result()
    except (TranscriptError, RuntimeError) as error:  # RuntimeError: an init-db or `flask run` that failed
        return [f"{block.where}: {error}"]
    return problems(block)


def start(blocks):
    """Start the blocks' runs and return the pool: the `cli` blocks first, one at a time (CliRunner takes this
    process's stdout, no server may log meanwhile), then 6 at a time, the slowest first, so that their waits overlap."""
    with ThreadPoolExecutor(1) as one:
        for block in blocks:
            block.run = one.submit(run_block, block) if (block.annotation or "").startswith("cli") else None
    pool = ThreadPoolExecutor(6, thread_name_prefix="transcript")
    for block in sorted(blocks, key=lambda b: b.slow, reverse=True):  # stable: README order otherwise
        block.run = block.run or pool.submit(run_block, block)
    return pool


def run_block(block):
    """Run the block's commands as its annotation says; fill in each command's actual output."""
    spec = block.spec
    if spec.kind == "skip":  # run by another test, which must exist
        named = re.search(r"(tests/\w+\.py)::(\w+)", spec.reason)
        test_file = named and ROOT / named[1]
        if not (test_file and test_file.is_file() and f"def {named[2]}(" in test_file.read_text(encoding="utf-8")):
            raise TranscriptError("a skipped block names the test that runs it: tests/<file>.py::<test>")
        return
    with tempfile.TemporaryDirectory(prefix="transcript-") as workdir:
        db_file = Path(workdir) / "transcript.sqlite"
        if spec.kind == "run" or spec.init_db:
            with _SEEDING:
                seed = seeded_database(block.step, json.dumps([spec.env, spec.config]))
            if seed.exists():  # step01 has no database
                shutil.copyfile(seed, db_file)
        (run_server_block if spec.kind == "run" else run_cli_block)(block, spec, db_file)


_SEEDING = threading.Lock()  # one at a time: init-db's CliRunner takes this process's stdout and stderr


@functools.cache
def seeded_database(step, settings):
    """What the step's `init-db` makes with these settings (JSON: [env, config]), built in this process once."""
    env, config = json.loads(settings)
    seed = Path(tempfile.mkdtemp(prefix="transcript-seed-")) / "seeded.sqlite"
    atexit.register(shutil.rmtree, seed.parent, ignore_errors=True)
    app = build_app(step, seed, config=config, env=env)
    if "init-db" in app.cli.commands:
        done = app.test_cli_runner().invoke(args=["init-db"])
        if done.exit_code:
            raise RuntimeError(f"init-db failed for {step}:\n{done.output}") from done.exception
    release(app)  # let go of the file before it is copied (Windows)
    return seed


def run_server_block(block, spec, db_file):
    if spec.flask_args:  # `flask run --debug`: its debug mode is the lesson, so the real one
        server = LiveServer(block.step, db_file, *spec.flask_args, env=spec.env, config=spec.config)
    else:
        server = AppServer(build_app(block.step, db_file, config=spec.config, env=spec.env))
    outputs, script = db_file.parent, ["set +e"]
    with server:
        url = server.url
        for number, command in enumerate(block.commands):
            out = shlex.quote((outputs / str(number)).as_posix())  # bash's paths: / also on Windows (Git Bash)
            # Braces, not a subshell: an assignment such as TOKEN=$(...) stays for the next lines.
            text = command.text.replace(README_URL, url)
            script.append(f"{{ {text}\n}} >{out}.out 2>&1 </dev/null; echo $? >{out}.rc")
        try:
            subprocess.run(["bash", "-c", "\n".join(script)], cwd=outputs, env=clean_env(), timeout=120, check=True)
        except subprocess.TimeoutExpired:
            raise TranscriptError("the commands took more than 120 s") from None
    for number, command in enumerate(block.commands):
        output = (outputs / f"{number}.out").read_text(encoding="utf-8", errors="replace")
        command.actual = output.replace(url, README_URL)
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
                words[2], db_file, *words[3:], env=env, config=spec.config, input="transcript-test-password\n" * 2)
        except WouldServe:
            raise TranscriptError(f"a `cli` line must end, this one would serve: {command.text}") from None


def unshown_settings(block):
    """The annotation's settings that no visible code block of the page shows (NAME=VALUE, NAME=$(...), a create_app
    setting also as its JSON "NAME": VALUE, --debug itself): a learner could not reproduce the block."""
    text = re.sub(r"<!--.*?-->", "", block.readme.read_text(encoding="utf-8"), flags=re.S)
    code = "\n".join(r.lexemes["source"] for r in FENCED(Document(text, str(block.readme))))

    def on_page(name, value, *spellings):
        return any(s in code for s in (f"{name}={value}", f"{name}=$(", *spellings))

    return ([f"{n}={v}" for n, v in block.spec.env.items() if not on_page(n, v)]
            + [f"create_app {n}={json.dumps(v)}" for n, v in block.spec.config.items()
               if not on_page(n, v, json.dumps({n: v})[1:-1])]
            + [arg for arg in block.spec.flask_args if arg not in code])


def problems(block):
    """The README's outputs against the run's, after the run; and the settings it needs that the page hides."""
    found = []
    if missing := unshown_settings(block):
        found.append(f"{block.where}: the block needs {', '.join(missing)}, which no command on the page shows: "
                     "show it where the page starts the server (Run it)")
    for command in (c for c in block.commands if c.actual is not None):
        where = f"{shown(block.readme)}:{command.line + 1}: $ {command.text}"
        expected, actual = normalise("\n".join(command.output)), normalise(command.actual)
        if expected != actual:
            diff = difflib.unified_diff(expected, actual, "the README shows", "the command printed", lineterm="", n=2)
            found.append(f"{where}\n" + "\n".join(diff))
        refused = bool(actual) and actual[0].startswith("Error:")
        if block.spec.kind == "cli" and refused != (command.returncode != 0):
            found.append(f"{where}\nexit status {command.returncode}, but the output "
                         + ("starts with Error:" if refused else "shows no error"))
        elif block.spec.kind == "run" and command.returncode != 0:
            found.append(f"{where}\nexit status {command.returncode}:\n{command.actual}")
    return found


def rewrite(readme, blocks):
    """Replace, in the README, each output that does not match with what the command printed; how many."""
    lines = Path(readme).read_text(encoding="utf-8").splitlines(keepends=True)
    changed = [c for b in blocks for c in b.commands
               if c.actual is not None and normalise("\n".join(c.output)) != normalise(c.actual)]
    for command in sorted(changed, key=lambda c: c.line, reverse=True):  # from the end: earlier lines stay put
        new = [f"{line.rstrip()}\n" for line in command.actual.rstrip().splitlines()]
        lines[command.line + 1:command.line + 1 + len(command.output)] = new
    if changed:
        Path(readme).write_text("".join(lines), encoding="utf-8", newline="\n")  # LF, as checked out
    return len(changed)


def check(readmes, update=False):
    """Run these READMEs' console blocks; with `update`, rewrite the outputs that differ. (blocks run, problems)"""
    parsed = {readme: parse_readme(readme) for readme in readmes}
    blocks = [block for blocks in parsed.values() for block in blocks]
    start(blocks).shutdown(wait=False)
    found = [problem for block in blocks for problem in outcome(block)]
    if update:
        for readme, its_blocks in parsed.items():
            rewrite(readme, its_blocks)
    return [block for block in blocks if any(c.actual is not None for c in block.commands)], found


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tutorial.transcripts", description=__doc__.split("\n\n")[0])
    parser.add_argument("steps", nargs="*", help="step packages (default: every step with a README)")
    parser.add_argument("--update", action="store_true", help="rewrite the outputs that differ from a real run")
    options = parser.parse_args(argv)
    logging.disable(logging.CRITICAL)  # the in-process apps' logs (warnings, tracebacks of 500s): no block shows them
    ran, found = check([ROOT / s / "README.md" for s in options.steps] or step_readmes(), options.update)
    print("".join(f"\n{problem}\n" for problem in found), file=sys.stderr, end="")
    print(f"\n{sum(len(b.commands) for b in ran)} commands in {len(ran)} blocks run; {len(found)} differences"
          + (" (rewritten: copy them into the twins with uv run python tests/test_translations.py --sync, review with"
             " git diff)" if options.update and found else ""))
    return 1 if found and not options.update else 0


if __name__ == "__main__":
    sys.exit(main())
