"""The code diff between two steps, and the generated "What changed" block of each step's README."""
import difflib
import json
import re
from pathlib import Path

from tutorial.steps import ROOT, StepError, previous_step, reference_steps

START, END = "<!-- what-changed:start -->", "<!-- what-changed:end -->"
COMMAND = "uv run tutorial readme-diffs"


def step_files(folder):
    """The files of a step folder that a diff shows: no README, caches, databases or hidden files."""
    return sorted(path.relative_to(folder).as_posix() for path in Path(folder).rglob("*") if path.is_file()
                  and not any(p in ("__pycache__", "instance") or p[0] == "." for p in path.relative_to(folder).parts)
                  and not path.name.startswith("README") and path.suffix not in (".pyc", ".sqlite", ".db"))


def _lines(path):
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True) if path.is_file() else []
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines


def step_diff(old, new, skip=()):
    """A unified diff of two step folders, file by file (but those in `skip`), as one string."""
    names = sorted((set(step_files(ROOT / old)) | set(step_files(ROOT / new))) - set(skip))
    return "".join(line for name in names for line in difflib.unified_diff(
        _lines(ROOT / old / name), _lines(ROOT / new / name),
        f"{old}/{name}" if (ROOT / old / name).is_file() else "/dev/null",
        f"{new}/{name}" if (ROOT / new / name).is_file() else "/dev/null"))


def operations(step):
    """{"POST /login": ["200", "401", ...], ...}: the operations of a step's openapi.json and their answers."""
    path = ROOT / step / "openapi.json"
    paths = json.loads(path.read_text(encoding="utf-8"))["paths"] if path.is_file() else {}
    return {f"{method.upper()} {route}": list(operation["responses"]) for route, item in paths.items()
            for method, operation in item.items() if isinstance(operation, dict) and "responses" in operation}


def contract_changes(old, new):
    """The operations and answers the new step's openapi.json adds (+) and removes (-), one line each."""
    before, after = operations(old), operations(new)
    lines = []
    for name in [*after, *(name for name in before if name not in after)]:
        if name not in before or name not in after:
            lines.append(f"{'+' if name in after else '-'} {name} → {', '.join(after.get(name) or before[name])}")
        elif answers := [f"+{a}" for a in after[name] if a not in before[name]] + [f"-{a}" for a in before[name] if a not in after[name]]:
            lines.append(f"~ {name} → {', '.join(answers)}")
    return lines


def readme_block(step):
    """The generated block for a step's README: what openapi.json adds, then the diff of the code, folded away."""
    previous = previous_step(step)
    diff = step_diff(previous, step, skip=["openapi.json"])
    fence = "`" * max(3, 1 + max((len(run) for run in re.findall(r"`+", diff)), default=0))
    changes = "\n".join(contract_changes(previous, step))
    return (
        f"{START}\n"
        + (f"`openapi.json`, the operations and answers it adds (+), removes (-) or changes (~):\n\n```diff\n{changes}\n```\n\n" if changes else "")
        + "<details><summary>The full diff</summary>\n\n"
        f"Generated from the code by `{COMMAND}`; do not edit it by hand. "
        f"`uv run tutorial diff {previous[4:6]} {step[4:6]}` prints the same diff, with `openapi.json`, in colour on a terminal.\n\n"
        f"{fence}diff\n{diff}{fence}\n\n"
        "</details>\n"
        f"{END}"
    )


def readme_diffs(write=False):
    """The step READMEs (English, Chinese) whose block between START and END is out of date; `write`: rewritten."""
    stale = []
    for step in reference_steps()[1:]:  # every step that has a previous one
        for path in [ROOT / step / "README.md", *(ROOT / step).glob("README.zh-CN.md")]:
            text = path.read_text(encoding="utf-8")
            before, start, rest = text.partition(START)
            if not start or END not in rest:
                raise StepError(f"{path.relative_to(ROOT).as_posix()} has no lines {START} and {END} for the diff")
            new = before + readme_block(step) + rest.partition(END)[2]
            if new != text:
                stale.append(path)
                if write:
                    path.write_text(new, encoding="utf-8", newline="\n")  # LF, as checked out, also on Windows
    return stale
