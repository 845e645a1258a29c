"""``cargohold top CONTAINER [ps OPTIONS]``."""

from __future__ import annotations

import argparse

from cargohold.cli.commands._container_errors import guarded
from cargohold.cli.context import Context

HELP = "Display the running processes of a container"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("ps_args", nargs=argparse.REMAINDER, metavar="ps OPTIONS")


def render(titles: list[str], rows: list[list[str]]) -> str:
    """Docker's tabwriter (min width 20, padding 3); the last column is not padded."""
    table = [titles, *rows]
    last = len(titles) - 1
    widths = [20] * last
    for row in table:
        for i, cell in enumerate(row[:last]):
            widths[i] = max(widths[i], len(cell) + 3)
    lines = []
    for row in table:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:last])]
        lines.append("".join(cells) + (row[last] if len(row) > last else ""))
    return "".join(line + "\n" for line in lines)


def run(args: argparse.Namespace, ctx: Context) -> int:
    def action() -> int:
        ps_args = " ".join(args.ps_args) if args.ps_args else "-ef"
        titles, rows = ctx.engine.container_ops.top(args.container, ps_args)
        ctx.stdout.write(render(titles, rows))
        return 0

    return guarded(ctx.stderr, action)
