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
    """A file or stdin is read here and handed over; a URL is the engine's to fetch (as
    ``fromSrc`` is the daemon's)."""
    import sys

    from cargohold.cli.progress import ProgressPrinter
    from cargohold.engine.images.requests import ImportRequest
    from cargohold.engine.images.service import open_input

    request = ImportRequest(from_src=args.source, repo=args.reference or "",
                            message=args.message, changes=tuple(args.change),
                            platform=args.platform or "")
    events = ProgressPrinter(ctx.stdout)  # ends with the image id, as Docker's CLI prints it
    images = ctx.engine.images
    if args.source == "-":
        images.import_image(request, events, sys.stdin.buffer)
    elif args.source.startswith(("http://", "https://")):
        images.import_image(request, events)
    else:
        with open_input(args.source, tarball=True) as f:
            images.import_image(request, events, f)
    return 0
