"""Rendering shared by commands: error reporting and exit codes, tables."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence

from cargohold.errors import CargoholdError, ContainerExit


def report_error(exc: BaseException) -> int:
    """Print ``exc`` the way Docker's CLI does and return the exit status to use."""
    if isinstance(exc, ContainerExit):
        return exc.exit_code
    if isinstance(exc, CargoholdError):
        print(f"Error response from daemon: {exc.message}", file=sys.stderr)
        return exc.exit_code
    if isinstance(exc, BrokenPipeError):
        return 141
    if isinstance(exc, SystemExit):
        return int(exc.code or 0) if isinstance(exc.code, int | None) else 1
    if os.environ.get("CARGOHOLD_DEBUG"):
        traceback.print_exception(exc)
    print(f"Error: {type(exc).__name__}: {exc}", file=sys.stderr)
    return 125


def render_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Docker's table layout: columns padded to width, separated by three spaces."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers), *[list(r) for r in rows]]:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines)
