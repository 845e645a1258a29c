"""Rendering shared by commands: error reporting and exit codes, tables."""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from cargohold.errors import CargoholdError, ContainerExit, NotFound

if TYPE_CHECKING:
    from cargohold.cli.context import Context


def print_error(stderr: TextIO, exc: CargoholdError) -> None:
    """One error line as Docker's CLI prints it (daemon errors carry Docker's prefix)."""
    prefix = "Error response from daemon: " if exc.from_daemon else ""
    print(f"{prefix}{exc.message}", file=stderr)


def report_error(exc: BaseException) -> int:
    """Print ``exc`` the way Docker's CLI does and return the exit status to use."""
    if isinstance(exc, ContainerExit):
        return exc.exit_code
    if isinstance(exc, CargoholdError):
        print_error(sys.stderr, exc)
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


def parse_bool(value: str, flag: str) -> bool:
    """Go's strconv.ParseBool, as Docker's boolean flags accept (``-H=false``)."""
    v = value.strip()
    if v in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if v in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    from cargohold.errors import ClientError

    raise ClientError(f'invalid argument "{value}" for "--{flag}" flag: parse error')


def docker_json(obj: object) -> str:
    """JSON as Docker's CLI prints it: 4-space indent, HTML characters escaped."""
    import json

    text = json.dumps(obj, indent=4, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def print_rows(ctx: Context, fmt: str, rows: list[dict[str, str]], headers: dict[str, str]) -> None:
    """Render list rows with a ``--format`` template (``table ...`` prints a header row)."""
    from cargohold.cli.template import render_rows

    ctx.stdout.write(render_rows(fmt, rows, headers))


def print_inspect(
    ctx: Context,
    names: list[str],
    fmt: str | None,
    lookup: Callable[[str], dict[str, Any]],
    kind: str,
) -> int:
    """Docker's inspect output: a JSON array, or one rendered template per object."""
    found: list[dict[str, Any]] = []
    status = 0
    for name in names:
        try:
            found.append(lookup(name))
        except NotFound:
            print(f"Error: No such {kind}: {name}", file=ctx.stderr)
            status = 1
    if fmt:
        from cargohold.cli.template import render

        for obj in found:
            print(render(fmt, obj), file=ctx.stdout)
    else:
        print(docker_json(found), file=ctx.stdout)
    return status


def confirm_removal(ctx: Context, what: str | Sequence[str], filters: Sequence[str] = ()) -> bool:
    """Docker's prune prompt, True on yes: "WARNING! This will remove {what}." for one kind,
    or system prune's list of kinds (and the filters in use) for a sequence."""
    if isinstance(what, str):
        message = f"WARNING! This will remove {what}.\nAre you sure you want to continue?"
    else:
        lines = ["WARNING! This will remove:", *(f"  - {w}" for w in what), ""]
        if filters:
            lines += ["  Items to be pruned will be filtered with:",
                      *(f"  - {f}" for f in filters), ""]
        message = "\n".join([*lines, "Are you sure you want to continue?"])
    print(f"{message} [y/N] ", end="", file=ctx.stdout, flush=True)
    return sys.stdin.readline().strip().lower() in ("y", "yes")
