"""``cargohold image prune [-a] [-f]``."""

from __future__ import annotations

import argparse

from cargohold.cli.context import Context
from cargohold.cli.humanize import human_size
from cargohold.cli.output import confirm_removal, print_error
from cargohold.errors import CargoholdError

HELP = "Remove unused images"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-a", "--all", action="store_true", help="Remove all unused images")
    parser.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    parser.add_argument("--filter", action="append", default=[], help="Provide filter values")


def run(args: argparse.Namespace, ctx: Context) -> int:
    if not args.force:
        what = "all images without at least one container associated to them" if args.all \
            else "all dangling images"
        if not confirm_removal(ctx, what):
            return 0
    try:
        report, reclaimed = ctx.engine.images.prune(all_images=args.all, filters=args.filter)
    except CargoholdError as e:
        print_error(ctx.stderr, e)
        return 1
    if report:
        print("Deleted Images:", file=ctx.stdout)
        for r in report:
            print(f"{r.action}: {r.subject}", file=ctx.stdout)
        print(file=ctx.stdout)
    print(f"Total reclaimed space: {human_size(reclaimed)}", file=ctx.stdout)
    return 0
