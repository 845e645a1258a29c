"""``cargohold build [OPTIONS] PATH | URL | -``."""

from __future__ import annotations

import argparse
import os
import sys

from cargohold.cli.context import Context
from cargohold.errors import CargoholdError, InvalidArgument

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


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not key:
            raise InvalidArgument(f"invalid {flag}: {value!r}")
        if not sep:
            env = os.environ.get(key)
            if env is None:
                continue
            val = env
        out[key] = val
    return out


def _secrets(values: list[str]) -> dict[str, str]:
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


def _epoch(build_args: dict[str, str]) -> int | None:
    raw = build_args.get("SOURCE_DATE_EPOCH") or os.environ.get("SOURCE_DATE_EPOCH")
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidArgument(f"invalid SOURCE_DATE_EPOCH: {raw!r}") from None


def _is_remote(context: str) -> bool:
    if context.startswith(("http://", "https://")):
        return True
    from cargohold.build.git_context import is_git_url  # not imported for local builds

    return is_git_url(context)


def run(args: argparse.Namespace, ctx: Context) -> int:
    from cargohold.build.executor import BuildOptions

    try:
        build_args = _pairs(args.build_arg, "--build-arg")
        dockerfile = args.file or "Dockerfile"
        remote = not os.path.isdir(args.context) and _is_remote(args.context)
        if args.file and args.file != "-" and not remote and os.path.exists(args.file):
            # -f is relative to the working directory; for a URL it names a file of the context
            dockerfile = os.path.abspath(args.file)
        options = BuildOptions(
            dockerfile=dockerfile,
            tags=tuple(args.tag),
            build_args=build_args,
            no_cache=args.no_cache,
            pull=args.pull,
            target=args.target,
            labels=_pairs(args.label, "--label"),
            network=args.network,
            secrets=_secrets(args.secret),
            allow=tuple(v for arg in args.allow for v in arg.split(",") if v),
            source_date_epoch=_epoch(build_args),
        )
        mode = args.progress
        if mode == "auto":
            mode = "tty" if ctx.stderr.isatty() else "plain"
        quiet = args.quiet or mode == "quiet"
        image_id = ctx.engine.builds.build(
            args.context, options, ctx.stderr, mode, quiet, sys.stdin.buffer
        )
    except CargoholdError as exc:
        print(f"ERROR: {exc.message}", file=ctx.stderr)
        return 1
    except OSError as exc:
        print(f"ERROR: {exc}", file=ctx.stderr)
        return 1
    if args.iidfile:
        with open(args.iidfile, "w") as f:
            f.write(image_id)
    if quiet:
        print(image_id, file=ctx.stdout)
    return 0
