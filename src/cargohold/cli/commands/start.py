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
        view = service.get(args.containers[0])
        if view.state.running:
            code = None
        else:
            service.start(view.record.id, wait_for_attach=True)
            code = runopts.attach_foreground(
                ctx,
                view.record.id,
                stdin=bool(args.interactive and view.record.config.open_stdin),
                tty=view.record.config.tty,
                detach_keys=args.detach_keys,
            )
        return 0 if code is None else code
    return runopts.each_container(ctx, args.containers, service.start, "start")
