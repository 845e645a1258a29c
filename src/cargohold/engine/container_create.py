"""``create``: merge the run options with the image config (as Docker does) and store a new
container with its rw layer and volumes, undoing every step when one fails.

Docker's merge rules: run arguments replace the image's CMD; ``--entrypoint`` replaces the
ENTRYPOINT and resets CMD (unless arguments are given); Env entries of the run override the
image's by key; WorkingDir, User, StopSignal come from the image unless given; ExposedPorts and
Volumes are unions; ``--health-*`` flags override the image's HEALTHCHECK field by field and
``--no-healthcheck`` disables it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
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

if TYPE_CHECKING:
    from cargohold.engine import Engine
    from cargohold.engine.messages import MessageSink
    from cargohold.network.ports import PortSpec
    from cargohold.store.images import ImageRecord
    from cargohold.volume.mounts import MountSpec


class CreateOptions(msgspec.Struct, frozen=True):
    """Everything ``create``/``run`` flags asked for, already parsed.

    ``config`` holds the run-level Config fields (unset ones are taken from the image);
    ``config.entrypoint`` None means "the image's", ``()`` means ``--entrypoint ""``.
    """

    image: str
    command: tuple[str, ...] = ()
    name: str = ""
    config: ContainerConfig = msgspec.field(default_factory=ContainerConfig)
    host_config: HostConfig = msgspec.field(default_factory=HostConfig)
    mounts: tuple[MountSpec, ...] = ()
    publish: tuple[PortSpec, ...] = ()
    endpoint: EndpointSettings = msgspec.field(default_factory=EndpointSettings)
    no_healthcheck: bool = False
    pull: str = "missing"


class Undo:
    """Steps to revert, run in reverse order when the block fails."""

    def __init__(self) -> None:
        self.steps: list[Callable[[], object]] = []

    def add(self, step: Callable[[], object]) -> None:
        self.steps.append(step)

    def run(self) -> None:
        for step in reversed(self.steps):
            with contextlib.suppress(Exception):
                step()
        self.steps.clear()


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


def merge_config(
    opts: CreateOptions, image_cfg: Mapping[str, Any], exposed_extra: frozenset[str]
) -> ContainerConfig:
    """The container's Config from the run options over the image's config section."""
    run = opts.config
    if run.entrypoint is not None:
        entrypoint: tuple[str, ...] | None = run.entrypoint or None
        cmd: tuple[str, ...] | None = opts.command or None
    else:
        entrypoint = tuple(image_cfg.get("Entrypoint") or ()) or None
        cmd = opts.command or tuple(image_cfg.get("Cmd") or ()) or None
    if opts.no_healthcheck:
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
        image=opts.image,
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


def check_request(opts: CreateOptions) -> None:
    """What moby refuses in a create request before anything exists (an unknown stop signal,
    an unnamed environment variable, a hostname over 64 bytes), and every value that is
    written into the container's hosts, hostname or resolv.conf file, so that none of them
    can add a line or a field."""
    cfg, host = opts.config, opts.host_config
    if cfg.stop_signal:
        from cargohold.container.signals import parse_signal

        parse_signal(cfg.stop_signal)
    for item in cfg.env:  # moby's ValidateEnv
        if not item.partition("=")[0]:
            raise InvalidArgument(f"invalid environment variable: {item}")
    if not (cfg.hostname or cfg.domainname or host.dns or host.dns_search or host.dns_options
            or host.extra_hosts or host.links or opts.endpoint.aliases):
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
    for alias in opts.endpoint.aliases:
        H.validate_alias(alias)
    for link in host.links:
        parse_link(link)


def _image_section(engine: Engine, image: ImageRecord) -> dict[str, Any]:
    """The image's ``config`` object.  Configs are checked when they enter the store; one
    stored before that (or under an older schema) is checked here, so a bad one fails before
    anything exists (and a checked one costs nothing)."""
    from cargohold.oci.image import CONFIG_SCHEMA_VERSION

    section = engine.images.config(image).get("config") or {}
    if image.schema < CONFIG_SCHEMA_VERSION:
        from cargohold.oci.schema import check_image_section

        check_image_section(section, f"image config of {image.id}")
    return section  # type: ignore[no-any-return]


def _find_image(engine: Engine, opts: CreateOptions,
                pull_events: MessageSink | None = None) -> ImageRecord:
    """The image per ``--pull`` (missing|always|never); pulls go through the registry and
    report to the create call's own ``pull_events``."""
    policy = opts.pull or "missing"
    if policy in ("missing", "never"):
        with contextlib.suppress(NotFound):
            return engine.images.resolve(opts.image)
    from cargohold.engine.messages import discard

    return engine.registry.ensure(opts.image, policy, pull_events or discard)  # or Docker's error


