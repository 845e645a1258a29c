"""``cargohold history [-H] [--no-trunc] [-q] [--format] IMAGE``."""

from __future__ import annotations

import argparse
import time

from cargohold.cli.context import Context
from cargohold.cli.humanize import created_ago, human_size
from cargohold.cli.output import parse_bool, print_rows
from cargohold.engine.reports import short_id

HELP = "Show the history of an image"
HEADERS = {
    "ID": "IMAGE",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "CreatedBy": "CREATED BY",
    "Size": "SIZE",
    "Comment": "COMMENT",
}
DEFAULT = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-H", "--human", nargs="?", const="true", default="true",
                        help="Print sizes and dates in human readable format (default true)")
    parser.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    parser.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    parser.add_argument("--format", help="Pretty-print using a Go template")
    parser.add_argument("image", metavar="IMAGE")


def _ellipsis(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def run(args: argparse.Namespace, ctx: Context) -> int:
    human = parse_bool(args.human, "human")
    rows = ctx.engine.images.history(args.image)
    if args.quiet:
        for row in rows:
            print(row.id if args.no_trunc or row.id == "<missing>" else short_id(row.id),
                  file=ctx.stdout)
        return 0
    now = time.time()
    data = []
    for row in rows:
        created_by = row.created_by.replace("\t", " ")
        data.append({
            "ID": row.id if args.no_trunc or row.id == "<missing>" else short_id(row.id),
            "CreatedSince": created_ago(row.created, now) if human else row.created,
            "CreatedAt": row.created,
            "CreatedBy": created_by if args.no_trunc else _ellipsis(created_by, 45),
            "Size": human_size(row.size) if human else str(row.size),
            "Comment": row.comment,
        })
    print_rows(ctx, args.format or DEFAULT, data, HEADERS)
    return 0
