"""The configuration file: registries (mirrors, insecure, CA dirs), storage driver, subnet.

Looked up at ``$CARGOHOLD_CONFIG``, else ``/etc/cargohold/registries.toml``, else
``/etc/cargohold/registries.json`` (same keys).  Every key is optional::

    # /etc/cargohold/registries.toml
    insecure-registries = ["127.0.0.1:5000", "10.0.0.0/8"]   # plain HTTP / unverified TLS
    certs-dirs = ["/etc/cargohold/certs.d"]   # CA files: <dir>/<host:port>/*.crt
                                              # (default: cargohold, containers, docker dirs)
    [registry-mirrors]                        # tried in order before the registry itself
    "docker.io" = ["http://127.0.0.1:5000", "mirror.example.com"]

    [storage]
    driver = "overlay"                        # default storage driver: overlay | vfs

    [network]
    subnet = "10.89.0.0/16"                   # subnet of the default bridge network
    bridge = "cargohold0"                     # its Linux bridge

    [engine]
    runtime = "runc-new"                      # default OCI runtime: a name below, runc, a path

    [runtimes.runc-new]                       # Docker's "runtimes": NAME -> binary
    path = "/opt/runc/runc"                   # absolute, or a command name found on $PATH

``registry-mirrors`` may also be a list (Docker's daemon.json form): mirrors of docker.io.
A missing file means defaults; a malformed one is an error naming the file.

The CLI applies ``[storage]``, ``[network]``, ``[engine]`` and ``[runtimes]`` to its Settings
(:func:`apply`); the ``--storage-driver`` and ``--runtime`` flags, ``CARGOHOLD_STORAGE_DRIVER``,
``CARGOHOLD_RUNTIME``, ``CARGOHOLD_NETWORK_SUBNET`` and ``CARGOHOLD_NETWORK_BRIDGE`` win over
the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import msgspec

from cargohold.config import Settings
from cargohold.errors import InvalidArgument
from cargohold.transport.registry.hosts import DEFAULT_CERTS_DIRS, RegistryConfig

CANDIDATES = (Path("/etc/cargohold/registries.toml"), Path("/etc/cargohold/registries.json"))


class FileSettings(msgspec.Struct, frozen=True):
    registries: RegistryConfig = msgspec.field(default_factory=RegistryConfig)
    storage_driver: str = ""
    network_subnet: str = ""
    path: Path | None = None
    network_bridge: str = ""
    runtime: str = ""
    runtimes: dict[str, str] = msgspec.field(default_factory=dict)


def config_path(explicit: str | None = None) -> Path | None:
    value = explicit or os.environ.get("CARGOHOLD_CONFIG")
    if value:
        return Path(value)
    return next((p for p in CANDIDATES if p.is_file()), None)


def load(path: Path | None) -> FileSettings:
    if path is None:
        return FileSettings()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return FileSettings(path=path)
    except OSError as e:
        raise InvalidArgument(f"reading {path}: {e.strerror}") from None
    try:
        if path.suffix == ".json":
            data = json.loads(raw)
        else:
            import tomllib

            data = tomllib.loads(raw.decode())
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"invalid configuration file {path}: {e}") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"invalid configuration file {path}: not a table")
    return _parse(data, path)


def _strings(value: Any, key: str, path: Path) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"invalid configuration file {path}: {key} must be a list of "
                              "strings")
    return tuple(value)


def _parse(data: dict[str, Any], path: Path) -> FileSettings:
    mirrors_raw = data.get("registry-mirrors") or {}
    if isinstance(mirrors_raw, list):
        mirrors_raw = {"docker.io": mirrors_raw}
    if not isinstance(mirrors_raw, dict):
        raise InvalidArgument(f"invalid configuration file {path}: registry-mirrors")
    mirrors = {_registry(k): _strings(v, f"registry-mirrors.{k}", path)
               for k, v in mirrors_raw.items()}
    certs = _strings(data.get("certs-dirs"), "certs-dirs", path) or DEFAULT_CERTS_DIRS
    reg = RegistryConfig(mirrors=mirrors,
                         insecure=_strings(data.get("insecure-registries"),
                                           "insecure-registries", path),
                         certs_dirs=certs)
    storage = data.get("storage") or {}
    network = data.get("network") or {}
    if not isinstance(storage, dict) or not isinstance(network, dict):
        raise InvalidArgument(f"invalid configuration file {path}: [storage] and [network] "
                              "must be tables")
    driver = str(storage.get("driver") or "")
    if driver not in ("", "overlay", "vfs"):
        raise InvalidArgument(f"invalid configuration file {path}: unknown storage driver "
                              f"{driver!r} (overlay or vfs)")
    subnet = str(network.get("subnet") or "")
    bridge = str(network.get("bridge") or "")
    _check_network(subnet, bridge, f"configuration file {path}")
    runtime, runtimes = _runtimes(data, path)
    return FileSettings(reg, driver, subnet, path, bridge, runtime, runtimes)


def _runtimes(data: dict[str, Any], path: Path) -> tuple[str, dict[str, str]]:
    """``[engine] runtime`` and the ``[runtimes.NAME] path`` tables."""
    where = f"invalid configuration file {path}"
    engine = data.get("engine") or {}
    table = data.get("runtimes") or {}
    if not isinstance(engine, dict) or not isinstance(table, dict):
        raise InvalidArgument(f"{where}: [engine] and [runtimes] must be tables")
    runtime = engine.get("runtime") or ""
    if not isinstance(runtime, str):
        raise InvalidArgument(f"{where}: engine.runtime must be a string")
    runtimes: dict[str, str] = {}
    for name, entry in table.items():
        if name == "runc":
            raise InvalidArgument(f"{where}: runtime name 'runc' is reserved")
        if not name or "/" in name or any(c.isspace() for c in name):
            raise InvalidArgument(f"{where}: invalid runtime name {name!r}")
        binary = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(binary, str) or not binary:
            raise InvalidArgument(f"{where}: runtimes.{name}.path must be a non-empty string")
        if "/" in binary and not binary.startswith("/"):
            raise InvalidArgument(f"{where}: runtimes.{name}.path must be absolute or a "
                                  f"command name, not {binary!r}")  # fmt: skip
        runtimes[name] = binary
    return runtime, runtimes


def _check_network(subnet: str, bridge: str, where: str) -> None:
    if subnet:
        import ipaddress

        try:
            net = ipaddress.ip_network(subnet)
        except ValueError as e:
            raise InvalidArgument(f"invalid {where}: network subnet {subnet!r}: {e}") from None
        if net.version != 4 or net.prefixlen > 30:
            raise InvalidArgument(f"invalid {where}: network subnet {subnet!r}: an IPv4 "
                                  "network of at least 4 addresses is needed")
    if bridge and (len(bridge) > 15 or any(c in bridge for c in "/: \t\n")
                   or bridge in (".", "..")):
        raise InvalidArgument(f"invalid {where}: bridge name {bridge!r}")


def apply(settings: Settings) -> Settings:
    """``settings`` with the file's storage driver, default bridge subnet and bridge name and
    default runtime where no command-line flag or CARGOHOLD_* variable set them, and its
    runtime names."""
    env = os.environ
    path = config_path(settings.extra.get("config_file"))
    found = load(path)
    extra = dict(settings.extra)
    if path is not None:
        extra.setdefault("config_file", str(path))
    subnet = env.get("CARGOHOLD_NETWORK_SUBNET") or found.network_subnet
    bridge = env.get("CARGOHOLD_NETWORK_BRIDGE") or found.network_bridge
    _check_network(subnet, bridge, "CARGOHOLD_NETWORK_* setting")
    if subnet:
        extra.setdefault("default_bridge_subnet", subnet)
    if bridge:
        extra.setdefault("default_bridge_name", bridge)
    driver = settings.storage_driver
    if not driver and found.storage_driver and _recorded_driver(settings.root) in (
            None, found.storage_driver):
        driver = found.storage_driver  # a default: a store keeps the driver it was made with
    return msgspec.structs.replace(settings, storage_driver=driver, extra=extra,
                                   runtime=settings.runtime or found.runtime,
                                   runtimes={**found.runtimes, **settings.runtimes})


def _recorded_driver(root: Path) -> str | None:
    try:
        value = json.loads((root / "storage.json").read_bytes()).get("driver")
    except (OSError, ValueError, AttributeError):
        return None
    return str(value) if value else None


def _registry(name: str) -> str:
    name = name.removeprefix("https://").removeprefix("http://").rstrip("/")
    return "docker.io" if name in ("index.docker.io", "registry-1.docker.io") else name
