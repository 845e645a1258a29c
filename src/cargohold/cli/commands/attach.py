"""``cargohold attach [--detach-keys KEYS] [--no-stdin] [--sig-proxy=true] CONTAINER``."""

from __future__ import annotations

import argparse
import sys

from cargohold.cli.commands._container_errors import binary, guarded
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
        result = ctx.engine.container_ops.attach(
            args.container,
            stdin=sys.stdin.buffer,
            stdout=binary(ctx.stdout, sys.stdout.buffer),
            stderr=binary(ctx.stderr, sys.stderr.buffer),
            no_stdin=args.no_stdin,
            sig_proxy=parse_bool(args.sig_proxy, "sig-proxy"),
            detach_keys=args.detach_keys,
        )
        if result.detached:
            return 0
        if result.error and result.exit_code is None:
            print(f"Error: {result.error}", file=ctx.stderr)
            return 1
        return result.exit_code or 0

    return guarded(ctx.stderr, action)
