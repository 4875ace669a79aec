"""`python -m core …`: the command line (see core.cli.main)."""
from __future__ import annotations

import os

# OpenMP threads that busy-wait starve each other on a shared CPU; must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from core.cli.main import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())
