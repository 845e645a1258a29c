"""``cargohold create [OPTIONS] IMAGE [COMMAND] [ARG...]``: prints the new container's id."""

from __future__ import annotations

import argparse

from cargohold.cli import runopts
from cargohold.cli.context import Context

HELP = "Create a new container"


def configure(parser: argparse.ArgumentParser) -> None:
    runopts.configure(parser, run=False)


def run(args: argparse.Namespace, ctx: Context) -> int:
    request = runopts.to_request(args)
    record = ctx.engine.containers.create(request, name=args.name, platform=args.platform,
                                          pull=args.pull, pull_events=ctx.pull_events)
    runopts.print_warnings(ctx, record)
    print(record.id, file=ctx.stdout)
    return 0
