"""``cargohold save [-o FILE] IMAGE [IMAGE...]``."""

from __future__ import annotations

import argparse
import os
import sys

from cargohold.cli.context import Context
from cargohold.errors import ClientError

HELP = "Save one or more images to a tar archive (streamed to STDOUT by default)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", help="Write to a file, instead of STDOUT")
    parser.add_argument("images", nargs="+", metavar="IMAGE")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from cargohold.engine.images.requests import SaveRequest

    request = SaveRequest(names=tuple(args.images))
    if not args.output:
        if sys.stdout.isatty():
            raise ClientError(
                "cowardly refusing to save to a terminal. Use the -o flag or redirect"
            )
        sys.stdout.flush()
        ctx.engine.images.save(request, sys.stdout.fileno())
        return 0
    tmp = f"{args.output}.cargohold-tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        ctx.engine.images.save(request, fd)
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    os.close(fd)
    os.replace(tmp, args.output)
    return 0
