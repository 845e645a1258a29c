"""System service: ``info`` (Docker's Info object) and ``system prune`` (the prune calls of
every area, one after the other, as Docker's CLI composes them).

The runtime's path and version come from ``Engine.runtime_info`` (``runtime/choice.py``), as
``version`` shows them.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from cargohold import __version__

if TYPE_CHECKING:
    from cargohold.engine import Engine
    from cargohold.engine.system.host_info import HostInfo
    from cargohold.transport.registry.hosts import RegistryConfig


class PruneSection(msgspec.Struct, frozen=True):
    """One block of ``system prune`` output ("Deleted Containers:" and its lines)."""

    title: str
    lines: tuple[str, ...]
    reclaimed: int


class SystemService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # ---- system prune ---------------------------------------------------------------------
    def check_prune(self, filters: Sequence[str], volumes: bool) -> list[str]:
        """Validate the filters of every prune to come (nothing is removed when one is bad,
        unlike Docker's CLI, which fails at the first prune that refuses them); returns them
        as the confirmation prompt lists them."""
        from cargohold.engine.builds import cache_filters
        from cargohold.engine.prune_filters import PruneFilters
        from cargohold.errors import ClientError

        wanted = PruneFilters.parse(filters)
        if volumes and wanted.until_text:
            raise ClientError('ERROR: The "until" filter is not supported with "--volumes"')
        if volumes:
            from cargohold.volume.store import VolumeFilters

            VolumeFilters.parse(filters)
        cache_filters(filters)
        return wanted.words()

    def prune(self, all_images: bool, volumes: bool, filters: Sequence[str]
              ) -> Iterator[PruneSection]:
        """Containers, networks, volumes (``volumes``), images, build cache: each section
        as its prune finishes (sections with nothing deleted have no lines)."""
        e = self.engine
        self.check_prune(filters, volumes)
        deleted, space = e.containers.prune(filters)
        yield PruneSection("Deleted Containers:", tuple(deleted), space)
        yield PruneSection("Deleted Networks:", tuple(e.networks.prune(filters)), 0)
        if volumes:
            report = e.volumes.prune(filters)
            yield PruneSection("Deleted Volumes:", report.deleted, report.space_reclaimed)
        removals, space = e.images.prune(all_images=all_images, filters=filters)
        yield PruneSection("Deleted Images:", tuple(f"{r.action}: {r.subject}" for r in removals),
                           space)
        keys, space = e.builds.prune(all_cache=all_images, filters=filters)
        yield PruneSection("Deleted build cache objects:", tuple(keys), space)

    # ---- info -----------------------------------------------------------------------------
    def info(self, debug: bool = False) -> dict[str, Any]:
        """Docker 20.10's ``Info`` (``GET /info``) with this engine's values."""
        from cargohold.engine.system import host_info as host_info

        e, settings = self.engine, self.engine.settings
        host = host_info.probe()
        runtime = e.runtime_info()
        counts = self._container_counts()
        driver = e.driver.name
        data: dict[str, Any] = {
            "ID": "",
            "Containers": sum(counts.values()),
            "ContainersRunning": counts["running"],
            "ContainersPaused": counts["paused"],
            "ContainersStopped": counts["stopped"],
            "Images": len(e.image_store.list()),
            "Driver": "overlay2" if driver == "overlay" else driver,
            "DriverStatus": _driver_status(driver, settings.root),
            "Plugins": {"Volume": ["local"], "Network": ["bridge", "host", "null"],
                        "Authorization": None, "Log": ["json-file"]},
            **_features(host),
            "IPv4Forwarding": host.ipv4_forwarding,
            "BridgeNfIptables": host.bridge_nf_iptables,
            "BridgeNfIp6tables": host.bridge_nf_ip6tables,
            "Debug": debug,
            "LoggingDriver": "json-file",
            "CgroupDriver": "cgroupfs",
            "CgroupVersion": host.cgroup_version,
            **_host_fields(host),
            "IndexServerAddress": "https://index.docker.io/v1/",
            "RegistryConfig": registry_config(e.registry.file_settings.registries),
            "DockerRootDir": str(settings.root),
            "HttpProxy": os.environ.get("HTTP_PROXY") or os.environ.get("http_proxy", ""),
            "HttpsProxy": os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy", ""),
            "NoProxy": os.environ.get("NO_PROXY") or os.environ.get("no_proxy", ""),
            "Name": os.uname().nodename,
            "Labels": [],
            "ExperimentalBuild": False,
            "ServerVersion": __version__,
            "Runtimes": {**{name: {"path": path} for name, path in settings.runtimes.items()},
                         runtime.short_name: {"path": runtime.path or runtime.name}},
            "DefaultRuntime": runtime.short_name,
            "Swarm": {"NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive",
                      "ControlAvailable": False, "Error": "", "RemoteManagers": None},
            "LiveRestoreEnabled": True,  # containers outlive every CLI call (their monitors)
            "Isolation": "",
            **_init_fields(),
            "RuncCommit": {"ID": runtime.commit, "Expected": runtime.commit},
            "SecurityOptions": ["name=seccomp,profile=default"],
            "Warnings": host_info.warnings(host) or None,
        }
        return data

    def _container_counts(self) -> dict[str, int]:
        counts = {"running": 0, "paused": 0, "stopped": 0}
        if not self.engine.container_store.base.is_dir():
            return counts
        for view in self.engine.containers.views():
            status = view.state.status.value
            counts[status if status in ("running", "paused") else "stopped"] += 1
        return counts


def _host_fields(host: HostInfo) -> dict[str, Any]:
    return {
        "KernelVersion": host.kernel,
        "OperatingSystem": host.os_name,
        "OSVersion": host.os_version,
        "OSType": "linux",
        "Architecture": host.arch,
        "NCPU": host.ncpu,
        "MemTotal": host.mem_total,
    }


def _features(host: HostInfo) -> dict[str, bool]:
    out: dict[str, bool] = msgspec.to_builtins(host.features)
    out.pop("BlkioWeight")  # not a field of Docker's Info (only its warnings use it)
    return out


def _driver_status(driver: str, root: Path) -> list[list[str]] | None:
    if driver != "overlay":
        return None
    from cargohold.engine.system.host_info import backing_filesystem

    return [["Backing Filesystem", backing_filesystem(root)], ["Supports d_type", "true"],
            ["Native Overlay Diff", "true"], ["userxattr", "false"]]


def _init_fields() -> dict[str, Any]:
    """``--init``'s binary (tini) and its commit, as Docker reports docker-init."""
    from cargohold.container.spec import INIT_SOURCE

    commit = ""
    if INIT_SOURCE.is_file():
        try:
            out = subprocess.run([str(INIT_SOURCE), "--version"], capture_output=True,
                                 text=True, timeout=10, check=False).stdout
        except (OSError, subprocess.TimeoutExpired):
            out = ""
        # "tini version 0.19.0 - git.de40ad0": Docker shows the commit ("" without one)
        commit = out.rpartition(" - git.")[2].strip() if " - git." in out else ""
    return {"InitBinary": str(INIT_SOURCE) if INIT_SOURCE.is_file() else "",
            "InitCommit": {"ID": commit, "Expected": commit}}


def registry_config(config: RegistryConfig) -> dict[str, Any]:
    """Docker's ``RegistryConfig``: insecure CIDRs, one IndexConfig per registry named in the
    configuration file, and Docker Hub's mirrors."""
    cidrs = config.insecure_cidrs()  # loopback included, as dockerd's
    names = {"docker.io", *config.mirrors, *(e for e in config.insecure if "/" not in e)}
    index = {
        name: {"Name": name, "Mirrors": list(config.mirrors.get(name, ())),
               "Secure": name == "docker.io" or not config.is_insecure(name, resolve=False),
               "Official": name == "docker.io"}
        for name in sorted(names)
    }
    return {
        "AllowNondistributableArtifactsCIDRs": [],
        "AllowNondistributableArtifactsHostnames": [],
        "InsecureRegistryCIDRs": cidrs,
        "IndexConfigs": index,
        "Mirrors": list(config.mirrors.get("docker.io", ())),
    }
