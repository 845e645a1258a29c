"""``cargohold images [-a] [-q] [--digests] [--no-trunc] [--filter] [--format] [REPO[:TAG]]``."""

from __future__ import annotations

import argparse
import time

from cargohold.cli.context import Context
from cargohold.cli.humanize import created_ago, human_size, parse_rfc3339
from cargohold.cli.output import print_rows
from cargohold.engine.reports import short_id

HELP = "List images"
HEADERS = {
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "Digest": "DIGEST",
    "ID": "IMAGE ID",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Size": "SIZE",
    "VirtualSize": "VIRTUAL SIZE",
    "Containers": "CONTAINERS",
}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-a", "--all", action="store_true",
                        help="Show all images (default hides intermediate images)")
    parser.add_argument("-q", "--quiet", action="store_true", help="Only show image IDs")
    parser.add_argument("--digests", action="store_true", help="Show digests")
    parser.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    parser.add_argument("-f", "--filter", action="append", default=[],
                        help="Filter output based on conditions provided")
    parser.add_argument("--format", help="Pretty-print images using a Go template")
    parser.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")


def created_at(ts: str) -> str:
    """Docker's CreatedAt: "2021-09-15 18:20:05 +0000 UTC"."""
    return time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(parse_rfc3339(ts)))


def run(args: argparse.Namespace, ctx: Context) -> int:
    filters = list(args.filter)
    if args.reference:
        filters.append(f"reference={args.reference}")
    rows = ctx.engine.images.summaries(show_all=args.all, filters=filters)
    now = time.time()
    if args.quiet and not args.format:
        seen: list[str] = []
        for r in rows:
            ident = r.id if args.no_trunc else short_id(r.id)
            if ident not in seen:
                seen.append(ident)
        if seen:
            print("\n".join(seen), file=ctx.stdout)
        return 0
    data = [
        {
            "Repository": r.repository,
            "Tag": r.tag,
            "Digest": r.digest,
            "ID": r.id if args.no_trunc else short_id(r.id),
            "CreatedSince": created_ago(r.created, now),
            "CreatedAt": created_at(r.created),
            "Size": human_size(r.size),
            "VirtualSize": human_size(r.size),
            "Containers": "N/A",
        }
        for r in rows
    ]
    fmt = args.format
    if not fmt:
        digest = "\t{{.Digest}}" if args.digests else ""
        fmt = (
            "table {{.Repository}}\t{{.Tag}}" + digest
            + "\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
        )
    print_rows(ctx, fmt, data, HEADERS)
    return 0
