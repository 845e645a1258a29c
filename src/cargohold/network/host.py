"""``--network host``: the container shares the host's namespace; nothing to set up.

The caller omits the network namespace from the OCI spec and gives the container the host's
/etc/hosts and /etc/resolv.conf (Docker copies them); published ports are ignored, as Docker
warns.
"""

from __future__ import annotations

from collections.abc import Sequence

from cargohold.network.base import Attachment
from cargohold.network.ports import PortSpec
from cargohold.network.store import Network


class HostBackend:
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
        return Attachment(network_id=network.id, network=network.name)

    def detach(
        self, container_id: str, netns_path: str | None, network: Network, *, ifname: str = "eth0"
    ) -> None:
        return None
