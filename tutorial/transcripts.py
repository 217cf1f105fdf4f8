"""READMEs that cannot lie: run every ```console block of the step READMEs and compare what it prints.

An HTML comment on the line right before a ```console block says how to run it. Its words:

    <!-- transcript: run [--debug] [NAME=VALUE ...] [create_app='{"JWT_ACCESS_TOKEN_EXPIRES": 2}'] -->
        `flask --app <step> run` on a fresh database made by the step's `init-db`, with these `flask run`
        options, environment variables (also given to init-db) and settings passed to create_app (JSON).
        The block's `$ ` lines run in order in one bash, so `TOKEN=$(...)` carries on to `$TOKEN`;
        http://127.0.0.1:5000 is replaced with the server's address; `sleep` lines run as written.
        Every line must exit with status 0.
    <!-- transcript: cli [init-db] [NAME=VALUE ...] -->
        Each `$ [NAME=VALUE ...] uv run flask --app <step> ...` line runs in a terminal (a pty), as a learner
        sees it: stdout and stderr in the order printed, a password prompt answered without echo. The
        block's lines share one fresh database: empty, or made by `init-db` first. A line whose output
        starts with `Error:` must exit with a non-zero status, any other line with 0.
    <!-- transcript: skip REASON -->
        Not run here; the reason is required, and names the test that runs the block instead
        (tests/<file>.py::<test>; tests/test_readme_transcripts.py checks that it exists).

The step is the folder the README is in. Outputs are compared as text, line by line, after normalising what
changes from run to run: JWTs (replaced by their claim names), UUIDs, Flask's log timestamps and epoch
seconds; trailing spaces are ignored. A README with no annotation at all is reported and not checked (a
new step's README does not break the suite before its author annotates it); a README with one must
annotate every console block.

    uv run python -m tutorial.transcripts                  # check every step README, show the differences
    uv run python -m tutorial.transcripts --update         # rewrite the READMEs' outputs from a real run
    uv run python -m tutorial.transcripts step04_errors    # only some steps (with or without --update)

--update keeps an output that already matches (so tokens in a README do not churn) and replaces the others
with what the commands printed; review the change with `git diff` before committing it.
"""
import argparse
import atexit
import base64
import difflib
import json
import os
import re
import select
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from tutorial.live import LiveServer, clean_env, flask_command, run_flask
from tutorial.steps import ROOT, reference_steps, steps_dir

README_URL = "http://127.0.0.1:5000"  # where the READMEs' curl lines send their requests
ANNOTATION = re.compile(r"^\s*<!--\s*transcript:\s*(.*?)\s*-->\s*$")
FENCE = re.compile(r"^(\s*)(`{3,}|~{3,})\s*([^`\s]*).*$")
PASSWORD = "transcript-test-password"  # typed at a password prompt


class TranscriptError(Exception):
    """A README block that cannot be run as annotated (not a mismatch: a mistake in the README)."""


@dataclass
class Command:
    line: int  # the `$ ` line's index in the README's lines (0-based)
    text: str  # the command, without "$ "
    output: list  # the README's output lines
    actual: str = None  # what the command printed, after a run
    returncode: int = None


@dataclass(eq=False)  # hashable: one block, one object
class Block:
    readme: Path
    step: str
    number: int  # the block's number among the README's console blocks, from 1
    line: int  # the opening fence's index in the README's lines (0-based)
    annotation: str  # the text after "transcript:", or None
    commands: list = field(default_factory=list)

    @property
    def where(self):
        return f"{shown(self.readme)}:{self.line + 1}"

    @property
    def id(self):
        return f"{self.step}-{self.number}"

    def spec(self):
        return parse_annotation(self.annotation, self.where)


@dataclass
class Spec:
    kind: str  # run, cli or skip
    flask_args: list = field(default_factory=list)
    env: dict = field(default_factory=dict)
    config: dict = field(default_factory=dict)
    init_db: bool = False
    reason: str = ""


def parse_annotation(text, where="?"):
    if text is None:
        raise TranscriptError(f"{where}: no <!-- transcript: ... --> annotation on the line before ```console")
    try:
        words = shlex.split(text)
    except ValueError as error:
        raise TranscriptError(f"{where}: transcript annotation {text!r}: {error}") from None
    if not words or words[0] not in ("run", "cli", "skip"):
        raise TranscriptError(f"{where}: a transcript annotation starts with run, cli or skip, not {text!r}")
    spec = Spec(words[0])
    if spec.kind == "skip":
        spec.reason = " ".join(words[1:])
        if not spec.reason:
            raise TranscriptError(f"{where}: `transcript: skip` needs a reason")
        return spec
    for word in words[1:]:
        if spec.kind == "run" and word.startswith("--"):
            spec.flask_args.append(word)
        elif spec.kind == "cli" and word == "init-db":
            spec.init_db = True
        elif word.startswith("create_app="):
            try:
                spec.config.update(json.loads(word.removeprefix("create_app=")))
            except ValueError as error:
                raise TranscriptError(f"{where}: create_app= takes a JSON object: {error}") from None
        elif re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", word):
            name, _, value = word.partition("=")
            spec.env[name] = value
        else:
            raise TranscriptError(f"{where}: {word!r} means nothing in a `transcript: {spec.kind}` annotation")
    return spec


