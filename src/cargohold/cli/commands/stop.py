"""``cargohold stop [-t SECONDS] CONTAINER [CONTAINER...]``."""

from __future__ import annotations

import argparse

from cargohold.cli import runopts
from cargohold.cli.context import Context

HELP = "Stop one or more running containers"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-t", "--time", type=int, default=None, help="Seconds to wait for stop before killing it"
    )
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")


def run(args: argparse.Namespace, ctx: Context) -> int:
    service = ctx.engine.containers
    return runopts.each_container(
        ctx, args.containers, lambda ref: service.stop(ref, args.time), "stop"
    )
