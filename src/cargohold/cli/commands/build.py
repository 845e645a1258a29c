"""``cargohold build [OPTIONS] PATH | URL | -``."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from types import FrameType
from typing import TYPE_CHECKING

from cargohold.cli.context import Context
from cargohold.errors import CargoholdError, InvalidArgument

if TYPE_CHECKING:
    from cargohold.engine.images.requests import BuildRequest

HELP = "Build an image from a Dockerfile"


def configure(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("-t", "--tag", action="append", default=[], help="Name and optionally a tag (name:tag)")
    add("-f", "--file", default=None, help="Name of the Dockerfile (default: PATH/Dockerfile)")
    add("--build-arg", action="append", default=[], help="Set build-time variables")
    add("--no-cache", action="store_true", help="Do not use cache when building the image")
    add("--pull", action="store_true", help="Always attempt to pull a newer version of the image")
    add("--target", default=None, help="Set the target build stage to build")
    add("--label", action="append", default=[], help="Set metadata for an image")
    add("-q", "--quiet", action="store_true", help="Suppress the build output and print image ID")
    add("--network", default="default", help="Networking mode for the RUN instructions")
    add("--iidfile", default=None, help="Write the image ID to the file")
    add("--secret", action="append", default=[], help="Secret to expose: id=mysecret,src=/path")
    add(
        "--allow",
        action="append",
        default=[],
        metavar="ENTITLEMENT",
        help="Allow extra privileged entitlement: network.host (RUN --network=host), "
        "security.insecure (RUN --security=insecure runs the step privileged: root on the "
        "host); a Dockerfile asking for one without it fails",
    )
    add(
        "--progress",
        default="auto",
        choices=("auto", "plain", "tty", "quiet"),
        help="Type of progress output",
    )
    add(
        "--rm",
        default="true",
        nargs="?",
        const="true",
        help="Remove intermediate containers after a successful build (always done)",
    )
    add("--force-rm", action="store_true", help="Always remove intermediate containers")
    add("--platform", default=None, help="Set platform (only this machine's is supported)")
    add("context", metavar="PATH | URL | -")


def _pairs(values: list[str]) -> dict[str, str]:
    """``KEY=VALUE`` flags; a bare ``KEY`` takes its value from this environment (left out
    when unset), as docker/cli does before anything reaches the daemon."""
    out: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if key and not sep:
            env = os.environ.get(key)
            if env is None:
                continue
            val = env
        out[key] = val
    return out


def _secrets(values: list[str]) -> dict[str, str]:
    """``--secret id=x,src=path`` (read by this client, as docker/cli's session does)."""
    out: dict[str, str] = {}
    for value in values:
        fields = dict(f.partition("=")[::2] for f in value.split(","))
        secret_id = fields.get("id", "")
        src = fields.get("src") or fields.get("source") or ""
        if not secret_id:
            raise InvalidArgument(f"invalid secret {value!r}: id is required")
        if not src and fields.get("env"):
            env_value = os.environ.get(fields["env"], "")
            raise InvalidArgument(f"secret {secret_id}: env secrets need src ({len(env_value)})")
        out[secret_id] = src or secret_id
    return out


@contextlib.contextmanager
def _interrupts_as_errors() -> Iterator[None]:
    """SIGTERM/SIGHUP raise like Ctrl-C does while the build runs, so every ``finally``
    cleanup of the engine runs (the terminal and signals are the CLI's)."""
    import signal

    def handler(signum: int, frame: FrameType | None) -> None:
        raise CargoholdError(f"build interrupted by signal {signum}")

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _request(args: argparse.Namespace) -> BuildRequest:
    """The flags as Docker's ``POST /build`` parameters (the engine checks them)."""
    from cargohold.engine.builds import is_remote_context
    from cargohold.engine.images.requests import BuildRequest

    dockerfile = args.file or "Dockerfile"
    stdin_context = args.context == "-"
    remote = not stdin_context and not os.path.isdir(args.context) and is_remote_context(
        args.context)
    if args.file and args.file != "-" and not remote and os.path.exists(args.file):
        # -f is relative to the working directory; for a URL it names a file of the context
        dockerfile = os.path.abspath(args.file)
    build_args: dict[str, str | None] = {**_pairs(args.build_arg)}
    return BuildRequest(
        tags=tuple(args.tag),
        dockerfile=dockerfile,
        build_args=build_args,
        labels=_pairs(args.label),
        target=args.target or "",
        network_mode=args.network,
        no_cache=args.no_cache,
        pull=args.pull,
        quiet=args.quiet,
        force_remove=args.force_rm,
        platform=args.platform or "",
        remote="" if stdin_context else args.context,
        allow=tuple(v for arg in args.allow for v in arg.split(",") if v),
        secrets=_secrets(args.secret),
        progress=args.progress,
        source_date_epoch=os.environ.get("SOURCE_DATE_EPOCH", ""),
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    from cargohold.engine.builds import BuildProgress

    try:
        request = _request(args)
        mode = args.progress
        if mode == "auto":
            mode = "tty" if ctx.stderr.isatty() else "plain"
        quiet = args.quiet or mode == "quiet"
        # the pulls of FROM: notes of the step on a terminal, else the CLI's pull lines
        progress = BuildProgress(ctx.stderr, mode, quiet, pulls=ctx.pull_events)
        stdin = sys.stdin.buffer  # the CLI's own: handed to the engine when named by "-"
        with _interrupts_as_errors():
            try:
                result = ctx.engine.builds.build(
                    request, progress,
                    context=stdin if args.context == "-" else None,
                    dockerfile=stdin if args.file == "-" else None,
                )
            finally:
                # however it ended: the TTY block's last frame and its ticker stopped, so
                # that an ERROR line goes below the block
                progress.finish()
    except CargoholdError as exc:
        print(f"ERROR: {exc.message}", file=ctx.stderr)
        return 1
    except OSError as exc:
        print(f"ERROR: {exc}", file=ctx.stderr)
        return 1
    if args.iidfile:
        with open(args.iidfile, "w") as f:
            f.write(result.image_id)
    if quiet:
        print(result.image_id, file=ctx.stdout)
    return 0