def parse_readme(readme, step=None, text=None):
    """The README's ```console blocks, with their annotations and commands."""
    readme = Path(readme)
    lines = (readme.read_text(encoding="utf-8") if text is None else text).splitlines()
    step = step or readme.parent.name
    blocks, fence, current = [], None, None
    for index, line in enumerate(lines):
        match = FENCE.match(line)
        if fence is None:
            if match:
                fence = match[2]
                if match[3] == "console":
                    previous = ANNOTATION.match(lines[index - 1]) if index else None
                    current = Block(readme, step, len(blocks) + 1, index, previous[1] if previous else None)
                    blocks.append(current)
            continue
        if match and match[2].startswith(fence) and match[2][0] == fence[0] and not match[3]:
            fence, current = None, None  # the closing fence
            continue
        if current is None:
            continue
        if line.startswith("$ "):
            current.commands.append(Command(index, line[2:], []))
        elif current.commands:
            current.commands[-1].output.append(line)
        elif line.strip():
            raise TranscriptError(f"{current.where}: output before the first `$ ` line: {line!r}")
    return blocks


def shown(path):
    """A README's path as the messages show it: step01_basic/README.md."""
    return f"{Path(path).parent.name}/{Path(path).name}"


def step_readmes():
    """The README of every reference step, in order."""
    return [ROOT / step / "README.md" for step in reference_steps() if (ROOT / step / "README.md").is_file()]


def commands_outside_console_blocks(readme):
    """curl lines in fenced blocks other than ```console: they would escape the check."""
    found, fence, kind = [], None, None
    for index, line in enumerate(Path(readme).read_text(encoding="utf-8").splitlines()):
        match = FENCE.match(line)
        if fence is None:
            if match:
                fence, kind = match[2], match[3]
            continue
        if match and match[2][0] == fence[0] and len(match[2]) >= len(fence) and not match[3]:
            fence = None
            continue
        if kind != "console" and re.match(r"^\s*(\$ )?curl\s", line):
            found.append(f"{shown(readme)}:{index + 1}: {line.strip()}")
    return found


# --- Normalising what changes from run to run -----------------------------------------------------------

JWT = re.compile(r"eyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
UUID = re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b")
LOG_TIME = re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(,\d+)?\]")
EPOCH = re.compile(r"\b1[6-9]\d{8}\b")  # seconds since 1970, 2020 to 2033


def jwt_shape(match):
    """A token, replaced by what does not change from run to run: the names of its claims."""
    try:
        payload = match[0].split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return f"<JWT {','.join(sorted(claims))}>"
    except ValueError:
        return "<JWT ?>"


def normalise(text):
    lines = []
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = JWT.sub(jwt_shape, line)
        line = UUID.sub("<uuid>", line)
        line = LOG_TIME.sub("[<time>]", line)
        lines.append(EPOCH.sub("<epoch>", line).rstrip())
    while lines and not lines[-1]:
        lines.pop()
    return lines


# --- Running a block ------------------------------------------------------------------------------------


def run_block(block, workdir):
    """Run the block's commands as its annotation says; fill in each command's actual output."""
    spec = block.spec()
    if spec.kind == "run":
        run_server_block(block, spec, Path(workdir))
    elif spec.kind == "cli":
        run_cli_block(block, spec, Path(workdir))


_SEEDED = {}  # (steps folder, step, env, config) -> a database init-db made: copied, not made again (~2 s each)
_SEEDED_LOCK = threading.Lock()


def init_db(step, db_file, env, config):
    key = (str(steps_dir()), step, json.dumps(env, sort_keys=True), json.dumps(config, sort_keys=True))
    with _SEEDED_LOCK:
        if key not in _SEEDED:
            seeded = Path(tempfile.mkdtemp(prefix="transcript-seed-")) / "seeded.sqlite"
            atexit.register(shutil.rmtree, seeded.parent, ignore_errors=True)
            done = run_flask(step, seeded, "init-db", env=env, config=config)
            if done.returncode != 0 and "No such command" not in done.stderr:  # step01 has no database
                raise TranscriptError(f"init-db failed for {step}:\n{done.stdout}{done.stderr}")
            _SEEDED[key] = seeded
    if _SEEDED[key].exists():
        shutil.copyfile(_SEEDED[key], db_file)


