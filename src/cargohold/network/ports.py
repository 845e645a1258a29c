"""Published ports: ``-p``/``-P`` parsing, validation and Docker's display formats.

Parsing follows Docker's ``nat.ParsePortSpec``: ``[ip:][hostPort:]containerPort[/proto]``,
``ip::containerPort``, ranges on both sides (``8000-8001:80-81``), a host range with a single
container port (``8000-8010:80``: the first free port of the range), IPv6 addresses in
brackets (``[::1]:8080:80``).  A host port of 0 means "choose a free one".
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

import msgspec

from cargohold.errors import InvalidArgument

PROTOCOLS = ("tcp", "udp", "sctp")


class PortSpec(msgspec.Struct, frozen=True, order=True):
    """One requested publication of one container port (before host ports are chosen)."""

    container_port: int
    proto: str = "tcp"
    host_ip: str = ""  # "" = every address (0.0.0.0)
    host_port_start: int = 0  # 0 = random
    host_port_end: int = 0

    @property
    def random(self) -> bool:
        return self.host_port_start == 0

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.proto}"


class PortBinding(msgspec.Struct, frozen=True, order=True):
    """A resolved publication: host ``host_ip:host_port`` -> container ``container_port``."""

    container_port: int
    proto: str
    host_ip: str  # "0.0.0.0", "::" or a specific address
    host_port: int

    @property
    def key(self) -> str:
        return f"{self.container_port}/{self.proto}"

    def to_json(self) -> dict[str, object]:
        return {
            "ContainerPort": self.container_port,
            "Proto": self.proto,
            "HostIp": self.host_ip,
            "HostPort": self.host_port,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, object]) -> PortBinding:
        return cls(
            container_port=int(str(obj["ContainerPort"])),
            proto=str(obj["Proto"]),
            host_ip=str(obj["HostIp"]),
            host_port=int(str(obj["HostPort"])),
        )


def _parse_port_range(raw: str) -> tuple[int, int]:
    """``"80"`` -> (80, 80); ``"80-81"`` -> (80, 81); ValueError when malformed."""
    if not raw:
        raise ValueError("empty port")
    start_s, sep, end_s = raw.partition("-")
    start = _parse_port(start_s)
    end = _parse_port(end_s) if sep else start
    if end < start:
        raise ValueError(f"invalid range specified for port: {raw}")
    return start, end


def _parse_port(raw: str) -> int:
    if not raw.isdigit():
        raise ValueError(f"invalid port: {raw}")
    value = int(raw)
    if value > 65535:
        raise ValueError(f"invalid port: {raw}")
    return value


def _split_ip(spec: str) -> tuple[str, str]:
    """Split ``ip:rest`` where ip may be a bracketed IPv6 address; returns ("", spec) if none."""
    if spec.startswith("["):
        end = spec.find("]")
        if end < 0 or spec[end + 1 : end + 2] != ":":
            raise InvalidArgument(f"invalid IP address: {spec}")
        return spec[1:end], spec[end + 2 :]
    parts = spec.split(":")
    if len(parts) <= 2:
        return "", spec
    if len(parts) == 3:
        return parts[0], f"{parts[1]}:{parts[2]}"
    # Unbracketed IPv6 (Docker accepts it when the last two fields are ports).
    return ":".join(parts[:-2]), f"{parts[-2]}:{parts[-1]}"


def parse_publish(spec: str) -> list[PortSpec]:
    """Parse one ``-p`` value into one PortSpec per container port."""
    raw, _, proto = spec.partition("/")
    proto = proto.lower() if proto else "tcp"
    host_ip, rest = _split_ip(raw)
    if host_ip:
        try:
            host_ip = str(ipaddress.ip_address(host_ip))
        except ValueError:
            raise InvalidArgument(f"invalid IP address: {host_ip}") from None
    host_part, sep, container_part = rest.rpartition(":")
    if not sep:
        host_part, container_part = "", rest
    try:
        cstart, cend = _parse_port_range(container_part)
        if cstart == 0:
            raise ValueError("port 0")
    except ValueError:
        raise InvalidArgument(f"invalid containerPort: {container_part}") from None
    hstart = hend = 0
    if host_part:
        try:
            hstart, hend = _parse_port_range(host_part)
        except ValueError:
            raise InvalidArgument(f"Invalid hostPort: {host_part}") from None
    if host_part and (hend - hstart) != (cend - cstart) and cend != cstart:
        raise InvalidArgument(
            "invalid ranges specified for container and host Ports: "
            f"{container_part} and {host_part}"
        )
    if proto not in PROTOCOLS:
        raise InvalidArgument(f"invalid proto: {proto}")
    out: list[PortSpec] = []
    for i, cport in enumerate(range(cstart, cend + 1)):
        if hstart and cend != cstart:
            out.append(PortSpec(cport, proto, host_ip, hstart + i, hstart + i))
        else:
            out.append(PortSpec(cport, proto, host_ip, hstart, hend))
    return out


def parse_publish_all(specs: Iterable[str]) -> list[PortSpec]:
    out: list[PortSpec] = []
    for spec in specs:
        out.extend(parse_publish(spec))
    return out


def parse_port_key(key: str) -> tuple[int, str]:
    """``"80/tcp"`` (an ExposedPorts key or ``--expose`` value) -> (80, "tcp")."""
    raw, _, proto = key.partition("/")
    proto = proto.lower() if proto else "tcp"
    try:
        port = _parse_port(raw)
    except ValueError:
        raise InvalidArgument(f"invalid containerPort: {raw}") from None
    if proto not in PROTOCOLS:
        raise InvalidArgument(f"invalid proto: {proto}")
    return port, proto


class _Binding(Protocol):
    @property
    def host_ip(self) -> str: ...
    @property
    def host_port(self) -> str: ...


def port_specs_of(bindings: Mapping[str, Sequence[_Binding]]) -> list[PortSpec]:
    """HostConfig.PortBindings (``{"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}``) as the
    daemon checks it: each key a port with its protocol, each binding an IP (or "") and a
    host port or range (or "": a random one)."""
    specs: list[PortSpec] = []
    for key, items in bindings.items():
        port, proto = parse_port_key(key)
        if port == 0:
            raise InvalidArgument(f"invalid containerPort: {key.partition('/')[0]}")
        for b in items or ():
            host_ip = b.host_ip
            if host_ip:
                try:
                    host_ip = str(ipaddress.ip_address(host_ip.strip("[]")))
                except ValueError:
                    raise InvalidArgument(f"invalid IP address: {b.host_ip}") from None
            start = end = 0
            if b.host_port:
                try:
                    start, end = _parse_port_range(b.host_port)
                except ValueError:
                    raise InvalidArgument(f"Invalid hostPort: {b.host_port}") from None
            specs.append(PortSpec(port, proto, host_ip, start, end))
    return specs


def parse_expose(spec: str) -> list[str]:
    """``--expose 80-81/tcp`` -> ["80/tcp", "81/tcp"] (ExposedPorts keys)."""
    raw, _, proto = spec.partition("/")
    proto = proto.lower() if proto else "tcp"
    try:
        start, end = _parse_port_range(raw)
    except ValueError:
        raise InvalidArgument(f"invalid range format for --expose: {spec}") from None
    if proto not in PROTOCOLS:
        raise InvalidArgument(f"invalid proto: {proto}")
    return [f"{p}/{proto}" for p in range(start, end + 1)]


def publish_exposed(exposed: Iterable[str], explicit: Sequence[PortSpec] = ()) -> list[PortSpec]:
    """``-P``: every exposed port not already published explicitly, on a random host port."""
    taken = {s.key for s in explicit}
    out: list[PortSpec] = []
    for key in sorted(set(exposed), key=lambda k: parse_port_key(k)):
        port, proto = parse_port_key(key)
        if f"{port}/{proto}" not in taken:
            out.append(PortSpec(port, proto))
    return out


# ---------------------------------------------------------------------------- formatting


def _host_addr(ip: str) -> str:
    return f"[{ip}]" if ":" in ip else ip


def format_port_command(bindings: Iterable[PortBinding], exposed: Iterable[str] = ()) -> list[str]:
    """Lines of ``docker port``: ``80/tcp -> 0.0.0.0:6666`` (IPv6 as ``[::]:6666``)."""
    del exposed  # unpublished ports are not listed by `docker port`
    return [
        f"{b.container_port}/{b.proto} -> {_host_addr(b.host_ip)}:{b.host_port}"
        for b in sorted(bindings, key=lambda b: (b.container_port, b.proto, ":" in b.host_ip))
    ]


def _ps_host_ip(ip: str) -> str:
    return "::" if ip == "::" else ip


def format_ps_ports(bindings: Iterable[PortBinding], exposed: Iterable[str] = ()) -> str:
    """The PORTS column of ``docker ps``: ``0.0.0.0:6666->80/tcp, :::6666->80/tcp``.

    Consecutive ports (same address, protocol, and host/container offsets) are grouped into
    ranges as Docker does: ``0.0.0.0:8000-8001->80-81/tcp``; exposed but unpublished ports
    appear as ``80/tcp``.
    """
    items = sorted(bindings, key=lambda b: (b.proto, ":" in b.host_ip, b.host_ip, b.container_port))
    groups: list[list[PortBinding]] = []
    for b in items:
        last = groups[-1][-1] if groups else None
        if (
            last is not None
            and last.proto == b.proto
            and last.host_ip == b.host_ip
            and b.container_port == last.container_port + 1
            and b.host_port == last.host_port + 1
        ):
            groups[-1].append(b)
        else:
            groups.append([b])
    published = {b.key for b in items}
    parts: list[tuple[int, str, str]] = []
    for g in groups:
        first, last_b = g[0], g[-1]
        cports = str(first.container_port)
        hports = str(first.host_port)
        if len(g) > 1:
            cports += f"-{last_b.container_port}"
            hports += f"-{last_b.host_port}"
        ip = _ps_host_ip(first.host_ip)
        text = f"{ip}:{hports}->{cports}/{first.proto}"
        parts.append((first.container_port, first.proto, text))
    for key in set(exposed) - published:
        port, proto = parse_port_key(key)
        parts.append((port, proto, f"{port}/{proto}"))
    parts.sort(key=lambda p: (p[0], p[1], p[2].startswith(":")))
    return ", ".join(p[2] for p in parts)


def inspect_ports(
    bindings: Iterable[PortBinding], exposed: Iterable[str] = ()
) -> dict[str, list[dict[str, str]] | None]:
    """``NetworkSettings.Ports``: ``{"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "6666"}]}``;
    exposed but unpublished ports map to ``None``."""
    out: dict[str, list[dict[str, str]] | None] = {key: None for key in exposed}
    for b in sorted(bindings, key=lambda b: (b.container_port, b.proto, ":" in b.host_ip)):
        entries = out.get(b.key) or []
        entries.append({"HostIp": b.host_ip, "HostPort": str(b.host_port)})
        out[b.key] = entries
    return out


def host_config_port_bindings(specs: Iterable[PortSpec]) -> dict[str, list[dict[str, str]]]:
    """``HostConfig.PortBindings`` as Docker records the request (HostPort "" when random)."""
    out: dict[str, list[dict[str, str]]] = {}
    for s in specs:
        if s.random:
            port = ""
        elif s.host_port_end != s.host_port_start:
            port = f"{s.host_port_start}-{s.host_port_end}"
        else:
            port = str(s.host_port_start)
        out.setdefault(s.key, []).append({"HostIp": s.host_ip, "HostPort": port})
    return out
