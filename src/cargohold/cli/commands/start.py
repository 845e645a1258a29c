"""``cargohold start [-a] [-i] CONTAINER [CONTAINER...]``."""

from __future__ import annotations

import argparse

from cargohold.cli import runopts
from cargohold.cli.context import Context

HELP = "Start one or more stopped containers"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-a", "--attach", action="store_true", help="Attach STDOUT/STDERR and forward signals"
    )
    parser.add_argument("-i", "--interactive", action="store_true", help="Attach container's STDIN")
    parser.add_argument("--detach-keys", default="", help="Override the key sequence for detaching")
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")


def run(args: argparse.Namespace, ctx: Context) -> int:
    service = ctx.engine.containers
    if args.attach or args.interactive:
        from cargohold.errors import InvalidArgument

        if len(args.containers) > 1:
            raise InvalidArgument("you cannot start and attach multiple containers at once")
        ref = args.containers[0]
        session = service.start_attached(ref, stdin=bool(args.interactive),
                                         detach_keys=args.detach_keys)  # fmt: skip
        if session is None:  # it was running already
            return 0
        code = runopts.foreground(ctx, session, stdin=session.stdin)
        return 0 if code is None else code
    return runopts.each_container(ctx, args.containers, service.start, "start")
