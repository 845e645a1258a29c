"""``cargohold unpause CONTAINER [CONTAINER...]``."""

from __future__ import annotations

import argparse

from cargohold.cli import runopts
from cargohold.cli.context import Context

HELP = "Unpause all processes within one or more containers"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")


def run(args: argparse.Namespace, ctx: Context) -> int:
    return runopts.each_container(ctx, args.containers, ctx.engine.containers.unpause, "unpause")
