"""``cargohold attach [--detach-keys KEYS] [--no-stdin] [--sig-proxy=true] CONTAINER``."""

from __future__ import annotations

import argparse

from cargohold.cli import runopts
from cargohold.cli.commands._container_errors import guarded
from cargohold.cli.context import Context
from cargohold.cli.output import parse_bool

HELP = "Attach local standard input, output, and error streams to a running container"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--detach-keys", default="",
                        help="Override the key sequence for detaching a container")
    parser.add_argument("--no-stdin", action="store_true", help="Do not attach STDIN")
    parser.add_argument("--sig-proxy", nargs="?", const="true", default="true",
                        help="Proxy all received signals to the process (default true)")
    parser.add_argument("container", metavar="CONTAINER")


def run(args: argparse.Namespace, ctx: Context) -> int:
    def action() -> int:
        sig_proxy = parse_bool(args.sig_proxy, "sig-proxy")
        session = ctx.engine.container_ops.attach(
            args.container, stdin=not args.no_stdin, detach_keys=args.detach_keys
        )
        code = runopts.foreground(ctx, session, stdin=session.stdin, sig_proxy=sig_proxy,
                                  detach_message=True)  # fmt: skip
        if code is None and not session.detached:
            print(f"Error: {session.error}", file=ctx.stderr)
            return 1
        return code or 0

    return guarded(ctx.stderr, action)
