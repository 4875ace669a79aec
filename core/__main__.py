"""`python -m core …`: the command line (see core.cli)."""
from __future__ import annotations

from core.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
