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
    from cargohold.cli.progress import ProgressPrinter
    from cargohold.engine.images.requests import LoadRequest
    from cargohold.engine.images.service import open_input

    if not args.input and sys.stdin.isatty():
        raise ClientError(
            "requested load from stdin, but stdin is empty"
        )
    request = LoadRequest(quiet=args.quiet)
    events = ProgressPrinter(ctx.stdout)  # Docker's "Loaded image: x" lines
    if args.input and args.input != "-":
        with open_input(args.input) as f:
            ctx.engine.images.load(request, f, events)
    else:
        ctx.engine.images.load(request, sys.stdin.buffer, events)
    return 0
