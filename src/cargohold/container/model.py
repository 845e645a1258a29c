"""Container records as frozen dataclasses, with Docker-shaped JSON (de)serialisation.

One ``Status`` value is the source of truth for a container's state; Docker's booleans
(Running, Paused, Restarting, Dead) are derived from it in ``State.to_docker`` so they can
never contradict each other (moby keeps them as independent flags).

Times are integers of nanoseconds since the epoch (0 = never, Docker's zero time).  JSON on
disk uses Docker's key names and RFC 3339 times, so ``inspect`` can print records nearly as
they are stored.
"""

from __future__ import annotations

import dataclasses
import enum
import time
import types
import typing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

T = TypeVar("T")

ZERO_TIME = "0001-01-01T00:00:00Z"
MAX_HEALTH_LOG = 5


class Status(enum.StrEnum):
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    RESTARTING = "restarting"
    REMOVING = "removing"
    EXITED = "exited"
    DEAD = "dead"


class HealthStatus(enum.StrEnum):
    NONE = "none"
    STARTING = "starting"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


# --------------------------------------------------------------------------- times


def now_ns() -> int:
    return time.time_ns()


def format_time(ns: int) -> str:
    """Go's RFC3339Nano (trailing zeros of the fraction dropped); 0 is Docker's zero time."""
    if ns <= 0:
        return ZERO_TIME
    secs, frac = divmod(ns, 1_000_000_000)
    base = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    digits = f"{frac:09d}".rstrip("0")
    return f"{base}.{digits}Z" if digits else f"{base}Z"


