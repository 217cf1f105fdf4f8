"""Every Mermaid diagram in a README renders, each broken one named here (tests/render_mermaid.mjs), and each step
README has a sequence diagram of what the step adds."""
import json
import os
import re
import subprocess
from pathlib import Path

import pytest

import needs
from tutorial.steps import ROOT, reference_steps

SKIPPED = {"node_modules", "workspace", "instance", ".venv", ".git"}
MERMAID = re.compile(r"^```mermaid\n(.*?)^```\s*$", re.MULTILINE | re.DOTALL)


def diagrams():
    found = {}
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [name for name in subfolders if name not in SKIPPED]  # not walked at all (node_modules is large)
        for readme in (Path(folder) / name for name in files if name.startswith("README") and name.endswith(".md")):
            text = readme.read_text(encoding="utf-8")
            for match in MERMAID.finditer(text):
                found[f"{readme.relative_to(ROOT).as_posix()}:{text.count(chr(10), 0, match.start()) + 1}"] = match[1]
    return dict(sorted(found.items()))


DIAGRAMS = diagrams()


@pytest.mark.needs("mermaid")
@pytest.mark.schedule_first  # a few seconds: handed out before the quick tests
def test_every_diagram_renders():
    node, chromium = needs.found("mermaid")
    texts = sorted(set(DIAGRAMS.values()))  # each rendered once: a Chinese README repeats its diagrams verbatim
    done = subprocess.run([node, str(ROOT / "tests" / "render_mermaid.mjs"), chromium], input=json.dumps(texts),
                          capture_output=True, text=True, encoding="utf-8", timeout=300, cwd=ROOT)
    assert done.returncode == 0, f"the renderer could not run:\n{done.stderr[-2000:]}"
    errors = dict(zip(texts, json.loads(done.stdout)))
    broken = [f"{where}: {errors[text]}" for where, text in DIAGRAMS.items() if errors[text]]
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize("step", reference_steps())
def test_every_step_readme_has_a_sequence_diagram(step):
    assert any(where.startswith(f"{step}/README.md:") and text.lstrip().startswith("sequenceDiagram")
               for where, text in DIAGRAMS.items()), \
        f"{step}/README.md: add a Mermaid sequence diagram of what the step adds"
