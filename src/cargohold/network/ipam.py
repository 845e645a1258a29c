"""IP address management: subnets for networks, persistent per-network address leases.

Leases live in ``<root>/networks/leases/<network-id>.json`` (``{"leases": {ip: container_id},
"last": ip}``), every mutation under the flock of ``<network-id>.lock``; allocation is
round-robin after the last address handed out (as Docker does) so a just-released address is
not reused at once.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path

import msgspec

from cargohold.errors import Conflict, InvalidArgument, Unavailable
from cargohold.util.atomic import read_json, write_json
from cargohold.util.lockfile import FileLock

IPv4Net = ipaddress.IPv4Network

# Ranges never handed out automatically: Docker's default bridge and address pools' first
# entries, Podman's default network, link-local and loopback.
RESERVED: tuple[IPv4Net, ...] = tuple(
    IPv4Net(n)
    for n in ("172.17.0.0/16", "10.88.0.0/16", "169.254.0.0/16", "127.0.0.0/8", "10.77.0.0/16")
)


def default_pool() -> list[IPv4Net]:
    """Candidate /16 subnets for user networks: 10.78-10.127 (minus Podman's 10.88),
    then 172.18-172.31 (Docker's own pool, used only if the host has no route there)."""
    nets = [IPv4Net(f"10.{i}.0.0/16") for i in range(78, 128) if i != 88]
    nets += [IPv4Net(f"172.{i}.0.0/16") for i in range(18, 32)]
    return nets


def host_routes(proc_route: Path = Path("/proc/net/route")) -> list[IPv4Net]:
    """IPv4 destinations routed on this host (default route excluded)."""
    out: list[IPv4Net] = []
    try:
        lines = proc_route.read_text().splitlines()[1:]
    except OSError:
        return out
    for line in lines:
        fields = line.split()
        if len(fields) < 8:
            continue
        dest = socket.inet_ntoa(struct.pack("<I", int(fields[1], 16)))
        mask = socket.inet_ntoa(struct.pack("<I", int(fields[7], 16)))
        if mask == "0.0.0.0":
            continue
        out.append(IPv4Net(f"{dest}/{mask}", strict=False))
    return out


def parse_subnet(value: str) -> IPv4Net:
    try:
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise InvalidArgument(f"invalid subnet {value}: invalid CIDR address: {value}") from None
    if not isinstance(net, IPv4Net):
        raise InvalidArgument(f"IPv6 subnets are not supported: {value}")
    if net.prefixlen > 30:
        raise InvalidArgument(f"subnet {value} is too small")
    return net


def check_overlap(subnet: IPv4Net, existing: Iterable[IPv4Net]) -> None:
    for other in existing:
        if subnet.overlaps(other):
            raise Conflict("Pool overlaps with other one on this address space")


def choose_subnet(
    existing: Sequence[IPv4Net],
    pool: Sequence[IPv4Net] | None = None,
    avoid: Sequence[IPv4Net] | None = None,
) -> IPv4Net:
    """The first pool subnet overlapping no existing network, reserved range or host route."""
    blocked = [*existing, *RESERVED, *(host_routes() if avoid is None else avoid)]
    for candidate in default_pool() if pool is None else pool:
        if not any(candidate.overlaps(b) for b in blocked):
            return candidate
    raise Unavailable(
        "could not find an available, non-overlapping IPv4 address pool among the defaults "
        "to assign to the network"
    )


def default_gateway(subnet: IPv4Net) -> str:
    return str(subnet.network_address + 1)


def check_gateway(subnet: IPv4Net, gateway: str) -> str:
    try:
        gw = ipaddress.IPv4Address(gateway)
    except ValueError:
        raise InvalidArgument(f"invalid gateway address {gateway}") from None
    if gw not in subnet or gw in (subnet.network_address, subnet.broadcast_address):
        raise InvalidArgument(f"no matching subnet for gateway {gateway}")
    return str(gw)


class Lease(msgspec.Struct, frozen=True):
    ip: str
    container_id: str


class LeaseStore:
    """Address leases of one network."""

    def __init__(self, root: Path, network_id: str, subnet: IPv4Net, gateway: str) -> None:
        self.dir = root / "networks" / "leases"
        self.path = self.dir / f"{network_id}.json"
        self.lock = FileLock(self.dir / f"{network_id}.lock")
        self.subnet = subnet
        self.gateway = ipaddress.IPv4Address(gateway)

    def _load(self) -> tuple[dict[str, str], str]:
        try:
            data = read_json(self.path)
        except FileNotFoundError:
            return {}, ""
        return dict(data.get("leases", {})), str(data.get("last", ""))

    def _save(self, leases: dict[str, str], last: str) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json(self.path, {"leases": leases, "last": last}, fsync=False)

    def leases(self) -> list[Lease]:
        with self.lock:
            leases, _ = self._load()
        return [Lease(ip, cid) for ip, cid in sorted(leases.items())]

    def lookup(self, container_id: str) -> str | None:
        with self.lock:
            leases, _ = self._load()
        for ip, cid in leases.items():
            if cid == container_id:
                return ip
        return None

    def allocate(self, container_id: str, requested: str | None = None) -> str:
        """Lease an address to ``container_id`` (idempotent: an existing lease is returned)."""
        with self.lock:
            leases, last = self._load()
            for ip, cid in leases.items():
                if cid == container_id and (requested is None or ip == requested):
                    return ip
            if requested is not None:
                ip = self._check_static(requested, leases)
            else:
                ip = self._next_free(leases, last)
            leases = {k: v for k, v in leases.items() if v != container_id}
            leases[ip] = container_id
            self._save(leases, ip)
            return ip

    def _check_static(self, requested: str, leases: dict[str, str]) -> str:
        try:
            addr = ipaddress.IPv4Address(requested)
        except ValueError:
            raise InvalidArgument(f"invalid IPv4 address: {requested}") from None
        net = self.subnet
        if addr not in net or addr in (net.network_address, net.broadcast_address):
            raise InvalidArgument(
                f"invalid endpoint settings: no configured subnet contains IP address {requested}"
            )
        if addr == self.gateway or str(addr) in leases:
            raise Conflict("Address already in use")
        return str(addr)

    def _next_free(self, leases: dict[str, str], last: str) -> str:
        net = self.subnet
        first = int(net.network_address) + 1
        end = int(net.broadcast_address)  # exclusive
        size = end - first
        start = int(ipaddress.IPv4Address(last)) + 1 if last else first
        if not first <= start < end:
            start = first
        gw = int(self.gateway)
        for i in range(size):
            value = first + (start - first + i) % size
            if value == gw:
                continue
            ip = str(ipaddress.IPv4Address(value))
            if ip not in leases:
                return ip
        raise Unavailable("no available IPv4 addresses on this network's address pools")

    def release(self, container_id: str) -> str | None:
        """Drop the lease of ``container_id``; returns the address released, if any."""
        with self.lock:
            leases, last = self._load()
            released = None
            for ip, cid in list(leases.items()):
                if cid == container_id:
                    released = ip
                    del leases[ip]
            if released is not None:
                self._save(leases, last)
            return released

    def destroy(self) -> None:
        with self.lock:
            self.path.unlink(missing_ok=True)
        (self.dir / self.lock.path.name).unlink(missing_ok=True)
