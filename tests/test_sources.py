"""Every docstring of the repository's Python files is encodable text: Python 3.13 compiles a docstring as UTF-8, and
one with a lone surrogate ("\\ud800" in a normal string) stops its module from importing there (and pytest's
collection with it), while 3.10-3.12, which the README promises too, take it."""
import ast
import os
import re

from tutorial.steps import ROOT


def test_every_docstring_is_encodable_text():
    found = []
    for folder, folders, files in os.walk(ROOT):
        folders[:] = [name for name in folders if name not in {"node_modules", "__pycache__", "instance"} and name[0] != "."]
        for path in (os.path.join(folder, name) for name in files if name.endswith(".py")):
            with open(path, encoding="utf-8") as file:
                source = file.read()
            if not re.search(r"\\u0*d[89a-f]", source, re.IGNORECASE):  # only a \u or \U escape makes a surrogate
                continue
            for node in ast.walk(ast.parse(source, filename=path)):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    docstring = ast.get_docstring(node, clean=False) or ""
                    try:
                        docstring.encode("utf-8")
                    except UnicodeEncodeError as error:
                        where = os.path.relpath(path, ROOT).replace(os.sep, "/")
                        found.append(f"{where}:{getattr(node, 'lineno', 1)} holds {docstring[error.start]!r}")
    assert not found, "write the backslash twice (or use a raw string) so the docstring shows it: " + "; ".join(found)
