"""``cargohold logout [SERVER]``."""

from __future__ import annotations

import argparse

from cargohold.cli.context import Context

HELP = "Log out from a registry"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("server", nargs="?", metavar="SERVER")


def run(args: argparse.Namespace, ctx: Context) -> int:
    print(ctx.engine.registry.logout(args.server), file=ctx.stdout)
    return 0
