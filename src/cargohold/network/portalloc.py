"""Host port reservations shared by every cargohold process.

``<root>/networks/hostports.json`` maps an owner (``<container-id>/<network-id>``) to its
bindings, mutated under an flock.  A host port is free when no other owner holds it (else
Docker's "Bind for 0.0.0.0:6666 failed: port is already allocated") and a test bind succeeds
(else "address already in use": a host process listens there).

As Docker 20.10 without ``--ipv6``: a port published on every address (no host IP given) is
also published on ``::`` with the same host port when the host has IPv6 (``::1`` on lo);
that side goes through a userland proxy (``userproxy.py``) since the container has only IPv4.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Sequence
from pathlib import Path

from cargohold.errors import Conflict, InvalidArgument, Unavailable
from cargohold.network.ports import PortBinding, PortSpec
from cargohold.util.atomic import read_json, write_json
from cargohold.util.lockfile import FileLock

WILDCARDS = ("0.0.0.0", "::", "")
DUAL_STACK_PROTOS = ("tcp", "udp")  # the protocols the userland proxy forwards


def host_has_ipv6(path: Path = Path("/proc/net/if_inet6")) -> bool:
    """True when IPv6 is enabled and lo carries ``::1`` (Docker's check before binding ::)."""
    try:
        text = path.read_text()
    except OSError:
        return False
    return any(
        line.split()[0] == "0" * 31 + "1" and line.split()[-1] == "lo"
        for line in text.splitlines()
        if line.strip()
    )


def ephemeral_range(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> range:
    try:
        lo, hi = (int(x) for x in path.read_text().split())
    except (OSError, ValueError):
        lo, hi = 32768, 60999
    return range(lo, hi + 1)


def _family(ip: str) -> int:
    return 6 if ":" in ip else 4


def _clash(a: PortBinding, b: PortBinding) -> bool:
    """Same port and protocol on the same address, or a wildcard of the same family."""
    if a.proto != b.proto or a.host_port != b.host_port:
        return False
    if a.host_ip == b.host_ip:
        return True
    if _family(a.host_ip) != _family(b.host_ip):
        return False
    return a.host_ip in WILDCARDS or b.host_ip in WILDCARDS


def probe_bind(host_ip: str, port: int, proto: str) -> int:
    """Bind a throwaway socket; returns the port bound (useful with ``port=0``).
    Raises OSError (EADDRINUSE, EADDRNOTAVAIL ...) when the address cannot be used."""
    family = socket.AF_INET6 if ":" in host_ip else socket.AF_INET
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    with socket.socket(family, kind) as s:
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host_ip, port))
        return int(s.getsockname()[1])


class PortAllocator:
    def __init__(self, root: Path) -> None:
        self.dir = root / "networks"
        self.path = self.dir / "hostports.json"
        self.lock = FileLock(self.dir / "hostports.lock")

    def _load(self) -> dict[str, list[PortBinding]]:
        try:
            data = read_json(self.path)
        except FileNotFoundError:
            return {}
        return {owner: [PortBinding.from_json(b) for b in lst] for owner, lst in data.items()}

    def _save(self, table: dict[str, list[PortBinding]]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        data = {o: [b.to_json() for b in lst] for o, lst in table.items() if lst}
        write_json(self.path, data, fsync=False)

    def owners(self) -> dict[str, list[PortBinding]]:
        with self.lock:
            return self._load()

    def reserve(
        self, owner: str, specs: Sequence[PortSpec], *, ipv6: bool | None = None
    ) -> list[PortBinding]:
        """Choose and record host ports for ``specs`` (all or nothing; idempotent per owner).
        ``ipv6`` (default: :func:`host_has_ipv6`) adds a ``::`` binding beside every
        ``0.0.0.0`` one of a spec without host address, on the same host port."""
        if not specs:
            self.release(owner)
            return []
        if ipv6 is None:
            ipv6 = host_has_ipv6()
        with self.lock:
            table = self._load()
            table.pop(owner, None)
            taken = [b for lst in table.values() for b in lst]
            chosen: list[PortBinding] = []
            for spec in specs:
                dual = ipv6 and not spec.host_ip and spec.proto in DUAL_STACK_PROTOS
                chosen += self._choose(spec, [*taken, *chosen], dual)
            table[owner] = chosen
            self._save(table)
            return chosen

    @staticmethod
    def _pair(spec: PortSpec, ip: str, port: int, dual: bool) -> list[PortBinding]:
        out = [PortBinding(spec.container_port, spec.proto, ip, port)]
        if dual:
            out.append(PortBinding(spec.container_port, spec.proto, "::", port))
        return out

    def _choose(self, spec: PortSpec, taken: list[PortBinding], dual: bool) -> list[PortBinding]:
        ip = spec.host_ip or "0.0.0.0"
        if spec.random:
            return self._random(spec, ip, taken, dual)
        candidates = range(spec.host_port_start, spec.host_port_end + 1)
        last_error: Conflict | None = None
        for port in candidates:
            pair = self._pair(spec, ip, port, dual)
            try:
                for b in pair:
                    self._check(b, taken)
                return pair
            except Conflict as e:
                last_error = e
        if len(candidates) > 1:
            raise Conflict(
                f"Bind for {ip}:{spec.host_port_start}-{spec.host_port_end} failed: "
                "port is already allocated"
            )
        assert last_error is not None
        raise last_error

    def _random(
        self, spec: PortSpec, ip: str, taken: list[PortBinding], dual: bool
    ) -> list[PortBinding]:
        for _ in range(64):
            try:
                port = probe_bind(ip, 0, spec.proto)
            except OSError as e:
                b = PortBinding(spec.container_port, spec.proto, ip, 0)
                raise self._bind_error(b, e) from None
            pair = self._pair(spec, ip, port, dual)
            if any(_clash(b, t) for b in pair for t in taken):
                continue
            if dual:
                try:
                    probe_bind("::", port, spec.proto)
                except OSError:
                    continue  # taken on the IPv6 side only: try another port
            return pair
        raise Unavailable("no available port in the ephemeral range")

    def _check(self, b: PortBinding, taken: list[PortBinding]) -> None:
        if any(_clash(b, t) for t in taken):
            raise Conflict(f"Bind for {b.host_ip}:{b.host_port} failed: port is already allocated")
        try:
            probe_bind(b.host_ip, b.host_port, b.proto)
        except OSError as e:
            raise self._bind_error(b, e) from None

    @staticmethod
    def _bind_error(b: PortBinding, e: OSError) -> Conflict | InvalidArgument:
        family = "6" if ":" in b.host_ip else "4"
        addr = f"[{b.host_ip}]" if family == "6" else b.host_ip
        reason = {
            errno.EADDRINUSE: "address already in use",
            errno.EADDRNOTAVAIL: "cannot assign requested address",
            errno.EACCES: "permission denied",
        }.get(e.errno or 0, e.strerror or str(e))
        msg = (
            f"failed to bind port {addr}:{b.host_port}/{b.proto}: "
            f"listen {b.proto}{family} {addr}:{b.host_port}: bind: {reason}"
        )
        return Conflict(msg) if e.errno == errno.EADDRINUSE else InvalidArgument(msg)

    def release(self, owner: str) -> list[PortBinding]:
        with self.lock:
            table = self._load()
            released = table.pop(owner, [])
            if released:
                self._save(table)
            return released
