"""``cargohold ps [-a] [-q] [-s] [-n N] [-l] [--no-trunc] [--filter ...] [--format ...]``."""

from __future__ import annotations

import argparse
import json
import time
from typing import TYPE_CHECKING

from cargohold.cli.context import Context
from cargohold.cli.humanize import created_ago, human_size, status_text
from cargohold.cli.output import print_rows

if TYPE_CHECKING:
    from cargohold.engine.containers.service import ContainerView

HELP = "List containers"
HEADERS = {
    "ID": "CONTAINER ID",
    "Image": "IMAGE",
    "Command": "COMMAND",
    "CreatedAt": "CREATED AT",
    "RunningFor": "CREATED",
    "Ports": "PORTS",
    "State": "STATE",
    "Status": "STATUS",
    "Size": "SIZE",
    "Names": "NAMES",
    "Labels": "LABELS",
    "Mounts": "MOUNTS",
    "Networks": "NETWORKS",
}
DEFAULT_FORMAT = (
    "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}"
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-a", "--all", action="store_true", help="Show all containers (default shows just running)"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="Only display container IDs")
    parser.add_argument("-s", "--size", action="store_true", help="Display total file sizes")
    parser.add_argument(
        "-n",
        "--last",
        type=int,
        default=-1,
        help="Show n last created containers (includes all states)",
    )
    parser.add_argument(
        "-l",
        "--latest",
        action="store_true",
        help="Show the latest created container (includes all states)",
    )
    parser.add_argument("--no-trunc", action="store_true", help="Don't truncate output")
    parser.add_argument(
        "-f",
        "--filter",
        action="append",
        default=[],
        help="Filter output based on conditions provided",
    )
    parser.add_argument("--format", help="Pretty-print containers using a Go template")


def ellipsis(text: str, width: int) -> str:
    """Docker's formatter.Ellipsis: cut to ``width`` characters with a trailing "…"."""
    if len(text) <= width:
        return text
    return text[: width - 1] + "…"


def _command(view: ContainerView, trunc: bool) -> str:
    rec = view.record
    command = " ".join([rec.path, *rec.args]) if rec.path else ""
    if trunc:
        command = ellipsis(command, 20)
    return json.dumps(command, ensure_ascii=False)


def _image(view: ContainerView, trunc: bool) -> str:
    image = view.record.config.image or view.record.image_id
    if trunc and image.startswith("sha256:"):
        return image[7:19]
    return image


def run(args: argparse.Namespace, ctx: Context) -> int:
    from cargohold.engine.containers.network import format_ps_ports, link_parts, published
    from cargohold.engine.containers.service import view_filter

    service = ctx.engine.containers
    match = view_filter(args.filter)
    last = 1 if args.latest else args.last
    show_all = (
        args.all or last > 0 or any(f.split("=", 1)[0] in ("status", "exited") for f in args.filter)
    )
    views = [v for v in service.views(show_all=True) if match(v)]
    if not show_all:
        views = [v for v in views if v.state.running]
    if last > 0:
        views = views[:last]
    trunc = not args.no_trunc
    if args.quiet and not args.format:
        for v in views:
            print(v.record.short_id if trunc else v.record.id, file=ctx.stdout)
        return 0
    link_names: dict[str, list[str]] = {}
    for v in service.views(show_all=True):
        for raw in v.record.host_config.links:
            name, alias = link_parts(raw)
            link_names.setdefault(name, []).append(f"{v.record.name}/{alias}")
    now = time.time()
    rows = []
    for v in views:
        rec, st = v.record, v.state
        ports = ""
        if st.running:
            ports = format_ps_ports(
                published(ctx.engine.container_store, rec.id), rec.config.exposed_ports
            )
        size = ""
        if args.size:
            rw, virtual = service.sizes(rec.id, rec.image_id)
            size = f"{human_size(rw)} (virtual {human_size(virtual)})"
        rows.append(
            {
                "ID": rec.short_id if trunc else rec.id,
                "Image": _image(v, trunc),
                "Command": _command(v, trunc),
                "CreatedAt": time.strftime(
                    "%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(rec.created / 1e9)
                ),
                "RunningFor": created_ago(rec.created / 1e9, now),
                "Ports": ports,
                "State": st.status.value,
                "Status": status_text(
                    st.status.value,
                    exit_code=st.exit_code,
                    started_at=st.started_at / 1e9 if st.started_at else None,
                    finished_at=st.finished_at / 1e9 if st.finished_at else None,
                    health=st.health.status.value if st.health else None,
                    now=now,
                ),
                "Size": size,
                "Names": ",".join([rec.name, *link_names.get(rec.name, [])]),
                "Labels": ",".join(f"{k}={val}" for k, val in sorted(rec.config.labels.items())),
                "Mounts": ",".join(m.name or m.source for m in rec.mount_points),
                "Networks": ",".join(rec.networks),
            }
        )
    fmt = args.format or (DEFAULT_FORMAT + ("\t{{.Size}}" if args.size else ""))
    if args.quiet:
        fmt = "{{.ID}}"
    print_rows(ctx, fmt, rows, HEADERS)
    return 0
