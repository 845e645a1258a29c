"""``cargohold tag SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]``."""

from __future__ import annotations

import argparse

from cargohold.cli.context import Context

HELP = "Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE_IMAGE[:TAG]")
    parser.add_argument("target", metavar="TARGET_IMAGE[:TAG]")


def run(args: argparse.Namespace, ctx: Context) -> int:
    ctx.engine.images.tag(args.source, args.target)
    return 0
