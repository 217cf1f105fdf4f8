"""`python -m tutorial ...`: the same command as `uv run tutorial ...` (see tutorial/cli.py)."""
import sys

from tutorial.cli import main

sys.exit(main())
