"""Documentation in Chinese as well as English (issue 10): every learner-facing README.md has a Chinese twin,
README.zh-CN.md, beside it, and the two are kept in step.

Learner-facing: the root README, every step folder's README, and any other README.md in the repository
(notebooks/, and postman/ or frontend/ when they exist) — except those of the tooling and caches a learner
does not read (tests/, tutorial/, hidden folders, workspace/, instance/, node_modules/).

In step means:
- both files show the same fenced code blocks, in the same order, byte for byte: commands, curl lines,
  JSON, outputs and file names are the same in both languages. An HTML comment directly before a code block
  (an annotation tools read) belongs to the block, and the generated "what-changed" block is one block;
- each links to the other at the top (before the first "##" heading);
- the links of a Chinese README lead to the Chinese twin where one exists, and their #anchors exist.
"""
import difflib
import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pytest

from tutorial import diffs
from tutorial.steps import ROOT, reference_steps

EN, ZH = "README.md", "README.zh-CN.md"
NOT_LEARNER_FACING = {"tests", "tutorial", "workspace", "instance", "node_modules", "__pycache__"}


def learner_readmes():
    """Every learner-facing English README, relative to the repository root: root and steps at least."""
    found = {Path(EN)} | {Path(step) / EN for step in reference_steps()}
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith(".") and d not in NOT_LEARNER_FACING)
        if EN in files:
            found.add((Path(folder) / EN).relative_to(ROOT))
    return sorted(found, key=lambda p: (len(p.parts), p.as_posix()))


READMES = learner_readmes()


def twin(english):
    return english.with_name(ZH)


def read(relative, root=ROOT):
    return (root / relative).read_text(encoding="utf-8")


# Code blocks ----------------------------------------------------------------------------------------------


@dataclass
class Block:
    line: int  # 1-based, where the block (or its annotation) starts
    text: str

    def first_line(self):
        return self.text.splitlines()[0]


OPENING = re.compile(r"^(\s*)(`{3,}|~{3,})")


def code_blocks(text):
    """The fenced code blocks of a markdown text, in order, each with the HTML comment directly before it.
    The generated block between diffs.START and diffs.END counts as one block, comments and prose included."""
    lines = text.splitlines(keepends=True)
    blocks, i = [], 0
    while i < len(lines):
        line = lines[i]
        if line.strip() == diffs.START:
            end = next((j for j in range(i, len(lines)) if lines[j].strip() == diffs.END), len(lines) - 1)
            blocks.append(Block(i + 1, "".join(lines[i:end + 1])))
            i = end + 1
            continue
        opening = OPENING.match(line)
        if not opening:
            i += 1
            continue
        fence = opening[2]
        end = i + 1
        while end < len(lines) and not re.fullmatch(rf"\s*{re.escape(fence[0])}{{{len(fence)},}}\s*", lines[end]):
            end += 1
        start = i
        if i > 0 and lines[i - 1].rstrip().endswith("-->"):  # an annotation directly before the block
            start = i - 1
            while start > 0 and "<!--" not in lines[start]:
                start -= 1
        blocks.append(Block(start + 1, "".join(lines[start:end + 1])))
        i = end + 1
    return blocks


def first_difference(a, b):
    """The first line where two blocks differ, as two short lines."""
    for number, (x, y) in enumerate(zip(a.splitlines(), b.splitlines()), 1):
        if x != y:
            return number, x, y
    shorter = min(len(a.splitlines()), len(b.splitlines()))
    pad = lambda s: s.splitlines()[shorter] if len(s.splitlines()) > shorter else "(the block ends here)"
    return shorter + 1, pad(a), pad(b)


def shorten(line, width=160):
    return line if len(line) <= width else line[:width - 1] + "…"


