"""``cargohold network inspect [-f FORMAT] NETWORK [NETWORK...]``."""

from __future__ import annotations

import argparse

from cargohold.cli.context import Context
from cargohold.cli.output import print_inspect

HELP = "Display detailed information on one or more networks"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--format", help="Format output using a custom template")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="Verbose output for diagnostics")
    parser.add_argument("names", nargs="+", metavar="NETWORK")


def run(args: argparse.Namespace, ctx: Context) -> int:
    return print_inspect(ctx, args.names, args.format, ctx.engine.networks.inspect, "network")
