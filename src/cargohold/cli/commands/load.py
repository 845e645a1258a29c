"""``cargohold load [-i FILE] [-q]``."""

from __future__ import annotations

import argparse
import sys

from cargohold.cli.context import Context
from cargohold.errors import ClientError

HELP = "Load an image from a tar archive or STDIN"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-i", "--input", help="Read from tar archive file, instead of STDIN")
    parser.add_argument("-q", "--quiet", action="store_true", help="Suppress the load output")


def run(args: argparse.Namespace, ctx: Context) -> int:
    if not args.input and sys.stdin.isatty():
        raise ClientError(
            "requested load from stdin, but stdin is empty"
        )
    for line in ctx.engine.images.load(args.input):
        print(line, file=ctx.stdout)
    return 0
