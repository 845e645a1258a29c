"""``cargohold network disconnect [-f] NETWORK CONTAINER``."""

from __future__ import annotations

import argparse

from cargohold.cli.context import Context
from cargohold.cli.output import print_error
from cargohold.errors import CargoholdError

HELP = "Disconnect a container from a network"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--force", action="store_true",
                        help="Force the container to disconnect from a network")
    parser.add_argument("network", metavar="NETWORK")
    parser.add_argument("container", metavar="CONTAINER")


def run(args: argparse.Namespace, ctx: Context) -> int:
    try:
        ctx.engine.networks.disconnect(args.network, args.container, force=args.force)
    except CargoholdError as e:
        print_error(ctx.stderr, e)
        return 1
    return 0