def out_of_step(english, root=ROOT):
    """Why the twin's code blocks differ from the English README's, or None when they agree."""
    chinese = twin(english)
    en_blocks, zh_blocks = code_blocks(read(english, root)), code_blocks(read(chinese, root))
    english, chinese = Path(english).as_posix(), Path(chinese).as_posix()  # messages show /, also on Windows
    for index in range(max(len(en_blocks), len(zh_blocks))):
        en = en_blocks[index] if index < len(en_blocks) else None
        zh = zh_blocks[index] if index < len(zh_blocks) else None
        if en is not None and zh is not None and en.text == zh.text:
            continue
        how_to_fix = (
            f"To fix: copy the block from {english} into {chinese} byte for byte (code, commands, JSON and "
            f"outputs are the same in both languages; only the prose around them is translated), and "
            f"translate any new or changed prose around it. If the Chinese file had it right, change "
            f"{english} the same way."
        )
        if len(en_blocks) == len(zh_blocks):
            how_to_fix += f" When only code changed, `{SYNC}` copies every block of the English READMEs."
        if diffs.START in (en or zh).text:
            how_to_fix += f" The generated diff block is written into both files by `{diffs.COMMAND}`."
        if zh is None:
            return (f"{chinese} is out of step with {english}: {english} has {len(en_blocks)} code blocks, "
                    f"{chinese} only {len(zh_blocks)}. Block {index + 1}, at {english} line {en.line}, is missing "
                    f"from {chinese}:\n    {shorten(en.first_line())}\n{how_to_fix}")
        if en is None:
            return (f"{chinese} is out of step with {english}: {chinese} has {len(zh_blocks)} code blocks, "
                    f"{english} only {len(en_blocks)}. Block {index + 1}, at {chinese} line {zh.line}, is not in "
                    f"{english}:\n    {shorten(zh.first_line())}\n{how_to_fix}")
        number, en_line, zh_line = first_difference(en.text, zh.text)
        diff = "".join(difflib.unified_diff(
            en.text.splitlines(keepends=True), zh.text.splitlines(keepends=True), str(english), str(chinese), n=1,
        ))
        return (f"{chinese} is out of step with {english}: code block {index + 1} differs "
                f"({english} line {en.line}, {chinese} line {zh.line}), first at its line {number}:\n"
                f"    {EN:<16} {shorten(en_line)!r}\n    {ZH:<16} {shorten(zh_line)!r}\n"
                f"{how_to_fix}\n{diff}")
    return None


def synced(english, root=ROOT):
    """The Chinese twin's text with every code block replaced by the English README's, or None when the two
    do not have the same number of blocks (then a person must place the new block and translate around it)."""
    en_blocks = code_blocks(read(english, root))
    zh_text = read(twin(english), root)
    zh_blocks = code_blocks(zh_text)
    if len(en_blocks) != len(zh_blocks):
        return None
    lines = zh_text.splitlines(keepends=True)
    for en, zh in reversed(list(zip(en_blocks, zh_blocks))):
        count = len(zh.text.splitlines(keepends=True))
        lines[zh.line - 1:zh.line - 1 + count] = [en.text]
    return "".join(lines)


SYNC = "uv run python tests/test_translations.py --sync"


def sync_all():
    """Copy the code blocks of every English README into its Chinese twin; report what could not be."""
    status = 0
    for english in READMES:
        if not (ROOT / twin(english)).is_file():
            print(f"{twin(english).as_posix()}: missing; write it (translate {english.as_posix()})")
            status = 1
            continue
        text = synced(english)
        if text is None:
            print(f"{twin(english).as_posix()}: not the same number of code blocks as {english.as_posix()}: place the new block by "
                  f"hand and translate the prose around it ({out_of_step(english).splitlines()[0]})")
            status = 1
        elif text != read(twin(english)):
            (ROOT / twin(english)).write_text(text, encoding="utf-8", newline="\n")  # LF, as checked out
            print(f"{twin(english).as_posix()}: code blocks copied from {english.as_posix()}; check the prose around them still fits")
    return status


# Links ------------------------------------------------------------------------------------------------------


LINK = re.compile(r"(?<!!)\[(?:[^\]\[]|\[[^\]]*\])*\]\(([^)\s]+)\)")


