"""``cargohold volume create [-d DRIVER] [--label k=v] [-o k=v] [NAME]``."""

from __future__ import annotations

import argparse

from cargohold.cli.context import Context
from cargohold.cli.output import print_error
from cargohold.errors import CargoholdError, InvalidArgument

HELP = "Create a volume"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-d", "--driver", default="local", help="Specify volume driver name")
    parser.add_argument("--label", action="append", default=[], help="Set metadata for a volume")
    parser.add_argument("-o", "--opt", action="append", default=[],
                        help="Set driver specific options")
    parser.add_argument("--name", dest="name_flag", help="Specify volume name")
    parser.add_argument("name", nargs="?", metavar="VOLUME")


def parse_pairs(values: list[str], what: str) -> dict[str, str]:
    """``k=v`` words (a label without ``=`` has an empty value, as Docker's ``--label k``)."""
    out: dict[str, str] = {}
    for word in values:
        key, eq, value = word.partition("=")
        if not key or (what == "opt" and not eq):
            raise InvalidArgument(f'invalid argument "{word}" for "--{what}" flag: '
                                  "invalid key/value pair format")
        out[key] = value
    return out


def run(args: argparse.Namespace, ctx: Context) -> int:
    from cargohold.engine.volumes import VolumeCreateRequest

    try:
        if args.name and args.name_flag and args.name != args.name_flag:
            raise InvalidArgument("conflicting options: either specify --name or provide "
                                  "positional arg, not both")
        vol = ctx.engine.volumes.create(VolumeCreateRequest(
            name=args.name or args.name_flag or "",
            driver=args.driver,
            labels=parse_pairs(args.label, "label"),
            driver_opts=parse_pairs(args.opt, "opt"),
        ))
    except CargoholdError as e:
        print_error(ctx.stderr, e)
        return 1
    print(vol.name, file=ctx.stdout)
    return 0
