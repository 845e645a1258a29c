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
    from cargohold.transport.registry.events import no_progress

    progress = no_progress if args.quiet else ProgressPrinter(ctx.stdout)
    results = ctx.engine.registry.pull(args.name, args.platform, args.all_tags, progress,
                                       tls_flag(args.tls_verify))
    if args.quiet:
        for r in results:
            print(r.reference, file=ctx.stdout)
        return 0
    if args.all_tags:
        from cargohold.oci.reference import parse_reference

        ref = parse_reference(args.name)
        updated = any(r.updated for r in results)
        status = "Downloaded newer image" if updated else "Image is up to date"
        print(f"Status: {status} for {ref.name_familiar}", file=ctx.stdout)
        print(ref.repository, file=ctx.stdout)
        return 0
    for r in results:
        status = "Downloaded newer image" if r.updated else "Image is up to date"
        print(f"Status: {status} for {r.familiar}", file=ctx.stdout)
        print(r.reference, file=ctx.stdout)
    return 0
