"""The ``ibcheck`` command line, one module per group of commands:

- ``validate``: validate, sample and the options of a user's ``--estimator`` (``ibcheck.harness``);
- ``commands``: teacher, train, plot (``ibcheck.pipeline``), study and report (``ibcheck.study``);
- ``args``: the argument types and checks they share.

Nothing parses at import time: ``main(argv)`` builds the parser, runs the command and turns a
user's mistake (``InputError``) into one line and exit status 2.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from ibcheck.cli import commands
from ibcheck.cli.validate import add_validate_commands
from ibcheck.interface import Diverged, InputError

__all__ = ["build_parser", "entry", "main"]

DESCRIPTION = """\
ibcheck checks mutual-information bounds where the answer is known exactly
(validate; your own estimator too, with --estimator; sample exports the cases'
draws), tracks a VIB network trained on a teacher VAE's images in the
information plane (teacher, train, plot), and runs grids of such runs on Ray and
judges the paper's claims over seeds (study, study-report). All values are in nats."""


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line error: the usage block it would print hides the message; ``--help``
    still shows it. Subcommands inherit the class through ``add_subparsers``."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ibcheck", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_validate_commands(sub)
    commands.add_experiment_commands(sub)
    commands.add_study_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: returns the exit status (argparse itself exits 2 on bad options)."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except InputError as err:
        print(f"ibcheck: error: {err}", file=sys.stderr)
        return 2
    except Diverged as err:
        print(f"ibcheck: diverged: {err}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("ibcheck: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    sys.exit(main())
