"""The command line: `python -m core COMMAND`, one module a command group."""
