"""``cargohold update [OPTIONS] CONTAINER [CONTAINER...]``: Docker 20.10's flags and output
(each container's name as given on success, the daemon's warnings after them, every error
at the end; exit 1 if one failed)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING

from cargohold.cli.context import Context

if TYPE_CHECKING:
    from cargohold.engine.containers.requests import RestartPolicy
    from cargohold.engine.containers.update import UpdateRequest

HELP = "Update configuration of one or more containers"
USAGE = "[OPTIONS] CONTAINER [CONTAINER...]"


def configure(parser: argparse.ArgumentParser) -> None:
    a = parser.add_argument
    a("--blkio-weight", type=int, help="Block IO (relative weight), between 10 and 1000, or 0 "
      "to disable (default 0)")
    a("--cpu-period", type=int, help="Limit CPU CFS (Completely Fair Scheduler) period")
    a("--cpu-quota", type=int, help="Limit CPU CFS (Completely Fair Scheduler) quota")
    a("--cpuset-cpus", help="CPUs in which to allow execution (0-3, 0,1)")
    a("-c", "--cpu-shares", type=int, help="CPU shares (relative weight)")
    a("--cpus", help="Number of CPUs")
    a("-m", "--memory", help="Memory limit")
    a("--memory-reservation", help="Memory soft limit")
    a("--memory-swap", help="Swap limit equal to memory plus swap: '-1' to enable unlimited swap")
    a("--pids-limit", type=int, help="Tune container pids limit (set -1 for unlimited)")
    a("--restart", help="Restart policy to apply when a container exits")
    a("containers", nargs="*", metavar="CONTAINER")


def _flag(value: str, flag: str, parse: Callable[[str], int]) -> int:
    from cargohold.errors import CargoholdError, ClientError

    try:
        return parse(value)
    except CargoholdError as e:
        raise ClientError(f'invalid argument "{value}" for "{flag}" flag: {e.message}') from None


def request(args: argparse.Namespace, policy: RestartPolicy | None) -> UpdateRequest:
    """The engine's UpdateRequest for these flags (a bad value: ClientError, exit 125)."""
    from cargohold.engine.containers.flag_values import parse_cpus, parse_memory
    from cargohold.engine.containers.update import UpdateRequest

    def swap(text: str) -> int:
        return -1 if text.strip() == "-1" else parse_memory(text)

    return UpdateRequest(
        restart_policy=policy,
        memory=_flag(args.memory, "-m, --memory", parse_memory) if args.memory else 0,
        memory_swap=_flag(args.memory_swap, "--memory-swap", swap) if args.memory_swap else 0,
        memory_reservation=_flag(args.memory_reservation, "--memory-reservation",
                                 parse_memory) if args.memory_reservation else 0,
        nano_cpus=_flag(args.cpus, "--cpus", parse_cpus) if args.cpus else 0,
        cpu_shares=args.cpu_shares or 0,
        cpu_period=args.cpu_period or 0,
        cpu_quota=args.cpu_quota or 0,
        cpuset_cpus=args.cpuset_cpus or "",
        pids_limit=args.pids_limit or None,
        blkio_weight=args.blkio_weight or 0,
    )


def run(args: argparse.Namespace, ctx: Context) -> int:
    from cargohold.cli.commands._container_errors import requires
    from cargohold.cli.output import print_error
    from cargohold.engine.containers.update import parse_restart_policy
    from cargohold.errors import CargoholdError, ClientError

    if not args.containers:
        return requires(ctx.stderr, "cargohold update", USAGE, 1)
    given = {k: v for k, v in vars(args).items() if k != "containers" and v is not None}
    if not given:
        print_error(ctx.stderr, ClientError("you must provide one or more flags when using "
                                            "this command"))
        return 1
    try:
        policy = parse_restart_policy(args.restart) if args.restart else None
    except CargoholdError as e:
        print_error(ctx.stderr, e)
        return 1
    try:
        req = request(args, policy)
    except CargoholdError as e:
        print_error(ctx.stderr, e)
        return 125
    warnings: list[str] = []
    errors: list[CargoholdError] = []
    for ref in args.containers:
        try:
            warnings += ctx.engine.containers.update(ref, req)
        except CargoholdError as e:
            errors.append(e)
            continue
        print(ref, file=ctx.stdout)
    if warnings:
        print("\n".join(warnings), file=ctx.stdout)
    for error in errors:
        print_error(ctx.stderr, error)
    return 1 if errors else 0
