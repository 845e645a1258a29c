"""``cargohold import [-c CHANGE] [-m MSG] file|URL|- [REPOSITORY[:TAG]]``."""

from __future__ import annotations

import argparse

from cargohold.cli.context import Context

HELP = "Import the contents from a tarball to create a filesystem image"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--change", action="append", default=[],
                        help="Apply Dockerfile instruction to the created image")
    parser.add_argument("-m", "--message", default="", help="Set commit message for imported image")
    parser.add_argument("--platform", help="Set platform if server is multi-platform capable")
    parser.add_argument("source", metavar="file|URL|-")
    parser.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")


def run(args: argparse.Namespace, ctx: Context) -> int:
    image_id = ctx.engine.images.import_tarball(
        args.source, args.reference, args.change, args.message, args.platform
    )
    print(image_id, file=ctx.stdout)
    return 0
