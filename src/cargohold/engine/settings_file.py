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

``registry-mirrors`` may also be a list (Docker's daemon.json form): mirrors of docker.io.
A missing file means defaults; a malformed one is an error naming the file.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cargohold.errors import InvalidArgument
from cargohold.transport.registry.hosts import DEFAULT_CERTS_DIRS, RegistryConfig

CANDIDATES = (Path("/etc/cargohold/registries.toml"), Path("/etc/cargohold/registries.json"))


@dataclass(frozen=True)
class FileSettings:
    registries: RegistryConfig = field(default_factory=RegistryConfig)
    storage_driver: str = ""
    network_subnet: str = ""
    path: Path | None = None


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
    return FileSettings(reg, str(storage.get("driver") or ""), str(network.get("subnet") or ""),
                        path)


def _registry(name: str) -> str:
    name = name.removeprefix("https://").removeprefix("http://").rstrip("/")
    return "docker.io" if name in ("index.docker.io", "registry-1.docker.io") else name