def run_server_block(block, spec, workdir):
    db_file = workdir / "transcript.sqlite"
    init_db(block.step, db_file, spec.env, spec.config)
    with LiveServer(block.step, db_file, *spec.flask_args, env=spec.env, config=spec.config) as server:
        server.wait_until_ready()
        outputs = workdir / "outputs"
        outputs.mkdir()
        script = ["set +e"]
        for number, command in enumerate(block.commands):
            text = command.text.replace(README_URL, server.url)
            # Braces, not a subshell: an assignment such as TOKEN=$(...) stays for the next lines.
            out = shlex.quote((outputs / str(number)).as_posix())  # bash's paths: / also on Windows (Git Bash)
            script.append(f"{{ {text}\n}} >{out}.out 2>&1 </dev/null; echo $? >{out}.rc")
        try:
            subprocess.run(["bash", "-c", "\n".join(script)], cwd=workdir, env=clean_env(), timeout=120, check=True)
        except subprocess.TimeoutExpired:
            raise TranscriptError(f"{block.where}: the commands took more than 120 s") from None
        for number, command in enumerate(block.commands):
            printed = (outputs / f"{number}.out").read_text(encoding="utf-8", errors="replace")
            command.actual = printed.replace(server.url, README_URL)
            command.returncode = int((outputs / f"{number}.rc").read_text(encoding="ascii"))


def parse_cli_line(command, where):
    """`[NAME=VALUE ...] uv run flask --app <step> ARGS...` -> (env, step, args)."""
    words = shlex.split(command.text)
    env = {}
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    if words[:2] == ["uv", "run"]:
        words = words[2:]
    if words[:2] != ["flask", "--app"] or len(words) < 3 or words[2] not in reference_steps():
        raise TranscriptError(f"{where}: a `transcript: cli` line runs `uv run flask --app <step> ...`: {command.text}")
    return env, words[2], words[3:]


def run_cli_block(block, spec, workdir):
    db_file = workdir / "transcript.sqlite"
    if spec.init_db:
        init_db(block.step, db_file, spec.env, spec.config)
    for command in block.commands:
        env, step, args = parse_cli_line(command, block.where)
        cmd = flask_command(step, db_file, *args, config=spec.config)
        command.returncode, command.actual = run_in_terminal(cmd, clean_env({**spec.env, **env}), steps_dir())


def run_in_terminal(cmd, env, cwd, timeout=60):
    """Run a command on a pseudo-terminal, as in a learner's shell; answer its password prompts.
    Returns (exit status, everything it printed)."""
    import pty  # Unix only, as is this check

    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    output, answered, deadline = b"", 0, time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                raise TranscriptError(f"{shlex.join(cmd)} did not finish in {timeout} s:\n{output.decode(errors='replace')}")
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the command has ended and closed the terminal
                    data = b""
                if not data:
                    break
                output += data
            elif len(output) > answered and output.rsplit(b"\n", 1)[-1].rstrip().endswith(b":"):
                # Quiet, and the last line is an unanswered prompt ("Password: "): type the answer, which
                # is not echoed (getpass turns the echo off before it prompts).
                os.write(master, PASSWORD.encode() + b"\n")
                answered = len(output)
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    return proc.returncode, output.decode(errors="replace")


# --- Comparing, reporting, updating ------------------------------------------------------------------------


def problems(block):
    """What differs between the README and the run, in words; empty when the block tells the truth."""
    found = []
    kind = block.spec().kind
    for command in block.commands:
        if command.actual is None:
            continue
        where = f"{shown(block.readme)}:{command.line + 1}: $ {command.text}"
        expected, actual = normalise("\n".join(command.output)), normalise(command.actual)
        if expected != actual:
            diff = difflib.unified_diff(expected, actual, "the README shows", "the command printed", lineterm="", n=2)
            found.append(f"{where}\n" + "\n".join(diff))
        if kind == "cli":
            refused = bool(actual) and actual[0].startswith("Error:")
            if refused != (command.returncode != 0):
                found.append(f"{where}\nexit status {command.returncode}, but the output "
                             + ("starts with Error:" if refused else "shows no error"))
        elif command.returncode != 0:
            found.append(f"{where}\nexit status {command.returncode}:\n{command.actual}")
    return found


def run_blocks(blocks, workers=2, log=print):
    """Run the annotated blocks (not `skip`), `workers` at a time: most of the time goes into starting
    Python processes, and into `sleep`. Returns {block: the TranscriptError it raised, or None}."""
    from concurrent.futures import ThreadPoolExecutor

    def run(block):
        started = time.monotonic()
        try:
            with tempfile.TemporaryDirectory(prefix="transcript-") as workdir:
                run_block(block, workdir)
        except (TranscriptError, RuntimeError) as error:  # RuntimeError: a server that did not start
            return error
        finally:
            log(f"{block.where}: {block.annotation}: {len(block.commands)} commands, {time.monotonic() - started:.1f} s")
        return None

    runnable = [block for block in blocks if block.spec().kind != "skip"]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return dict(zip(runnable, pool.map(run, runnable)))


