"""``cargohold wait CONTAINER [CONTAINER...]``: prints each exit code."""

from __future__ import annotations

import argparse

from cargohold.cli.context import Context
from cargohold.cli.output import print_error
from cargohold.errors import CargoholdError

HELP = "Block until one or more containers stop, then print their exit codes"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")


def run(args: argparse.Namespace, ctx: Context) -> int:
    status = 0
    for ref in args.containers:
        try:
            code = ctx.engine.containers.wait(ref)
        except CargoholdError as exc:
            print_error(ctx.stderr, exc)
            status = 1
            continue
        print(code, file=ctx.stdout, flush=True)
    return status
