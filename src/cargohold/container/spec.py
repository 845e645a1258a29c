"""OCI runtime ``config.json`` built by small composable functions.

Start from :func:`base_spec` and apply ``with_*`` builders; each one changes the spec dict it is
given *in place* and returns it, so calls chain::

    spec = base_spec()
    with_process(spec, ["sh"], env=["A=1"], cwd="/", tty=False)
    with_rootfs(spec, rootfs, readonly=True)
    with_default_mounts(spec)
    with_namespaces(spec, network="new")
    with_capabilities(spec, add=["NET_ADMIN"], drop=[])   # spec_security
    with_user(spec, rootfs, "app", group_add=[])          # users
    write_spec(bundle, spec)

Security builders live in :mod:`cargohold.container.spec_security`, user resolution in
:mod:`cargohold.container.users`; both are re-exported here.
"""

from __future__ import annotations

import json
import os
import re
import resource
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import msgspec

from cargohold.container.spec_security import (
    DEFAULT_CAPABILITIES,
    with_capabilities,
    with_devices,
    with_masked_paths,
    with_no_new_privileges,
    with_seccomp,
)
from cargohold.container.users import ExecUser, resolve_user, with_user
from cargohold.errors import InvalidArgument, Unavailable
from cargohold.util.atomic import write_bytes

__all__ = [
    "DEFAULT_CAPABILITIES",
    "DEFAULT_PATH",
    "ExecUser",
    "Mount",
    "ResourceTuning",
    "Ulimit",
    "base_spec",
    "parse_cpus",
    "parse_memory",
    "parse_ulimit",
    "resolve_user",
    "with_capabilities",
    "with_cgroups_path",
    "with_default_mounts",
    "with_devices",
    "with_hostname",
    "with_init",
    "with_masked_paths",
    "with_mounts",
    "with_namespaces",
    "with_no_new_privileges",
    "with_process",
    "with_resources",
    "with_rlimits",
    "with_rootfs",
    "with_seccomp",
    "with_user",
    "write_spec",
]

Spec = dict[str, Any]

OCI_VERSION = "1.0.2-dev"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
SHM_SIZE = 64 * 1024 * 1024
INIT_SOURCE = Path("/usr/bin/tini-static")  # Debian package "tini"
INIT_TARGET = "/sbin/docker-init"
MIN_MEMORY = 6 * 1024 * 1024
CPU_PERIOD = 100_000
NOFILE_DEFAULT = 1_048_576


def base_spec() -> Spec:
    """The skeleton every container starts from: root, empty process, Linux section."""
    return {
        "ociVersion": OCI_VERSION,
        "root": {"path": "rootfs", "readonly": False},
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": [],
            "env": [DEFAULT_PATH],
            "cwd": "/",
        },
        "mounts": [],
        "linux": {
            "namespaces": [],
            "resources": {},
            "maskedPaths": [],
            "readonlyPaths": [],
        },
    }


def write_spec(bundle: Path, spec: Mapping[str, Any]) -> Path:
    """Write ``bundle/config.json`` atomically and return its path."""
    path = bundle / "config.json"
    write_bytes(path, json.dumps(spec, separators=(",", ":")).encode(), mode=0o600, fsync=False)
    return path


def _env_key(item: str) -> str:
    return item.split("=", 1)[0]


def _set_env_default(env: list[str], item: str) -> None:
    key = _env_key(item)
    if not any(_env_key(e) == key for e in env):
        env.append(item)


def with_process(
    spec: Spec,
    args: Sequence[str],
    env: Sequence[str] = (),
    cwd: str = "/",
    tty: bool = False,
) -> Spec:
    """The container's command, environment (PATH and, with a tty, TERM default as Docker's)."""
    if not args:
        raise InvalidArgument("no command specified")
    if not cwd.startswith("/"):
        raise InvalidArgument(
            f"the working directory '{cwd}' is invalid, it needs to be an absolute path"
        )
    merged: list[str] = []
    for item in env:
        key = _env_key(item)
        merged = [e for e in merged if _env_key(e) != key]
        merged.append(item)
    _set_env_default(merged, DEFAULT_PATH)
    if tty:
        _set_env_default(merged, "TERM=xterm")
    process = spec["process"]
    process.update(args=list(args), env=merged, cwd=cwd, terminal=tty)
    return spec


def with_hostname(spec: Spec, hostname: str) -> Spec:
    """Set the UTS hostname and the HOSTNAME variable (unless the env sets it)."""
    spec["hostname"] = hostname
    _set_env_default(spec["process"]["env"], f"HOSTNAME={hostname}")
    return spec


