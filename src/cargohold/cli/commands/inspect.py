"""``cargohold inspect [-f FORMAT] [--type TYPE] NAME|ID [NAME|ID...]``."""

from __future__ import annotations

import argparse
from typing import Any

from cargohold.cli.context import Context
from cargohold.cli.output import print_inspect
from cargohold.errors import InvalidArgument

HELP = "Return low-level information on objects"
TYPES = ("container", "image", "volume", "network")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--format", help="Format output using a custom template")
    parser.add_argument("-s", "--size", action="store_true", help="Display total file sizes")
    parser.add_argument("--type", help="Return JSON for specified type")
    parser.add_argument("names", nargs="+", metavar="NAME|ID")


def run(args: argparse.Namespace, ctx: Context) -> int:
    if args.type and args.type not in TYPES:
        raise InvalidArgument(f'"{args.type}" is not a valid value for --type')

    def lookup(name: str) -> dict[str, Any]:
        data = ctx.engine.inspect_object(name, args.type)
        if args.size and "State" in data and "Image" in data:  # a container
            service = ctx.engine.containers
            data["SizeRw"], data["SizeRootFs"] = service.sizes(data["Id"], data["Image"])
        return data

    return print_inspect(ctx, args.names, args.format, lookup, "object")
