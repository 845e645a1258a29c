"""``cargohold logs [-f] [--tail N] [-t] [--since T] [--until T] CONTAINER``."""

from __future__ import annotations

import argparse
import sys

from cargohold.cli.commands._container_errors import binary, guarded
from cargohold.cli.context import Context

HELP = "Fetch the logs of a container"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--details", action="store_true",
                        help="Show extra details provided to logs")
    parser.add_argument("-f", "--follow", action="store_true", help="Follow log output")
    parser.add_argument("--since", default="",
                        help="Show logs since timestamp (e.g. 2013-01-02T13:23:37Z) or relative "
                             "(e.g. 42m for 42 minutes)")
    parser.add_argument("-n", "--tail", default="all",
                        help='Number of lines to show from the end of the logs (default "all")')
    parser.add_argument("-t", "--timestamps", action="store_true", help="Show timestamps")
    parser.add_argument("--until", default="",
                        help="Show logs before a timestamp (e.g. 2013-01-02T13:23:37Z) or "
                             "relative (e.g. 42m for 42 minutes)")
    parser.add_argument("container", metavar="CONTAINER")


def tail_lines(text: str) -> int:
    """Docker's --tail: "all" or a count; anything unparsable or negative means all."""
    try:
        value = int(text)
    except ValueError:
        return -1
    return value if value >= 0 else -1


def run(args: argparse.Namespace, ctx: Context) -> int:
    def action() -> int:
        from cargohold.engine.containers.ops import LogOptions, parse_timestamp

        since = parse_timestamp(args.since, option="since") if args.since else 0
        until = parse_timestamp(args.until, option="until") if args.until else 0
        opts = LogOptions(tail=tail_lines(args.tail), since=since, until=until,
                          timestamps=args.timestamps, follow=args.follow)  # fmt: skip
        out = binary(ctx.stdout, sys.stdout.buffer)
        err = binary(ctx.stderr, sys.stderr.buffer)
        try:
            ctx.engine.container_ops.logs(args.container, opts, out, err)
        except KeyboardInterrupt:
            return 0
        return 0

    return guarded(ctx.stderr, action)
