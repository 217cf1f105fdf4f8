"""Every Mermaid diagram in the READMEs renders: a broken one fails here, not on the code host's page.

Each step README has at least one sequence diagram of what the step adds. All diagrams are rendered by the
Mermaid that mermaid-cli installs (@mermaid-js/mermaid-cli, pinned in package.json: `npm ci`), loaded once into one
page of one headless Chromium (tests/render_mermaid.mjs) — Debian's, found on PATH or named by $CHROMIUM; puppeteer
downloads nothing (.puppeteerrc.cjs). Without Node.js, the npm packages or Chromium these tests are skipped, and fail
under CI (`@pytest.mark.needs("mermaid")`).
"""
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

import needs

from tutorial.steps import ROOT, reference_steps

# One worker takes every diagram (--dist loadgroup), and its session fixture renders them all in one Chromium.
pytestmark = pytest.mark.xdist_group("diagrams")

SKIP_DIRS = {"node_modules", "workspace", "instance", ".venv", ".git"}
MERMAID = re.compile(r"^```mermaid\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)


def readmes():
    found = []
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [name for name in subfolders if name not in SKIP_DIRS]  # not walked at all (node_modules is large)
        found += [Path(folder) / name for name in files if name.startswith("README") and name.endswith(".md")]
    return sorted(found)


def diagrams():
    found = {}
    for readme in readmes():
        text = readme.read_text(encoding="utf-8")
        for match in MERMAID.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            found[f"{readme.relative_to(ROOT).as_posix()}:{line}"] = match[1]
    return found


DIAGRAMS = diagrams()


@pytest.fixture(scope="session")
def rendered():
    """{where: error or None}: each distinct text rendered once (a translated README repeats its diagrams verbatim)."""
    node, chromium = needs.found("mermaid")  # skipped where missing, failed under CI (tests/needs.py)
    texts = sorted(set(DIAGRAMS.values()))
    listing = [{"id": index, "text": text} for index, text in enumerate(texts)]
    done = subprocess.run(
        [node, str(ROOT / "tests" / "render_mermaid.mjs"), chromium], input=json.dumps(listing), cwd=ROOT,
        capture_output=True, text=True, encoding="utf-8", timeout=300,
        env={**os.environ, "PUPPETEER_SKIP_DOWNLOAD": "1"},
    )
    assert done.returncode == 0, f"the renderer could not run:\n{done.stderr[-2000:]}"
    errors = {texts[result["id"]]: result["error"] for result in json.loads(done.stdout)}
    return {where: errors[text] for where, text in DIAGRAMS.items()}


@pytest.mark.needs("mermaid")
@pytest.mark.parametrize("where", DIAGRAMS)
def test_diagram_renders(rendered, where):
    assert rendered[where] is None, f"{where}: {rendered[where]}"


@pytest.mark.parametrize("step", reference_steps())
def test_every_step_readme_has_a_sequence_diagram(step):
    text = (ROOT / step / "README.md").read_text(encoding="utf-8")
    assert any(block.lstrip().startswith("sequenceDiagram") for block in MERMAID.findall(text)), \
        f"{step}/README.md: add a Mermaid sequence diagram of what the step adds"
