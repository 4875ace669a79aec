"""What a command group declares: its commands (name, help, arguments, run) and the options every command takes.

A command group is a module of this package with a `COMMANDS` tuple of `Command`s; core.cli.main builds the
parser from them. Commands receive the parsed arguments and the store, and return the exit code.
"""
from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.store.database import Store

AddArguments = Callable[[argparse.ArgumentParser], None]
RunCommand = Callable[[argparse.Namespace, Store], int]


@dataclass(frozen=True)
class Command:
    """One subcommand: its name, one-line help, how it adds its arguments and what it runs."""

    name: str
    help: str
    add_arguments: AddArguments
    run: RunCommand


def common_options() -> argparse.ArgumentParser:
    """Options every command accepts (--data-dir): pass as `parents=[common_options()]` to nested subparsers."""
    # SUPPRESS keeps a value given before the command name from being reset by the subparser's default
    common = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    common.add_argument("--data-dir", type=Path,
                        help="store folder (default: $PRISM_DATA_DIR or .prism/ in the repository)")
    return common
