"""``cargohold system df``."""

from __future__ import annotations

import argparse

from cargohold.cli.context import Context
from cargohold.cli.humanize import human_size
from cargohold.cli.output import print_rows

HELP = "Show cargohold disk usage"
HEADERS = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
           "Reclaimable": "RECLAIMABLE"}
DEFAULT = "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-v", "--verbose", action="store_true", help="Show detailed information")
    parser.add_argument("--format", help="Pretty-print using a Go template")


def _pct(part: int, total: int) -> str:
    if not total:
        return human_size(part)
    return f"{human_size(part)} ({part * 100 // total}%)"


def run(args: argparse.Namespace, ctx: Context) -> int:
    rows = []
    for usage in ctx.engine.disk_usage():
        rows.append({
            "Type": usage.kind,
            "TotalCount": str(usage.total),
            "Active": str(usage.active),
            "Size": human_size(usage.size),
            "Reclaimable": _pct(usage.reclaimable, usage.size),
        })
    print_rows(ctx, args.format or DEFAULT, rows, HEADERS)
    return 0
