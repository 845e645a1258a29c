"""``cargohold rm [-f] [-v] CONTAINER [CONTAINER...]``."""

from __future__ import annotations

import argparse

from cargohold.cli.context import Context

HELP = "Remove one or more containers"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-f",
        "--force",
        action="store_true",
        help="Force the removal of a running container (uses SIGKILL)",
    )
    parser.add_argument(
        "-v",
        "--volumes",
        action="store_true",
        help="Remove anonymous volumes associated with the container",
    )
    parser.add_argument("-l", "--link", action="store_true", help="Remove the specified link")
    parser.add_argument("containers", nargs="+", metavar="CONTAINER")


def run(args: argparse.Namespace, ctx: Context) -> int:
    results = ctx.engine.containers.remove(args.containers, force=args.force, volumes=args.volumes)
    status = 0
    for ref, err in results:
        if err is None:
            print(ref, file=ctx.stdout)
        else:
            print(
                f"Error: {err.message}"
                if err.message.startswith("No such container")
                else f"Error response from daemon: {err.message}",
                file=ctx.stderr,
            )
            status = 1
    return status
