"""``cargohold builder prune [-a] [-f]``."""

from __future__ import annotations

import argparse

from cargohold.cli.context import Context
from cargohold.cli.humanize import human_size
from cargohold.cli.output import confirm_removal, print_error
from cargohold.errors import CargoholdError

HELP = "Remove build cache"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-a", "--all", action="store_true",
                        help="Remove all unused build cache, not just dangling ones")
    parser.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    parser.add_argument("--filter", action="append", default=[], help="Provide filter values")


def run(args: argparse.Namespace, ctx: Context) -> int:
    if not args.force:
        what = "all build cache" if args.all else "all dangling build cache"
        if not confirm_removal(ctx, what):
            return 0
    try:
        removed, reclaimed = ctx.engine.builds.prune(all_cache=args.all, filters=args.filter)
    except CargoholdError as e:
        print_error(ctx.stderr, e)
        return 1
    if removed:
        print("Deleted build cache objects:", file=ctx.stdout)
        for key in removed:
            print(key, file=ctx.stdout)
        print(file=ctx.stdout)
    print(f"Total reclaimed space: {human_size(reclaimed)}", file=ctx.stdout)
    return 0
