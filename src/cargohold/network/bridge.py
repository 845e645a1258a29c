"""Bridge networks done with the kernel directly: one ``ip -batch`` on the host side, one in
the container's namespace and one ``iptables-restore --noflush`` per attach (measured faster
than CNI's bridge+portmap+firewall plugin chain, ~150 ms per ADD here).

attach = lease an address -> reserve host ports -> (create the bridge on first use) -> veth
pair with ``ifname`` inside the namespace -> address, MAC, default route -> NAT/forwarding
rules -> the userland proxy of ports published on IPv6 (``userproxy.py``).  Any failure
undoes everything done so far; detach is idempotent and also works when
the namespace is already gone (the kernel removed the veth with it).
"""

from __future__ import annotations

import contextlib
import ipaddress
from collections.abc import Callable, Sequence
from pathlib import Path

from cargohold.errors import CargoholdError, Internal, InvalidArgument
from cargohold.network import firewall, userproxy
from cargohold.network.base import Attachment, run_ip_batch
from cargohold.network.hosts import HostsRegistry
from cargohold.network.portalloc import PortAllocator
from cargohold.network.ports import PortBinding, PortSpec
from cargohold.network.store import Network, NetworkStore
from cargohold.util.lockfile import FileLock

SYS_NET = Path("/sys/class/net")
PROC_SYS = Path("/proc/sys/net")


def host_veth_name(container_id: str, network_id: str) -> str:
    """A stable, 15-character host-side name, so detach needs no saved state."""
    import hashlib

    digest = hashlib.sha256(f"{container_id}/{network_id}".encode()).hexdigest()
    return f"chv{digest[:12]}"


def mac_from_ip(ip: str) -> str:
    """Docker's classic scheme: 02:42 followed by the four bytes of the IPv4 address."""
    packed = ipaddress.IPv4Address(ip).packed
    return "02:42:" + ":".join(f"{b:02x}" for b in packed)


def _owner(container_id: str, network_id: str) -> str:
    return f"{container_id}/{network_id}"


def _write_sysctl(path: Path, value: str) -> None:
    try:
        if path.read_text().strip() != value:
            path.write_text(value)
    except OSError:
        pass


