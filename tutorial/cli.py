"""`tutorial start|check|diff|readme-diffs`: workshop mode (docs/workshop.md). A learner's mistake: a line, exit 2."""
import argparse
import os
import re
import shutil
import sys
import time
from pathlib import Path

from tutorial import checking, diffs
from tutorial.checking import shown
from tutorial.steps import ROOT, StepError, find_step, previous_step

GREEN, RED, YELLOW, CYAN = "\033[32m", "\033[31m", "\033[33m", "\033[36m"
DIM, BOLD, RESET = "\033[2m", "\033[1m", "\033[0m"
DIFF_COLOURS = {"+++ ": BOLD, "--- ": BOLD, "+": GREEN, "-": RED, "@": CYAN}  # file names, added, removed, hunks
LABELS = {"failed": ("FAILED ", RED), "skipped": ("skipped", YELLOW), "passed": ("passed ", GREEN)}

STEP01_SKELETON = {
    "__init__.py": '''"""Step 01, your version: an app factory and one JSON endpoint (see step01_basic/README.md)."""
from flask import Flask


def create_app(test_config=None):
    app = Flask(__name__)
    if test_config is not None:
        app.config.from_mapping(test_config)
    # To do: answer JSON with flask-restful (an Api, the Hello resource on /hello) and allow CORS.
    return app
''',
    "resources.py": "# To do: the Hello resource (GET /hello), a flask-restful Resource.\n",
}


def use_colour(stream):
    """On a terminal, unless NO_COLOR is set; Windows' console (conhost) once asked to (VIRTUAL_TERMINAL_PROCESSING)."""
    if not stream.isatty() or os.environ.get("NO_COLOR"):
        return False
    if os.name != "nt":
        return True
    try:
        import ctypes
        import msvcrt

        handle, mode, kernel32 = msvcrt.get_osfhandle(stream.fileno()), ctypes.c_uint32(), ctypes.windll.kernel32
        if not kernel32.GetConsoleMode(handle, ctypes.byref(mode)):
            return True  # not a console: the pipe of Windows Terminal or Git Bash, which show colour
        return bool(kernel32.SetConsoleMode(handle, mode.value | 4))
    except (AttributeError, ImportError, OSError, ValueError):  # no handle at all: a test's stand-in
        return True


def paint(text, colour, on):
    return f"{colour}{text}{RESET}" if on else text


def command_name():
    """As the learner ran this command, so that the hints can be pasted."""
    if Path(sys.argv[0]).name == "__main__.py":
        return "python -m tutorial"
    return "uv run tutorial" if os.environ.get("UV") else "tutorial"


