"""``cargohold image bootstrap [OPTIONS] debian:SUITE|ubuntu:SUITE|busybox``.

Builds a minimal base image without any registry: Debian/Ubuntu with mmdebstrap (or
debootstrap) from the host's apt mirror, busybox from the host's busybox-static.
"""

from __future__ import annotations

import argparse
import sys

from cargohold.cli.context import Context

HELP = "Build a minimal base image (debian:SUITE, ubuntu:SUITE, busybox) without a registry"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-t", "--tag", help="Name the image (default: NAME, e.g. debian:bookworm)")
    parser.add_argument("--mirror", help="Archive URL (default: the host's apt sources, "
                                         "else deb.debian.org / archive.ubuntu.com)")
    parser.add_argument("--variant", default="minbase",
                        help="mmdebstrap/debootstrap variant (default minbase)")
    parser.add_argument("--include", action="append", default=[],
                        help="Extra packages, comma separated (repeatable)")
    parser.add_argument("--tool", default="auto", choices=("auto", "mmdebstrap", "debootstrap"),
                        help="Bootstrap tool (default: mmdebstrap, else debootstrap)")
    parser.add_argument("--source-date-epoch", type=int, default=None, metavar="SECONDS",
                        help="Timestamp for every file and the image (default: the suite's "
                             "Release date; busybox: the binary's mtime)")
    parser.add_argument("--busybox", default="/bin/busybox",
                        help="Static busybox binary for the busybox image (default /bin/busybox)")
    parser.add_argument("-q", "--quiet", action="store_true", help="Suppress progress output")
    parser.add_argument("name", metavar="NAME", help="debian:SUITE, ubuntu:SUITE or busybox")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from cargohold.engine.images.bootstrap import BootstrapOptions, BootstrapService

    include = tuple(p for item in args.include for p in item.split(",") if p)
    opts = BootstrapOptions(
        name=args.name, tag=args.tag, mirror=args.mirror, variant=args.variant, tool=args.tool,
        source_date_epoch=args.source_date_epoch, include=include, busybox=args.busybox,
    )
    err = ctx.stderr

    def progress(line: str) -> None:
        if not args.quiet:
            print(line, file=err, flush=True)

    result = BootstrapService(ctx.engine).bootstrap(opts, progress)
    if not args.quiet:
        print(f"Bootstrapped {result.reference} with {result.tool} in {result.seconds:.1f} s "
              f"(SOURCE_DATE_EPOCH={result.source_date_epoch})", file=err)
    print(result.image_id, file=ctx.stdout)
    sys.stdout.flush()
    return 0
