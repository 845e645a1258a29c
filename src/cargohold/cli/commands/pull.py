"""``cargohold pull [-a] [--platform P] [-q] [--tls-verify=false] NAME[:TAG|@DIGEST]``."""

from __future__ import annotations

import argparse

from cargohold.cli.context import Context
from cargohold.cli.output import parse_bool

HELP = "Pull an image or a repository from a registry"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-a", "--all-tags", action="store_true",
                        help="Download all tagged images in the repository")
    parser.add_argument("--platform", help="Set platform if server is multi-platform capable")
    parser.add_argument("-q", "--quiet", action="store_true", help="Suppress verbose output")
    parser.add_argument("--tls-verify", nargs="?", const="true", default=None,
                        help="Require HTTPS and verify certificates (--tls-verify=false: not)")
    parser.add_argument("--disable-content-trust", nargs="?", const="true", default=None,
                        help="Skip image verification (always; accepted for compatibility)")
    parser.add_argument("name", metavar="NAME[:TAG|@DIGEST]")


def tls_flag(value: str | None) -> bool | None:
    return None if value is None else parse_bool(value, "tls-verify")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from cargohold.cli.progress import ProgressPrinter
    from cargohold.engine.images.requests import PullRequest
    from cargohold.engine.messages import discard

    request = PullRequest(from_image=args.name, platform=args.platform or "",
                          all_tags=args.all_tags, tls_verify=tls_flag(args.tls_verify))
    events = discard if args.quiet else ProgressPrinter(ctx.stdout)
    # the engine's messages end with "Status: ..."; Docker's CLI then prints the name
    results = ctx.engine.registry.pull(request, events)
    if args.quiet:
        for r in results:
            print(r.reference, file=ctx.stdout)
    elif args.all_tags:
        if results:
            print(results[0].repository, file=ctx.stdout)
    else:
        for r in results:
            print(r.reference, file=ctx.stdout)
    return 0
