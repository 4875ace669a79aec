"""Command line: `python -m core <command> …` over the same store and services as the app.

Exit codes: 0 done, 2 bad usage or bad input (the message on stderr says what to fix), 1 unexpected
failure (with a traceback), 130 interrupted.

One module a command group (catalog, evaluate, models, explain, report, tune, history, warm), each with a
`COMMANDS` tuple of core.cli.command.Command: `add_arguments(parser)` and `run(args, store) -> int`. Adding a
command: add it to its group's COMMANDS (or a new group module to COMMAND_GROUPS below). This module keeps the
parser, the registry, the translation of errors into exit codes and `main()`.
"""
from __future__ import annotations

import argparse
import errno
import sqlite3
import sys
import traceback

from core.cli import catalog, evaluate, explain, history, models, report, tune, warm
from core.cli.command import AddArguments, Command, RunCommand, common_options
from core.errors import PrismError
from core.store.database import Store

# the groups in the order `python -m core --help` lists their commands
COMMAND_GROUPS = (catalog, evaluate, models, explain, report, tune, history, warm)
COMMANDS: dict[str, Command] = {c.name: c for group in COMMAND_GROUPS for c in group.COMMANDS}  # in help order


def register_command(name: str, help: str, add_arguments: AddArguments, run: RunCommand) -> Command:
    """Add (or replace) the subcommand `name`; returns it."""
    command = Command(name, help, add_arguments, run)
    COMMANDS[name] = command
    return command


# -- entry point ----------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered command."""
    common = common_options()
    parser = argparse.ArgumentParser(prog="python -m core", parents=[common],
                                     description="Prism: multimodal recommender catalogs, embeddings and models.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS.values():
        p = sub.add_parser(command.name, help=command.help, description=command.help, parents=[common])
        command.add_arguments(p)
        p.set_defaults(run=command.run)
    return parser


def _os_error_message(error: OSError, command: str) -> str | None:
    """What to tell the user about a file-system failure during `command`; None for an unexpected one."""
    where = f" ({error.filename})" if error.filename else ""
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        return (f"{command}: the disk is full{where}; free some space (or set PRISM_DATA_DIR to a larger disk) and "
                "run it again")
    if error.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return (f"{command}: cannot write{where}: the file system or folder is read-only; make the store writable, "
                "or set PRISM_DATA_DIR (or --data-dir) to a writable folder")
    if isinstance(error, (FileNotFoundError, NotADirectoryError, IsADirectoryError)):
        return f"{command}: {error.strerror or error}{where}"
    return None


def main(argv: list[str] | None = None) -> int:
    """Run one command; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # argparse exits on --help (0) and on usage errors (2)
        return e.code if isinstance(e.code, int) else 2
    if getattr(args, "command", None) is None:
        parser.print_help(sys.stderr)
        return 2
    store = None
    try:
        store = Store(getattr(args, "data_dir", None))
        return int(args.run(args, store) or 0)
    except PrismError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except sqlite3.Error as e:  # e.g. a read-only store: the store's own message names the cause and the fix
        print(f"error: {store._database_error(e, args.command) if store is not None else e}", file=sys.stderr)
        return 2
    except OSError as e:
        message = _os_error_message(e, args.command)
        if message is None:
            traceback.print_exc()
            print(f"unexpected error: {type(e).__name__}: {e}", file=sys.stderr)
            return 1
        print(f"error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:
        traceback.print_exc()
        print(f"unexpected error: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
