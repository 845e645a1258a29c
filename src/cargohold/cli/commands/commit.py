"""``cargohold commit [-a AUTHOR] [-c CHANGE]... [-m MSG] [-p=true] CONTAINER [REPO[:TAG]]``."""

from __future__ import annotations

import argparse

from cargohold.cli.commands._container_errors import guarded
from cargohold.cli.context import Context
from cargohold.cli.output import parse_bool

HELP = "Create a new image from a container's changes"
USAGE = "[OPTIONS] CONTAINER [REPOSITORY[:TAG]]"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-a", "--author", default="",
                        help='Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
    parser.add_argument("-c", "--change", action="append", default=[],
                        help="Apply Dockerfile instruction to the created image")
    parser.add_argument("-m", "--message", default="", help="Commit message")
    parser.add_argument("-p", "--pause", nargs="?", const="true", default="true",
                        help="Pause container during commit (default true)")
    parser.add_argument("container", nargs="?", metavar="CONTAINER")
    parser.add_argument("reference", nargs="?", metavar="REPOSITORY[:TAG]")


_BOOL_WORDS = {"1", "t", "T", "true", "TRUE", "True", "0", "f", "F", "false", "FALSE", "False"}


def _fix_pause(args: argparse.Namespace) -> bool:
    """``-p`` is a boolean flag (``-p=false``); argparse lets it swallow the next word, which
    is then the container.  False when that leaves too many arguments."""
    if args.pause in _BOOL_WORDS:
        return True
    if args.reference is not None:
        return False
    args.pause, args.container, args.reference = "true", args.pause, args.container
    return True


def run(args: argparse.Namespace, ctx: Context) -> int:
    if not _fix_pause(args) or not args.container:
        print('"cargohold commit" requires at least 1 and at most 2 arguments.\n'
              "See 'cargohold commit --help'.\n\n"
              f"Usage:  cargohold commit {USAGE}", file=ctx.stderr)  # fmt: skip
        return 1

    def action() -> int:
        image_id = ctx.engine.container_ops.commit(
            args.container,
            args.reference,
            author=args.author,
            message=args.message,
            pause=parse_bool(args.pause, "pause"),
            changes=args.change,
        )
        print(image_id, file=ctx.stdout)
        return 0

    return guarded(ctx.stderr, action)