def translations(readme):
    """The README's translations beside it: README.zh-CN.md, ..."""
    readme = Path(readme)
    return sorted(readme.parent.glob(readme.stem + ".*" + readme.suffix))


def translation_problems(original, translation):
    """A translation's console blocks must be the original's, block for block: same commands, same outputs
    (normalised). The original's run checks both. The annotations may differ (they are not shown)."""
    found, name = [], shown(translation)
    if len(original) != len(translation_blocks := parse_readme(translation)):
        return [f"{name}: {len(translation_blocks)} console blocks, where {original[0].readme.name} has {len(original)}"]
    for ours, theirs in zip(original, translation_blocks):
        if [c.text for c in ours.commands] != [c.text for c in theirs.commands]:
            found.append(f"{theirs.where}: not the same commands as {ours.where}")
            continue
        for a, b in zip(ours.commands, theirs.commands):
            if normalise("\n".join(a.output)) != normalise("\n".join(b.output)):
                found.append(f"{name}:{b.line + 1}: $ {b.text}\nshows another output than {ours.readme.name}:{a.line + 1}")
    return found


def rewrite(readme, blocks):
    """Replace, in the README, each output that does not match with what the command printed.
    Returns how many outputs were replaced."""
    lines = Path(readme).read_text(encoding="utf-8").splitlines(keepends=True)
    changed = 0
    # From the end, so that the line numbers of the earlier commands stay valid.
    for command in sorted((c for b in blocks for c in b.commands), key=lambda c: c.line, reverse=True):
        if command.actual is None or normalise("\n".join(command.output)) == normalise(command.actual):
            continue
        text = command.actual.replace("\r\n", "\n").rstrip("\n")
        lines[command.line + 1:command.line + 1 + len(command.output)] = [f"{line.rstrip()}\n" for line in text.split("\n")] if text else []
        changed += 1
    if changed:
        Path(readme).write_text("".join(lines), encoding="utf-8", newline="\n")  # LF, as checked out
    return changed


def copy_actual(original, translation_blocks):
    """Give a translation's commands the outputs of the original's run, where the blocks match."""
    for ours, theirs in zip(original, translation_blocks):
        if [c.text for c in ours.commands] == [c.text for c in theirs.commands]:
            for a, b in zip(ours.commands, theirs.commands):
                b.actual, b.returncode = a.actual, a.returncode


def check(readmes, update=False, workers=2, log=print):
    """Run the annotated console blocks of these READMEs; compare their translations with them.
    Returns (commands checked, blocks run, problems, READMEs not annotated)."""
    parsed, blocks, unannotated, found = {}, [], [], []
    for readme in readmes:
        parsed[readme] = parse_readme(readme)
        if parsed[readme] and not any(block.annotation for block in parsed[readme]):
            unannotated.append(readme)
            continue
        for block in parsed[readme]:
            try:
                if block.spec().kind != "skip":
                    blocks.append(block)
            except TranscriptError as error:  # an unannotated or malformed block in an annotated README
                found.append(str(error))
    errors = run_blocks(blocks, workers, log)
    for block in blocks:
        if errors[block]:
            found.append(f"{block.where}: {errors[block]}")
        found += problems(block)
    for readme in {block.readme: None for block in blocks}:
        for translation in translations(readme):
            if update:
                translated = parse_readme(translation)
                copy_actual(parsed[readme], translated)
                if rewrite(translation, translated):
                    log(f"{shown(translation)}: outputs rewritten")
            found += translation_problems(parsed[readme], translation)
        if update and rewrite(readme, parsed[readme]):
            log(f"{shown(readme)}: outputs rewritten")
    return sum(len(block.commands) for block in blocks), len(blocks), found, unannotated


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tutorial.transcripts", description=__doc__.split("\n\n")[0])
    parser.add_argument("steps", nargs="*", help="step packages (default: every step with a README)")
    parser.add_argument("--update", action="store_true", help="rewrite the outputs that differ from a real run")
    options = parser.parse_args(argv)
    readmes = [ROOT / step / "README.md" for step in options.steps] if options.steps else step_readmes()
    started = time.monotonic()
    checked, ran, found, unannotated = check(readmes, update=options.update)
    for readme in unannotated:
        print(f"{shown(readme)}: no transcript annotation, not checked")
    for problem in found:
        print(f"\n{problem}", file=sys.stderr)
    print(f"\n{checked} commands in {ran} blocks run in {time.monotonic() - started:.0f} s; {len(found)} differences"
          + (" (the READMEs now show what ran: review with git diff)" if options.update and found else ""))
    return 1 if found and not options.update else 0


if __name__ == "__main__":
    sys.exit(main())
