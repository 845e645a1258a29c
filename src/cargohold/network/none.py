"""``--network none``: a private namespace with only the loopback interface (up)."""

from __future__ import annotations

from collections.abc import Sequence

from cargohold.network.base import Attachment, loopback_up
from cargohold.network.ports import PortSpec
from cargohold.network.store import Network


class NoneBackend:
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
    ) -> Attachment:
        loopback_up(netns_path)
        return Attachment(network_id=network.id, network=network.name)

    def detach(
        self, container_id: str, netns_path: str | None, network: Network, *, ifname: str = "eth0"
    ) -> None:
        return None
