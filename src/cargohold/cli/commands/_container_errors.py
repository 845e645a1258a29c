"""How container commands report failures: Docker's CLI exits 1 on a daemon error.

Docker prints "Error: No such container: x" for lookups that fail and "Error response from
daemon: ..." for everything else; 126/127 (exec of a command that cannot run) keep their code.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import BinaryIO, TextIO

from cargohold.cli.output import print_error
from cargohold.errors import CargoholdError, ContainerExit, NotFound


def report(stderr: TextIO, exc: CargoholdError) -> int:
    if isinstance(exc, ContainerExit):
        return exc.exit_code
    if isinstance(exc, NotFound):
        print(f"Error: {exc.message}", file=stderr)
    else:
        print_error(stderr, exc)
    return exc.exit_code if exc.exit_code in (126, 127) else 1


def guarded(stderr: TextIO, action: Callable[[], int]) -> int:
    """Run ``action``; a CargoholdError becomes Docker's message and exit status."""
    try:
        return action()
    except CargoholdError as exc:
        return report(stderr, exc)


def binary(stream: TextIO, fallback: BinaryIO) -> BinaryIO:
    """The byte stream behind a text stream (tests hand in StringIO-like objects)."""
    buffer = getattr(stream, "buffer", None)
    return buffer if buffer is not None else fallback


def requires(stderr: TextIO, prog: str, usage: str, count: int, exact: bool = False) -> int:
    word = "exactly" if exact else "at least"
    noun = "argument" if count == 1 else "arguments"
    print(f'"{prog}" requires {word} {count} {noun}.\nSee \'{prog} --help\'.\n\n'
          f"Usage:  {prog} {usage}", file=stderr)  # fmt: skip
    return 1


def stdout_bytes() -> BinaryIO:
    return sys.stdout.buffer