def _check_network_options(opts: CreateOptions) -> str:
    mode = opts.host_config.network_mode or "bridge"
    if mode in ("default",):
        mode = "bridge"
    special = mode in ("host", "none") or mode.startswith("container:")
    if special:
        if (opts.publish or opts.host_config.publish_all_ports) and mode != "host":
            raise InvalidArgument(
                "conflicting options: port publishing and the container type network mode"
            )
        if opts.host_config.links and mode != "host":
            raise InvalidArgument("conflicting options: container type network can't use links")
        if mode.startswith("container:") and (
            opts.host_config.dns or opts.host_config.extra_hosts or opts.config.hostname
        ):
            raise InvalidArgument(
                "conflicting options: dns, add-host and hostname cannot be used with a "
                "container network"
            )
    if (opts.endpoint.ipv4_address or opts.endpoint.aliases) and mode in ("bridge", "host", "none"):
        if opts.endpoint.ipv4_address:
            raise InvalidArgument(
                "user specified IP address is supported on user defined networks only"
            )
        raise InvalidArgument(
            "network-scoped alias is supported only for containers in user defined networks"
        )
    return mode


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
    from cargohold.engine.container_start import security_options

    requested = security_options(host.security_opt).apparmor
    if not requested:
        return []
    from cargohold.container.apparmor import check_requested

    return check_requested(requested)


def create_container(engine: Engine, opts: CreateOptions,
                     pull_events: MessageSink | None = None) -> ContainerRecord:
    """Validate, then store the record, rw layer and volumes (all undone on failure)."""
    from cargohold.engine import container_volumes as vols
    from cargohold.util.ids import random_id

    check_request(opts)
    mode = _check_network_options(opts)
    runtime = check_host_options(engine, opts.host_config)
    image = _find_image(engine, opts, pull_events)
    image_cfg = _image_section(engine, image)
    exposed = {s.key for s in opts.publish}
    config = merge_config(opts, image_cfg, frozenset(exposed))
    argv = [*(config.entrypoint or ()), *(config.cmd or ())]
    if not argv:
        raise InvalidArgument("No command specified")
    if mode not in ("host", "none", "bridge") and not mode.startswith("container:"):
        engine.network_store.get(mode)  # NotFound "network x not found"
    elif mode.startswith("container:"):
        engine.container_store.get(mode.split(":", 1)[1])
    for link in opts.host_config.links:
        from cargohold.network.links import parse_link

        target = parse_link(link)
        try:
            engine.container_store.get(target.name)
        except NotFound:
            raise NotFound(f"Could not get container for {target.name}") from None
    cid = random_id()
    host = msgspec.structs.replace(
        opts.host_config,
        network_mode=mode if mode != "bridge" or opts.host_config.network_mode else "default",
        port_bindings=_port_bindings(opts.publish),
        runtime=runtime,
    )
    networks: dict[str, EndpointSettings] = {}
    if mode not in ("none", "host") and not mode.startswith("container:"):
        networks[mode] = opts.endpoint
    elif mode in ("none", "host"):
        networks[mode] = EndpointSettings()
    if not config.hostname:
        import os

        hostname = os.uname().nodename if mode == "host" else cid[:12]
        config = msgspec.structs.replace(config, hostname=hostname)
    store = engine.container_store
    if opts.name:  # fail early (nothing created yet); add() re-checks under its lock
        from cargohold.container.records import conflict_message, validate_name

        name = validate_name(opts.name)
        owner = store.names().get(name)
        if owner is not None:
            raise Conflict(conflict_message(name, owner))
    record = ContainerRecord(
        id=cid,
        name=opts.name,
        created=now_ns(),
        image_id=image.id,
        path=argv[0],
        args=tuple(argv[1:]),
        config=config,
        host_config=host,
        driver=engine.driver.name,
        layer_id=cid,
        networks=networks,
    )
    undo = Undo()
    try:
        engine.layers.create_rw(cid, image.top_layer)
        undo.add(lambda: engine.layers.remove_rw(cid))
        mounts = vols.resolve_mounts(engine, cid, opts.mounts, host.volumes_from, config, undo)
        anon = frozenset(m.destination for m in mounts if m.anonymous)
        record = msgspec.structs.replace(
            record,
            mount_points=mounts,
            config=msgspec.structs.replace(config, volumes=config.volumes | anon),
        )
        record = store.add(record)  # Conflict when another create took the name meanwhile
    except BaseException:
        undo.run()
        raise
    return record


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
