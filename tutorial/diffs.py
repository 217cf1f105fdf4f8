"""The code diff between two steps, and the generated "What changed" block of each step's README."""
import difflib
import re
from pathlib import Path

from tutorial.steps import ROOT, StepError, previous_step, reference_steps

SKIPPED_DIRS = {"__pycache__", "instance", ".ipynb_checkpoints"}
SKIPPED_SUFFIXES = (".pyc", ".pyo", ".sqlite", ".sqlite3", ".db")
START, END = "<!-- what-changed:start -->", "<!-- what-changed:end -->"
SECTION = re.compile(r"^## What changed from step \d+", re.MULTILINE)
# Each step README has a Chinese twin (README.zh-CN.md) holding the very same generated block, in the
# section of the same place: "## 与第 NN 步相比的变化".
README_SECTIONS = {
    "README.md": SECTION,
    "README.zh-CN.md": re.compile(r"^## 与第 \d+ 步相比的变化", re.MULTILINE),
}
COMMAND = "uv run tutorial readme-diffs"


def step_files(folder):
    """The files of a step folder that a diff shows: no README, caches, databases or hidden files."""
    folder = Path(folder)
    files = []
    for path in folder.rglob("*"):
        parts = path.relative_to(folder).parts
        if not path.is_file() or any(p in SKIPPED_DIRS or p.startswith(".") for p in parts):
            continue
        if path.name.upper().startswith("README") or path.name.endswith(SKIPPED_SUFFIXES):
            continue
        files.append(path.relative_to(folder).as_posix())
    return sorted(files)


def _lines(path):
    if path is None:
        return []
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n\\ No newline at end of file\n"
    return lines


def step_diff(old, new, root=ROOT):
    """A unified diff of two step folders (names relative to `root`), file by file, as one string."""
    old_files, new_files = set(step_files(root / old)), set(step_files(root / new))
    chunks = []
    for name in sorted(old_files | new_files):
        before = root / old / name if name in old_files else None
        after = root / new / name if name in new_files else None
        chunks.extend(difflib.unified_diff(
            _lines(before), _lines(after),
            f"{old}/{name}" if before else "/dev/null", f"{new}/{name}" if after else "/dev/null",
        ))
    return "".join(chunks)


COLOURS = {"+": "\033[32m", "-": "\033[31m", "@": "\033[36m"}
BOLD, RESET = "\033[1m", "\033[0m"


def colour_diff(text):
    out = []
    for line in text.splitlines():
        if line.startswith(("+++ ", "--- ")):
            out.append(BOLD + line + RESET)
        elif line[:1] in COLOURS:
            out.append(COLOURS[line[:1]] + line + RESET)
        else:
            out.append(line)
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def readme_block(step):
    """The generated block for a step's README: the diff from the previous step, folded away."""
    previous = previous_step(step)
    diff = step_diff(previous, step)
    longest = max((len(run) for run in re.findall(r"`+", diff)), default=0)
    fence = "`" * max(3, longest + 1)
    return (
        f"{START}\n"
        "<details><summary>The full diff</summary>\n\n"
        f"Generated from the code by `{COMMAND}`; do not edit it by hand. "
        f"`uv run tutorial diff {previous[4:6]} {step[4:6]}` prints the same diff, in colour on a terminal.\n\n"
        f"{fence}diff\n{diff}{fence}\n\n"
        "</details>\n"
        f"{END}"
    )


def _section_end(text, start):
    """Where the markdown section that starts at `start` ends: the next '#' or '##' heading outside code."""
    lines = text[start:].splitlines(keepends=True)
    offset, fence = start + len(lines[0]), None
    for line in lines[1:]:
        marker = re.match(r"\s*(`{3,}|~{3,})", line)
        if marker and fence is None:
            fence = marker[1]
        elif marker and marker[1].startswith(fence):
            fence = None
        elif fence is None and re.match(r"#{1,2} ", line):
            return offset
        offset += len(line)
    return len(text)


def readme_with_block(text, step, name="README.md"):
    """The README text with its generated block in the "What changed" section, new or replaced.
    `name` is the README's file name, README.md or its Chinese twin README.zh-CN.md."""
    block = readme_block(step)
    if START in text and END in text:
        before, rest = text.split(START, 1)
        after = rest.split(END, 1)[1]
        return before + block + after
    pattern = README_SECTIONS[name]
    section = pattern.search(text)
    if section is None:
        heading = pattern.pattern.lstrip("^").replace("\\d+", "NN")
        raise StepError(f"{step}/{name} has no '{heading}' section to put the diff in")
    end = _section_end(text, section.start())
    head, tail = text[:end].rstrip("\n"), text[end:]
    return head + "\n\n" + block + ("\n\n" + tail if tail else "\n")


def readme_steps():
    """The steps whose README gets a diff: every step that has a previous one."""
    return [step for step in reference_steps() if previous_step(step)]


def readme_files():
    """(step, README file) for every step README that gets a diff, English and, where it exists, Chinese."""
    return [
        (step, ROOT / step / name)
        for step in readme_steps()
        for name in README_SECTIONS
        if name == "README.md" or (ROOT / step / name).is_file()
    ]


def stale_readmes():
    """The README files whose generated block is missing or out of date."""
    stale = []
    for step, path in readme_files():
        text = path.read_text(encoding="utf-8")
        if readme_with_block(text, step, path.name) != text:
            stale.append(path)
    return stale


def write_readme_diffs():
    """Regenerate every step README's block, in both languages; return the files that changed."""
    changed = []
    for step, path in readme_files():
        text = path.read_text(encoding="utf-8")
        new = readme_with_block(text, step, path.name)
        if new != text:
            path.write_text(new, encoding="utf-8", newline="\n")  # LF, as checked out, also on Windows
            changed.append(path)
    return changed
