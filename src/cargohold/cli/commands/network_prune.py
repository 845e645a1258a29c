"""``cargohold network prune [-f] [--filter FILTER]``."""

from __future__ import annotations

import argparse

from cargohold.cli.context import Context
from cargohold.cli.output import confirm_removal, print_error
from cargohold.errors import CargoholdError

HELP = "Remove all unused networks"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    parser.add_argument("--filter", action="append", default=[],
                        help="Provide filter values (e.g. 'until=<timestamp>')")


def run(args: argparse.Namespace, ctx: Context) -> int:
    what = "all custom networks not used by at least one container"
    if not args.force and not confirm_removal(ctx, what):
        return 0
    try:
        deleted = ctx.engine.networks.prune(args.filter)
    except CargoholdError as e:
        print_error(ctx.stderr, e)
        return 1
    if deleted:
        print("Deleted Networks:", file=ctx.stdout)
        for name in deleted:
            print(name, file=ctx.stdout)
        print(file=ctx.stdout)
    return 0
