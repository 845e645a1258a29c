"""``cargohold port CONTAINER [PRIVATE_PORT[/PROTO]]``."""

from __future__ import annotations

import argparse

from cargohold.cli.context import Context

HELP = "List port mappings or a specific mapping for the container"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("container", metavar="CONTAINER")
    parser.add_argument("port", nargs="?", metavar="PRIVATE_PORT[/PROTO]")


def run(args: argparse.Namespace, ctx: Context) -> int:
    from cargohold.engine.containers.network import format_port_command, parse_port_key
    from cargohold.errors import NotFound

    bindings = ctx.engine.containers.ports(args.container)
    if args.port:
        port, proto = parse_port_key(args.port)
        chosen = [b for b in bindings if (b.container_port, b.proto) == (port, proto)]
        if not chosen:
            raise NotFound(f"No public port '{port}/{proto}' published for {args.container}")
        for b in chosen:
            host = f"[{b.host_ip}]" if ":" in b.host_ip else b.host_ip
            print(f"{host}:{b.host_port}", file=ctx.stdout)
        return 0
    for line in format_port_command(bindings):
        print(line, file=ctx.stdout)
    return 0
