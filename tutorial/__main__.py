"""`python -m tutorial ...`: the same command as `uv run tutorial ...` (see tutorial/cli.py)."""
from tutorial.cli import main

raise SystemExit(main())
