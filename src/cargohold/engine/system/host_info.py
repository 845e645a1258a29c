"""What ``info`` reports about the host: cgroup version and features, kernel, OS, CPUs,
memory, forwarding and bridge-netfilter switches, and the file system under the store.

Each probe reads a file of /proc or /sys (no subprocess); ``sys_root`` / ``proc_root`` point
the probes at a fake tree in tests.  Docker's daemon makes the same checks (moby
pkg/sysinfo): a cgroup v1 feature is there when its control file exists.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

import msgspec

# Docker's name for the backing file system of overlay2, by mount type
_BACKING_FS = {"ext2": "extfs", "ext3": "extfs", "ext4": "extfs", "overlay": "overlayfs"}


class CgroupFeatures(msgspec.Struct, frozen=True):
    """moby's SysInfo booleans (encoded with Docker's ``info`` field names)."""

    memory_limit: bool = msgspec.field(default=False, name="MemoryLimit")
    swap_limit: bool = msgspec.field(default=False, name="SwapLimit")
    kernel_memory: bool = msgspec.field(default=False, name="KernelMemory")
    kernel_memory_tcp: bool = msgspec.field(default=False, name="KernelMemoryTCP")
    cpu_cfs_period: bool = msgspec.field(default=False, name="CpuCfsPeriod")
    cpu_cfs_quota: bool = msgspec.field(default=False, name="CpuCfsQuota")
    cpu_shares: bool = msgspec.field(default=False, name="CPUShares")
    cpuset: bool = msgspec.field(default=False, name="CPUSet")
    pids_limit: bool = msgspec.field(default=False, name="PidsLimit")
    oom_kill_disable: bool = msgspec.field(default=False, name="OomKillDisable")
    blkio_weight: bool = msgspec.field(default=False, name="BlkioWeight")


class HostInfo(msgspec.Struct, frozen=True):
    cgroup_version: str  # "1" or "2"
    features: CgroupFeatures
    ipv4_forwarding: bool
    bridge_nf_iptables: bool
    bridge_nf_ip6tables: bool
    kernel: str
    os_name: str  # PRETTY_NAME of os-release
    os_version: str  # VERSION_ID
    arch: str
    ncpu: int
    mem_total: int  # bytes


def cgroup_version(sys_root: Path = Path("/sys")) -> str:
    return "2" if (sys_root / "fs/cgroup/cgroup.controllers").exists() else "1"


def _features(sys_root: Path, version: str) -> CgroupFeatures:
    cg = sys_root / "fs/cgroup"
    if version == "2":
        controllers = _read(cg / "cgroup.controllers").split()
        return CgroupFeatures(
            memory_limit="memory" in controllers,
            swap_limit=(cg / "init.scope/memory.swap.max").exists() or "memory" in controllers,
            cpu_cfs_period="cpu" in controllers,
            cpu_cfs_quota="cpu" in controllers,
            cpu_shares="cpu" in controllers,
            cpuset="cpuset" in controllers,
            pids_limit="pids" in controllers,
            blkio_weight="io" in controllers,
        )
    mem, cpu = cg / "memory", cg / "cpu"
    return CgroupFeatures(
        memory_limit=(mem / "memory.limit_in_bytes").exists(),
        swap_limit=(mem / "memory.memsw.limit_in_bytes").exists(),
        kernel_memory=(mem / "memory.kmem.limit_in_bytes").exists(),
        kernel_memory_tcp=(mem / "memory.kmem.tcp.limit_in_bytes").exists(),
        cpu_cfs_period=(cpu / "cpu.cfs_period_us").exists(),
        cpu_cfs_quota=(cpu / "cpu.cfs_quota_us").exists(),
        cpu_shares=(cpu / "cpu.shares").exists(),
        cpuset=(cg / "cpuset/cpuset.cpus").exists(),
        pids_limit=(cg / "pids").is_dir(),
        oom_kill_disable=(mem / "memory.oom_control").exists(),
        blkio_weight=(cg / "blkio/blkio.weight").exists(),
    )


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _os_release(etc: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for candidate in (etc / "os-release", etc.parent / "usr/lib/os-release"):
        text = _read(candidate)
        if text:
            for line in text.splitlines():
                key, eq, value = line.partition("=")
                if eq:
                    out[key.strip()] = value.strip().strip("\"'")
            break
    return out


def _mem_total(proc_root: Path) -> int:
    for line in _read(proc_root / "meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) * 1024
    return 0


def probe(sys_root: Path = Path("/sys"), proc_root: Path = Path("/proc"),
          etc: Path = Path("/etc")) -> HostInfo:
    version = cgroup_version(sys_root)
    release = _os_release(etc)
    net = proc_root / "sys/net"
    return HostInfo(
        cgroup_version=version,
        features=_features(sys_root, version),
        ipv4_forwarding=_read(net / "ipv4/ip_forward") == "1",
        bridge_nf_iptables=_read(net / "bridge/bridge-nf-call-iptables") == "1",
        bridge_nf_ip6tables=_read(net / "bridge/bridge-nf-call-ip6tables") == "1",
        kernel=_read(proc_root / "sys/kernel/osrelease") or platform.release(),
        os_name=release.get("PRETTY_NAME", "") or platform.system(),
        os_version=release.get("VERSION_ID", ""),
        arch=platform.machine(),
        ncpu=os.cpu_count() or 1,
        mem_total=_mem_total(proc_root),
    )


def warnings(host: HostInfo) -> list[str]:
    """Docker 20.10's daemon warnings for this host (moby daemon/info_unix.go)."""
    f, v1 = host.features, host.cgroup_version == "1"
    checks = [
        (f.memory_limit, "WARNING: No memory limit support"),
        (f.swap_limit, "WARNING: No swap limit support"),
        (f.kernel_memory_tcp or not v1, "WARNING: No kernel memory TCP limit support"),
        (f.oom_kill_disable or not v1, "WARNING: No oom kill disable support"),
        (f.cpu_cfs_quota, "WARNING: No cpu cfs quota support"),
        (f.cpu_cfs_period, "WARNING: No cpu cfs period support"),
        (f.cpu_shares, "WARNING: No cpu shares support"),
        (f.cpuset, "WARNING: No cpuset support"),
        (f.blkio_weight or v1, "WARNING: No io.weight support"),
        (host.ipv4_forwarding, "WARNING: IPv4 forwarding is disabled"),
        (host.bridge_nf_iptables, "WARNING: bridge-nf-call-iptables is disabled"),
        (host.bridge_nf_ip6tables, "WARNING: bridge-nf-call-ip6tables is disabled"),
    ]
    return [message for ok, message in checks if not ok]


def backing_filesystem(path: Path, mountinfo: Path = Path("/proc/self/mountinfo")) -> str:
    """The type of the file system holding ``path`` (Docker's words: ``extfs``, ``xfs``)."""
    target = os.path.realpath(path)
    while not os.path.exists(target) and target != "/":
        target = os.path.dirname(target)
    best, fstype = "", ""
    for line in _read(mountinfo).splitlines():
        fields = line.split()
        if " - " not in line or len(fields) < 5:
            continue
        point = fields[4].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, fstype = point, line.split(" - ", 1)[1].split()[0]
    return _BACKING_FS.get(fstype, fstype)
