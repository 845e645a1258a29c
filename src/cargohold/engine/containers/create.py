"""``create``: check a
:class:`~cargohold.engine.containers.requests.ContainerCreateRequest` as Docker's daemon does
(:func:`check_request`, before anything exists), merge it with the image config and store a
new container with its rw layer and volumes, undoing every step when one fails.

Docker's merge rules: run arguments replace the image's CMD; ``--entrypoint`` replaces the
ENTRYPOINT and resets CMD (unless arguments are given); Env entries of the run override the
image's by key; WorkingDir, User, StopSignal come from the image unless given; ExposedPorts and
Volumes are unions; a requested Healthcheck overrides the image's field by field and
``{"Test": ["NONE"]}`` (``--no-healthcheck``) disables it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from cargohold.container.model import (
    ContainerConfig,
    ContainerRecord,
    EndpointSettings,
    HealthcheckConfig,
    HostConfig,
    now_ns,
)
from cargohold.errors import Conflict, InvalidArgument, NotFound
from cargohold.util.undo import Undo

if TYPE_CHECKING:
    from cargohold.engine import Engine
    from cargohold.engine.containers.requests import ContainerCreateRequest
    from cargohold.engine.messages import MessageSink
    from cargohold.network.ports import PortSpec
    from cargohold.store.images import ImageRecord
    from cargohold.volume.mounts import MountSpec

PULL_POLICIES = ("missing", "always", "never")


def _env_key(item: str) -> str:
    return item.split("=", 1)[0]


def merge_env(image_env: list[str], run_env: tuple[str, ...]) -> tuple[str, ...]:
    out = list(image_env)
    for item in run_env:
        key = _env_key(item)
        out = [e for e in out if _env_key(e) != key]
        out.append(item)
    return tuple(out)


def _duration(value: Any) -> int:
    return int(value or 0)


def image_healthcheck(cfg: Mapping[str, Any]) -> HealthcheckConfig | None:
    hc = cfg.get("Healthcheck")
    if not hc:
        return None
    return HealthcheckConfig(
        test=tuple(hc.get("Test") or ()),
        interval=_duration(hc.get("Interval")),
        timeout=_duration(hc.get("Timeout")),
        start_period=_duration(hc.get("StartPeriod")),
        start_interval=_duration(hc.get("StartInterval")),
        retries=int(hc.get("Retries") or 0),
    )


def _reset_entrypoint(entrypoint: tuple[str, ...]) -> bool:
    return entrypoint in ((), ("",))


def merge_config(
    request: ContainerCreateRequest, image_cfg: Mapping[str, Any], exposed_extra: frozenset[str]
) -> ContainerConfig:
    """The container's Config from the request over the image's config section."""
    run = request.config
    command = run.cmd or ()
    if run.entrypoint is not None:
        entrypoint = None if _reset_entrypoint(run.entrypoint) else run.entrypoint
        cmd: tuple[str, ...] | None = command or None
    else:
        entrypoint = tuple(image_cfg.get("Entrypoint") or ()) or None
        cmd = command or tuple(image_cfg.get("Cmd") or ()) or None
    if run.healthcheck is not None and run.healthcheck.test == ("NONE",):
        hc: HealthcheckConfig | None = HealthcheckConfig(test=("NONE",))
    else:
        image_hc = image_healthcheck(image_cfg)
        hc = None
        if image_hc or run.healthcheck:
            from cargohold.container import health

            hc = health.merge(image_hc, run.healthcheck)
    labels = dict(image_cfg.get("Labels") or {})
    labels.update(run.labels)
    return msgspec.structs.replace(
        run,
        env=merge_env(list(image_cfg.get("Env") or ()), run.env),
        cmd=cmd,
        entrypoint=entrypoint,
        working_dir=run.working_dir or str(image_cfg.get("WorkingDir") or ""),
        user=run.user or str(image_cfg.get("User") or ""),
        exposed_ports=frozenset(image_cfg.get("ExposedPorts") or ())
        | run.exposed_ports
        | exposed_extra,
        volumes=frozenset(image_cfg.get("Volumes") or ()) | run.volumes,
        healthcheck=hc,
        labels=labels,
        stop_signal=run.stop_signal or str(image_cfg.get("StopSignal") or ""),
    )


class Checked(msgspec.Struct, frozen=True):
    """What :func:`check_request` derived from a valid request."""

    mode: str  # the primary network ("bridge" for the default one)
    endpoint: EndpointSettings  # its endpoint settings
    extra_networks: dict[str, EndpointSettings]  # more networks to join (API 1.44)
    publish: tuple[PortSpec, ...]
    mounts: tuple[MountSpec, ...]


def check_request(request: ContainerCreateRequest, name: str = "") -> Checked:
    """What moby's create refuses before anything exists, with its wording: the name, the
    Config (environment, stop signal, working directory, health check, exposed ports), the
    HostConfig (restart policy, ports, mounts, links, capabilities, memory and CPUs) and the
    endpoint settings; every value written into the container's hosts, hostname or
    resolv.conf file is checked too, so that none of them can add a line or a field."""
    if name:
        from cargohold.container.records import validate_name

        validate_name(name)
    cfg, host = request.config, request.host_config
    _check_config(cfg)
    _check_host(host)
    mode, endpoint, extra = _networks(request)
    publish = _check_ports(cfg, host)
    _check_resolver(cfg, host, endpoint)
    _check_network_options(mode, endpoint, host, cfg, publish)
    from cargohold.engine.containers.volumes import request_mounts

    return Checked(mode, endpoint, extra, publish, request_mounts(host))


def _check_config(cfg: ContainerConfig) -> None:
    if cfg.stop_signal:
        from cargohold.container.signals import parse_signal

        parse_signal(cfg.stop_signal)
    for item in cfg.env:  # moby's ValidateEnv
        if not item.partition("=")[0]:
            raise InvalidArgument(f"invalid environment variable: {item}")
    if cfg.working_dir and not cfg.working_dir.startswith("/"):
        raise InvalidArgument(
            f"the working directory '{cfg.working_dir}' is invalid, it needs to be an "
            "absolute path"
        )
    if cfg.healthcheck is not None:
        _check_healthcheck(cfg.healthcheck)
    if cfg.stop_timeout is not None and cfg.stop_timeout < -1:
        raise InvalidArgument(f"invalid stop timeout: {cfg.stop_timeout}")


def _check_healthcheck(hc: HealthcheckConfig) -> None:
    """moby's validateHealthCheck: durations of at least 1ms (0 = the default)."""
    for label, value in (("Interval", hc.interval), ("Timeout", hc.timeout),
                         ("StartPeriod", hc.start_period), ("StartInterval", hc.start_interval)):
        if value != 0 and value < 1_000_000:
            raise InvalidArgument(f"{label} in Healthcheck cannot be less than 1ms")
    if hc.retries < 0:
        raise InvalidArgument("Retries in Healthcheck cannot be negative")


