"""``cargohold exec [-d] [-i] [-t] [-e K=V] [--env-file F] [-u USER] [-w DIR] [--privileged]
[--detach-keys KEYS] CONTAINER COMMAND [ARG...]``."""

from __future__ import annotations

import argparse
import os
import sys

from cargohold.cli.commands._container_errors import guarded, requires
from cargohold.cli.context import Context
from cargohold.errors import InvalidArgument

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
    from cargohold.engine.container_ops import ExecOptions

    env: list[str] = []
    for path in args.env_file:
        env += read_env_file(path)
    for item in args.env:
        value = env_value(item)
        if value is not None:
            env.append(value)
    if args.tty and args.interactive and not args.detach and not os.isatty(0):
        raise InvalidArgument("the input device is not a TTY")
    opts = ExecOptions(
        command=tuple(args.command),
        interactive=args.interactive,
        tty=args.tty,
        detach=args.detach,
        env=tuple(env),
        user=args.user,
        workdir=args.workdir,
        privileged=args.privileged,
        detach_keys=args.detach_keys,
    )
    sys.stdout.flush()
    sys.stderr.flush()
    return ctx.engine.container_ops.exec(args.container, opts)
