"""Every learner-facing README.md has a Chinese twin, README.zh-CN.md, with the same code blocks in the same order
(CONTRIBUTING.md), a link to the other at the top, and links that lead to Chinese twins and to existing headings.
`uv run python tests/test_translations.py --sync` copies the English blocks into the twins."""
import difflib
import itertools
import os
import re
import sys
import unicodedata
from pathlib import Path
from urllib.parse import unquote

import pytest
from markdown_it import MarkdownIt

from tutorial import diffs
from tutorial.steps import ROOT, reference_steps

EN, ZH = "README.md", "README.zh-CN.md"
NOT_LEARNER_FACING = {"tests", "tutorial", "workspace", "instance", "node_modules", "__pycache__"}
SYNC = "uv run python tests/test_translations.py --sync"


def learner_readmes():
    found = {Path(EN)} | {Path(step) / EN for step in reference_steps()}
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [d for d in subfolders if not d.startswith(".") and d not in NOT_LEARNER_FACING]
        found |= {(Path(folder) / EN).relative_to(ROOT)} if EN in files else set()
    return sorted(found, key=lambda p: (len(p.parts), p.as_posix()))


READMES = learner_readmes()


def read(relative, root=ROOT):
    return (root / relative).read_text(encoding="utf-8")


def parse(text):
    """(code blocks as [line, text], links as (line, target), heading texts) of a markdown text."""
    lines, blocks, links, headings = text.splitlines(keepends=True), [], [], []
    tokens = MarkdownIt("commonmark").parse(text)
    for before, token in zip([None, *tokens], tokens):
        if token.type == "inline" and before.type == "heading_open":
            headings.append(token.content)
        if token.type == "inline":
            for target in (unquote(t.attrs["href"]) for t in token.children if t.type == "link_open"):  # the line it is on
                links.append((next((i for i in range(*token.map) if target in lines[i]), token.map[0]) + 1, target))
        start, end = token.map or (0, 0)
        if token.type == "html_block" and diffs.START in token.content:  # the generated section: one block
            end = next((i for i in range(start, len(lines)) if lines[i].strip() == diffs.END), len(lines) - 1) + 1
        elif token.type != "fence" or blocks and start < blocks[-1][2]:  # (a fence inside the generated section)
            continue
        elif before and before.type == "html_block" and before.map[1] == start and before.content.rstrip().endswith("-->"):
            start = before.map[0]  # an annotation directly before the block belongs to it
        blocks.append([start + 1, "".join(lines[start:end]), end])
    return [block[:2] for block in blocks], links, headings


def out_of_step(english, root=ROOT):
    """Why the twin's code blocks differ from the English README's, or None when they agree."""
    e, c = english.as_posix(), english.with_name(ZH).as_posix()  # messages show /, also on Windows
    en, zh = parse(read(english, root))[0], parse(read(c, root))[0]
    for index, (a, b) in enumerate(itertools.zip_longest(en, zh, fillvalue=("(none)", ""))):
        if a[1] != b[1]:
            diff = list(difflib.unified_diff(a[1].splitlines(True), b[1].splitlines(True), e, c, n=1))[:40]
            return (f"{c} is out of step with {e}: code block {index + 1} differs ({e} line {a[0]}, {c} line {b[0]}; "
                    f"{len(en)} and {len(zh)} blocks):\n{''.join(diff)}To fix: copy the block from {e} into {c} byte for "
                    f"byte (only the prose around code is translated) and translate the prose around it; if {c} had "
                    f"it right, change {e} the same way." + (f" `{SYNC}` copies every block." if len(en) == len(zh) else "")
                    + (f" `{diffs.COMMAND}` writes the generated diff." if diffs.START in a[1] + b[1] else ""))
    return None


def synced(english, root=ROOT):
    """The twin's text with each code block replaced by the English one; None if they have not as many blocks."""
    en_blocks, zh_text = parse(read(english, root))[0], read(english.with_name(ZH), root)
    zh_blocks, lines = parse(zh_text)[0], zh_text.splitlines(keepends=True)
    if len(en_blocks) != len(zh_blocks):
        return None
    for (_, en), (line, zh) in reversed(list(zip(en_blocks, zh_blocks))):
        lines[line - 1:line - 1 + len(zh.splitlines())] = [en]
    return "".join(lines)


def sync_all():
    status = 0
    for english, chinese in ((english, english.with_name(ZH)) for english in READMES):
        text = synced(english) if (ROOT / chinese).is_file() else None
        if text is None:
            print(f"{chinese.as_posix()}: missing, or not as many code blocks as {english.as_posix()}: write it, or "
                  f"place the new block by hand and translate the prose around it")
            status = 1
        elif text != read(chinese):
            (ROOT / chinese).write_text(text, encoding="utf-8", newline="\n")  # LF, as checked out
            print(f"{chinese.as_posix()}: code blocks copied from {english.as_posix()}; check the prose around them")
    return status


