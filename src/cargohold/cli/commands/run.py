"""``cargohold run [OPTIONS] IMAGE [COMMAND] [ARG...]``.

``-d`` prints the id once the container runs; otherwise the CLI attaches (a raw terminal with
``-t``, stdin piped with ``-i``, only the streams named by ``-a`` when given) and exits with
the container's exit code.  ``--rm`` removes
the container when it exits (its monitor does, even when this CLI is gone).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from cargohold.cli import runopts
from cargohold.cli.context import Context

if TYPE_CHECKING:
    from cargohold.container.monitor_spawn import Prefork

HELP = "Run a command in a new container"


def configure(parser: argparse.ArgumentParser) -> None:
    runopts.configure(parser, run=True)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from cargohold.container.monitor_spawn import Prefork

    # the monitor forks first and gets ready on the other core while we set up the container
    prefork = Prefork()
    try:
        return _run(args, ctx, prefork)
    finally:
        prefork.cancel()


def _run(args: argparse.Namespace, ctx: Context, prefork: Prefork) -> int:
    from cargohold.cli.output import parse_bool

    opts = runopts.to_options(args)
    sig_proxy = parse_bool(args.sig_proxy, "sig-proxy")
    service = ctx.engine.containers
    record = service.create(opts, ctx.pull_events)
    runopts.print_warnings(ctx, record)
    try:
        service.start(record.id, wait_for_attach=not args.detach, created=record, prefork=prefork)
    except BaseException:
        _remove_on_failure(ctx, record.id, args.rm)
        raise
    if args.detach:
        print(record.id, file=ctx.stdout)
        return 0
    cfg = record.config
    if not cfg.attach_stdout and not cfg.attach_stderr:
        print(record.id, file=ctx.stdout, flush=True)  # Docker: `run -a stdin` shows the id
    code = runopts.attach_foreground(
        ctx,
        record.id,
        stdin=bool(args.interactive),
        tty=bool(args.tty),
        sig_proxy=sig_proxy,
        detach_keys=args.detach_keys,
        stdout=cfg.attach_stdout,
        stderr=cfg.attach_stderr,
    )
    return 0 if code is None else code


def _remove_on_failure(ctx: Context, cid: str, auto_remove: bool) -> None:
    """A --rm container that failed to start goes away too (Docker does the same)."""
    if auto_remove:
        import contextlib

        with contextlib.suppress(Exception):
            ctx.engine.containers.remove([cid], force=True, volumes=True)
