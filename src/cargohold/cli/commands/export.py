"""``cargohold export [-o FILE] CONTAINER``: the container's file system as a tar."""

from __future__ import annotations

import argparse
import os
import sys

from cargohold.cli.commands._container_errors import guarded
from cargohold.cli.context import Context
from cargohold.errors import InvalidArgument

HELP = "Export a container's filesystem as a tar archive"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")
    parser.add_argument("container", metavar="CONTAINER")


def run(args: argparse.Namespace, ctx: Context) -> int:
    def action() -> int:
        ops = ctx.engine.container_ops
        if not args.output:
            if sys.stdout.isatty():
                raise InvalidArgument(
                    "cowardly refusing to save to a terminal. Use the -o flag or redirect"
                )
            sys.stdout.flush()
            ops.export(args.container, sys.stdout.buffer)
            sys.stdout.buffer.flush()
            return 0
        tmp = f"{args.output}.cargohold-tmp"
        try:
            with open(tmp, "wb") as f:
                ops.export(args.container, f)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        os.replace(tmp, args.output)
        return 0

    return guarded(ctx.stderr, action)