def with_rootfs(spec: Spec, path: Path | str, readonly: bool = False) -> Spec:
    spec["root"] = {"path": str(path), "readonly": readonly}
    return spec


def with_default_mounts(
    spec: Spec, *, privileged: bool = False, shm_size: int = SHM_SIZE, cgroupns: bool = False
) -> Spec:
    """Docker's default mounts: proc, /dev tmpfs, devpts, sysfs, cgroup, mqueue, /dev/shm.

    /sys and /sys/fs/cgroup are read-only unless ``privileged`` (cgroup stays read-only in
    the host cgroup namespace, as Docker does).
    """
    sys_ro = [] if privileged else ["ro"]
    cgroup_ro = [] if privileged and cgroupns else ["ro"]
    nosuid = ["nosuid", "noexec", "nodev"]
    spec["mounts"] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": nosuid},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
        },
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": [*sys_ro, *nosuid]},
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": [*cgroup_ro, *nosuid],
        },
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": nosuid},
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": [*nosuid, "mode=1777", f"size={shm_size}"],
        },
        *spec.get("mounts", []),
    ]
    return spec


MountType = Literal["bind", "volume", "tmpfs"]
_PROPAGATIONS = ("private", "rprivate", "shared", "rshared", "slave", "rslave")


class Mount(msgspec.Struct, frozen=True):
    """A user mount (-v, --mount, --tmpfs, volumes). ``volume`` is a bind of the volume's dir."""

    type: MountType
    destination: str
    source: str = ""
    readonly: bool = False
    propagation: str = ""  # "" -> rprivate for binds
    recursive: bool = True  # rbind (Docker's default for -v)
    tmpfs_size: int | None = None
    tmpfs_mode: int | None = None
    options: tuple[str, ...] = msgspec.field(default_factory=tuple)

    def to_oci(self) -> dict[str, Any]:
        mode = "ro" if self.readonly else "rw"
        if self.type == "tmpfs":
            opts = ["nosuid", "nodev", "noexec", mode]
            if self.tmpfs_size is not None:
                opts.append(f"size={self.tmpfs_size}")
            if self.tmpfs_mode is not None:
                opts.append(f"mode={self.tmpfs_mode:o}")
            opts += [o for o in self.options if o not in opts]
            return {
                "destination": self.destination,
                "type": "tmpfs",
                "source": "tmpfs",
                "options": opts,
            }
        prop = self.propagation or "rprivate"
        if prop not in _PROPAGATIONS:
            raise InvalidArgument(f"invalid propagation mode: {prop}")
        opts = ["rbind" if self.recursive else "bind", mode, prop, *self.options]
        return {
            "destination": self.destination,
            "type": "bind",
            "source": self.source,
            "options": opts,
        }


def _check_destination(m: Mount) -> None:
    kind = "bind" if m.type == "volume" else m.type
    dest = m.destination
    if not dest.startswith("/"):
        raise InvalidArgument(
            f'invalid mount config for type "{kind}": invalid mount path: '
            f"'{dest}' mount path must be absolute"
        )
    norm = "/" + "/".join(p for p in dest.split("/") if p and p != ".")
    if norm == "/":
        raise InvalidArgument(
            f'invalid mount config for type "{kind}": invalid specification: '
            "destination can't be '/'"
        )
    if ".." in norm.split("/"):
        raise InvalidArgument(
            f'invalid mount config for type "{kind}": invalid mount path: {dest!r}'
        )
    if norm in ("/proc", "/sys") or norm.startswith("/proc/"):
        raise InvalidArgument(
            f'invalid mount config for type "{kind}": mounting over {norm} is not allowed'
        )


def with_mounts(spec: Spec, mounts: Sequence[Mount]) -> Spec:
    """Add user mounts; a user mount replaces default mounts at or below its destination."""
    for m in mounts:
        _check_destination(m)
    wanted = [m.to_oci() for m in mounts]
    dests = {w["destination"].rstrip("/") for w in wanted}

    def shadowed(existing: Mapping[str, Any]) -> bool:
        d = str(existing["destination"]).rstrip("/")
        return any(d == u or d.startswith(u + "/") for u in dests)

    spec["mounts"] = [m for m in spec.get("mounts", []) if not shadowed(m)] + wanted
    props = {m.propagation for m in mounts}
    if props & {"shared", "rshared"}:
        spec["linux"]["rootfsPropagation"] = "rshared"
    elif props & {"slave", "rslave"}:
        spec["linux"]["rootfsPropagation"] = "rslave"
    return spec


