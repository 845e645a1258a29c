"""``cargohold network ls [-q] [--no-trunc] [-f FILTER] [--format FORMAT]``."""

from __future__ import annotations

import argparse
import time

from cargohold.cli.context import Context
from cargohold.cli.output import print_error, print_rows
from cargohold.errors import CargoholdError

HELP = "List networks"
HEADERS = {
    "ID": "NETWORK ID",
    "Name": "NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "IPv6": "IPV6",
    "Internal": "INTERNAL",
    "Labels": "LABELS",
    "CreatedAt": "CREATED AT",
}
DEFAULT = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-q", "--quiet", action="store_true", help="Only display network IDs")
    parser.add_argument("--no-trunc", action="store_true", help="Do not truncate the output")
    parser.add_argument("-f", "--filter", action="append", default=[],
                        help="Provide filter values (e.g. 'driver=bridge')")
    parser.add_argument("--format", help="Pretty-print networks using a Go template")


def created_at(stamp: str) -> str:
    """Go's time.Time String(): "2021-09-15 18:20:05.123456789 +0000 UTC"."""
    if not stamp:
        return ""
    from cargohold.engine.networks import parse_time

    ns = parse_time(stamp)
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(secs))
    digits = f"{frac:09d}".rstrip("0")
    return f"{base}.{digits} +0000 UTC" if digits else f"{base} +0000 UTC"


def run(args: argparse.Namespace, ctx: Context) -> int:
    try:
        nets = ctx.engine.networks.ls(args.filter)
    except CargoholdError as e:
        print_error(ctx.stderr, e)
        return 1
    fmt = args.format or ("{{.ID}}" if args.quiet else DEFAULT)
    rows = [
        {
            "ID": n.id if args.no_trunc else n.id[:12],
            "Name": n.name,
            "Driver": n.driver,
            "Scope": "local",
            "IPv6": "false",
            "Internal": "true" if n.internal else "false",
            "Labels": ",".join(f"{k}={v}" for k, v in sorted(n.labels.items())),
            "CreatedAt": created_at(n.created),
        }
        for n in nets
    ]
    print_rows(ctx, fmt, rows, HEADERS)
    return 0
