"""`ingestd completion bash|zsh|fish`: a completion script generated from the parser itself
(shtab)."""

from __future__ import annotations

import argparse
from typing import Any

from ingestd.cli.common import EXIT_OK


def add_parser(commands: Any) -> None:
    completion = commands.add_parser("completion", help="print a shell completion script")
    completion.add_argument("shell", choices=["bash", "zsh", "fish"])
    completion.set_defaults(command=print_completion)


def print_completion(args: argparse.Namespace) -> int:
    import shtab

    from ingestd.cli.main import parser

    print(shtab.complete(parser(), shell=args.shell))
    return EXIT_OK
