"""The repository's own Python files hold up on every Python the README promises (3.10 and newer), not only on
the one this run uses: CI runs one interpreter, a learner's laptop may have another."""
import ast
import os

from tutorial.steps import ROOT

SKIPPED = {"node_modules", "__pycache__", "instance"}  # and every hidden folder (.venv, .git)


def python_files():
    for folder, folders, files in os.walk(ROOT):
        folders[:] = sorted(name for name in folders if name not in SKIPPED and not name.startswith("."))
        yield from (os.path.join(folder, name) for name in sorted(files) if name.endswith(".py"))


def test_every_docstring_is_encodable_text():
    """Python 3.13 compiles a docstring as UTF-8: one with a lone surrogate ("\\ud800" in a normal string) stops its
    module from importing there (and pytest's collection with it), while 3.10-3.12 take it."""
    found = []
    for path in python_files():
        with open(path, encoding="utf-8") as file:
            tree = ast.parse(file.read(), filename=path)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                docstring = ast.get_docstring(node, clean=False) or ""
                try:
                    docstring.encode("utf-8")
                except UnicodeEncodeError as error:
                    where = os.path.relpath(path, ROOT).replace(os.sep, "/")
                    found.append(f"{where}:{getattr(node, 'lineno', 1)} holds {docstring[error.start]!r}")
    assert not found, "write the backslash twice (or use a raw string) so that the docstring shows the escape: " + "; ".join(found)
