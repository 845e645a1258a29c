"""``cargohold version``."""

from __future__ import annotations

import argparse
import platform
import sys

from cargohold import __version__
from cargohold.cli.context import Context

HELP = "Show the cargohold version information"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--format", help="Format output using a custom template")


def run(args: argparse.Namespace, ctx: Context) -> int:
    print(
        f"Client:\n Version:       {__version__}\n"
        f" Python:        {sys.version.split()[0]}\n"
        f" OS/Arch:       {platform.system().lower()}/{platform.machine()}\n"
        f" Runtime:       {ctx.settings.runtime}\n",
        file=ctx.stdout,
        end="",
    )
    return 0