def github_anchor(heading):
    """GitHub's anchor of a heading: its text, lower case, without punctuation, spaces as hyphens; Chinese stays."""
    text = re.sub(r"<[^>]+>", "", re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)).lower()  # a link: its text
    return "".join(c for c in text if c in "-_ " or unicodedata.category(c)[0] in "LNM").replace(" ", "-")


def anchors(text):
    """Every heading's anchor, with GitHub's -1, -2 for repeated headings."""
    seen = {}
    for anchor in map(github_anchor, parse(text)[2]):
        seen[anchor] = seen.get(anchor, -1) + 1
        yield anchor if not seen[anchor] else f"{anchor}-{seen[anchor]}"


@pytest.mark.parametrize("english", READMES, ids=Path.as_posix)
def test_the_chinese_twin_shows_the_same_code_blocks_and_its_links_lead_somewhere(english):
    chinese = english.with_name(ZH)
    assert (ROOT / english).is_file(), f"{english} is missing: every step folder needs its README"
    assert (ROOT / chinese).is_file(), (
        f"{english} has no Chinese twin: write {chinese} beside it (the same headings and code blocks, "
        f"the prose in Chinese, '[English]({EN})' at the top) and add '[中文]({ZH})' at the top of {english}")
    problems = [out_of_step(english)]
    for path, link in ((english, f"[中文]({ZH})"), (chinese, f"[English]({EN})")):
        top = re.split(r"^## ", read(path), maxsplit=1, flags=re.MULTILINE)[0]  # before the first "##" heading
        if link not in top:
            problems.append(f"{path} does not link to its twin at the top: add a line '{link}' under its title")
    for number, target in parse(read(chinese))[1]:
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # https:, mailto: ...
            continue
        path_part, _, anchor = target.partition("#")
        path, where = (ROOT / chinese).parent / path_part, f"{chinese.as_posix()} line {number}: ({target})"
        if not path.exists():
            problems.append(f"{where} leads to a file that does not exist")
        elif path.name == EN and path.with_name(ZH).is_file() and (path_part != EN or anchor):  # not the language link
            problems.append(f"{where} leads to the English README; the Chinese twin exists: ({path_part[:-len(EN)]}"
                            f"{ZH}{'#' + anchor if anchor else ''}) with the Chinese heading's anchor")
        elif anchor and path.suffix == ".md" and anchor not in anchors(read(path)):
            problems.append(f"{where}: no heading of {path.relative_to(ROOT).as_posix()} has the anchor #{anchor} (GitHub "
                            f"makes it from the heading's text: lower case, punctuation removed, spaces as hyphens)")
    assert not any(problems), "\n".join(filter(None, problems))


def test_chinese_anchors_are_made_the_way_github_makes_them():
    assert github_anchor("Using MySQL, as the article does") == "using-mysql-as-the-article-does"
    assert github_anchor("Step 01 — a stateless endpoint") == "step-01--a-stateless-endpoint"
    assert github_anchor("像文章一样使用 MySQL") == "像文章一样使用-mysql"
    assert github_anchor("不加 `--debug`，令牌的任何问题都是 500") == "不加---debug令牌的任何问题都是-500"
    assert set(anchors("# a\n## 测试\n```\n## not a heading\n```\n## 测试\n")) == {"a", "测试", "测试-1"}


def test_a_changed_block_is_named_and_sync_copies_it_with_its_annotation(tmp_path):
    english = "# T\n\nText.\n\n<!-- transcript: run -->\n```console\n$ curl a\nnew\n```\n\n```bash\nls\n```\n"
    chinese = "# T\n\n文字。\n\n```console\n$ curl a\nold\n```\n\n```bash\nls\n```\n"
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / EN).write_text(english, encoding="utf-8")
    (tmp_path / "demo" / ZH).write_text(chinese, encoding="utf-8")
    problem = out_of_step(Path("demo", EN), root=tmp_path)  # the annotation (line 5) starts the English block
    assert problem.startswith("demo/README.zh-CN.md is out of step with demo/README.md: code block 1 differs "
                              "(demo/README.md line 5, demo/README.zh-CN.md line 5; 2 and 2 blocks)")
    assert "\n-new\n+old\n" in problem and "To fix: copy the block from demo/README.md" in problem
    assert synced(Path("demo", EN), root=tmp_path) == english.replace("Text.", "文字。")
    (tmp_path / "demo" / ZH).write_text(chinese.replace("```bash\nls\n```\n", ""), encoding="utf-8")
    assert synced(Path("demo", EN), root=tmp_path) is None


if __name__ == "__main__":
    sys.exit(sync_all() if sys.argv[1:] == ["--sync"] else f"usage: {SYNC}\n  copies the English code blocks into the twins")
