"""``cargohold volume inspect [-f FORMAT] VOLUME [VOLUME...]``."""

from __future__ import annotations

import argparse

from cargohold.cli.context import Context
from cargohold.cli.output import print_inspect

HELP = "Display detailed information on one or more volumes"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--format", help="Format output using a custom template")
    parser.add_argument("names", nargs="+", metavar="VOLUME")


def run(args: argparse.Namespace, ctx: Context) -> int:
    return print_inspect(ctx, args.names, args.format, ctx.engine.volumes.inspect, "volume")