def _check_host(host: HostConfig) -> None:
    host.restart_policy.validate()
    if host.auto_remove and not host.restart_policy.is_none:
        raise InvalidArgument("can't create 'AutoRemove' container with restart policy")
    if host.memory or host.memory_swap or host.memory_reservation or host.nano_cpus:
        import os

        from cargohold.engine.containers.update import check_memory, check_nano_cpus

        check_memory(host)
        check_nano_cpus(host, os.cpu_count() or 1)
    if host.cap_add or host.cap_drop:
        from cargohold.container.spec_security import normalize_capability

        for cap in (*host.cap_add, *host.cap_drop):
            normalize_capability(cap)
    if host.log_config.type not in ("", "json-file"):
        raise InvalidArgument(
            f"logging driver {host.log_config.type!r} is not supported (only json-file)"
        )


def _check_ports(cfg: ContainerConfig, host: HostConfig) -> tuple[PortSpec, ...]:
    """ExposedPorts keys and PortBindings as the daemon checks them (nat.ParsePort, the host
    IP and port of every binding); the port specs to publish."""
    if not (cfg.exposed_ports or host.port_bindings):
        return ()
    from cargohold.network.ports import parse_port_key, port_specs_of

    for key in cfg.exposed_ports:
        parse_port_key(key)
    return tuple(port_specs_of(host.port_bindings))


def _networks(
    request: ContainerCreateRequest,
) -> tuple[str, EndpointSettings, dict[str, EndpointSettings]]:
    """The primary network (HostConfig.NetworkMode), its EndpointsConfig entry and any other
    network the request names."""
    mode = request.host_config.network_mode or "bridge"
    if mode == "default":
        mode = "bridge"
    endpoints = dict(request.networking_config.endpoints_config)
    endpoint = endpoints.pop(mode, None)
    if endpoint is None:
        endpoint = endpoints.pop("default" if mode == "bridge" else mode, EndpointSettings())
    special = mode in ("host", "none") or mode.startswith("container:")
    if endpoints and special:
        raise InvalidArgument(
            "Container cannot be connected to network endpoints: "
            + ", ".join([mode, *endpoints])
        )
    for ep in (endpoint, *endpoints.values()):
        _check_endpoint(ep)
    return mode, endpoint, endpoints