NamespaceMode = str  # "new" | "host" | a path such as /proc/<pid>/ns/net


def with_namespaces(
    spec: Spec,
    *,
    network: NamespaceMode = "new",
    pid: NamespaceMode = "new",
    ipc: NamespaceMode = "new",
    uts: NamespaceMode = "new",
    cgroup: NamespaceMode = "host",
) -> Spec:
    """Namespaces as Docker's: a new mount namespace always, others new, host or joined by path.

    ``cgroup`` defaults to the host's, Docker's choice on cgroup v1 hosts.
    """
    entries: list[dict[str, str]] = [{"type": "mount"}]
    for kind, mode in (
        ("network", network),
        ("pid", pid),
        ("ipc", ipc),
        ("uts", uts),
        ("cgroup", cgroup),
    ):
        if mode == "new":
            entries.append({"type": kind})
        elif mode == "host":
            continue
        elif mode.startswith("/"):
            entries.append({"type": kind, "path": mode})
        else:
            raise InvalidArgument(f"invalid {kind} namespace mode: {mode}")
    spec["linux"]["namespaces"] = entries
    if uts == "host":
        spec.pop("hostname", None)
    return spec


class Ulimit(msgspec.Struct, frozen=True):
    name: str  # "nofile", "nproc", ...
    soft: int
    hard: int

    def to_oci(self) -> dict[str, Any]:
        return {"type": "RLIMIT_" + self.name.upper(), "soft": self.soft, "hard": self.hard}


_ULIMIT_NAMES = [
    "as",
    "core",
    "cpu",
    "data",
    "fsize",
    "locks",
    "memlock",
    "msgqueue",
    "nice",
    "nofile",
    "nproc",
    "rss",
    "rtprio",
    "rttime",
    "sigpending",
    "stack",
]


def parse_ulimit(text: str) -> Ulimit:
    """Docker's ``--ulimit name=soft[:hard]``."""
    name, sep, values = text.partition("=")
    if not sep:
        raise InvalidArgument(f"invalid ulimit argument: {text}")
    if name not in _ULIMIT_NAMES:
        raise InvalidArgument(f"invalid ulimit type: {name}")
    soft_s, _, hard_s = values.partition(":")
    try:
        soft = int(soft_s)
        hard = int(hard_s) if hard_s else soft
    except ValueError:
        raise InvalidArgument(f"invalid ulimit argument: {text}") from None
    if hard >= 0 and (soft < 0 or soft > hard):
        raise InvalidArgument(
            f"ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"
        )
    return Ulimit(name, soft, hard)


_RLIM_MAX = 2**64 - 1  # RLIM_INFINITY as the OCI spec's uint64


def _current_hard(name: str) -> int | None:
    """The caller's hard limit for ``name`` (None: unlimited or unknown)."""
    const = getattr(resource, "RLIMIT_" + name.upper(), None)
    if const is None:
        return None
    hard = resource.getrlimit(const)[1]
    return None if hard == resource.RLIM_INFINITY else int(hard)


def with_rlimits(
    spec: Spec,
    ulimits: Sequence[Ulimit] = (),
    *,
    defaults: Sequence[Ulimit] = (Ulimit("nofile", NOFILE_DEFAULT, NOFILE_DEFAULT),),
    hard_limits: Mapping[str, int | None] | None = None,
) -> Spec:
    """Rlimits: ``defaults`` (NOFILE 1048576, as in Docker) overridden by ``ulimits``.

    Every value is clamped to the current hard limit of this process (``hard_limits`` for
    tests): without CAP_SYS_RESOURCE runc cannot raise a limit above it.
    """
    chosen = {u.name: u for u in defaults}
    chosen.update({u.name: u for u in ulimits})
    out = []
    for u in chosen.values():
        cap = hard_limits.get(u.name) if hard_limits is not None else _current_hard(u.name)
        soft = _RLIM_MAX if u.soft < 0 else u.soft
        hard = _RLIM_MAX if u.hard < 0 else u.hard
        if cap is not None:
            soft, hard = min(soft, cap), min(hard, cap)
        out.append(Ulimit(u.name, min(soft, hard), hard).to_oci())
    spec["process"]["rlimits"] = out
    return spec


_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_UNITS = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_memory(text: str) -> int:
    """Docker's RAMInBytes: ``512m`` -> 536870912 (binary units, optional ``b``/``ib``)."""
    match = _SIZE_RE.match(text.strip())
    if not match:
        raise InvalidArgument(f"invalid size: '{text}'")
    try:
        number = float(match.group(1))
    except ValueError:
        raise InvalidArgument(f"invalid size: '{text}'") from None
    unit = (match.group(2) or "").lower()
    return int(number * _UNITS.get(unit, 1))


