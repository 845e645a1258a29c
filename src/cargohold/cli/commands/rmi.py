"""``cargohold rmi [-f] IMAGE [IMAGE...]``."""

from __future__ import annotations

import argparse

from cargohold.cli.context import Context
from cargohold.cli.output import report_error

HELP = "Remove one or more images"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--force", action="store_true", help="Force removal of the image")
    parser.add_argument("--no-prune", action="store_true", help="Do not delete untagged parents")
    parser.add_argument("images", nargs="+", metavar="IMAGE")


def run(args: argparse.Namespace, ctx: Context) -> int:
    status = 0
    for name in args.images:
        try:
            for removal in ctx.engine.images.remove(name, force=args.force):
                print(f"{removal.action}: {removal.subject}", file=ctx.stdout)
        except Exception as e:  # one failure does not stop the others, as in Docker
            status = report_error(e) or 1
    return 1 if status else 0