def _check_endpoint(ep: EndpointSettings) -> None:
    if ep.ipv4_address:
        import ipaddress

        try:
            ipaddress.IPv4Address(ep.ipv4_address)
        except ValueError:
            raise InvalidArgument(f"invalid IPv4 address: {ep.ipv4_address}") from None
    if ep.mac_address:
        import re

        if not re.fullmatch(r"([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}", ep.mac_address):
            raise InvalidArgument(f"{ep.mac_address} is not a valid mac address")


def _check_resolver(cfg: ContainerConfig, host: HostConfig, endpoint: EndpointSettings) -> None:
    if not (cfg.hostname or cfg.domainname or host.dns or host.dns_search or host.dns_options
            or host.extra_hosts or host.links or endpoint.aliases):
        return
    from cargohold.network import hosts as H
    from cargohold.network.links import parse_link

    H.validate_hostname(cfg.hostname)
    H.validate_hostname(cfg.domainname, "domainname")
    for server in host.dns:
        H.parse_ip(server)
    for domain in host.dns_search:
        H.validate_dns_search(domain)
    for option in host.dns_options:
        H.validate_dns_option(option)
    for extra in host.extra_hosts:
        H.check_add_host(extra)
    for alias in endpoint.aliases:
        H.validate_alias(alias)
    for link in host.links:
        parse_link(link)


def _image_section(engine: Engine, image: ImageRecord) -> dict[str, Any]:
    """The image's ``config`` object (checked by ``ImageService.config`` when it was stored
    unchecked, so a bad one fails before anything exists)."""
    return engine.images.config(image).get("config") or {}  # type: ignore[no-any-return]


def _find_image(engine: Engine, image: str, pull: str,
                pull_events: MessageSink | None = None) -> ImageRecord:
    """The image per the pull policy (missing|always|never); pulls go through the registry
    and report to the create call's own ``pull_events``."""
    policy = pull or "missing"
    if policy in ("missing", "never"):
        with contextlib.suppress(NotFound):
            return engine.images.resolve(image)
    from cargohold.engine.messages import discard

    return engine.registry.ensure(image, policy, pull_events or discard)  # or Docker's error


def _check_network_options(mode: str, endpoint: EndpointSettings, host: HostConfig,
                           cfg: ContainerConfig, publish: tuple[PortSpec, ...]) -> None:
    special = mode in ("host", "none") or mode.startswith("container:")
    if special:
        if (publish or host.publish_all_ports) and mode != "host":
            raise InvalidArgument(
                "conflicting options: port publishing and the container type network mode"
            )
        if host.links and mode != "host":
            raise InvalidArgument("conflicting options: container type network can't use links")
        if mode.startswith("container:") and (host.dns or host.extra_hosts or cfg.hostname):
            raise InvalidArgument(
                "conflicting options: dns, add-host and hostname cannot be used with a "
                "container network"
            )
    if (endpoint.ipv4_address or endpoint.aliases) and mode in ("bridge", "host", "none"):
        if endpoint.ipv4_address:
            raise InvalidArgument(
                "user specified IP address is supported on user defined networks only"
            )
        raise InvalidArgument(
            "network-scoped alias is supported only for containers in user defined networks"
        )


def check_host_options(engine: Engine, host: HostConfig) -> str:
    """Refuse bad --security-opt values, a requested AppArmor profile that is not loaded and
    an unknown or missing runtime before anything is made; the runtime name to record."""
    from cargohold.runtime.choice import record_name, resolve

    create_warnings(host)  # raises for a profile that AppArmor has not loaded
    name = host.runtime or engine.settings.runtime or "runc"
    resolve(name, engine.settings.runtimes)
    return record_name(name)


def create_warnings(host: HostConfig) -> list[str]:
    """What ``create``/``run`` tell the user on stderr (Docker's create ``Warnings``); raises
    for bad --security-opt values and for an AppArmor profile that is not loaded."""
    from cargohold.engine.containers.start import security_options

    requested = security_options(host.security_opt).apparmor
    if not requested:
        return []
    from cargohold.container.apparmor import check_requested

    return check_requested(requested)