def readme_section(text, title):
    """The body of a README's '## <title>...' section, up to the next '## ' heading, or ''."""
    match = re.search(rf"^## {re.escape(title)}[^\n]*\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    return match[1].strip("\n") if match else ""


def without_code(text):
    """A section for a terminal: no fenced blocks (nor a heading that only introduces one), no diff, no #links."""
    text = re.sub(rf"{re.escape(diffs.START)}.*?{re.escape(diffs.END)}", "", text, flags=re.DOTALL)
    text = re.sub(r"^(?:#+ .*\n\s*)?(`{3,}|~{3,}).*?^\1\s*$", "", text, flags=re.MULTILINE | re.DOTALL)
    text = re.sub(r"\[([^\]]+)\]\(#[^)]*\)", r"\1", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip("\n")


def start(args):
    step = find_step(args.step)
    workspace, previous, number, name = Path(args.workspace).resolve(), previous_step(step), step[4:6], command_name()
    target = workspace / step
    if target.exists() and any(target.iterdir()) and not args.force:
        raise StepError(f"{shown(target)} already exists: your work is kept. "
                        f"To throw it away and start afresh: {name} start {number} --force")
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    if previous:
        for file in diffs.step_files(ROOT / previous):
            (target / file).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / previous / file, target / file)
        origin = f"a copy of {previous}, the previous step (its code, not its README)"
    else:
        for file, text in STEP01_SKELETON.items():
            (target / file).write_text(text, encoding="utf-8")
        origin = "a skeleton: there is no previous step, so create_app() makes a bare Flask app for you to fill in"

    readme, colour = (ROOT / step / "README.md").read_text(encoding="utf-8"), use_colour(sys.stdout)
    article = re.search(r"^\*\*Article section:\*\*(.*?)(?:\n\s*\n|\Z)", readme, re.MULTILINE | re.DOTALL)
    out = [paint(readme.splitlines()[0].lstrip("# ").strip(), BOLD, colour), ""]
    out += [f"Article section: {' '.join(article[1].split())}", ""] if article else []
    out += [f"Your copy: {shown(target)}/ — {origin}.", ""]
    to_change = "What to change (the README's 'What changed')"
    for section, heading in [("The concept", "The concept"), ("What changed", to_change)]:
        text = without_code(readme_section(readme, section))
        out += [paint(heading, BOLD, colour), "", text, ""] if text else []
    flask = "uv run flask" if name.startswith("uv ") else "flask"
    out += [
        paint("Then", BOLD, colour),
        f"  {name} check {number}          run the step's tests against your copy",
        f"  {name} diff {previous[4:6]} {number}        the reference change, if you are stuck" if previous else
        f"  {step}/README.md            the reference README, if you are stuck",
        "",
        f"Try your copy by hand from inside {shown(workspace)}/ (from the repository root, --app {step} is",
        "the reference step, not your copy); one command a line, so that Windows PowerShell runs them too:",
        f"  cd {shown(workspace)}",
    ]
    if previous:  # init-db inside the workspace too, or it sets up the reference's database (step 01 has none)
        out.append(f"  {flask} --app {step} init-db    your copy's database, in {shown(workspace / 'instance')}/")
    print("\n".join(out + [f"  {flask} --app {step} run"]))
    return 0


def file_heading(file, step):
    """tests/test_step01_basic.py, checking step03_jwt -> 'taught in step 01, still true (tests/...)'"""
    match = re.search(r"test_(step(\d\d)_\w+)\.py$", file)
    if not match or match[1] == step:
        return f"new in this step ({file})"
    if match[1] < step:
        return f"taught in step {match[2]}, still true ({file})"
    return f"step {match[2]}'s tests, on this step's code ({file})"


def describe_failure(doc, case, colour):
    """Short lines: what the test checks, its line that failed, what was found instead, where the step's code raised."""
    lines = [paint(" ".join(doc.split()), DIM, colour)] if doc else []
    if case.get("expected"):
        said = "the test expects:" if case["expected"].startswith("assert") else "while the test ran:"
        lines.append(f"{said} {case['expected']}   " + paint(f"({case['where']})", DIM, colour))
    if case.get("found"):
        lines.append(("but: " if case.get("assertion") else "but this was raised: ") + case["found"])
    if case.get("raised_at"):
        lines.append(f"raised in {case['raised_at']}")
    if case.get("hint"):  # tutorial/checking.py HINTS
        lines.append(f"likely fix: {case['hint']}")
    return lines


def print_verdicts(result, colour, out=None):
    heading = None
    for (file, function), cases in result.behaviours.items():
        if file != heading:
            heading = file
            print("\n" + paint(file_heading(file, result.step), BOLD, colour), file=out)
        failures = [case for case in cases if case["outcome"] == "failed"]
        outcome = "failed" if failures else "skipped" if all(c["outcome"] == "skipped" for c in cases) else "passed"
        line = f"  {paint(*LABELS[outcome], colour)} {function.removeprefix('test_').replace('_', ' ').capitalize()}"
        if failures and len(cases) > 1:
            line += f" ({len(failures)} of {len(cases)} cases fail" + (f"; first: {failures[0]['case']})" if failures[0]["case"] else ")")
        print(line, file=out)
        for text in describe_failure(cases[0]["doc"], failures[0], colour) if failures else []:
            print(" " * 10 + text, file=out)


def summary(result):
    behaviours = result.behaviours.values()
    passing = sum(all(case["outcome"] != "failed" for case in cases) for cases in behaviours)
    failed = sum(case["outcome"] == "failed" for case in result.tests)
    return f"{passing} of {len(behaviours)} behaviours pass ({len(result.tests)} tests, {failed} failed)"


def check(args):
    step = find_step(args.step)
    folder = ROOT if args.reference else Path(args.workspace).resolve()
    if not (folder / step).exists():
        raise StepError(f"{shown(folder / step)} does not exist: start the step with {command_name()} start {step[4:6]}")
    colour, started = use_colour(sys.stdout), time.monotonic()
    what = f"the reference {step}" if args.reference else shown(folder / step)
    print(f"Checking {what} with the tests of {step} ...", flush=True)
    result = checking.run_checks([checking.Check(folder, [step], args.k)])[0]
    if isinstance(result, StepError):  # the copy does not import (no test ran), or its tests could not run
        raise result
    result = result[step]
    print_verdicts(result, colour)
    verdict = paint("passes", GREEN, colour) if result.passed else paint("does not pass yet", RED, colour)
    print(f"\n{what} {verdict}: {summary(result)}, in {time.monotonic() - started:.1f} s.")
    return 0 if result.passed else 1


def diff(args):
    colour = use_colour(sys.stdout)
    for line in diffs.step_diff(find_step(args.old), find_step(args.new)).splitlines():
        kind = line[:4] if line.startswith(("+++ ", "--- ")) else line[:1]
        print(paint(line, DIFF_COLOURS[kind], colour) if kind in DIFF_COLOURS else line)
    return 0


def readme_diffs(_args):
    paths = diffs.readme_diffs(write=True)
    print("\n".join(f"updated {shown(path)}" for path in paths) or "every step README's diff is up to date")
    return 0


def parser():
    workspace = argparse.ArgumentParser(add_help=False)
    workspace.add_argument("--workspace", default=ROOT / "workspace", metavar="DIR", help="your step copies (default: workspace/)")
    main = argparse.ArgumentParser(prog=command_name(), description="Workshop mode: type each step yourself, check it with the reference tests.")
    commands = main.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser("start", parents=[workspace], help="copy the previous step into your workspace, and say what the step asks for")
    p.add_argument("step", help="a step number: 03 (or 3, or step03_jwt)")
    p.add_argument("--force", action="store_true", help="replace an existing copy (your changes to it are lost)")

    p = commands.add_parser("check", parents=[workspace], help="run the step's tests against your copy")
    p.add_argument("step", help="a step number: 03 (or 3, or step03_jwt)")
    p.add_argument("--reference", action="store_true", help="check the reference step instead of your copy")
    p.add_argument("-k", metavar="EXPRESSION", help="only the tests whose names match (pytest's -k)")

    p = commands.add_parser("diff", help="the reference change between two steps: diff 02 03")
    p.add_argument("old", help="the earlier step")
    p.add_argument("new", help="the later step")

    commands.add_parser("readme-diffs", help="regenerate the diff block in every step README")
    return main


def main(argv=None):
    args = parser().parse_args(argv)
    run = {"start": start, "check": check, "diff": diff, "readme-diffs": readme_diffs}[args.command]
    try:
        return run(args)
    except StepError as error:
        print(f"tutorial: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
