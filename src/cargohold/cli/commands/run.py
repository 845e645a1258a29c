"""``cargohold run [OPTIONS] IMAGE [COMMAND] [ARG...]``.

``-d`` prints the id once the container runs; otherwise the CLI attaches (a raw terminal with
``-t``, stdin piped with ``-i``, only the streams named by ``-a`` when given) and exits with
the container's exit code.  ``--rm`` removes the container when it exits (its monitor does,
even when this CLI is gone).  The engine's ``run`` makes and starts the container (forking
its monitor first); this module only maps the flags and pumps the terminal.
"""

from __future__ import annotations

import argparse

from cargohold.cli import runopts
from cargohold.cli.context import Context

HELP = "Run a command in a new container"


def configure(parser: argparse.ArgumentParser) -> None:
    runopts.configure(parser, run=True)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from cargohold.cli.output import parse_bool

    request = runopts.to_request(args)
    sig_proxy = parse_bool(args.sig_proxy, "sig-proxy")
    result = ctx.engine.containers.run(
        request,
        name=args.name,
        platform=args.platform,
        pull=args.pull,
        pull_events=ctx.pull_events,
        detach=bool(args.detach),
        detach_keys=args.detach_keys,
        created=lambda record: runopts.print_warnings(ctx, record),
    )
    record = result.record
    if result.session is None:
        print(record.id, file=ctx.stdout)
        return 0
    cfg = record.config
    if not cfg.attach_stdout and not cfg.attach_stderr:
        print(record.id, file=ctx.stdout, flush=True)  # Docker: `run -a stdin` shows the id
    code = runopts.foreground(ctx, result.session, stdin=bool(args.interactive),
                              sig_proxy=sig_proxy)
    return 0 if code is None else code
