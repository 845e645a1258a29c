"""``cargohold network create [-d bridge] [--subnet] [--gateway] [--internal] [--label] [-o]
NAME``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from cargohold.cli.context import Context
from cargohold.cli.output import print_error
from cargohold.errors import CargoholdError, InvalidArgument

if TYPE_CHECKING:
    from cargohold.engine.networks import IPAMConfig

HELP = "Create a network"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-d", "--driver", default="bridge", help="Driver to manage the Network")
    parser.add_argument("--subnet", action="append", default=[],
                        help="Subnet in CIDR format that represents a network segment")
    parser.add_argument("--gateway", action="append", default=[],
                        help="IPv4 or IPv6 Gateway for the master subnet")
    parser.add_argument("--ip-range", action="append", default=[],
                        help="Allocate container ip from a sub-range")
    parser.add_argument("--internal", action="store_true",
                        help="Restrict external access to the network")
    parser.add_argument("--label", action="append", default=[],
                        help="Set metadata on a network")
    parser.add_argument("-o", "--opt", action="append", default=[],
                        help="Set driver specific options")
    parser.add_argument("--ipv6", action="store_true", help="Enable IPv6 networking")
    parser.add_argument("--attachable", action="store_true",
                        help="Enable manual container attachment")
    parser.add_argument("name", metavar="NETWORK")


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for word in values:
        key, eq, value = word.partition("=")
        if not key or (flag == "opt" and not eq):
            raise InvalidArgument(f'invalid argument "{word}" for "--{flag}" flag: '
                                  "invalid key/value pair format")
        out[key] = value
    return out


def _ipam(args: argparse.Namespace) -> IPAMConfig | None:
    """--subnet, --gateway and --ip-range as IPAM pools (docker/cli's createIPAMConfig)."""
    from cargohold.engine.networks import IPAMConfig, IPAMPool

    if len(args.gateway) > len(args.subnet):
        raise InvalidArgument("every ip-range or gateway must have a corresponding subnet")
    count = max(len(args.subnet), len(args.ip_range))
    if not count:
        return None

    def at(values: list[str], i: int) -> str:
        return values[i] if i < len(values) else ""

    return IPAMConfig(config=tuple(
        IPAMPool(subnet=at(args.subnet, i), gateway=at(args.gateway, i),
                 ip_range=at(args.ip_range, i))
        for i in range(count)))  # fmt: skip


def run(args: argparse.Namespace, ctx: Context) -> int:
    from cargohold.engine.networks import NetworkCreateRequest

    try:
        request = NetworkCreateRequest(
            name=args.name,
            driver=args.driver,
            internal=args.internal,
            ipam=_ipam(args),
            options=_pairs(args.opt, "opt"),
            labels=_pairs(args.label, "label"),
            enable_ipv6=args.ipv6,
            attachable=args.attachable,
        )
        net = ctx.engine.networks.create(request)
    except CargoholdError as e:
        print_error(ctx.stderr, e)
        return 1
    print(net.id, file=ctx.stdout)
    return 0
