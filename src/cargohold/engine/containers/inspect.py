"""``docker container inspect`` for one container (Docker 20.10's shape)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cargohold.container.model import ContainerRecord, MountRecord, State, format_time, to_json

if TYPE_CHECKING:
    from cargohold.engine import Engine

_HOST_DEFAULTS: dict[str, Any] = {
    "ContainerIDFile": "",
    "VolumeDriver": "",
    "CapAdd": None,
    "CapDrop": None,
    "CgroupnsMode": "host",
    "IpcMode": "private",
    "Cgroup": "",
    "OomScoreAdj": 0,
    "PidMode": "",
    "PublishAllPorts": False,
    "UTSMode": "",
    "UsernsMode": "",
    "ShmSize": 67108864,
    "ConsoleSize": [0, 0],
    "Isolation": "",
    "CpuShares": 0,
    "CgroupParent": "",
    "BlkioWeight": 0,
    "CpuPeriod": 0,
    "CpuQuota": 0,
    "CpusetCpus": "",
    "CpusetMems": "",
    "Devices": [],
    "DeviceCgroupRules": None,
    "KernelMemory": 0,
    "MemoryReservation": 0,
    "MemorySwappiness": None,
    "OomKillDisable": False,
    "Ulimits": None,
    "MaskedPaths": None,
    "ReadonlyPaths": None,
}


def mount_entry(m: MountRecord) -> dict[str, Any]:
    entry: dict[str, Any] = {"Type": m.type}
    if m.type == "volume":
        entry["Name"] = m.name
    entry["Source"] = m.source
    entry["Destination"] = m.destination
    if m.type == "volume":
        entry["Driver"] = m.driver or "local"
    entry["Mode"] = m.mode
    entry["RW"] = m.rw
    entry["Propagation"] = m.propagation if m.type == "bind" else ""
    return entry


def _apparmor_profile(record: ContainerRecord) -> str:
    """The profile the container runs under, "" where AppArmor is off (as Docker shows it)."""
    from cargohold.container import apparmor
    from cargohold.engine.containers.start import security_options
    from cargohold.errors import CargoholdError

    if not apparmor.enabled():
        return ""
    try:
        requested = security_options(record.host_config.security_opt).apparmor
    except CargoholdError:  # a record from before the options were checked
        return ""
    return apparmor.profile_for(requested, record.host_config.privileged)


def _host_config(record: ContainerRecord) -> dict[str, Any]:
    data: dict[str, Any] = to_json(record.host_config)
    for key in (
        "CapAdd",
        "CapDrop",
        "Dns",
        "DnsOptions",
        "DnsSearch",
        "ExtraHosts",
        "GroupAdd",
        "Links",
        "SecurityOpt",
        "VolumesFrom",
        "Binds",
    ):
        if not data.get(key):
            data[key] = None
    data["Mounts"] = data.get("Mounts") or None
    data["Tmpfs"] = data.get("Tmpfs") or None
    if record.host_config.memory and not record.host_config.memory_swap:
        data["MemorySwap"] = 2 * record.host_config.memory
    return {**_HOST_DEFAULTS, **data}


def _config(record: ContainerRecord) -> dict[str, Any]:
    data: dict[str, Any] = to_json(record.config)
    if data.get("Healthcheck") is None:
        data.pop("Healthcheck", None)
    if data.get("StopTimeout") is None:
        data.pop("StopTimeout", None)
    if not data.get("StopSignal"):
        data.pop("StopSignal", None)
    data.setdefault("OnBuild", None)
    return data


def _graph_driver(engine: Engine, record: ContainerRecord) -> dict[str, Any]:
    from cargohold.store.drivers.base import Layout

    rw = Layout(engine.settings.root).rw(record.id)
    name = record.driver or engine.driver.name
    data: dict[str, str] = {"MergedDir": str(rw / "merged")}
    if name == "overlay":
        data.update(UpperDir=str(rw / "upper"), WorkDir=str(rw / "work"))
    return {"Data": data, "Name": "overlay2" if name == "overlay" else name}


def inspect_container(engine: Engine, record: ContainerRecord, state: State) -> dict[str, Any]:
    from cargohold.engine.containers.network import hosts_paths, network_settings

    resolv, hostname, hosts = hosts_paths(engine, record)
    return {
        "Id": record.id,
        "Created": format_time(record.created),
        "Path": record.path,
        "Args": list(record.args),
        "State": state.to_docker(),
        "Image": record.image_id,
        "ResolvConfPath": resolv,
        "HostnamePath": hostname,
        "HostsPath": hosts,
        "LogPath": str(engine.container_store.log_path(record.id)),
        "Name": record.docker_name,
        "RestartCount": state.restart_count,
        "Driver": "overlay2" if record.driver == "overlay" else record.driver,
        "Platform": "linux",
        "MountLabel": "",
        "ProcessLabel": "",
        "AppArmorProfile": _apparmor_profile(record),
        "ExecIDs": None,
        "HostConfig": _host_config(record),
        "GraphDriver": _graph_driver(engine, record),
        "Mounts": [mount_entry(m) for m in record.mount_points],
        "Config": _config(record),
        "NetworkSettings": network_settings(engine, record, state.running),
    }
