"""``cargohold network rm [-f] NETWORK [NETWORK...]``."""

from __future__ import annotations

import argparse

from cargohold.cli.context import Context
from cargohold.cli.output import print_error
from cargohold.errors import CargoholdError, NotFound

HELP = "Remove one or more networks"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--force", action="store_true",
                        help="Do not error if the network does not exist")
    parser.add_argument("names", nargs="+", metavar="NETWORK")


def run(args: argparse.Namespace, ctx: Context) -> int:
    status = 0
    for name in args.names:  # one failure does not stop the others, as in Docker
        try:
            ctx.engine.networks.remove(name)
        except NotFound as e:
            if not args.force:
                print(f"Error: {e.message}", file=ctx.stderr)
                status = 1
            continue
        except CargoholdError as e:
            print_error(ctx.stderr, e)
            status = 1
            continue
        print(name, file=ctx.stdout)
    return status
