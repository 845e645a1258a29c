"""``cargohold kill [-s SIGNAL] CONTAINER [CONTAINER...]``."""

from __future__ import annotations

import argparse

from cargohold.cli import runopts
from cargohold.cli.context import Context

HELP = "Kill one or more running containers"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-s", "--signal", default="KILL", help="Signal to send to the container")
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")


def run(args: argparse.Namespace, ctx: Context) -> int:
    service = ctx.engine.containers
    return runopts.each_container(
        ctx, args.containers, lambda ref: service.kill(ref, args.signal), "kill"
    )