def create_container(
    engine: Engine,
    request: ContainerCreateRequest,
    *,
    name: str = "",
    platform: str = "",
    pull: str = "missing",
    checked: Checked | None = None,
    pull_events: MessageSink | None = None,
) -> ContainerRecord:
    """Check, then store the record, rw layer and volumes (all undone on failure).
    ``checked``: what :func:`check_request` already returned for this request.
    ``platform`` is accepted and not used: a store holds one platform's images."""
    from cargohold.engine.containers import volumes as vols

    if pull not in PULL_POLICIES:
        raise InvalidArgument(f"invalid pull option: '{pull}': must be one of "
                              '"always", "missing" or "never"')
    ok = checked or check_request(request, name)
    runtime = check_host_options(engine, request.host_config)
    store = engine.container_store
    if name:  # fail early (nothing created yet); add() re-checks under its lock
        from cargohold.container.records import conflict_message

        owner = store.names().get(name.lstrip("/"))
        if owner is not None:
            raise Conflict(conflict_message(name.lstrip("/"), owner))
    image = _find_image(engine, request.image, pull, pull_events)
    config = merge_config(request, _image_section(engine, image),
                          frozenset(s.key for s in ok.publish))  # fmt: skip
    if not (config.entrypoint or config.cmd):
        raise InvalidArgument("No command specified")
    _check_references(engine, ok.mode, ok.extra_networks, request.host_config)
    record = _new_record(engine, request, name, ok, config, image.id, runtime)
    cid, undo = record.id, Undo()
    try:
        engine.layers.create_rw(cid, image.top_layer)
        undo.add(lambda: engine.layers.remove_rw(cid))
        mounts = vols.resolve_mounts(engine, cid, ok.mounts, record.host_config.volumes_from,
                                     record.config, undo)  # fmt: skip
        anon = frozenset(m.destination for m in mounts if m.anonymous)
        cfg = record.config
        record = msgspec.structs.replace(
            record, mount_points=mounts,
            config=msgspec.structs.replace(cfg, volumes=cfg.volumes | anon))  # fmt: skip
        record = store.add(record)  # Conflict when another create took the name meanwhile
    except BaseException:
        undo.run()
        raise
    return record


def _new_record(engine: Engine, request: ContainerCreateRequest, name: str, ok: Checked,
                config: ContainerConfig, image_id: str, runtime: str) -> ContainerRecord:
    """The record of a new container: the request's HostConfig as stored (normalised port
    bindings, the runtime's name, json-file logs), its networks and a hostname."""
    from cargohold.util.ids import random_id

    cid, mode = random_id(), ok.mode
    host = msgspec.structs.replace(
        request.host_config,
        network_mode=mode if mode != "bridge" or request.host_config.network_mode else "default",
        port_bindings=_port_bindings(ok.publish),
        runtime=runtime,
        log_config=msgspec.structs.replace(request.host_config.log_config, type="json-file"),
    )
    networks: dict[str, EndpointSettings] = {}
    endpoint = msgspec.structs.replace(ok.endpoint, mac_address=ok.endpoint.mac_address.lower())
    if mode not in ("none", "host") and not mode.startswith("container:"):
        networks[mode] = endpoint
        networks.update(ok.extra_networks)
    elif mode in ("none", "host"):
        networks[mode] = EndpointSettings()
    if not config.hostname:
        import os

        hostname = os.uname().nodename if mode == "host" else cid[:12]
        config = msgspec.structs.replace(config, hostname=hostname)
    argv = [*(config.entrypoint or ()), *(config.cmd or ())]
    return ContainerRecord(
        id=cid,
        name=name.lstrip("/"),
        created=now_ns(),
        image_id=image_id,
        path=argv[0],
        args=tuple(argv[1:]),
        config=config,
        host_config=host,
        driver=engine.driver.name,
        layer_id=cid,
        networks=networks,
    )


def _check_references(engine: Engine, mode: str, extra: Mapping[str, EndpointSettings],
                      host: HostConfig) -> None:
    """The networks, the container whose network it joins and the linked containers must
    exist (NotFound with Docker's words)."""
    if mode not in ("host", "none", "bridge") and not mode.startswith("container:"):
        engine.network_store.get(mode)  # NotFound "network x not found"
    elif mode.startswith("container:"):
        engine.container_store.get(mode.split(":", 1)[1])
    for other in extra:
        if other not in ("bridge", "default"):
            engine.network_store.get(other)
    for link in host.links:
        from cargohold.network.links import parse_link

        target = parse_link(link)
        try:
            engine.container_store.get(target.name)
        except NotFound:
            raise NotFound(f"Could not get container for {target.name}") from None


def _port_bindings(specs: tuple[PortSpec, ...]) -> dict[str, Any]:
    if not specs:
        return {}
    from cargohold.container.model import PortBinding
    from cargohold.network.ports import host_config_port_bindings

    raw = host_config_port_bindings(specs)
    return {
        key: tuple(PortBinding(b["HostIp"], b["HostPort"]) for b in items)
        for key, items in raw.items()
    }
