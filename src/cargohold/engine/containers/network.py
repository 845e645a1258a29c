"""A container's networking at start and stop: namespace, endpoints, published ports, links,
and its /etc/hosts, /etc/hostname and /etc/resolv.conf (files in the container's directory,
bind-mounted, as Docker does).

Modes: ``none`` (a new namespace; runc brings up lo), ``host`` (the host's namespace and
files), ``container:X`` (X's namespace and files), ``bridge``/NAME (a named namespace
``/run/netns/cargohold-<id12>`` with one veth per network).

Endpoints of a running container are kept in ``<root>/containers/<id>/endpoints.json``
(``container/endpoints.py``); the cleanup actions ``DetachNetworks`` and ``DeleteNetns``
(``container/cleanup.py``: the monitor carries them out on exit, reconciliation after a
crash) detach them and delete the namespace.  What a container *asked for* stays in the
record (``ContainerRecord.networks``).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from cargohold.container.endpoints import ENDPOINTS as ENDPOINTS  # re-exported for callers
from cargohold.container.endpoints import Endpoints as Endpoints
from cargohold.container.endpoints import load_endpoints as load_endpoints
from cargohold.container.endpoints import save_endpoints as save_endpoints
from cargohold.container.events import network_event
from cargohold.container.model import ContainerRecord, HostConfig, Status
from cargohold.errors import Conflict, InvalidArgument, NotFound
from cargohold.network.base import Attachment
from cargohold.network.ports import (
    PortBinding,
    PortSpec,
    format_port_command,
    format_ps_ports,
    parse_port_key,
    port_specs_of,
    publish_exposed,
)

if TYPE_CHECKING:
    from cargohold.container.records import ContainerStore
    from cargohold.container.spec import Mount
    from cargohold.engine import Engine
    from cargohold.network.hosts import HostEntry
    from cargohold.util.undo import Undo

LINKS_BLOCK = "links"


__all__ = [  # what clients render with, besides the functions of this module
    "PortBinding",
    "format_port_command",
    "format_ps_ports",
    "link_parts",
    "parse_port_key",
    "published",
]


def link_parts(raw: str) -> tuple[str, str]:
    """A ``--link`` value (``name[:alias]``) as (name, alias)."""
    from cargohold.network.links import parse_link

    spec = parse_link(raw)
    return spec.name, spec.alias


def mode_of(host: HostConfig) -> str:
    mode = host.network_mode or "default"
    return "bridge" if mode == "default" else mode


def uses_netns(mode: str) -> bool:
    return mode not in ("none", "host") and not mode.startswith("container:")


# ------------------------------------------------------------------------------ endpoints


def port_specs(record: ContainerRecord) -> list[PortSpec]:
    """The ports to publish: ``-p`` (from HostConfig.PortBindings) and, with ``-P``, every
    exposed port that is not published explicitly."""
    specs = port_specs_of(record.host_config.port_bindings)
    if record.host_config.publish_all_ports:
        specs += publish_exposed(record.config.exposed_ports, specs)
    return specs


def published(store: ContainerStore, cid: str) -> list[PortBinding]:
    return [b for a in load_endpoints(store, cid).networks.values() for b in a.ports]


# ------------------------------------------------------------------------------ setup


class NetSetup(msgspec.Struct):
    namespace: str  # for spec.with_namespaces(network=...)
    mounts: list[Mount]
    env: list[str]


def _files(store: ContainerStore, cid: str) -> tuple[Path, Path, Path]:
    d = store.dir(cid)
    return d / "hosts", d / "hostname", d / "resolv.conf"


def _etc_mounts(hosts: Path, hostname: Path, resolv: Path, readonly: bool) -> list[Mount]:
    from cargohold.container.spec import Mount

    return [
        Mount("bind", "/etc/resolv.conf", str(resolv), readonly=readonly),
        Mount("bind", "/etc/hostname", str(hostname), readonly=readonly),
        Mount("bind", "/etc/hosts", str(hosts), readonly=readonly),
    ]


def _extra_hosts(engine: Engine, record: ContainerRecord, gateway: str) -> list[HostEntry]:
    from cargohold.network.hosts import parse_add_host

    return [parse_add_host(h, gateway) for h in record.host_config.extra_hosts]


def setup(engine: Engine, record: ContainerRecord, undo: Undo) -> NetSetup:
    """Create the namespace and endpoints, write the /etc files; undo on failure is
    registered in ``undo``."""
    from cargohold.network import hosts as H

    store = engine.container_store
    cid = record.id
    mode = mode_of(record.host_config)
    hosts_p, hostname_p, resolv_p = _files(store, cid)
    hostname = record.config.hostname or cid[:12]
    env: list[str] = []
    if mode.startswith("container:"):
        other = store.get(mode.split(":", 1)[1])
        state = store.read_state(other.id)
        if state.status is not Status.RUNNING or not state.pid:
            raise Conflict(f"cannot join network of a non running container: {other.id}")
        o_hosts, o_hostname, o_resolv = _files(store, other.id)
        return NetSetup(
            f"/proc/{state.pid}/ns/net",
            _etc_mounts(o_hosts, o_hostname, o_resolv, False),
            env,
        )
    if mode == "host":
        try:
            base = Path("/etc/hosts").read_text()
        except OSError:
            base = H.DEFAULT_HOSTS
        extra = _extra_hosts(engine, record, "")
        H.write_in_place(hosts_p, base + "".join(e.line() for e in extra))
        H.write_in_place(hostname_p, H.build_hostname(hostname))
        H.write_in_place(resolv_p, _resolv(record, host_mode=True))
        return NetSetup("host", _etc_mounts(hosts_p, hostname_p, resolv_p, False), env)
    ip = None
    gateway = ""
    link_entries: list[HostEntry] = []
    if mode != "none":
        eps = _attach_all(engine, record, undo)
        primary = eps.networks.get(mode)
        if primary is not None:
            ip, gateway = primary.ip, primary.gateway
        link_entries, env = links_for(engine, record, mode)
    extra = _extra_hosts(engine, record, gateway)
    text = H.build_hosts(hostname, ip, domainname=record.config.domainname, extra=extra)
    text = H.replace_block(text, LINKS_BLOCK, [e.line() for e in link_entries])
    H.write_in_place(hosts_p, text)
    H.write_in_place(hostname_p, H.build_hostname(hostname))
    H.write_in_place(resolv_p, _resolv(record, host_mode=False))
    if mode != "none":
        _join_user_networks(engine, record, hosts_p)
        namespace = load_endpoints(store, cid).sandbox_key
    else:
        namespace = "new"
    return NetSetup(namespace, _etc_mounts(hosts_p, hostname_p, resolv_p, False), env)


def _resolv(record: ContainerRecord, host_mode: bool) -> str:
    from cargohold.network import hosts as H

    h = record.host_config
    if host_mode and not (h.dns or h.dns_search or h.dns_options):
        try:
            return Path("/etc/resolv.conf").read_text()
        except OSError:
            pass
    return H.build_resolv_conf(
        H.host_resolv_conf(), dns=h.dns, dns_search=h.dns_search, dns_options=h.dns_options
    )


def _ordered_networks(record: ContainerRecord) -> list[str]:
    mode = mode_of(record.host_config)
    names = [mode] + [n for n in record.networks if n != mode and uses_netns(n)]
    return names


def _attach_all(engine: Engine, record: ContainerRecord, undo: Undo) -> Endpoints:
    from cargohold.network import netns
    from cargohold.network.bridge import BridgeBackend

    store = engine.container_store
    cid = record.id
    name = netns.netns_name(cid)
    path = str(netns.create(name))
    undo.add(lambda: netns.delete(name))
    undo.add(lambda: (store.dir(cid) / ENDPOINTS).unlink(missing_ok=True))
    nstore = engine.network_store
    backend = BridgeBackend(nstore)
    attached: dict[str, Attachment] = {}
    ports = port_specs(record)
    for i, net_name in enumerate(_ordered_networks(record)):
        net = nstore.get(net_name)
        ep = record.networks.get(net_name) or record.networks.get(net.name)
        aliases: tuple[str, ...] = ()
        if not net.is_default_bridge:
            aliases = tuple(ep.aliases) if ep else ()
        att = backend.attach(
            cid,
            path,
            net,
            ifname=f"eth{i}",
            ip=(ep.ipv4_address if ep else "") or None,
            mac=(ep.mac_address if ep else "") or None,
            aliases=aliases,
            ports=ports if i == 0 else (),
            default_route=i == 0,
        )
        undo.add(functools.partial(backend.detach, cid, path, net, delete_link=False))
        attached[net.name] = att
        save_endpoints(store, cid, Endpoints(path, dict(attached)))
        network_event(engine.settings.runroot, net, "connect", cid)
    return Endpoints(path, attached)


def _join_user_networks(engine: Engine, record: ContainerRecord, hosts_p: Path) -> None:
    from cargohold.network.hosts import HostsRegistry

    eps = load_endpoints(engine.container_store, record.id)
    registry = HostsRegistry(engine.network_store.root)
    for name, att in eps.networks.items():
        if name == "bridge":
            continue  # the default bridge has no name resolution (Docker: only --link)
        registry.join(att.network_id, record.id, record.name, att.aliases, att.ip, hosts_p)


# ------------------------------------------------------------------------------ links


def links_for(
    engine: Engine, record: ContainerRecord, network: str, *, strict: bool = True
) -> tuple[list[HostEntry], list[str]]:
    """Hosts entries and environment of ``record``'s ``--link``s (targets must run)."""
    from cargohold.network.links import LinkTarget, links_for, parse_link

    store = engine.container_store
    pairs = []
    for raw in record.host_config.links:
        spec = parse_link(raw)
        try:
            target = store.get(spec.name)
        except NotFound:
            if strict:
                raise
            continue
        state = store.read_state(target.id)
        att = load_endpoints(store, target.id).networks.get(network)
        if not state.running or att is None or not att.ip:
            if not strict:
                continue
            if not state.running:
                raise Conflict(
                    f"Cannot link to a non running container: /{target.name} AS "
                    f"/{record.name}/{spec.alias}"
                )
            raise InvalidArgument(
                f"Cannot link to /{target.name}, as it does not belong to the default network"
            )
        pairs.append(
            (
                spec,
                LinkTarget(
                    name=target.name,
                    hostname=target.config.hostname,
                    ip=att.ip,
                    env=target.config.env,
                    exposed=tuple(sorted(target.config.exposed_ports)),
                ),
            )
        )
    return links_for(record.name, pairs)


