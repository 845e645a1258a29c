"""``cargohold container prune [-f]``: remove every stopped container."""

from __future__ import annotations

import argparse

from cargohold.cli.context import Context
from cargohold.cli.humanize import human_size
from cargohold.cli.output import confirm_removal, print_error
from cargohold.errors import CargoholdError

HELP = "Remove all stopped containers"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    parser.add_argument("--filter", action="append", default=[], help="Provide filter values")


def run(args: argparse.Namespace, ctx: Context) -> int:
    if not args.force and not confirm_removal(ctx, "all stopped containers"):
        return 0
    try:
        deleted, reclaimed = ctx.engine.containers.prune(args.filter)
    except CargoholdError as e:
        print_error(ctx.stderr, e)
        return 1
    if deleted:
        print("Deleted Containers:", file=ctx.stdout)
        for cid in deleted:
            print(cid, file=ctx.stdout)
        print(file=ctx.stdout)
    print(f"Total reclaimed space: {human_size(reclaimed)}", file=ctx.stdout)
    return 0
