"""``cargohold volume prune [-f] [-a] [--filter FILTER]``."""

from __future__ import annotations

import argparse

from cargohold.cli.context import Context
from cargohold.cli.humanize import human_size
from cargohold.cli.output import confirm_removal, print_error
from cargohold.errors import CargoholdError

HELP = "Remove all unused local volumes"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    parser.add_argument("-a", "--all", action="store_true",
                        help="Remove all unused volumes, not just anonymous ones (the default "
                        "here, as Docker 20.10)")
    parser.add_argument("--filter", action="append", default=[],
                        help="Provide filter values (e.g. 'label=<label>')")


def run(args: argparse.Namespace, ctx: Context) -> int:
    what = "all local volumes not used by at least one container"
    if not args.force and not confirm_removal(ctx, what):
        return 0
    try:
        report = ctx.engine.volumes.prune(args.filter)
    except CargoholdError as e:
        print_error(ctx.stderr, e)
        return 1
    if report.deleted:
        print("Deleted Volumes:", file=ctx.stdout)
        for name in report.deleted:
            print(name, file=ctx.stdout)
        print(file=ctx.stdout)
    print(f"Total reclaimed space: {human_size(report.space_reclaimed)}", file=ctx.stdout)
    return 0
