"""``top`` and ``stats`` helpers: ``ps`` output filtering and cgroup/procfs sampling.

Pure functions over text and paths so unit tests can feed them fixtures.  cgroup v1 (one
hierarchy per controller under /sys/fs/cgroup/<controller>) and v2 (unified) are both read;
which files exist decides.  The cgroup of a container is the one its init process is in, read
from ``/proc/<pid>/cgroup``, so it works whatever ``linux.cgroupsPath`` the spec chose.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from cargohold.errors import Internal

CGROUP_ROOT = Path("/sys/fs/cgroup")
_USER_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


# --------------------------------------------------------------------------- top


def parse_ps_output(output: str, pids: set[int]) -> tuple[list[str], list[list[str]]]:
    """Docker's parsePSOutput: titles and the rows whose PID column is one of ``pids``.

    The last column (CMD) keeps its spaces: every field from it on is joined back.
    """
    lines = output.splitlines()
    if not lines:
        raise Internal("Couldn't find PID field in ps output")
    titles = lines[0].split()
    try:
        pid_index = titles.index("PID")
    except ValueError:
        raise Internal("Couldn't find PID field in ps output") from None
    rows: list[list[str]] = []
    last = len(titles) - 1
    for line in lines[1:]:
        fields = line.split()
        if len(fields) <= pid_index:
            continue
        try:
            pid = int(fields[pid_index])
        except ValueError:
            raise Internal(f"Unexpected pid '{fields[pid_index]}': invalid syntax") from None
        if pid in pids:
            rows.append([*fields[:last], " ".join(fields[last:])])
    return titles, rows


# --------------------------------------------------------------------------- stats


class Sample(msgspec.Struct, frozen=True):
    """One reading of a container's counters (cumulative where the kernel is cumulative)."""

    cpu_ns: int = 0
    system_ns: int = 0
    online_cpus: int = 1
    mem_usage: int = 0
    mem_limit: int = 0
    net_rx: int = 0
    net_tx: int = 0
    blk_read: int = 0
    blk_write: int = 0
    pids: int = 0


def cgroup_dirs(pid: int, proc: Path = Path("/proc"), root: Path = CGROUP_ROOT) -> dict[str, Path]:
    """Controller name -> cgroup directory of process ``pid`` ("" = the v2 unified one)."""
    try:
        text = (proc / str(pid) / "cgroup").read_text()
    except OSError:
        return {}
    out: dict[str, Path] = {}
    unified = root / "unified" if (root / "unified").is_dir() else root
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        rel = path.lstrip("/")
        if not controllers:
            out[""] = unified / rel
            continue
        for name in controllers.split(","):
            name = name.removeprefix("name=")
            base = root / name
            if not base.exists():
                base = root / controllers
            out[name] = base / rel
    return out


def _read_int(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _read_kv(path: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        key, _, value = line.partition(" ")
        if value.strip().lstrip("-").isdigit():
            out[key] = int(value)
    return out


def system_cpu_ns(proc: Path = Path("/proc")) -> int:
    """Docker's system CPU usage: the first seven fields of /proc/stat's cpu line, in ns."""
    try:
        for line in (proc / "stat").read_text().splitlines():
            if line.startswith("cpu "):
                ticks = sum(int(v) for v in line.split()[1:8])
                return ticks * 1_000_000_000 // _USER_HZ
    except OSError:
        pass
    return 0


def host_memory(proc: Path = Path("/proc")) -> int:
    try:
        for line in (proc / "meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def net_dev(pid: int, proc: Path = Path("/proc")) -> tuple[int, int]:
    """Received and sent bytes over every interface of ``pid``'s netns except lo."""
    try:
        lines = (proc / str(pid) / "net" / "dev").read_text().splitlines()[2:]
    except OSError:
        return 0, 0
    rx = tx = 0
    for line in lines:
        name, _, data = line.partition(":")
        fields = data.split()
        if name.strip() == "lo" or len(fields) < 9:
            continue
        rx += int(fields[0])
        tx += int(fields[8])
    return rx, tx


def _blkio_v1(directory: Path) -> tuple[int, int]:
    read = write = 0
    for name in ("blkio.throttle.io_service_bytes", "blkio.io_service_bytes_recursive"):
        try:
            lines = (directory / name).read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) == 3 and fields[2].isdigit():
                if fields[1] == "Read":
                    read += int(fields[2])
                elif fields[1] == "Write":
                    write += int(fields[2])
        if read or write:
            break
    return read, write


def _io_v2(directory: Path) -> tuple[int, int]:
    read = write = 0
    try:
        lines = (directory / "io.stat").read_text().splitlines()
    except OSError:
        return 0, 0
    for line in lines:
        for item in line.split()[1:]:
            key, _, value = item.partition("=")
            if key == "rbytes":
                read += int(value)
            elif key == "wbytes":
                write += int(value)
    return read, write


def sample(pid: int, proc: Path = Path("/proc"), root: Path = CGROUP_ROOT) -> Sample:
    """Read a running container's counters through its init process ``pid``."""
    dirs = cgroup_dirs(pid, proc, root)
    v1_mem = dirs.get("memory")
    unified = dirs.get("")
    v1 = v1_mem is not None and (v1_mem / "memory.usage_in_bytes").exists()
    host_mem = host_memory(proc)
    cpu = mem = limit = 0
    if v1 and v1_mem is not None:
        mem = _read_int(v1_mem / "memory.usage_in_bytes") or 0
        mem -= _read_kv(v1_mem / "memory.stat").get("total_inactive_file", 0)
        limit = _read_int(v1_mem / "memory.limit_in_bytes") or 0
        cpu = _read_int(dirs.get("cpuacct", root / "cpuacct") / "cpuacct.usage") or 0
        blk = _blkio_v1(dirs.get("blkio", root / "blkio"))
        pids = _read_int(dirs.get("pids", root / "pids") / "pids.current")
    elif unified is not None:
        mem = _read_int(unified / "memory.current") or 0
        mem -= _read_kv(unified / "memory.stat").get("inactive_file", 0)
        limit = _read_int(unified / "memory.max") or 0
        cpu = _read_kv(unified / "cpu.stat").get("usage_usec", 0) * 1000
        blk = _io_v2(unified)
        pids = _read_int(unified / "pids.current")
    else:
        blk, pids = (0, 0), None
    if host_mem and (not limit or limit > host_mem):
        limit = host_mem
    rx, tx = net_dev(pid, proc)
    return Sample(
        cpu_ns=cpu,
        system_ns=system_cpu_ns(proc),
        online_cpus=len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1,
        mem_usage=max(mem, 0),
        mem_limit=limit,
        net_rx=rx,
        net_tx=tx,
        blk_read=blk[0],
        blk_write=blk[1],
        pids=pids if pids is not None else 0,
    )


def cpu_percent(before: Sample, after: Sample) -> float:
    """Docker's calculateCPUPercentUnix."""
    cpu_delta = after.cpu_ns - before.cpu_ns
    system_delta = after.system_ns - before.system_ns
    if cpu_delta > 0 and system_delta > 0:
        return cpu_delta / system_delta * after.online_cpus * 100.0
    return 0.0


def mem_percent(s: Sample) -> float:
    return s.mem_usage / s.mem_limit * 100.0 if s.mem_limit else 0.0
