"""Network service: ``network create/ls/inspect/rm/prune/connect/disconnect``.

Creating a network only writes its record: the Linux bridge is made by the first attach
(``BridgeBackend.ensure_bridge``), so ``network create/ls/inspect/rm`` need no root.

The networks a container belongs to are the keys of its record's ``networks``
(``EndpointSettings`` per network name, written by ``create``); ``network connect`` /
``disconnect`` change them through :func:`record_endpoint` / :func:`forget_endpoint`, and a
running container is attached / detached at once.  A record without ``networks`` belongs to
its ``HostConfig.NetworkMode`` network.

A network is in use while any container (in any state) belongs to it or holds a lease on it.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from cargohold.errors import Conflict, Forbidden, InvalidArgument, NotFound
from cargohold.util.lockfile import FileLock

if TYPE_CHECKING:
    from cargohold.container.model import ContainerRecord, EndpointSettings
    from cargohold.container.records import ContainerStore
    from cargohold.engine import Engine
    from cargohold.network.base import Attachment
    from cargohold.network.bridge import BridgeBackend
    from cargohold.network.store import Network

PREDEFINED = ("bridge", "host", "none")
_FILTER_KEYS = ("driver", "id", "label", "name", "scope", "type", "dangling")


class IPAMPool(msgspec.Struct, frozen=True):
    subnet: str = msgspec.field(default="", name="Subnet")
    ip_range: str = msgspec.field(default="", name="IPRange")
    gateway: str = msgspec.field(default="", name="Gateway")
    aux_addresses: dict[str, str] = msgspec.field(default_factory=dict, name="AuxiliaryAddresses")


class IPAMConfig(msgspec.Struct, frozen=True):
    driver: str = msgspec.field(default="default", name="Driver")
    config: tuple[IPAMPool, ...] = msgspec.field(default=(), name="Config")
    options: dict[str, str] = msgspec.field(default_factory=dict, name="Options")


class NetworkCreateRequest(msgspec.Struct, frozen=True):
    """``POST /networks/create``."""

    name: str = msgspec.field(default="", name="Name")
    driver: str = msgspec.field(default="bridge", name="Driver")
    internal: bool = msgspec.field(default=False, name="Internal")
    ipam: IPAMConfig | None = msgspec.field(default=None, name="IPAM")
    options: dict[str, str] = msgspec.field(default_factory=dict, name="Options")
    labels: dict[str, str] = msgspec.field(default_factory=dict, name="Labels")
    enable_ipv6: bool = msgspec.field(default=False, name="EnableIPv6")
    attachable: bool = msgspec.field(default=False, name="Attachable")
    check_duplicate: bool = msgspec.field(default=True, name="CheckDuplicate")


def parse_time(text: str) -> int:
    """An RFC 3339 time (a network's ``Created``) as ns since the epoch."""
    from cargohold.container.model import parse_time as parse

    return parse(text)


def no_such_network(name: str) -> NotFound:
    return NotFound(f"No such network: {name}")


def endpoint_id(container_id: str, network_id: str) -> str:
    """A stable 64-hex endpoint id for one container on one network."""
    return hashlib.sha256(f"endpoint/{container_id}/{network_id}".encode()).hexdigest()


# ---------------------------------------------------------------- per-container network records


def _networks_lock(containers: ContainerStore, cid: str) -> FileLock:
    if not containers.dir(cid).is_dir():
        raise NotFound(f"No such container: {cid}")
    return FileLock(containers.dir(cid) / "networks.lock")


def record_endpoint(
    containers: ContainerStore,
    cid: str,
    network: Network,
    *,
    aliases: Sequence[str] = (),
    ip: str = "",
    mac: str = "",
) -> ContainerRecord:
    """Add ``network`` to the networks of container ``cid`` (its record's ``networks``)."""
    from cargohold.container.model import EndpointIPAMConfig, EndpointSettings

    def add(record: ContainerRecord) -> ContainerRecord:
        networks = dict(record.networks)
        networks[network.name] = EndpointSettings(
            aliases=tuple(aliases),
            ipam_config=EndpointIPAMConfig(ip) if ip else None,
            mac_address=mac,
        )
        return msgspec.structs.replace(record, networks=networks)

    with _networks_lock(containers, cid):
        return containers.change_record(cid, add)


def forget_endpoint(containers: ContainerStore, cid: str, network: Network | str) -> None:
    """Drop ``network`` (a Network or a name) from the networks of container ``cid``."""
    name = network if isinstance(network, str) else network.name
    def drop(record: ContainerRecord) -> ContainerRecord:
        networks = {k: v for k, v in record.networks.items() if k != name}
        return msgspec.structs.replace(record, networks=networks)

    with _networks_lock(containers, cid):
        containers.change_record(cid, drop)


def container_networks(record: ContainerRecord) -> list[str]:
    """Names (or ids) of the networks ``record`` belongs to: its ``networks``, else its
    NetworkMode ("" and "default" mean the default bridge)."""
    if record.networks:
        return list(record.networks)
    mode = record.host_config.network_mode
    if mode.startswith("container:"):
        return []
    return ["bridge" if mode in ("", "default") else mode]


# ---------------------------------------------------------------- filters


def _regex_match(pattern: str, value: str) -> bool:
    try:
        return re.search(pattern, value) is not None
    except re.error:
        return pattern in value


class NetworkFilters(msgspec.Struct, frozen=True):
    pairs: tuple[tuple[str, str], ...] = ()

    @classmethod
    def parse(cls, words: Sequence[str]) -> NetworkFilters:
        pairs = []
        for word in words:
            key, eq, value = word.partition("=")
            key = key.strip().lower()
            if not eq:
                raise InvalidArgument(f"bad format of filter (expected name=value): {word}")
            if key not in _FILTER_KEYS:
                raise InvalidArgument(f"Invalid filter '{key}'")
            if key == "type" and value not in ("custom", "builtin"):
                raise InvalidArgument(f"invalid filter: 'type'='{value}'")
            if key == "dangling" and value.lower() not in ("true", "false", "1", "0"):
                raise InvalidArgument(f"invalid filter 'dangling={value}'")
            pairs.append((key, value))
        return cls(tuple(pairs))

    def values(self, key: str) -> list[str]:
        return [v for k, v in self.pairs if k == key]

    def match(self, net: Network, in_use: bool) -> bool:
        from cargohold.engine.prune_filters import label_match

        checks: dict[str, Any] = {
            "driver": lambda v: net.driver == v,
            "id": lambda v: net.id.startswith(v) or _regex_match(v, net.id),
            "name": lambda v: _regex_match(v, net.name),
            "scope": lambda v: v == "local",
            "type": lambda v: (net.name in PREDEFINED) == (v == "builtin"),
            "dangling": lambda v: in_use != (v.lower() in ("true", "1")),
            "label": lambda v: label_match(net.labels, v),
        }
        for key, check in checks.items():
            values = self.values(key)
            if key == "label":
                if not all(check(v) for v in values):
                    return False
            elif values and not any(check(v) for v in values):
                return False
        return True


# ---------------------------------------------------------------- the service


class NetworkService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = engine.network_store

    @property
    def backend(self) -> BridgeBackend:
        from cargohold.network.bridge import BridgeBackend

        return BridgeBackend(self.store)

    # ---- lookups -------------------------------------------------------------------------
    def get(self, name: str) -> Network:
        """The network named ``name`` (or id / unique id prefix); "No such network: x"."""
        try:
            return self.store.get(name)
        except NotFound:
            raise no_such_network(name) from None

    def users(self, net: Network) -> list[str]:
        """Ids of the containers (any state) that belong to ``net`` or hold a lease on it."""
        containers = self.engine.container_store
        users: list[str] = []
        for record in containers.list():
            if any(_names_network(n, net) for n in container_networks(record)):
                users.append(record.id)
        if net.driver == "bridge" and net.subnet:
            for lease in self.store.leases(net).leases():
                if lease.container_id not in users and containers.dir(lease.container_id).is_dir():
                    users.append(lease.container_id)
        return users

    def ls(self, filters: Sequence[str] = ()) -> list[Network]:
        parsed = NetworkFilters.parse(filters)
        nets = self.store.all()
        if not parsed.pairs:
            return nets
        need_use = bool(parsed.values("dangling"))
        return [n for n in nets if parsed.match(n, bool(need_use and self.users(n)))]

    def inspect(self, name: str) -> dict[str, Any]:
        net = self.get(name)
        doc = net.to_json()
        doc["Containers"] = self.endpoints(net)
        return doc

    def endpoints(self, net: Network) -> dict[str, dict[str, str]]:
        """Docker's ``Containers`` of ``network inspect``: the live endpoints (running
        containers holding a lease), by container id."""
        if net.driver != "bridge" or not net.subnet:
            return {}
        from cargohold.network.bridge import mac_from_ip

        containers = self.engine.container_store
        prefix = net.subnet.partition("/")[2]
        out: dict[str, dict[str, str]] = {}
        for lease in self.store.leases(net).leases():
            cid = lease.container_id
            try:
                record = containers.load(cid)
            except (FileNotFoundError, NotFound):
                continue
            ep = record.networks.get(net.name)
            mac = ep.mac_address if ep is not None else ""
            out[cid] = {
                "Name": record.name,
                "EndpointID": endpoint_id(cid, net.id),
                "MacAddress": mac or mac_from_ip(lease.ip),
                "IPv4Address": f"{lease.ip}/{prefix}",
                "IPv6Address": "",
            }
        return dict(sorted(out.items()))

    # ---- create / remove -----------------------------------------------------------------
    def create(self, request: NetworkCreateRequest) -> Network:
        """``POST /networks/create``: a bridge network record (the bridge itself is made on
        first attach).  One IPv4 pool at most; no IPv6, no ip-range."""
        if request.enable_ipv6:
            raise InvalidArgument("IPv6 networks are not supported")
        pools = request.ipam.config if request.ipam is not None else ()
        if any(p.ip_range for p in pools):
            raise InvalidArgument("--ip-range is not supported")
        if len(pools) > 1:
            raise InvalidArgument("only one --subnet per network is supported")
        if any(p.gateway and not p.subnet for p in pools):
            raise InvalidArgument("every ip-range or gateway must have a corresponding subnet")
        if request.driver == "null":
            raise Forbidden('only one instance of "null" network is allowed')
        pool = pools[0] if pools else None
        net = self.store.create(
            request.name,
            driver=request.driver,
            subnet=(pool.subnet or None) if pool else None,
            gateway=(pool.gateway or None) if pool else None,
            internal=request.internal,
            labels=request.labels,
            options=request.options,
        )
        self._event(net, "create")
        return net

    def _event(self, net: Network, action: str, container: str = "") -> None:
        from cargohold.container.events import network_event

        network_event(self.engine.settings.runroot, net, action, container)

    def remove(self, name: str) -> Network:
        """Remove one network: predefined ones and networks in use are refused."""
        net = self.get(name)
        if net.name in PREDEFINED:
            raise Forbidden(f"{net.name} is a pre-defined network and cannot be removed")
        with self.store.lock:
            users = self.users(net)
            if users:
                raise Forbidden(
                    "error while removing network: network "
                    f"{net.name} id {net.id} has active endpoints"
                )
            self.store.remove(net.id)
        self._teardown(net)
        self._event(net, "destroy")
        return net

    def _teardown(self, net: Network) -> None:
        """Bridge, rules, leases and hosts registry of a removed network.  Nothing was set
        up in the kernel unless its bridge exists (it is made by the first attach)."""
        if net.driver != "bridge":
            return
        from cargohold.network.bridge import SYS_NET

        if net.bridge and (SYS_NET / net.bridge).exists():
            self.backend.remove_network(net)
        elif net.subnet:
            self.store.leases(net).destroy()
        hosts_dir = self.store.root / "networks" / "hosts"
        for suffix in (".json", ".lock"):
            (hosts_dir / f"{net.id}{suffix}").unlink(missing_ok=True)

    def prune(self, filters: Sequence[str] = ()) -> list[str]:
        """Remove every unused custom network matching ``filters`` (label, label!, until)."""
        from cargohold.engine.prune_filters import PruneFilters, created_seconds

        wanted = PruneFilters.parse(filters)
        deleted: list[str] = []
        for net in self.store.all():
            if net.name in PREDEFINED or not wanted.match(net.labels, created_seconds(net.created)):
                continue
            try:
                self.remove(net.id)
            except (Forbidden, NotFound):
                continue
            deleted.append(net.name)
        from cargohold.container.events import prune_event

        prune_event(self.engine.settings.runroot, "network", 0)  # moby reports 0 reclaimed
        return deleted

    # ---- connect / disconnect ------------------------------------------------------------
    def connect(
        self, network: str, container: str, endpoint: EndpointSettings | None = None
    ) -> None:
        """``POST /networks/{id}/connect``: record the network for the container, and
        attach it now when the container is running (otherwise ``start`` attaches it)."""
        aliases = endpoint.aliases if endpoint else ()
        ip = endpoint.ipv4_address if endpoint else ""
        if aliases:
            from cargohold.network.hosts import validate_alias

            for alias in aliases:  # each one is written into the members' hosts files
                validate_alias(alias)
        if ip:
            import ipaddress

            try:
                ipaddress.IPv4Address(ip)
            except ValueError:
                raise InvalidArgument(f"invalid IPv4 address: {ip}") from None
        containers = self.engine.container_store
        record = containers.get(container)
        net = self.store.get(network)  # "network x not found", as the daemon says
        self._check_connectable(record, net)
        if any(_names_network(n, net) for n in container_networks(record)):
            raise Forbidden(f"endpoint with name {record.name} already exists in network "
                            f"{net.name}")  # fmt: skip
        if (aliases or ip) and net.is_default_bridge:
            if ip:
                raise InvalidArgument("user specified IP address is supported on user defined "
                                      "networks only")  # fmt: skip
            raise InvalidArgument("network-scoped alias is supported only for containers in "
                                  "user defined networks")  # fmt: skip
        if not record.networks:  # make the implicit NetworkMode network explicit first
            for name in container_networks(record):
                with _suppress_missing():
                    record_endpoint(containers, record.id, self.store.get(name))
        attachment = None
        if self._running(record.id):
            attachment = self._attach_running(record, net, aliases, ip)
        try:
            record_endpoint(containers, record.id, net, aliases=aliases, ip=ip)
        except BaseException:
            if attachment is not None:
                self._detach_running(record.id, net)
            raise
        if attachment is not None:  # moby: an event when a running container joins
            self._event(net, "connect", record.id)

    def disconnect(self, network: str, container: str, *, force: bool = False) -> None:
        """``network disconnect``: detach a running container and drop the network from its
        record.  ``force`` also forgets a network that no longer exists."""
        containers = self.engine.container_store
        record = containers.get(container)
        try:
            net = self.store.get(network)
        except NotFound:
            if not force or network not in record.networks:
                raise
            forget_endpoint(containers, record.id, network)
            return
        if net.driver == "host" or record.host_config.network_mode == "host":
            raise Forbidden("container cannot be disconnected from host network or connected "
                            "to host network")  # fmt: skip
        names = [n for n in container_networks(record) if _names_network(n, net)]
        self._running(record.id)  # a container whose monitor died is cleaned up first
        leased = bool(net.subnet) and self.store.leases(net).lookup(record.id) is not None
        if not names and not leased:
            raise Forbidden(f"container {record.id} is not connected to network {net.name}")
        if not record.networks:
            for name in container_networks(record):
                with _suppress_missing():
                    record_endpoint(containers, record.id, self.store.get(name))
        if leased:
            self._detach_running(record.id, net)
        forget_endpoint(containers, record.id, net)
        self._event(net, "disconnect", record.id)

    # ---- helpers -------------------------------------------------------------------------
    def _running(self, cid: str) -> bool:
        """Reconciled state: a container whose monitor died is marked exited (and its
        network torn down) before we look."""
        from cargohold.container.reconcile import reconcile

        store = self.engine.container_store
        state = reconcile(store, lambda: self.engine.runtime_for(store.get(cid)), cid)
        return state.status.value in ("running", "paused", "restarting")

    def _check_connectable(self, record: ContainerRecord, net: Network) -> None:
        mode = record.host_config.network_mode
        if net.driver == "host" or mode == "host":
            raise Forbidden("container cannot be disconnected from host network or connected "
                            "to host network")  # fmt: skip
        if net.driver == "null" or mode == "none":
            raise Forbidden("container cannot be connected to multiple networks with one of "
                            "the networks in private (none) mode")  # fmt: skip
        if mode.startswith("container:"):
            raise Forbidden("container sharing network namespace with another container or "
                            "host cannot be connected to any other network")  # fmt: skip

    def _attach_running(
        self, record: ContainerRecord, net: Network, aliases: Sequence[str], ip: str
    ) -> Attachment:
        """Attach a running container's namespace to ``net`` (next free ethN; the default
        route stays where it is), join its name resolution and add the endpoint to the
        container's live endpoints, which its teardown detaches when it stops."""
        from cargohold.engine.containers import network as cn
        from cargohold.network import netns

        containers = self.engine.container_store
        cid = record.id
        with _networks_lock(containers, cid):
            eps = cn.load_endpoints(containers, cid)
            netns_path = eps.sandbox_key or str(netns.NETNS_DIR / netns.netns_name(cid))
            if not os.path.exists(netns_path):
                raise Conflict(f"container {cid} has no network namespace to connect")
            used = {a.ifname for a in eps.networks.values()}
            ifname = next(f"eth{i}" for i in range(len(used) + 1) if f"eth{i}" not in used)
            attachment = self.backend.attach(
                cid, netns_path, net, ifname=ifname, ip=ip or None, aliases=tuple(aliases),
                default_route=not eps.networks,
            )  # fmt: skip
            try:
                self._join_hosts(record, net, attachment)
                networks = {**eps.networks, net.name: attachment}
                cn.save_endpoints(containers, cid, cn.Endpoints(netns_path, networks))
            except BaseException:
                self._detach_running(cid, net)
                raise
        return attachment

    def _join_hosts(self, record: ContainerRecord, net: Network, attachment: Attachment) -> None:
        hosts_path = self.engine.container_store.dir(record.id) / "hosts"
        if net.is_default_bridge or not hosts_path.exists():
            return
        self.backend.hosts.join(net.id, record.id, record.name, attachment.aliases,
                                attachment.ip, hosts_path)  # fmt: skip

    def _detach_running(self, cid: str, net: Network) -> None:
        """Detach ``net`` from a running container and drop it from its live endpoints."""
        from cargohold.engine.containers import network as cn
        from cargohold.network import netns

        containers = self.engine.container_store
        with _networks_lock(containers, cid):
            eps = cn.load_endpoints(containers, cid)
            netns_path = eps.sandbox_key or str(netns.NETNS_DIR / netns.netns_name(cid))
            self.backend.detach(cid, netns_path if os.path.exists(netns_path) else None, net)
            networks = {k: a for k, a in eps.networks.items() if a.network_id != net.id}
            if networks != eps.networks:
                cn.save_endpoints(containers, cid, cn.Endpoints(eps.sandbox_key, networks))


def _names_network(name: str, net: Network) -> bool:
    """Whether a container's network reference ``name`` (name, id or id prefix) is ``net``."""
    return name in (net.name, net.id) or (len(name) >= 12 and net.id.startswith(name))


class _suppress_missing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> bool:
        return isinstance(exc, NotFound | InvalidArgument)
