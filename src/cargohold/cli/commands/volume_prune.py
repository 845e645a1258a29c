"""``cargohold volume prune [-f] [-a] [--filter FILTER]``."""

from __future__ import annotations

import argparse
import sys

from cargohold.cli.context import Context
from cargohold.cli.humanize import human_size
from cargohold.errors import CargoholdError

HELP = "Remove all unused local volumes"
WARNING = (
    "WARNING! This will remove all local volumes not used by at least one container.\n"
    "Are you sure you want to continue? [y/N] "
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    parser.add_argument("-a", "--all", action="store_true",
                        help="Remove all unused volumes, not just anonymous ones (the default "
                        "here, as Docker 20.10)")
    parser.add_argument("--filter", action="append", default=[],
                        help="Provide filter values (e.g. 'label=<label>')")


def run(args: argparse.Namespace, ctx: Context) -> int:
    if not args.force:
        print(WARNING, end="", file=ctx.stdout, flush=True)
        if sys.stdin.readline().strip().lower() not in ("y", "yes"):
            return 0
    try:
        report = ctx.engine.volumes.prune(args.filter)
    except CargoholdError as e:
        print(f"Error response from daemon: {e.message}", file=ctx.stderr)
        return 1
    if report.deleted:
        print("Deleted Volumes:", file=ctx.stdout)
        for name in report.deleted:
            print(name, file=ctx.stdout)
        print(file=ctx.stdout)
    print(f"Total reclaimed space: {human_size(report.space_reclaimed)}", file=ctx.stdout)
    return 0