def lines_outside_code(text):
    """(line number, line) of every line that is not inside a fenced code block (nor one of its fences)."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        opening = OPENING.match(line)
        if opening and fence is None:
            fence = opening[2]
        elif fence is not None:
            if re.fullmatch(rf"\s*{re.escape(fence[0])}{{{len(fence)},}}\s*", line):
                fence = None
        else:
            yield number, line


def links_outside_code(text):
    """(line number, target) of every markdown link outside code blocks and inline code."""
    return [(number, match[1]) for number, line in lines_outside_code(text)
            for match in LINK.finditer(re.sub(r"`[^`]*`", "", line))]


def top_lines(text):
    """The lines before the first '##' heading (outside code)."""
    head = re.split(r"^## ", text, maxsplit=1, flags=re.MULTILINE)[0]
    return head.splitlines()


def github_anchor(heading):
    """The anchor GitHub gives a heading: its text, lower case, without punctuation, spaces as hyphens.
    Chinese characters are letters and stay: '## 像文章一样使用 MySQL' -> '像文章一样使用-mysql'."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link: its text
    text = re.sub(r"<[^>]+>", "", text).lower()
    kept = "".join(c for c in text if c in "-_ " or unicodedata.category(c)[0] in "LNM")
    return kept.replace(" ", "-")


def anchors(text):
    """Every anchor of a markdown text's headings, with GitHub's -1, -2 for repeated headings."""
    seen, result = {}, set()
    for _, line in lines_outside_code(text):
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            anchor = github_anchor(heading[1])
            result.add(anchor if anchor not in seen else f"{anchor}-{seen[anchor]}")
            seen[anchor] = seen.get(anchor, 0) + 1
    return result


# Tests ------------------------------------------------------------------------------------------------------


def test_the_learner_facing_readmes_include_the_root_and_every_step():
    names = {p.as_posix() for p in READMES}
    assert {EN, *(f"{step}/{EN}" for step in reference_steps())} <= names
    assert not any(part in NOT_LEARNER_FACING for p in READMES for part in p.parts)


@pytest.mark.parametrize("english", READMES, ids=lambda p: p.as_posix())
def test_every_learner_facing_readme_has_a_chinese_twin(english):
    assert (ROOT / english).is_file(), f"{english} is missing: every step folder needs its README"
    assert (ROOT / twin(english)).is_file(), (
        f"{english} has no Chinese twin: write {twin(english)} beside it — the same headings and code "
        f"blocks, the prose in Chinese, '[English]({EN})' at the top — and add '[中文]({ZH})' at the top "
        f"of {english}. The article is in Chinese, and so are most learners."
    )


@pytest.mark.parametrize("english", READMES, ids=lambda p: p.as_posix())
def test_both_languages_show_the_same_code_blocks_in_the_same_order(english):
    if not (ROOT / twin(english)).is_file():
        pytest.skip(f"{twin(english)} does not exist (its own test fails)")
    problem = out_of_step(english)
    assert problem is None, problem


@pytest.mark.parametrize("english", READMES, ids=lambda p: p.as_posix())
def test_each_language_links_to_the_other_at_the_top(english):
    chinese = twin(english)
    if not (ROOT / chinese).is_file():
        pytest.skip(f"{chinese} does not exist (its own test fails)")
    en_top = "\n".join(top_lines(read(english)))
    zh_top = "\n".join(top_lines(read(chinese)))
    assert f"[中文]({ZH})" in en_top, (
        f"{english} does not link to its Chinese twin at the top: add a line '[中文]({ZH})' under its title"
    )
    assert f"[English]({EN})" in zh_top, (
        f"{chinese} does not link to its English twin at the top: add a line '[English]({EN})' under its title"
    )


