"""``cargohold container prune [-f]``: remove every stopped container."""

from __future__ import annotations

import argparse
import sys

from cargohold.cli.context import Context
from cargohold.cli.humanize import human_size

HELP = "Remove all stopped containers"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    parser.add_argument("--filter", action="append", default=[], help="Provide filter values")


def run(args: argparse.Namespace, ctx: Context) -> int:
    if not args.force:
        print(
            "WARNING! This will remove all stopped containers.\n"
            "Are you sure you want to continue? [y/N] ",
            end="",
            file=ctx.stdout,
            flush=True,
        )
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            return 0
    deleted, reclaimed = ctx.engine.containers.prune()
    if deleted:
        print("Deleted Containers:", file=ctx.stdout)
        for cid in deleted:
            print(cid, file=ctx.stdout)
        print(file=ctx.stdout)
    print(f"Total reclaimed space: {human_size(reclaimed)}", file=ctx.stdout)
    return 0