def parse_time(text: str) -> int:
    """Parse an RFC 3339 time with up to nanosecond precision into ns since the epoch."""
    if not text or text.startswith("0001-01-01"):
        return 0
    value = text.strip()
    offset = 0
    if value.endswith(("Z", "z")):
        value = value[:-1]
    elif len(value) > 6 and value[-6] in "+-" and value[-3] == ":":
        sign = 1 if value[-6] == "+" else -1
        offset = sign * (int(value[-5:-3]) * 3600 + int(value[-2:]) * 60)
        value = value[:-6]
    frac_ns = 0
    if "." in value:
        value, frac = value.split(".", 1)
        frac_ns = int((frac + "000000000")[:9])
    base = datetime.strptime(value, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    return (int(base.timestamp()) - offset) * 1_000_000_000 + frac_ns


# --------------------------------------------------------------------------- records


def _k(name: str) -> Any:
    """Field metadata naming the Docker JSON key."""
    return {"json": name}


@dataclass(frozen=True)
class HealthcheckConfig:
    """Docker's HealthConfig; durations in nanoseconds, 0 = inherit / default."""

    test: tuple[str, ...] = field(default=(), metadata=_k("Test"))
    interval: int = field(default=0, metadata=_k("Interval"))
    timeout: int = field(default=0, metadata=_k("Timeout"))
    start_period: int = field(default=0, metadata=_k("StartPeriod"))
    start_interval: int = field(default=0, metadata=_k("StartInterval"))
    retries: int = field(default=0, metadata=_k("Retries"))

    @property
    def disabled(self) -> bool:
        return not self.test or self.test[0] == "NONE"


@dataclass(frozen=True)
class ContainerConfig:
    """Docker's container Config (the image-portable part)."""

    hostname: str = field(default="", metadata=_k("Hostname"))
    domainname: str = field(default="", metadata=_k("Domainname"))
    user: str = field(default="", metadata=_k("User"))
    attach_stdin: bool = field(default=False, metadata=_k("AttachStdin"))
    attach_stdout: bool = field(default=False, metadata=_k("AttachStdout"))
    attach_stderr: bool = field(default=False, metadata=_k("AttachStderr"))
    exposed_ports: frozenset[str] = field(default=frozenset(), metadata=_k("ExposedPorts"))
    tty: bool = field(default=False, metadata=_k("Tty"))
    open_stdin: bool = field(default=False, metadata=_k("OpenStdin"))
    stdin_once: bool = field(default=False, metadata=_k("StdinOnce"))
    env: tuple[str, ...] = field(default=(), metadata=_k("Env"))
    cmd: tuple[str, ...] | None = field(default=None, metadata=_k("Cmd"))
    healthcheck: HealthcheckConfig | None = field(default=None, metadata=_k("Healthcheck"))
    image: str = field(default="", metadata=_k("Image"))
    volumes: frozenset[str] = field(default=frozenset(), metadata=_k("Volumes"))
    working_dir: str = field(default="", metadata=_k("WorkingDir"))
    entrypoint: tuple[str, ...] | None = field(default=None, metadata=_k("Entrypoint"))
    labels: dict[str, str] = field(default_factory=dict, metadata=_k("Labels"))
    stop_signal: str = field(default="", metadata=_k("StopSignal"))
    stop_timeout: int | None = field(default=None, metadata=_k("StopTimeout"))


@dataclass(frozen=True)
class RestartPolicy:
    name: str = field(default="no", metadata=_k("Name"))
    maximum_retry_count: int = field(default=0, metadata=_k("MaximumRetryCount"))

    @classmethod
    def parse(cls, text: str) -> RestartPolicy:
        """Parse ``--restart`` (no, always, unless-stopped, on-failure[:N])."""
        from cargohold.errors import InvalidArgument

        name, _, count = (text or "no").partition(":")
        if name not in ("no", "always", "unless-stopped", "on-failure"):
            raise InvalidArgument(f"invalid restart policy: {text}")
        if count and name != "on-failure":
            raise InvalidArgument(
                "invalid restart policy format: maximum retry count can only be used "
                f"with 'on-failure': {text}"
            )
        try:
            retries = int(count) if count else 0
        except ValueError:
            raise InvalidArgument(f"invalid restart policy format: {text}") from None
        if retries < 0:
            raise InvalidArgument("invalid restart policy: maximum retry count cannot be negative")
        return cls(name, retries)

    @property
    def is_none(self) -> bool:
        return self.name in ("", "no")


@dataclass(frozen=True)
class LogConfig:
    type: str = field(default="json-file", metadata=_k("Type"))
    config: dict[str, str] = field(default_factory=dict, metadata=_k("Config"))


@dataclass(frozen=True)
class PortBinding:
    host_ip: str = field(default="", metadata=_k("HostIp"))
    host_port: str = field(default="", metadata=_k("HostPort"))


@dataclass(frozen=True)
class MountPoint:
    """One entry of HostConfig.Mounts (``--mount``)."""

    type: str = field(default="bind", metadata=_k("Type"))
    source: str = field(default="", metadata=_k("Source"))
    target: str = field(default="", metadata=_k("Target"))
    read_only: bool = field(default=False, metadata=_k("ReadOnly"))
    options: dict[str, str] = field(default_factory=dict, metadata=_k("Options"))


@dataclass(frozen=True)
class HostConfig:
    """The host-specific options of ``create``/``run`` (Docker's HostConfig subset)."""

    binds: tuple[str, ...] = field(default=(), metadata=_k("Binds"))
    mounts: tuple[MountPoint, ...] = field(default=(), metadata=_k("Mounts"))
    log_config: LogConfig = field(default_factory=LogConfig, metadata=_k("LogConfig"))
    network_mode: str = field(default="", metadata=_k("NetworkMode"))
    port_bindings: dict[str, tuple[PortBinding, ...]] = field(
        default_factory=dict, metadata=_k("PortBindings")
    )
    restart_policy: RestartPolicy = field(
        default_factory=RestartPolicy, metadata=_k("RestartPolicy")
    )
    auto_remove: bool = field(default=False, metadata=_k("AutoRemove"))
    volumes_from: tuple[str, ...] = field(default=(), metadata=_k("VolumesFrom"))
    cap_add: tuple[str, ...] = field(default=(), metadata=_k("CapAdd"))
    cap_drop: tuple[str, ...] = field(default=(), metadata=_k("CapDrop"))
    dns: tuple[str, ...] = field(default=(), metadata=_k("Dns"))
    dns_options: tuple[str, ...] = field(default=(), metadata=_k("DnsOptions"))
    dns_search: tuple[str, ...] = field(default=(), metadata=_k("DnsSearch"))
    extra_hosts: tuple[str, ...] = field(default=(), metadata=_k("ExtraHosts"))
    group_add: tuple[str, ...] = field(default=(), metadata=_k("GroupAdd"))
    links: tuple[str, ...] = field(default=(), metadata=_k("Links"))
    privileged: bool = field(default=False, metadata=_k("Privileged"))
    readonly_rootfs: bool = field(default=False, metadata=_k("ReadonlyRootfs"))
    security_opt: tuple[str, ...] = field(default=(), metadata=_k("SecurityOpt"))
    tmpfs: dict[str, str] = field(default_factory=dict, metadata=_k("Tmpfs"))
    runtime: str = field(default="runc", metadata=_k("Runtime"))
    memory: int = field(default=0, metadata=_k("Memory"))
    nano_cpus: int = field(default=0, metadata=_k("NanoCpus"))
    pids_limit: int | None = field(default=None, metadata=_k("PidsLimit"))
    init: bool | None = field(default=None, metadata=_k("Init"))
    publish_all_ports: bool = field(default=False, metadata=_k("PublishAllPorts"))
    memory_swap: int = field(default=0, metadata=_k("MemorySwap"))


@dataclass(frozen=True)
class MountRecord:
    """A container mount resolved at create time (named volumes for anonymous ones included);
    ``inspect`` shows it in ``Mounts``."""

    type: str = field(default="volume", metadata=_k("Type"))
    name: str = field(default="", metadata=_k("Name"))
    source: str = field(default="", metadata=_k("Source"))
    destination: str = field(default="", metadata=_k("Destination"))
    driver: str = field(default="", metadata=_k("Driver"))
    mode: str = field(default="", metadata=_k("Mode"))
    rw: bool = field(default=True, metadata=_k("RW"))
    propagation: str = field(default="", metadata=_k("Propagation"))
    anonymous: bool = field(default=False, metadata=_k("Anonymous"))
    nocopy: bool = field(default=False, metadata=_k("NoCopy"))
    options: tuple[str, ...] = field(default=(), metadata=_k("Options"))
    tmpfs_size: int = field(default=0, metadata=_k("TmpfsSize"))
    tmpfs_mode: int = field(default=0, metadata=_k("TmpfsMode"))


@dataclass(frozen=True)
class EndpointSettings:
    """What a container asked of one network (``--network-alias``, ``--ip``, ...)."""

    aliases: tuple[str, ...] = field(default=(), metadata=_k("Aliases"))
    links: tuple[str, ...] = field(default=(), metadata=_k("Links"))
    ipv4_address: str = field(default="", metadata=_k("IPv4Address"))
    mac_address: str = field(default="", metadata=_k("MacAddress"))


@dataclass(frozen=True)
class HealthLogEntry:
    start: int = field(default=0, metadata=_k("Start"))
    end: int = field(default=0, metadata=_k("End"))
    exit_code: int = field(default=0, metadata=_k("ExitCode"))
    output: str = field(default="", metadata=_k("Output"))


@dataclass(frozen=True)
class Health:
    status: HealthStatus = field(default=HealthStatus.STARTING, metadata=_k("Status"))
    failing_streak: int = field(default=0, metadata=_k("FailingStreak"))
    log: tuple[HealthLogEntry, ...] = field(default=(), metadata=_k("Log"))


@dataclass(frozen=True)
class State:
    """Mutable-by-replacement runtime state of one container (state.json)."""

    status: Status = field(default=Status.CREATED, metadata=_k("Status"))
    oom_killed: bool = field(default=False, metadata=_k("OOMKilled"))
    pid: int = field(default=0, metadata=_k("Pid"))
    exit_code: int = field(default=0, metadata=_k("ExitCode"))
    error: str = field(default="", metadata=_k("Error"))
    started_at: int = field(default=0, metadata=_k("StartedAt"))
    finished_at: int = field(default=0, metadata=_k("FinishedAt"))
    health: Health | None = field(default=None, metadata=_k("Health"))
    restart_count: int = field(default=0, metadata=_k("RestartCount"))
    manually_stopped: bool = field(default=False, metadata=_k("HasBeenManuallyStopped"))
    monitor_pid: int = field(default=0, metadata=_k("MonitorPid"))

    @property
    def running(self) -> bool:
        """Docker reports Running for paused and restarting containers too."""
        return self.status in (Status.RUNNING, Status.PAUSED, Status.RESTARTING)

    @property
    def paused(self) -> bool:
        return self.status is Status.PAUSED

    @property
    def restarting(self) -> bool:
        return self.status is Status.RESTARTING

    @property
    def dead(self) -> bool:
        return self.status is Status.DEAD

    def to_docker(self) -> dict[str, Any]:
        """The ``State`` object of ``docker inspect``."""
        out: dict[str, Any] = {
            "Status": self.status.value,
            "Running": self.running,
            "Paused": self.paused,
            "Restarting": self.restarting,
            "OOMKilled": self.oom_killed,
            "Dead": self.dead,
            "Pid": self.pid,
            "ExitCode": self.exit_code,
            "Error": self.error,
            "StartedAt": format_time(self.started_at),
            "FinishedAt": format_time(self.finished_at),
        }
        if self.health is not None:
            out["Health"] = to_json(self.health)
        return out


@dataclass(frozen=True)
class ContainerRecord:
    """The stored description of a container (config.json in its directory)."""

    id: str = field(metadata=_k("Id"))
    name: str = field(default="", metadata=_k("Name"))
    created: int = field(default=0, metadata=_k("Created"))
    image_id: str = field(default="", metadata=_k("Image"))
    path: str = field(default="", metadata=_k("Path"))
    args: tuple[str, ...] = field(default=(), metadata=_k("Args"))
    config: ContainerConfig = field(default_factory=ContainerConfig, metadata=_k("Config"))
    host_config: HostConfig = field(default_factory=HostConfig, metadata=_k("HostConfig"))
    driver: str = field(default="", metadata=_k("Driver"))
    layer_id: str = field(default="", metadata=_k("LayerId"))
    annotations: dict[str, str] = field(default_factory=dict, metadata=_k("Annotations"))
    mount_points: tuple[MountRecord, ...] = field(default=(), metadata=_k("MountPoints"))
    networks: dict[str, EndpointSettings] = field(default_factory=dict, metadata=_k("Networks"))

    @property
    def short_id(self) -> str:
        return self.id[:12]

    @property
    def docker_name(self) -> str:
        """Docker's ``Name`` has a leading slash."""
        return "/" + self.name


# --------------------------------------------------------------------------- JSON codec

_TIME_FIELDS = {"started_at", "finished_at", "start", "end", "created"}
_SET_MAPS = {"exposed_ports", "volumes"}


def to_json(obj: Any) -> Any:
    """Encode a record of this module (recursively) as Docker-shaped JSON data."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            key = f.metadata.get("json", f.name)
            if f.name in _TIME_FIELDS and isinstance(value, int):
                out[key] = format_time(value)
            elif f.name in _SET_MAPS:
                out[key] = {item: {} for item in sorted(value)} if value else None
            else:
                out[key] = to_json(value)
        return out
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, tuple | list):
        return [to_json(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_json(v) for k, v in obj.items()}
    return obj


def from_json(cls: type[T], data: Any) -> T:
    """Decode JSON data produced by ``to_json`` (or Docker) into ``cls``; unknown keys ignored."""
    return typing.cast(T, _decode(cls, data, ""))


def _decode(tp: Any, data: Any, name: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if data is None:
            return None
        return _decode(args[0], data, name)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _decode_dataclass(tp, data or {})
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return tp(data)
    if origin is tuple:
        (item,) = typing.get_args(tp)[:1]
        return tuple(_decode(item, v, name) for v in (data or ()))
    if origin is frozenset:
        return frozenset(data or ())
    if origin is dict:
        _, item = typing.get_args(tp)
        return {k: _decode(item, v, name) for k, v in (data or {}).items()}
    if tp is int and name in _TIME_FIELDS and isinstance(data, str):
        return parse_time(data)
    if tp is int:
        return int(data or 0)
    if tp is bool:
        return bool(data)
    if tp is str:
        return "" if data is None else str(data)
    return data


_HINTS: dict[type, dict[str, Any]] = {}


def warm_decoder() -> None:
    """Resolve the type hints of every record class now (~4 ms), not on the first decode:
    a pre-forked monitor does it while its caller is still setting the container up."""
    for cls in (
        ContainerRecord,
        ContainerConfig,
        HostConfig,
        HealthcheckConfig,
        RestartPolicy,
        LogConfig,
        PortBinding,
        MountPoint,
        MountRecord,
        EndpointSettings,
        State,
        Health,
        HealthLogEntry,
    ):
        if cls not in _HINTS:
            _HINTS[cls] = typing.get_type_hints(cls)


def _decode_dataclass(cls: type, data: dict[str, Any]) -> Any:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        key = f.metadata.get("json", f.name)
        if key in data:
            kwargs[f.name] = _decode(hints[f.name], data[key], f.name)
    return cls(**kwargs)