@pytest.mark.parametrize("english", READMES, ids=lambda p: p.as_posix())
def test_the_links_of_a_chinese_readme_lead_to_chinese_twins_and_to_headings_that_exist(english):
    chinese = twin(english)
    if not (ROOT / chinese).is_file():
        pytest.skip(f"{chinese} does not exist (its own test fails)")
    text = read(chinese)
    problems = []
    for number, target in links_outside_code(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # https:, mailto: ...
            continue
        path_part, _, anchor = target.partition("#")
        path = (ROOT / chinese).parent / path_part if path_part else ROOT / chinese
        where = f"{chinese} line {number}: ({target})"
        if not path.exists():
            problems.append(f"{where} leads to a file that does not exist")
            continue
        is_language_link = path_part == EN and not anchor
        if path.name == EN and path.with_name(ZH).is_file() and not is_language_link:
            fixed = path_part[: -len(EN)] + ZH + (f"#{anchor}" if anchor else "")
            problems.append(f"{where} leads to the English README; the Chinese twin exists: ({fixed}) "
                            f"(with the Chinese heading's anchor)")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path.read_text(encoding="utf-8")):
            problems.append(f"{where}: no heading of {path.relative_to(ROOT).as_posix()} has the anchor "
                            f"#{anchor} (GitHub makes it from the heading's text: lower case, punctuation "
                            f"removed, spaces as hyphens; Chinese characters stay)")
    assert not problems, "\n".join(problems)


def test_chinese_anchors_are_made_the_way_github_makes_them():
    assert github_anchor("Using MySQL, as the article does") == "using-mysql-as-the-article-does"
    assert github_anchor("Step 01 — a stateless endpoint") == "step-01--a-stateless-endpoint"
    assert github_anchor("像文章一样使用 MySQL") == "像文章一样使用-mysql"
    assert github_anchor("不加 `--debug`，令牌的任何问题都是 500") == "不加---debug令牌的任何问题都是-500"
    assert anchors("# a\n## 测试\n```\n## not a heading\n```\n## 测试\n") == {"a", "测试", "测试-1"}


def test_a_changed_command_in_one_language_is_named_with_its_file_and_block(tmp_path):
    english = "# T\n\n[中文](README.zh-CN.md)\n\n## Run\n\n```bash\nuv run flask run\n```\n\n```bash\nuv run pytest\n```\n"
    chinese = english.replace("[中文](README.zh-CN.md)", "[English](README.md)").replace("## Run", "## 运行")
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / EN).write_text(english, encoding="utf-8")
    (tmp_path / "demo" / ZH).write_text(chinese.replace("uv run pytest", "uv run pytest -q"), encoding="utf-8")
    problem = out_of_step(Path("demo") / EN, root=tmp_path)
    assert problem is not None
    assert problem.startswith("demo/README.zh-CN.md is out of step with demo/README.md: code block 2 differs")
    assert "'uv run pytest -q'" in problem and "To fix: copy the block from demo/README.md" in problem


def test_an_annotation_before_a_code_block_belongs_to_the_block():
    text = "Intro\n\n<!-- transcript: login -->\n```console\n$ curl x\n```\n\n```bash\nls\n```\n"
    blocks = code_blocks(text)
    assert [b.text for b in blocks] == ["<!-- transcript: login -->\n```console\n$ curl x\n```\n", "```bash\nls\n```\n"]
    assert code_blocks(text.replace("<!-- transcript: login -->\n", "")) != blocks


def test_sync_copies_changed_blocks_and_leaves_the_prose(tmp_path):
    english = "# T\n\nText.\n\n<!-- transcript: run -->\n```console\n$ curl a\nnew output\n```\n\n```bash\nls\n```\n"
    chinese = "# T\n\n文字。\n\n```console\n$ curl a\nold\n```\n\n```bash\nls\n```\n"
    (tmp_path / EN).write_text(english, encoding="utf-8")
    (tmp_path / ZH).write_text(chinese, encoding="utf-8")
    assert synced(Path(EN), root=tmp_path) == english.replace("Text.", "文字。")
    (tmp_path / ZH).write_text(chinese.replace("```bash\nls\n```\n", ""), encoding="utf-8")
    assert synced(Path(EN), root=tmp_path) is None


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["--sync"]:
        sys.exit(f"usage: {SYNC}\n  copy the code blocks of every English README into its README.zh-CN.md twin")
    sys.exit(sync_all())
