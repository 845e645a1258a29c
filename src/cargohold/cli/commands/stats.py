"""``cargohold stats [-a] [--no-stream] [--no-trunc] [--format F] [CONTAINER...]``."""

from __future__ import annotations

import argparse
import time

from cargohold.cli.commands._container_errors import guarded
from cargohold.cli.context import Context
from cargohold.cli.humanize import bytes_size, human_size
from cargohold.cli.output import print_rows

HELP = "Display a live stream of container(s) resource usage statistics"
HEADERS = {
    "Container": "CONTAINER",
    "ID": "CONTAINER ID",
    "Name": "NAME",
    "CPUPerc": "CPU %",
    "MemUsage": "MEM USAGE / LIMIT",
    "MemPerc": "MEM %",
    "NetIO": "NET I/O",
    "BlockIO": "BLOCK I/O",
    "PIDs": "PIDS",
}
DEFAULT = ("table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}"
           "\t{{.BlockIO}}\t{{.PIDs}}")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-a", "--all", action="store_true",
                        help="Show all containers (default shows just running)")
    parser.add_argument("--format", help="Pretty-print images using a Go template")
    parser.add_argument("--no-stream", action="store_true",
                        help="Disable streaming stats and only pull the first result")
    parser.add_argument("--no-trunc", action="store_true", help="Do not truncate output")
    parser.add_argument("containers", nargs="*", metavar="CONTAINER")


def row_of(row: object, no_trunc: bool, given: str = "") -> dict[str, str]:
    from cargohold.engine.containers.ops import StatsRow

    assert isinstance(row, StatsRow)
    return {
        "Container": given or (row.id if no_trunc else row.id[:12]),
        "ID": row.id if no_trunc else row.id[:12],
        "Name": row.name,
        "CPUPerc": f"{row.cpu_percent:.2f}%",
        "MemUsage": f"{bytes_size(row.mem_usage)} / {bytes_size(row.mem_limit)}",
        "MemPerc": f"{row.mem_percent:.2f}%",
        "NetIO": f"{human_size(row.net_rx)} / {human_size(row.net_tx)}",
        "BlockIO": f"{human_size(row.blk_read)} / {human_size(row.blk_write)}",
        "PIDs": str(row.pids),
    }


def run(args: argparse.Namespace, ctx: Context) -> int:
    fmt = args.format or DEFAULT
    ops = ctx.engine.container_ops

    def once(interval: float) -> list[dict[str, str]]:
        rows = ops.stats(args.containers, args.all, interval=interval)
        given = args.containers if len(args.containers) == len(rows) else [""] * len(rows)
        return [row_of(r, args.no_trunc, g) for r, g in zip(rows, given, strict=True)]

    def action() -> int:
        if args.no_stream:
            print_rows(ctx, fmt, once(0.5), HEADERS)
            return 0
        tty = ctx.stdout.isatty()
        try:
            while True:
                rows = once(1.0)
                if tty:
                    ctx.stdout.write("\033[2J\033[H")
                print_rows(ctx, fmt, rows, HEADERS)
                ctx.stdout.flush()
                if not rows and not args.containers:
                    time.sleep(1.0)
        except KeyboardInterrupt:
            return 0

    return guarded(ctx.stderr, action)
