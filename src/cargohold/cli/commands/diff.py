"""``cargohold diff CONTAINER``: A (added), C (changed), D (deleted) paths."""

from __future__ import annotations

import argparse

from cargohold.cli.commands._container_errors import guarded
from cargohold.cli.context import Context

HELP = "Inspect changes to files or directories on a container's filesystem"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("container", metavar="CONTAINER")


def run(args: argparse.Namespace, ctx: Context) -> int:
    def action() -> int:
        for kind, path in ctx.engine.container_ops.changes(args.container):
            print(f"{kind} {path}", file=ctx.stdout)
        return 0

    return guarded(ctx.stderr, action)