def parse_cpus(text: str) -> int:
    """Docker's ``--cpus``: a decimal number of CPUs -> nano CPUs (``1.5`` -> 1500000000)."""
    from fractions import Fraction  # lazily: only `run --cpus` pays for it

    try:
        value = Fraction(text.strip())
    except (ValueError, ZeroDivisionError):
        raise InvalidArgument(f"failed to parse {text} as a rational number") from None
    nano = value * 1_000_000_000
    if nano.denominator != 1:
        raise InvalidArgument("value is too precise")
    if nano < 0:
        raise InvalidArgument("Range of CPUs is from 0.01 to the number of CPUs available")
    return int(nano)


def with_resources(
    spec: Spec,
    *,
    memory: int | None = None,
    memory_swap: int | None = None,
    nano_cpus: int | None = None,
    pids_limit: int | None = None,
    cpu_count: int | None = None,
    tuning: ResourceTuning | None = None,
) -> Spec:
    """Cgroup limits: memory (bytes; swap = 2x as Docker's default, -1 unlimited), CPUs as a
    CFS quota over a 100 ms period, the pids limit (<= 0 means unlimited, as Docker's), and
    the finer ``tuning`` (shares, CFS period/quota, cpuset, memory reservation, blkio
    weight) that ``update`` records."""
    res = spec["linux"].setdefault("resources", {})
    if memory:
        if memory < MIN_MEMORY:
            raise InvalidArgument("Minimum memory limit allowed is 6MB")
        mem: dict[str, int] = {"limit": memory}
        if memory_swap is None:
            mem["swap"] = 2 * memory
        elif memory_swap != 0:
            if 0 < memory_swap < memory:
                raise InvalidArgument(
                    "Minimum memoryswap limit should be larger than memory limit, "
                    "see usage for details"
                )
            mem["swap"] = memory_swap
        res["memory"] = mem
    if nano_cpus:
        available = cpu_count or os.cpu_count() or 1
        if nano_cpus < 10_000_000 or nano_cpus > available * 1_000_000_000:
            raise InvalidArgument(
                f"Range of CPUs is from 0.01 to {available}.00, "
                f"as there are only {available} CPUs available"
            )
        res["cpu"] = {"period": CPU_PERIOD, "quota": nano_cpus * CPU_PERIOD // 1_000_000_000}
    if pids_limit is not None and pids_limit > 0:
        res["pids"] = {"limit": pids_limit}
    if tuning is not None:
        _with_tuning(res, tuning)
    return spec


class ResourceTuning(msgspec.Struct, frozen=True):
    """HostConfig's CpuShares, CpuPeriod, CpuQuota, CpusetCpus, MemoryReservation and
    BlkioWeight (0 / "" = not set)."""

    cpu_shares: int = 0
    cpu_period: int = 0
    cpu_quota: int = 0
    cpuset_cpus: str = ""
    memory_reservation: int = 0
    blkio_weight: int = 0


def _with_tuning(res: dict[str, Any], t: ResourceTuning) -> None:
    cpu = {k: v for k, v in (("shares", t.cpu_shares), ("period", t.cpu_period),
                             ("quota", t.cpu_quota), ("cpus", t.cpuset_cpus)) if v}
    if cpu:
        res.setdefault("cpu", {}).update(cpu)
    if t.memory_reservation:
        res.setdefault("memory", {})["reservation"] = t.memory_reservation
    if t.blkio_weight:
        res["blockIO"] = {"weight": t.blkio_weight}


def with_cgroups_path(spec: Spec, path: str) -> Spec:
    """Where runc puts the container's cgroups (cgroupfs: ``/cargohold/<id>``)."""
    spec["linux"]["cgroupsPath"] = path
    return spec


def with_init(spec: Spec, init_path: Path = INIT_SOURCE) -> Spec:
    """``--init``: bind-mount tini (``tini-static``) at /sbin/docker-init and run it as PID 1."""
    if not init_path.is_file():
        raise Unavailable(
            f'docker-init binary not found: {init_path} (install the Debian package "tini")'
        )
    process = spec["process"]
    process["args"] = [INIT_TARGET, "--", *process["args"]]
    spec["mounts"] = [m for m in spec.get("mounts", []) if m["destination"] != INIT_TARGET] + [
        {
            "destination": INIT_TARGET,
            "type": "bind",
            "source": str(init_path),
            "options": ["bind", "ro"],
        }
    ]
    return spec
