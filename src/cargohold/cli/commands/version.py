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
    info = ctx.engine.runtime_info()
    lines = [
        "Client:",
        f" Version:       {__version__}",
        f" Python:        {sys.version.split()[0]}",
        f" OS/Arch:       {platform.system().lower()}/{platform.machine()}",
        f" Runtime:       {info.name}",
    ]
    if info.error:
        lines.append(f"  Error:        {info.error}")
    else:
        lines.append(f"  Path:         {info.path}")
        for i, line in enumerate(info.version):
            lines.append(("  Version:      " if i == 0 else " " * 16) + line)
    print("\n".join(lines), file=ctx.stdout)
    return 0
