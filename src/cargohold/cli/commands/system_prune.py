"""``cargohold system prune [-a] [--volumes] [-f] [--filter FILTER]``: Docker 20.10's prompt,
sections ("Deleted Containers:" ...) and "Total reclaimed space"."""

from __future__ import annotations

import argparse

from cargohold.cli.context import Context
from cargohold.cli.humanize import human_size
from cargohold.cli.output import confirm_removal, print_error
from cargohold.errors import CargoholdError

HELP = "Remove unused data"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-a", "--all", action="store_true",
                        help="Remove all unused images not just dangling ones")
    parser.add_argument("--volumes", action="store_true", help="Prune volumes")
    parser.add_argument("-f", "--force", action="store_true", help="Do not prompt for confirmation")
    parser.add_argument("--filter", action="append", default=[],
                        help="Provide filter values (e.g. 'label=<key>=<value>')")


def warnings(all_images: bool, volumes: bool) -> list[str]:
    """What the prompt lists, in Docker's words and order."""
    out = ["all stopped containers", "all networks not used by at least one container"]
    if volumes:
        out.append("all volumes not used by at least one container")
    out.append("all images without at least one container associated to them" if all_images
               else "all dangling images")
    out.append("all build cache" if all_images else "all dangling build cache")
    return out


def run(args: argparse.Namespace, ctx: Context) -> int:
    system = ctx.engine.system
    try:
        shown = system.check_prune(args.filter, args.volumes)
    except CargoholdError as e:
        print_error(ctx.stderr, e)
        return 1
    if not args.force and not confirm_removal(ctx, warnings(args.all, args.volumes), shown):
        return 0
    reclaimed = 0
    try:
        for section in system.prune(args.all, args.volumes, args.filter):
            reclaimed += section.reclaimed
            if section.lines:
                print(section.title, *section.lines, "", sep="\n", file=ctx.stdout)
    except CargoholdError as e:
        print_error(ctx.stderr, e)
        return 1
    print(f"Total reclaimed space: {human_size(reclaimed)}", file=ctx.stdout)
    return 0
