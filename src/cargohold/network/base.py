"""The NetworkBackend seam (none, host, bridge) and what an attachment yields."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import msgspec

from cargohold.errors import Internal
from cargohold.network.ports import PortBinding, PortSpec
from cargohold.network.store import Network


class Attachment(msgspec.Struct, frozen=True):
    """One container's endpoint on one network (NetworkSettings.Networks[name])."""

    network_id: str
    network: str
    ifname: str = ""
    host_ifname: str = ""
    ip: str = ""
    prefixlen: int = 0
    gateway: str = ""
    mac: str = ""
    aliases: tuple[str, ...] = ()
    ports: tuple[PortBinding, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "NetworkID": self.network_id,
            "Network": self.network,
            "IfName": self.ifname,
            "HostIfName": self.host_ifname,
            "IPAddress": self.ip,
            "IPPrefixLen": self.prefixlen,
            "Gateway": self.gateway,
            "MacAddress": self.mac,
            "Aliases": list(self.aliases),
            "Ports": [b.to_json() for b in self.ports],
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Attachment:
        return cls(
            network_id=obj["NetworkID"],
            network=obj["Network"],
            ifname=obj.get("IfName", ""),
            host_ifname=obj.get("HostIfName", ""),
            ip=obj.get("IPAddress", ""),
            prefixlen=int(obj.get("IPPrefixLen", 0)),
            gateway=obj.get("Gateway", ""),
            mac=obj.get("MacAddress", ""),
            aliases=tuple(obj.get("Aliases") or ()),
            ports=tuple(PortBinding.from_json(p) for p in obj.get("Ports") or ()),
        )


class NetworkBackend(Protocol):
    def attach(
        self,
        container_id: str,
        netns_path: str,
        network: Network,
        *,
        ifname: str = "eth0",
        ip: str | None = None,
        mac: str | None = None,
        aliases: Sequence[str] = (),
        ports: Sequence[PortSpec] = (),
        default_route: bool = True,
    ) -> Attachment: ...

    def detach(
        self,
        container_id: str,
        netns_path: str | None,
        network: Network,
        *,
        ifname: str = "eth0",
    ) -> None: ...


def run_ip_batch(lines: Sequence[str], netns_path: str | None = None) -> None:
    """Run ``ip -batch -`` (inside ``netns_path`` when given) in one process."""
    if not lines:
        return
    argv = ["ip", "-batch", "-"]
    if netns_path is not None:
        name = _named_netns(netns_path)
        argv = (
            ["ip", "-n", name, "-batch", "-"] if name else ["nsenter", f"--net={netns_path}", *argv]
        )
    proc = subprocess.run(
        argv, input="\n".join(lines) + "\n", capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        raise Internal(f"ip: {proc.stderr.strip()}")


def _named_netns(netns_path: str) -> str:
    p = Path(netns_path)
    return p.name if str(p.parent) in ("/run/netns", "/var/run/netns") else ""


def loopback_up(netns_path: str) -> None:
    run_ip_batch(["link set lo up"], netns_path)
