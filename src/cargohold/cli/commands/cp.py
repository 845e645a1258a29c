"""``cargohold cp [-a] [-L] CONTAINER:SRC_PATH DEST_PATH|-`` and
``cargohold cp [-a] [-L] SRC_PATH|- CONTAINER:DEST_PATH``."""

from __future__ import annotations

import argparse
import sys

from cargohold.cli.commands._container_errors import guarded
from cargohold.cli.context import Context
from cargohold.errors import InvalidArgument

HELP = "Copy files/folders between a container and the local filesystem"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-a", "--archive", action="store_true",
                        help="Archive mode (copy all uid/gid information)")
    parser.add_argument("-L", "--follow-link", action="store_true",
                        help="Always follow symbol link in SRC_PATH")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="Suppress progress output during copy")
    parser.add_argument("source", metavar="SRC_PATH")
    parser.add_argument("destination", metavar="DEST_PATH")


def split_cp_arg(arg: str) -> tuple[str, str]:
    """Docker's splitCpArg: ("", local path) or (container, path in the container)."""
    if arg.startswith("/"):
        return "", arg
    container, sep, path = arg.partition(":")
    if not sep or container.startswith("."):
        return "", arg
    return container, path


def run(args: argparse.Namespace, ctx: Context) -> int:
    def action() -> int:
        src_ctr, src = split_cp_arg(args.source)
        dst_ctr, dst = split_cp_arg(args.destination)
        if src_ctr and dst_ctr:
            raise InvalidArgument("copying between containers is not supported")
        if not src_ctr and not dst_ctr:
            raise InvalidArgument("must specify at least one container source")
        if (src_ctr and not src) or (dst_ctr and not dst):
            raise InvalidArgument("filesystem path cannot be empty")
        ops = ctx.engine.container_ops
        if src_ctr:
            if dst == "-":
                ctx.stdout.flush()
            ops.copy_from(src_ctr, src, dst, follow_link=args.follow_link,
                          stream=sys.stdout.buffer if dst == "-" else None)  # fmt: skip
            if dst == "-":
                sys.stdout.buffer.flush()
        else:
            ops.copy_to(dst_ctr, src, dst, archive=args.archive, follow_link=args.follow_link,
                        stream=sys.stdin.buffer if src == "-" else None)  # fmt: skip
        return 0

    return guarded(ctx.stderr, action)
