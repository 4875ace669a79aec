"""Scripts that measure Prism and print tables; never asserted in tests."""
import os

# OpenMP threads that busy-wait starve each other on a shared CPU; must be set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
