"""Scripts that measure Prism and print tables; never asserted in tests."""
