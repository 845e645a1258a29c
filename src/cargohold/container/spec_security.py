"""Security builders for the OCI spec: capabilities, masked paths, seccomp, devices, NNP.

Defaults follow Docker's: its 14 default capabilities, masked and read-only /proc and /sys
paths, the default seccomp profile (``seccomp_default.json`` next to this file: deny with
EPERM, an allow-list, and rules that apply only with some capabilities, architectures or
kernels) and the devices cgroup allow-list. ``privileged`` lifts all of them.

Call :func:`with_capabilities` before :func:`with_seccomp`: the profile's conditional rules
look at the container's bounding set.
"""

from __future__ import annotations

import functools
import json
import os
import stat
import sys
from collections.abc import Collection, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cargohold.errors import InvalidArgument

Spec = dict[str, Any]

# Index = capability number (linux/capability.h).
ALL_CAPABILITIES: tuple[str, ...] = tuple(
    "CAP_" + n
    for n in [
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    ]
)

DEFAULT_CAPABILITIES: tuple[str, ...] = (
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
)

MASKED_PATHS: tuple[str, ...] = (
    "/proc/asound",
    "/proc/acpi",
    "/proc/interrupts",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
READONLY_PATHS: tuple[str, ...] = (
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
)


def host_capabilities(status_path: Path = Path("/proc/self/status")) -> frozenset[str]:
    """Capabilities in this process's bounding set: the most a container can be given."""
    try:
        for line in status_path.read_text().splitlines():
            if line.startswith("CapBnd:"):
                mask = int(line.split()[1], 16)
                return frozenset(c for i, c in enumerate(ALL_CAPABILITIES) if mask >> i & 1)
    except OSError:
        pass
    return frozenset(ALL_CAPABILITIES)


def normalize_capability(name: str) -> str:
    """``chown``, ``CAP_chown``, ``Cap_Chown`` -> ``CAP_CHOWN``; ``all`` -> ``ALL``."""
    upper = name.strip().upper()
    if upper == "ALL":
        return "ALL"
    if not upper.startswith("CAP_"):
        upper = "CAP_" + upper
    if upper not in ALL_CAPABILITIES:
        raise InvalidArgument(f"unknown capability: {upper!r}".replace("'", '"'))
    return upper


def resolve_capabilities(
    add: Iterable[str] = (),
    drop: Iterable[str] = (),
    *,
    privileged: bool = False,
    available: Collection[str] | None = None,
    base: Sequence[str] = DEFAULT_CAPABILITIES,
) -> list[str]:
    """Docker's TweakCapabilities, limited to the capabilities this host can grant.

    privileged -> all; ``ALL`` in add -> all but the dropped; ``ALL`` in drop -> only the
    added; otherwise base minus drop plus add.
    """
    everything = [c for c in ALL_CAPABILITIES if available is None or c in available]
    adds = [normalize_capability(c) for c in add]
    drops = [normalize_capability(c) for c in drop]
    if privileged:
        return everything
    if "ALL" in adds:
        result = [c for c in everything if c not in drops]
    elif "ALL" in drops:
        result = list(adds)
    else:
        result = [c for c in base if c not in drops] + adds
    seen: set[str] = set()
    out = []
    for c in result:
        if c != "ALL" and c not in seen and (available is None or c in available):
            seen.add(c)
            out.append(c)
    return out


def with_capabilities(
    spec: Spec,
    add: Iterable[str] = (),
    drop: Iterable[str] = (),
    privileged: bool = False,
    *,
    available: Collection[str] | None = None,
) -> Spec:
    """Set bounding/effective/permitted capabilities (no inheritable or ambient, as Docker).

    ``available`` defaults to this process's bounding set: a capability the host cannot grant
    (here CAP_SYS_RESOURCE) is left out rather than failing the container.
    """
    if available is None:
        available = host_capabilities()
    caps = resolve_capabilities(add, drop, privileged=privileged, available=available)
    spec["process"]["capabilities"] = {
        "bounding": list(caps),
        "effective": list(caps),
        "permitted": list(caps),
    }
    return spec


def with_masked_paths(spec: Spec, privileged: bool = False, sys_root: Path = Path("/sys")) -> Spec:
    """Docker's masked and read-only paths (none when privileged)."""
    linux = spec["linux"]
    if privileged:
        linux["maskedPaths"], linux["readonlyPaths"] = [], []
        return spec
    masked = list(MASKED_PATHS)
    cpu_dir = sys_root / "devices/system/cpu"
    try:
        names = sorted(os.listdir(cpu_dir))
    except OSError:
        names = []
    for name in names:
        digits = name.startswith("cpu") and name[3:].isdigit()
        if digits and (cpu_dir / name / "thermal_throttle").exists():
            masked.append(f"/sys/devices/system/cpu/{name}/thermal_throttle")
    linux["maskedPaths"], linux["readonlyPaths"] = masked, list(READONLY_PATHS)
    return spec


def with_no_new_privileges(spec: Spec, enabled: bool = True) -> Spec:
    spec["process"]["noNewPrivileges"] = enabled
    return spec


# -- seccomp -------------------------------------------------------------------------------

# uname machine -> libseccomp's native architecture name: the names a profile's
# includes/excludes ``arches`` use and, in our archMap, the keys.
_NATIVE_ARCH = {
    "x86_64": "amd64",
    "amd64": "amd64",
    "i386": "x86",
    "i686": "x86",
    "aarch64": "arm64",
    "arm64": "arm64",
    "armv7l": "arm",
    "armv6l": "arm",
    "s390x": "s390x",
    "ppc64le": "ppc64le",
    "riscv64": "riscv64",
    "loongarch64": "loongarch64",
    "mips64": "mips64" if sys.byteorder == "big" else "mipsel64",
}

# native name -> the SCMP_ARCH_ value that selects an entry of Docker's list-form archMap
_SCMP_ARCH = {
    "x86": "SCMP_ARCH_X86",
    "amd64": "SCMP_ARCH_X86_64",
    "x32": "SCMP_ARCH_X32",
    "arm": "SCMP_ARCH_ARM",
    "arm64": "SCMP_ARCH_AARCH64",
    "loongarch64": "SCMP_ARCH_LOONGARCH64",
    "mips64": "SCMP_ARCH_MIPS64",
    "mips64n32": "SCMP_ARCH_MIPS64N32",
    "mipsel64": "SCMP_ARCH_MIPSEL64",
    "mips3l64n32": "SCMP_ARCH_MIPSEL64N32",
    "ppc64le": "SCMP_ARCH_PPC64LE",
    "riscv64": "SCMP_ARCH_RISCV64",
    "s390": "SCMP_ARCH_S390",
    "s390x": "SCMP_ARCH_S390X",
}


@functools.lru_cache(maxsize=4)
def _load_profile(path: str) -> Mapping[str, Any]:
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except OSError as exc:
        raise InvalidArgument(f"opening seccomp profile ({path}) failed: {exc.strerror}") from None
    except ValueError as exc:
        raise InvalidArgument(f"decoding seccomp profile failed: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidArgument("decoding seccomp profile failed: not a JSON object")
    return data


def _kernel_version(release: str) -> tuple[int, int]:
    parts = release.split(".")
    try:
        return int(parts[0]), int("".join(ch for ch in parts[1] if ch.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def _architectures(profile: Mapping[str, Any], arch: str) -> list[str]:
    arch_map = profile.get("archMap")
    if isinstance(arch_map, dict):
        return list(arch_map.get(arch, []))
    if isinstance(arch_map, list):  # Docker's format: [{architecture, subArchitectures}]
        scmp = _SCMP_ARCH.get(arch, "SCMP_ARCH_" + arch.upper())
        for entry in arch_map:
            if entry.get("architecture") == scmp:
                return [scmp, *(entry.get("subArchitectures") or [])]
        return []
    return list(profile.get("architectures") or [])


def _applies(
    rule: Mapping[str, Any], caps: Collection[str], arch: str, kernel: tuple[int, int]
) -> bool:
    inc = rule.get("includes") or {}
    exc = rule.get("excludes") or {}
    if any(c not in caps for c in inc.get("caps") or []):
        return False
    if inc.get("arches") and arch not in inc["arches"]:
        return False
    if inc.get("minKernel") and kernel < _kernel_version(str(inc["minKernel"])):
        return False
    if any(c in caps for c in exc.get("caps") or []):
        return False
    if exc.get("minKernel") and kernel >= _kernel_version(str(exc["minKernel"])):
        return False
    return not (exc.get("arches") and arch in exc["arches"])


def seccomp_for(
    profile: Mapping[str, Any],
    capabilities: Collection[str],
    arch: str | None = None,
    kernel: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """Resolve a profile (ours or Docker's format) into the OCI ``linux.seccomp`` object.

    ``arch`` is libseccomp's native name of the host (``amd64``, ``x86``, ``arm64``, ...), the
    names rules use in ``includes``/``excludes``; rules are kept as Docker's setupSeccomp
    keeps them (every listed capability in the bounding set for ``includes``, any for
    ``excludes``).
    """
    uname = os.uname()
    native = arch or _NATIVE_ARCH.get(uname.machine, uname.machine)
    kver = kernel or _kernel_version(uname.release)
    out: dict[str, Any] = {"defaultAction": profile.get("defaultAction", "SCMP_ACT_ERRNO")}
    for key in ("defaultErrnoRet", "flags", "listenerPath", "listenerMetadata"):
        if profile.get(key) is not None:
            out[key] = profile[key]
    archs = _architectures(profile, native)
    if archs:
        out["architectures"] = archs
    rules = []
    for rule in profile.get("syscalls") or []:
        if not _applies(rule, capabilities, native, kver):
            continue
        names = list(rule.get("names") or ([rule["name"]] if rule.get("name") else []))
        entry: dict[str, Any] = {"names": names, "action": rule["action"]}
        if rule.get("args"):
            entry["args"] = list(rule["args"])
        if rule.get("errnoRet") is not None:
            entry["errnoRet"] = rule["errnoRet"]
        rules.append(entry)
    out["syscalls"] = rules
    return out


DEFAULT_PROFILE = Path(__file__).with_name("seccomp_default.json")


def with_seccomp(spec: Spec, profile: str = "default", privileged: bool = False) -> Spec:
    """``default`` (our Docker-equivalent profile), ``unconfined``, or a profile file path.

    A privileged container runs unconfined unless a profile file is named, as in Docker.
    """
    linux = spec["linux"]
    if profile == "unconfined" or (privileged and profile == "default"):
        linux.pop("seccomp", None)
        return spec
    path = DEFAULT_PROFILE if profile in ("default", "") else Path(profile)
    data = _load_profile(str(path))
    caps = spec["process"].get("capabilities", {}).get("bounding", [])
    linux["seccomp"] = seccomp_for(data, caps)
    return spec


# -- devices -------------------------------------------------------------------------------


def _rule(kind: str, major: int | None, minor: int | None, access: str = "rwm") -> dict[str, Any]:
    rule: dict[str, Any] = {"allow": True, "type": kind, "access": access}
    if major is not None:
        rule["major"] = major
    if minor is not None:
        rule["minor"] = minor
    return rule


DEFAULT_DEVICE_RULES: tuple[dict[str, Any], ...] = (
    {"allow": False, "access": "rwm"},
    _rule("c", None, None, "m"),  # mknod of any char device
    _rule("b", None, None, "m"),  # mknod of any block device
    _rule("c", 1, 3),  # /dev/null
    _rule("c", 1, 5),  # /dev/zero
    _rule("c", 1, 7),  # /dev/full
    _rule("c", 1, 8),  # /dev/random
    _rule("c", 1, 9),  # /dev/urandom
    _rule("c", 5, 0),  # /dev/tty
    _rule("c", 5, 1),  # /dev/console
    _rule("c", 5, 2),  # /dev/ptmx
    _rule("c", 136, None),  # /dev/pts/*
    _rule("c", 10, 200),  # /dev/net/tun
)

_SKIP_DEV_DIRS = frozenset({"pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"})


def host_devices(root: Path = Path("/dev")) -> list[dict[str, Any]]:
    """Every char/block device under ``root`` as OCI ``linux.devices`` entries."""
    found: list[dict[str, Any]] = []
    stack = [root]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:
            continue
        for entry in entries:
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(st.st_mode):
                if entry.name not in _SKIP_DEV_DIRS:
                    stack.append(Path(entry.path))
                continue
            if entry.path == str(root / "console"):
                continue
            kind = "c" if stat.S_ISCHR(st.st_mode) else "b" if stat.S_ISBLK(st.st_mode) else ""
            if not kind:
                continue
            found.append(
                {
                    "path": entry.path,
                    "type": kind,
                    "major": os.major(st.st_rdev),
                    "minor": os.minor(st.st_rdev),
                    "fileMode": stat.S_IMODE(st.st_mode),
                    "uid": st.st_uid,
                    "gid": st.st_gid,
                }
            )
    return sorted(found, key=lambda d: str(d["path"]))


def with_devices(spec: Spec, privileged: bool = False, dev_root: Path = Path("/dev")) -> Spec:
    """Devices cgroup: deny all, then Docker's allow-list; privileged: every host device."""
    linux = spec["linux"]
    resources = linux.setdefault("resources", {})
    if privileged:
        linux["devices"] = host_devices(dev_root)
        resources["devices"] = [{"allow": True, "access": "rwm"}]
    else:
        resources["devices"] = [dict(r) for r in DEFAULT_DEVICE_RULES]
    return spec
