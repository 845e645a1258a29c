"""``cargohold container inspect [-f FORMAT] [-s] CONTAINER [CONTAINER...]``."""

from __future__ import annotations

import argparse
from typing import Any

from cargohold.cli.context import Context
from cargohold.cli.output import print_inspect

HELP = "Display detailed information on one or more containers"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--format", help="Format output using a Go template")
    parser.add_argument("-s", "--size", action="store_true", help="Display total file sizes")
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")


def run(args: argparse.Namespace, ctx: Context) -> int:
    service = ctx.engine.containers

    def lookup(ref: str) -> dict[str, Any]:
        data = service.inspect(ref)
        if args.size:
            data["SizeRw"], data["SizeRootFs"] = service.sizes(data["Id"], data["Image"])
        return data

    return print_inspect(ctx, args.containers, args.format, lookup, "container")
