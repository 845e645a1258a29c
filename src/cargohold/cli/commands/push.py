"""``cargohold push [-a] [-q] [--tls-verify=false] [--compression-format F] NAME[:TAG]``."""

from __future__ import annotations

import argparse

from cargohold.cli.commands.pull import tls_flag
from cargohold.cli.context import Context

HELP = "Push an image or a repository to a registry"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-a", "--all-tags", action="store_true",
                        help="Push all tags of an image to the repository")
    parser.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    parser.add_argument("--tls-verify", nargs="?", const="true", default=None,
                        help="Require HTTPS and verify certificates (--tls-verify=false: not)")
    parser.add_argument("--compression-format", choices=("gzip", "zstd"), default=None,
                        help="Compression of the pushed layers (default gzip)")
    parser.add_argument("--compression-level", type=int, default=None,
                        help="Compression level (gzip 0-9, default 2; zstd 1-22, default 3)")
    parser.add_argument("--disable-content-trust", nargs="?", const="true", default=None,
                        help="Skip image signing (always; accepted for compatibility)")
    parser.add_argument("name", metavar="NAME[:TAG]")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from cargohold.cli.progress import ProgressPrinter
    from cargohold.engine.images.requests import PushRequest
    from cargohold.engine.messages import discard

    request = PushRequest(name=args.name, all_tags=args.all_tags,
                          compression_format=args.compression_format or "",
                          compression_level=args.compression_level,
                          tls_verify=tls_flag(args.tls_verify))
    events = discard if args.quiet else ProgressPrinter(ctx.stdout)
    results = ctx.engine.registry.push(request, events)
    if args.quiet:
        for r in results:
            print(r.reference, file=ctx.stdout)
    return 0
