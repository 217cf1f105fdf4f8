"""Every docstring of the repository's Python files is encodable text: Python 3.13 compiles a docstring as UTF-8 and
one with a lone surrogate ("\\ud800" in a normal string) does not import there; 3.10-3.12 take it."""
import ast
import os
import re
from pathlib import Path

from tutorial.steps import ROOT

SKIPPED = {"node_modules", "__pycache__", "instance"}
DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


def test_every_docstring_is_encodable_text():
    found = []
    for folder, folders, files in os.walk(ROOT):
        folders[:] = [name for name in folders if name not in SKIPPED and name[0] != "."]
        for path in (Path(folder, name) for name in files if name.endswith(".py")):
            source = path.read_text(encoding="utf-8")
            if not re.search(r"\\u0*d[89a-f]", source, re.IGNORECASE):  # only a \u or \U escape makes a surrogate
                continue
            for node in (node for node in ast.walk(ast.parse(source)) if isinstance(node, DOCUMENTED)):
                if surrogate := re.search(r"[\ud800-\udfff]", ast.get_docstring(node, clean=False) or ""):
                    where = f"{path.relative_to(ROOT).as_posix()}:{getattr(node, 'lineno', 1)}"
                    found.append(f"{where} holds {surrogate[0]!r}")
    assert not found, "write the backslash twice (or use a raw string) so the docstring shows it: " + "; ".join(found)