def refresh_links(engine: Engine, target: ContainerRecord) -> None:
    """After ``target`` (re)started: rewrite the link entries of running containers that link
    to it (its address may have changed)."""
    store = engine.container_store
    for cid in store.ids():  # only containers with links are decoded (one small read each)
        if cid == target.id:
            continue
        raw_links = store.links_of(cid)
        if not raw_links:
            continue
        from cargohold.network.hosts import rewrite_block
        from cargohold.network.links import parse_link

        if not any(parse_link(raw).name == target.name for raw in raw_links):
            continue
        try:
            if not store.read_state(cid).running:
                continue
            rec = store.load(cid)
        except (NotFound, FileNotFoundError):
            continue
        entries, _ = links_for(engine, rec, mode_of(rec.host_config), strict=False)
        rewrite_block(_files(store, rec.id)[0], LINKS_BLOCK, [e.line() for e in entries])


# ------------------------------------------------------------------------------ inspect


def endpoint_id(cid: str, network_id: str) -> str:
    import hashlib

    return hashlib.sha256(f"endpoint/{cid}/{network_id}".encode()).hexdigest()


def network_settings(engine: Engine, record: ContainerRecord, running: bool) -> dict[str, Any]:
    """Docker's ``NetworkSettings`` for inspect."""
    from cargohold.network.ports import inspect_ports

    eps = load_endpoints(engine.container_store, record.id) if running else Endpoints()
    networks: dict[str, Any] = {}
    names = list(dict.fromkeys([*record.networks, *eps.networks]))
    for name in names:
        ep = record.networks.get(name)
        att = eps.networks.get(name)
        net_id = att.network_id if att else _network_id(engine, name)
        networks[name] = {
            "IPAMConfig": {"IPv4Address": ep.ipv4_address} if ep and ep.ipv4_address else None,
            "Links": list(ep.links) if ep and ep.links else None,
            "Aliases": (list(att.aliases) if att and att.aliases else None)
            or (list(ep.aliases) if ep and ep.aliases else None),
            "NetworkID": net_id,
            "EndpointID": endpoint_id(record.id, net_id) if att else "",
            "Gateway": att.gateway if att else "",
            "IPAddress": att.ip if att else "",
            "IPPrefixLen": att.prefixlen if att else 0,
            "IPv6Gateway": "",
            "GlobalIPv6Address": "",
            "GlobalIPv6PrefixLen": 0,
            "MacAddress": att.mac if att else "",
            "DriverOpts": None,
        }
    bindings = [b for a in eps.networks.values() for b in a.ports]
    ports = inspect_ports(bindings, sorted(record.config.exposed_ports)) if running else {}
    default = networks.get("bridge") if mode_of(record.host_config) == "bridge" else None
    top = default or {}
    import hashlib

    return {
        "Bridge": "",
        "SandboxID": hashlib.sha256(eps.sandbox_key.encode()).hexdigest()
        if eps.sandbox_key
        else "",
        "HairpinMode": False,
        "LinkLocalIPv6Address": "",
        "LinkLocalIPv6PrefixLen": 0,
        "Ports": ports,
        "SandboxKey": eps.sandbox_key,
        "SecondaryIPAddresses": None,
        "SecondaryIPv6Addresses": None,
        "EndpointID": top.get("EndpointID", ""),
        "Gateway": top.get("Gateway", ""),
        "GlobalIPv6Address": "",
        "GlobalIPv6PrefixLen": 0,
        "IPAddress": top.get("IPAddress", ""),
        "IPPrefixLen": top.get("IPPrefixLen", 0),
        "IPv6Gateway": "",
        "MacAddress": top.get("MacAddress", ""),
        "Networks": networks,
    }


def _network_id(engine: Engine, name: str) -> str:
    try:
        return engine.network_store.get(name).id
    except (NotFound, InvalidArgument):
        return ""


def hosts_paths(engine: Engine, record: ContainerRecord) -> tuple[str, str, str]:
    """(ResolvConfPath, HostnamePath, HostsPath) for inspect."""
    store = engine.container_store
    mode = mode_of(record.host_config)
    cid = record.id
    if mode.startswith("container:"):
        with _suppress_not_found():
            cid = store.resolve(mode.split(":", 1)[1])
    hosts, hostname, resolv = _files(store, cid)
    return str(resolv), str(hostname), str(hosts)


class _suppress_not_found:
    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: object, exc: object, tb: object) -> bool:
        return isinstance(exc, NotFound)
