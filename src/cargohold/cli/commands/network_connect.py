"""``cargohold network connect [--alias A] [--ip IP] NETWORK CONTAINER``."""

from __future__ import annotations

import argparse

from cargohold.cli.context import Context
from cargohold.cli.output import print_error
from cargohold.errors import CargoholdError

HELP = "Connect a container to a network"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--alias", action="append", default=[],
                        help="Add network-scoped alias for the container")
    parser.add_argument("--ip", default="", help="IPv4 address (e.g., 172.30.100.104)")
    parser.add_argument("network", metavar="NETWORK")
    parser.add_argument("container", metavar="CONTAINER")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from cargohold.engine.containers.requests import EndpointIPAMConfig, EndpointSettings

    endpoint = EndpointSettings(aliases=tuple(args.alias),
                                ipam_config=EndpointIPAMConfig(args.ip) if args.ip else None)
    try:
        ctx.engine.networks.connect(args.network, args.container, endpoint)
    except CargoholdError as e:
        print_error(ctx.stderr, e)
        return 1
    return 0
