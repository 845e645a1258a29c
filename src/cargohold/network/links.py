"""Legacy container links (``--link name[:alias]``): hosts entries and Docker's link
environment variables (``ALIAS_PORT_80_TCP_ADDR`` ...), as moby's daemon/links does."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import msgspec

from cargohold.errors import InvalidArgument
from cargohold.network.hosts import HostEntry
from cargohold.network.ports import parse_port_key
from cargohold.util.text import has_control_or_space


class LinkSpec(msgspec.Struct, frozen=True):
    name: str  # target container name (without "/")
    alias: str


def parse_link(spec: str) -> LinkSpec:
    """``name[:alias]``; the alias defaults to the name."""
    name, _, alias = spec.partition(":")
    name = name.lstrip("/")
    alias = alias or name
    if not name or not alias or "/" in alias or has_control_or_space(spec):
        raise InvalidArgument(f"invalid link format: {spec}")
    return LinkSpec(name, alias)


class LinkTarget(msgspec.Struct, frozen=True):
    """What the receiver needs to know about the linked (child) container."""

    name: str  # container name without "/"
    hostname: str
    ip: str
    env: tuple[str, ...] = ()
    exposed: tuple[str, ...] = ()  # ExposedPorts keys ("80/tcp")


def link_hosts_entry(alias: str, target: LinkTarget) -> HostEntry:
    """Docker: ``ip\\talias hostname [name]`` (the name only when it differs from the alias)."""
    names = [alias, target.hostname]
    if alias != target.name:
        names.append(target.name)
    return HostEntry(target.ip, tuple(dict.fromkeys(n for n in names if n)))


def _ordered_ports(exposed: Iterable[str]) -> list[tuple[int, str]]:
    ports = {parse_port_key(k) for k in exposed}
    return sorted(ports, key=lambda p: (p[1] != "tcp", "" if p[1] == "tcp" else p[1], p[0]))


def link_env(receiver: str, alias: str, target: LinkTarget) -> list[str]:
    """Docker's link variables, in Docker's order."""
    name = f"/{receiver.lstrip('/')}/{alias}"
    prefix_alias = alias.upper().replace("-", "_")
    ip = target.ip
    ports = _ordered_ports(target.exposed)
    env: list[str] = []
    start = end = (0, "")
    for i, (num, proto) in enumerate(ports):
        if i == 0:
            start = end = (num, proto)
            env.append(f"{prefix_alias}_PORT={proto}://{ip}:{num}")
        prefix = f"{prefix_alias}_PORT_{num}_{proto.upper()}"
        env.append(f"{prefix}={proto}://{ip}:{num}")
        env.append(f"{prefix}_ADDR={ip}")
        env.append(f"{prefix}_PORT={num}")
        env.append(f"{prefix}_PROTO={proto}")
        if num == end[0] + 1 and proto == end[1]:
            end = (num, proto)
            if i < len(ports) - 1:
                continue
        if end != start:
            rp = f"{prefix_alias}_PORT_{start[0]}_{start[1].upper()}"
            env.append(f"{rp}_START={start[1]}://{ip}:{start[0]}")
            env.append(f"{rp}_PORT_START={start[0]}")
            env.append(f"{rp}_END={end[1]}://{ip}:{end[0]}")
            env.append(f"{rp}_PORT_END={end[0]}")
        start = end = (num, proto)
    env.append(f"{prefix_alias}_NAME={name}")
    for item in target.env:
        key, sep, value = item.partition("=")
        if not sep or key in ("HOME", "PATH"):
            continue
        env.append(f"{prefix_alias}_ENV_{key}={value}")
    return env


def links_for(
    receiver: str, links: Sequence[tuple[LinkSpec, LinkTarget]]
) -> tuple[list[HostEntry], list[str]]:
    """Hosts entries and environment for every link of a receiving container."""
    entries: list[HostEntry] = []
    env: list[str] = []
    for spec, target in links:
        entries.append(link_hosts_entry(spec.alias, target))
        env.extend(link_env(receiver, spec.alias, target))
    return entries, env
