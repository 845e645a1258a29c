"""``cargohold rename CONTAINER NEW_NAME``."""

from __future__ import annotations

import argparse

from cargohold.cli.context import Context

HELP = "Rename a container"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("new_name", metavar="NEW_NAME")


def run(args: argparse.Namespace, ctx: Context) -> int:
    ctx.engine.containers.rename(args.container, args.new_name)
    return 0