class BridgeBackend:
    def __init__(self, store: NetworkStore) -> None:
        self.store = store
        self.root = store.root
        self.ports = PortAllocator(store.root)
        self.hosts = HostsRegistry(store.root)
        self._bridge_lock = FileLock(store.root / "networks" / "bridges.lock")

    # ------------------------------------------------------------------ attach

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
        if network.driver != "bridge":
            raise InvalidArgument(f"network {network.name} is not a bridge network")
        leases = self.store.leases(network)
        undo: list[Callable[[], object]] = [lambda: leases.release(container_id)]
        rules_lock = firewall.rules_lock()
        try:
            addr = leases.allocate(container_id, ip)
            owner = _owner(container_id, network.id)
            bindings: list[PortBinding] = []
            if ports and not network.internal:
                undo.append(lambda: self.ports.release(owner))
                bindings = self.ports.reserve(owner, ports)
            host_if = host_veth_name(container_id, network.id)
            mac = mac or mac_from_ip(addr)
            rules_lock.acquire()  # from the snapshot to the rules planned on it
            undo.append(rules_lock.release)  # undo runs in reverse: after the steps below
            rules_snapshot = firewall.snapshot_started()  # runs beside the ip calls below
            undo.append(lambda: rules_snapshot())  # reaps it if a step below fails
            self.ensure_bridge(network)
            undo.append(lambda: self._delete_link(host_if))
            self._create_veth(network, host_if, ifname, mac, netns_path)
            prefix = ipaddress.IPv4Network(network.subnet).prefixlen
            lines = [
                "link set lo up",
                f"addr add {addr}/{prefix} dev {ifname}",
                f"link set {ifname} up",
            ]
            if default_route and not network.internal:
                lines.append(f"route add default via {network.gateway} dev {ifname}")
            run_ip_batch(lines, netns_path)
            tag = firewall.container_tag(container_id, network.id)
            undo.append(lambda: firewall.remove_tagged([tag]))
            self._apply_rules(network, addr, bindings, tag, rules_snapshot())
            undo.remove(rules_lock.release)
            rules_lock.release()
            v6 = [b for b in bindings if ":" in b.host_ip]
            if v6:
                undo.append(lambda: userproxy.stop(self.root, tag))
                userproxy.start(self.root, tag, addr, v6)
        except BaseException:
            for step in reversed(undo):
                with contextlib.suppress(CargoholdError):
                    step()
            raise
        return Attachment(
            network_id=network.id,
            network=network.name,
            ifname=ifname,
            host_ifname=host_if,
            ip=addr,
            prefixlen=prefix,
            gateway=network.gateway,
            mac=mac,
            aliases=tuple(aliases),
            ports=tuple(bindings),
        )

    def ensure_bridge(self, network: Network) -> None:
        """Create the Linux bridge with the gateway address, once (under a lock)."""
        bridge = network.bridge
        if (SYS_NET / bridge).exists():
            return
        with self._bridge_lock:
            if (SYS_NET / bridge).exists():
                return
            prefix = ipaddress.IPv4Network(network.subnet).prefixlen
            run_ip_batch(
                [
                    f"link add name {bridge} type bridge",
                    f"addr add {network.gateway}/{prefix} dev {bridge}",
                    f"link set {bridge} up",
                ]
            )
            # 127.0.0.1:HOSTPORT reaches containers: allow loopback sources out the bridge.
            _write_sysctl(PROC_SYS / "ipv4" / "conf" / bridge / "route_localnet", "1")
            if not network.internal:
                _write_sysctl(PROC_SYS / "ipv4" / "ip_forward", "1")

    def _create_veth(
        self, network: Network, host_if: str, ifname: str, mac: str, netns_path: str
    ) -> None:
        lines = []
        if (SYS_NET / host_if).exists():
            lines.append(f"link del {host_if}")  # a leftover of a crashed attach
        lines += [
            f"link add {host_if} type veth peer name {ifname} address {mac} netns {netns_path}",
            f"link set {host_if} master {network.bridge}",
            f"link set dev {host_if} type bridge_slave hairpin on",
            f"link set {host_if} up",
        ]
        run_ip_batch(lines)

    def _apply_rules(
        self,
        network: Network,
        ip: str,
        bindings: Sequence[PortBinding],
        tag: str,
        snap: firewall.Snapshot,
    ) -> None:
        ntag = firewall.network_tag(network.id)
        ops = firewall.base_ops(snap)
        if not snap.tagged(ntag):
            rules = firewall.network_rules(network.bridge, network.subnet, network.internal, ntag)
            ops = firewall.merge(ops, rules)
        stale = {t: firewall.delete_lines(ls) for t, ls in snap.tagged(tag).items()}
        ops = firewall.merge(stale, ops, firewall.port_rules(ip, bindings, tag))
        firewall.restore(ops, snap)

    @staticmethod
    def _delete_link(name: str) -> None:
        if not (SYS_NET / name).exists():
            return
        try:
            run_ip_batch([f"link del {name}"])
        except Internal as exc:
            # the kernel removes the pair by itself when its namespace goes away: that
            # may happen between the check above and our delete
            if "Cannot find device" not in str(exc):
                raise

    # ------------------------------------------------------------------ detach

    def detach(
        self,
        container_id: str,
        netns_path: str | None,
        network: Network,
        *,
        ifname: str = "eth0",
        delete_link: bool = True,
        rules: bool = True,
    ) -> None:
        """Remove the veth, the container's rules, its host ports, lease and hosts entries.
        Safe to call again, or after the namespace is gone.  ``delete_link=False`` skips the
        synchronous veth deletion (~25 ms of kernel RCU wait) when the caller deletes the
        namespace next, which destroys the pair asynchronously.  ``rules=False`` when the
        attachment is known to have published no port (then it added no rule of its own:
        attach removes a failed attempt's rules itself), which saves an iptables-save."""
        errors: list[CargoholdError] = []
        host_if = host_veth_name(container_id, network.id)
        tag = firewall.container_tag(container_id, network.id)
        steps: list[Callable[[], object]] = [
            lambda: self._delete_link(host_if) if delete_link else None,
            lambda: firewall.remove_tagged([tag]) if rules else None,
            lambda: userproxy.stop(self.root, tag),
            lambda: self.ports.release(_owner(container_id, network.id)),
            lambda: self.hosts.leave(network.id, container_id),
            lambda: self.store.leases(network).release(container_id),
        ]
        for step in steps:
            try:
                step()
            except CargoholdError as e:
                errors.append(e)
        if errors:
            raise errors[0]

    # ------------------------------------------------------------------ networks

    def remove_network(self, network: Network) -> None:
        """Delete the bridge and the network's rules (the caller checked for endpoints)."""
        if network.driver != "bridge":
            return
        firewall.remove_tagged([firewall.network_tag(network.id)])
        self._delete_link(network.bridge)
        self.store.leases(network).destroy()

    def reconcile(self, is_alive: Callable[[str], bool]) -> list[str]:
        """Detach every leased container that ``is_alive`` says is gone (after a crash or a
        kill -9); returns the container ids cleaned up."""
        cleaned: list[str] = []
        for network in self.store.all():
            if network.driver != "bridge":
                continue
            for lease in self.store.leases(network).leases():
                if not is_alive(lease.container_id):
                    self.detach(lease.container_id, None, network)
                    cleaned.append(lease.container_id)
        return cleaned
