"""``cargohold login [-u USER] [-p PASS | --password-stdin] [--tls-verify=false] [SERVER]``."""

from __future__ import annotations

import argparse
import sys

from cargohold.cli.commands.pull import tls_flag
from cargohold.cli.context import Context
from cargohold.errors import ClientError

HELP = "Log in to a registry"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-u", "--username", help="Username")
    parser.add_argument("-p", "--password", help="Password")
    parser.add_argument("--password-stdin", action="store_true",
                        help="Take the password from stdin")
    parser.add_argument("--tls-verify", nargs="?", const="true", default=None,
                        help="Require HTTPS and verify certificates (--tls-verify=false: not)")
    parser.add_argument("server", nargs="?", metavar="SERVER")


def run(args: argparse.Namespace, ctx: Context) -> int:
    password = args.password
    if password:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.",
              file=ctx.stderr)
        if args.password_stdin:
            raise ClientError("--password and --password-stdin are mutually exclusive")
    username = args.username
    if args.password_stdin:
        if not username:
            raise ClientError("Must provide --username with --password-stdin")
        password = sys.stdin.read().rstrip("\r\n")
    if not username:
        if not sys.stdin.isatty():
            raise ClientError("Cannot perform an interactive login from a non TTY device")
        username = input("Username: ").strip()
    if not password:
        if not sys.stdin.isatty():
            raise ClientError("Cannot perform an interactive login from a non TTY device")
        import getpass

        password = getpass.getpass("Password: ")
    message = ctx.engine.registry.login(args.server, username, password,
                                        tls_flag(args.tls_verify))
    print(message, file=ctx.stdout)
    return 0
