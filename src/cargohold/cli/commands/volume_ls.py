"""``cargohold volume ls [-q] [-f FILTER] [--format FORMAT]``."""

from __future__ import annotations

import argparse

from cargohold.cli.context import Context
from cargohold.cli.output import print_error, print_rows
from cargohold.errors import CargoholdError

HELP = "List volumes"
HEADERS = {
    "Name": "VOLUME NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "Mountpoint": "MOUNTPOINT",
    "Labels": "LABELS",
    "Links": "LINKS",
    "Size": "SIZE",
}
DEFAULT = "table {{.Driver}}\t{{.Name}}"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="Only display volume names")
    parser.add_argument("-f", "--filter", action="append", default=[],
                        help="Provide filter values (e.g. 'dangling=true')")
    parser.add_argument("--format", help="Pretty-print volumes using a Go template")


def run(args: argparse.Namespace, ctx: Context) -> int:
    try:
        volumes = ctx.engine.volumes.ls(args.filter)
    except CargoholdError as e:
        print_error(ctx.stderr, e)
        return 1
    fmt = args.format or ("{{.Name}}" if args.quiet else DEFAULT)
    rows = [
        {
            "Name": v.name,
            "Driver": v.driver,
            "Scope": v.scope,
            "Mountpoint": v.mountpoint,
            "Labels": ",".join(f"{k}={val}" for k, val in v.labels),
            "Links": "N/A",
            "Size": "N/A",
        }
        for v in volumes
    ]
    print_rows(ctx, fmt, rows, HEADERS)
    return 0
