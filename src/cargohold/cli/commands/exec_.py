"""``cargohold exec [-d] [-i] [-t] [-e K=V] [--env-file F] [-u USER] [-w DIR] [--privileged]
[--detach-keys KEYS] CONTAINER COMMAND [ARG...]``."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING

from cargohold.cli import terminal
from cargohold.cli.commands._container_errors import binary, guarded, requires
from cargohold.cli.context import Context
from cargohold.errors import InvalidArgument

if TYPE_CHECKING:
    from cargohold.engine.containers.sessions import ExecSession

HELP = "Execute a command in a running container"
USAGE = "[OPTIONS] CONTAINER COMMAND [ARG...]"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-d", "--detach", action="store_true",
                        help="Detached mode: run command in the background")
    parser.add_argument("--detach-keys", default="",
                        help="Override the key sequence for detaching a container")
    parser.add_argument("-e", "--env", action="append", default=[],
                        help="Set environment variables")
    parser.add_argument("--env-file", action="append", default=[],
                        help="Read in a file of environment variables")
    parser.add_argument("-i", "--interactive", action="store_true",
                        help="Keep STDIN open even if not attached")
    parser.add_argument("--privileged", action="store_true",
                        help="Give extended privileges to the command")
    parser.add_argument("-t", "--tty", action="store_true", help="Allocate a pseudo-TTY")
    parser.add_argument("-u", "--user", default="",
                        help="Username or UID (format: <name|uid>[:<group|gid>])")
    parser.add_argument("-w", "--workdir", default="",
                        help="Working directory inside the container")
    parser.add_argument("container", nargs="?", metavar="CONTAINER")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="COMMAND")


def env_value(item: str) -> str | None:
    """``-e KEY=VAL`` as given; ``-e KEY`` takes the caller's value (dropped when unset)."""
    if "=" in item:
        if item.startswith("="):
            raise InvalidArgument(f"invalid environment variable: {item}")
        return item
    value = os.environ.get(item)
    return None if value is None else f"{item}={value}"


def read_env_file(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise InvalidArgument(f"open {path}: {exc.strerror}") from None
    out = []
    for line in lines:
        text = line.lstrip()
        if not text or text.startswith("#"):
            continue
        if "=" not in text and any(c.isspace() for c in text):
            raise InvalidArgument(f"variable '{text}' contains whitespaces")
        value = env_value(text)
        if value is not None:
            out.append(value)
    return out


def run(args: argparse.Namespace, ctx: Context) -> int:
    if not args.container or not args.command:
        return requires(ctx.stderr, "cargohold exec", USAGE, 2)
    return guarded(ctx.stderr, lambda: _run(args, ctx))


def _run(args: argparse.Namespace, ctx: Context) -> int:
    from cargohold.engine.containers.requests import ExecCreateRequest, ExecStartRequest

    env: list[str] = []
    for path in args.env_file:
        env += read_env_file(path)
    for item in args.env:
        value = env_value(item)
        if value is not None:
            env.append(value)
    if args.tty and args.interactive and not args.detach and not os.isatty(0):
        raise InvalidArgument("the input device is not a TTY")
    request = ExecCreateRequest(
        cmd=tuple(args.command),
        env=tuple(env),
        user=args.user,
        working_dir=args.workdir,
        tty=args.tty,
        attach_stdin=args.interactive and not args.detach,
        attach_stdout=not args.detach,
        attach_stderr=not args.detach,
        privileged=args.privileged,
        detach_keys=args.detach_keys,
    )
    ops = ctx.engine.container_ops
    exec_id = ops.exec_create(args.container, request)
    sys.stdout.flush()
    sys.stderr.flush()
    size = None
    if args.tty and not args.detach:
        size = terminal.window_size(0 if args.interactive else 1)
    start = ExecStartRequest(detach=args.detach, tty=args.tty, console_size=size)
    if args.tty and not args.detach:
        return _tty(ctx, ops.exec_start(exec_id, start), interactive=args.interactive)
    from cargohold.engine.containers.sessions import Stdio

    # no TTY: the process writes to our own stdout/stderr directly (and reads our stdin)
    stdio = Stdio(0 if args.interactive else None, 1, 2)
    with terminal.ignoring_interrupts(), ops.exec_start(exec_id, start, stdio=stdio) as session:
        return session.wait() or 0


def _tty(ctx: Context, session: ExecSession, *, interactive: bool) -> int:
    """Pump the terminal through the exec's pty; 0 when the user detached."""
    stdin_tty = interactive and os.isatty(0)
    with session:
        detached = terminal.pump(
            session,
            stdin=0 if interactive else None,
            stdout=binary(ctx.stdout, sys.stdout.buffer),
            stderr=binary(ctx.stderr, sys.stderr.buffer),
            raw=stdin_tty,
            size_from=0 if stdin_tty else (1 if os.isatty(1) else None),
        )
        if detached:
            return 0
        return session.wait() or 0
