"""AppArmor for containers: the default profile, loading it, and the profile a process gets.

Where the kernel has AppArmor enabled, a container's process runs under ``cargohold-default``
(the rules of Docker's ``docker-default``, written out by :func:`profile_text`) unless
``--security-opt apparmor=PROFILE`` names another profile or ``unconfined``; a privileged
container runs unconfined unless a profile is named. The default profile is loaded with
``apparmor_parser -Kr`` whenever it is missing from the kernel (also after something unloaded
it), as Docker does. Where AppArmor is not enabled nothing is applied; the engine warns when
a user asks for a profile there (:func:`check_requested`).

Every kernel fact is read through :class:`Host`, so tests point it at a temporary directory.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from cargohold.errors import InvalidArgument, Unavailable

DEFAULT_PROFILE = "cargohold-default"
UNCONFINED = "unconfined"


class Host(msgspec.Struct, frozen=True):
    """Where the AppArmor facts of this host are read and how profiles are loaded."""

    security_dir: Path = Path("/sys/kernel/security/apparmor")
    enabled_file: Path = Path("/sys/module/apparmor/parameters/enabled")
    config_dir: Path = Path("/etc/apparmor.d")
    current_file: Path = Path("/proc/self/attr/current")
    parser: str = "apparmor_parser"


HOST = Host()


def enabled(host: Host | None = None) -> bool:
    """AppArmor is usable: securityfs shows it and the module says ``Y`` (runc's test)."""
    h = host or HOST
    if not h.security_dir.is_dir():
        return False
    try:
        return h.enabled_file.read_bytes()[:1] == b"Y"
    except OSError:
        return False


def split_label(text: str) -> str:
    """``name (enforce)`` -> ``name``; a bare name or ``unconfined`` stays as it is."""
    text = text.rstrip("\n")
    if text.endswith(")"):
        cut = text.rfind(" (", 0, len(text) - 1)
        if cut >= 0:
            return text[:cut]
    return text


def loaded_profiles(host: Host | None = None) -> set[str]:
    try:
        lines = ((host or HOST).security_dir / "profiles").read_text(errors="replace").splitlines()
    except OSError:
        return set()
    return {split_label(line) for line in lines if line.strip()}


def _own_profile(host: Host) -> str:
    """The profile this process runs under: it must be able to signal the containers."""
    try:
        label = split_label(host.current_file.read_text(errors="replace"))
    except OSError:
        label = ""
    return label or UNCONFINED


def profile_text(
    name: str = DEFAULT_PROFILE,
    *,
    engine_profile: str = UNCONFINED,
    includes: Iterable[str] = ("abi/3.0", "tunables/global", "abstractions/base"),
) -> str:
    """The default profile: Docker's docker-default rules.

    ``includes`` lists the files present under /etc/apparmor.d: the ABI is pinned to 3.0 where
    the parser knows it (with ABI 4 a bare ``network`` rule no longer covers unix sockets), the
    global tunables define @{PROC} (else it is set here), and the base abstraction goes in.
    """
    present = set(includes)
    head = ["# cargohold's default container profile (the rules of Docker's docker-default)."]
    if "abi/3.0" in present:
        head.append("abi <abi/3.0>,")
    head.append("#include <tunables/global>" if "tunables/global" in present
                else "@{PROC}=/proc/")
    body = ["  #include <abstractions/base>", ""] if "abstractions/base" in present else []
    quoted = f'"{name}"'
    body += [
        "  network,",
        "  # no kernel crypto API sockets (AF_ALG), as in the seccomp profile",
        "  deny network alg,",
        "  capability,",
        "  file,",
        "  umount,",
        "",
        "  # who may signal the container: host processes, the runtime, this engine, itself",
        "  signal (receive) peer=unconfined,",
        "  signal (receive) peer=runc,",
        "  signal (receive) peer=crun,",
        f'  signal (receive) peer="{engine_profile}",',
        f"  signal (send,receive) peer={quoted},",
        "",
        "  # no writes to /proc files outside /proc/<pid>/ and /proc/sys/kernel/shm*",
        "  deny @{PROC}/* w,",
        "  deny @{PROC}/{[^1-9/],[^1-9/][^0-9/],[^1-9s/][^0-9y/][^0-9s/],"
        "[^1-9/][^0-9/][^0-9/][^0-9/]*}/** w,",
        "  deny @{PROC}/sys/[^k]** w,",
        "  deny @{PROC}/sys/kernel/{?,??,[^s][^h][^m]**} w,",
        "  deny @{PROC}/sysrq-trigger rwklx,",
        "  deny @{PROC}/kcore rwklx,",
        "",
        "  deny mount,",
        "",
        "  # /sys is read-only but for /sys/fs/cgroup; firmware, powercap, LSMs unreadable",
        "  deny /sys/[^f]*/** wklx,",
        "  deny /sys/f[^s]*/** wklx,",
        "  deny /sys/fs/[^c]*/** wklx,",
        "  deny /sys/fs/c[^g]*/** wklx,",
        "  deny /sys/fs/cg[^r]*/** wklx,",
        "  deny /sys/firmware/** rwklx,",
        "  deny /sys/devices/virtual/powercap/** rwklx,",
        "  deny /sys/kernel/security/** rwklx,",
        "",
        "  # processes of the container may trace each other (if yama and the rest allow it)",
        f"  ptrace (trace,tracedby,read,readby) peer={quoted},",
    ]
    return "\n".join([*head, "", f"profile {quoted} flags=(attach_disconnected,mediate_deleted) {{",
                      *body, "}", ""])


def _present_includes(host: Host) -> list[str]:
    wanted = ("abi/3.0", "tunables/global", "abstractions/base")
    return [w for w in wanted if (host.config_dir / w).exists()]


def ensure_default(host: Host | None = None) -> None:
    """Load :data:`DEFAULT_PROFILE` unless the kernel has it (``apparmor_parser -Kr``: replace,
    and never write a cache, which may sit on a read-only file system)."""
    h = host or HOST
    if DEFAULT_PROFILE in loaded_profiles(h):
        return
    import subprocess  # only where AppArmor is enabled and the profile is missing

    text = profile_text(engine_profile=_own_profile(h), includes=_present_includes(h))
    try:
        proc = subprocess.run([h.parser, "-Kr"], input=text.encode(), capture_output=True,
                              check=False)  # fmt: skip
    except OSError as exc:
        raise Unavailable(
            f"AppArmor is enabled but {h.parser} cannot be run ({exc.strerror}): cannot load "
            f"the {DEFAULT_PROFILE} profile (install the Debian package \"apparmor\")"
        ) from None
    if proc.returncode != 0:
        output = (proc.stderr or proc.stdout).decode(errors="replace").strip()
        raise Unavailable(f"loading AppArmor profile {DEFAULT_PROFILE} with "
                          f"'{h.parser} -Kr' failed: {output}")  # fmt: skip


def _require_loaded(name: str, host: Host) -> None:
    if name not in loaded_profiles(host):
        raise InvalidArgument(f"AppArmor profile {name!r} is not loaded (load it with "
                              "apparmor_parser first)")  # fmt: skip


def check_requested(requested: str, host: Host | None = None) -> list[str]:
    """Validate a requested profile at create; the warnings to show the user.

    Enabled: a named profile other than ours must be loaded already (else runc fails late
    with an obscure error). Not enabled: a warning that the profile has no effect.
    """
    h = host or HOST
    if not requested or requested == UNCONFINED:
        return []
    if not enabled(h):
        return [f"AppArmor is not enabled on this host: --security-opt apparmor={requested} "
                "has no effect"]  # fmt: skip
    if requested != DEFAULT_PROFILE:
        _require_loaded(requested, h)
    return []


def profile_for(requested: str, privileged: bool) -> str:
    """The profile of a container on an AppArmor host: the named one, else unconfined when
    privileged, else the default."""
    if requested:
        return requested
    return UNCONFINED if privileged else DEFAULT_PROFILE


def with_apparmor(
    spec: dict[str, Any], requested: str = "", privileged: bool = False, host: Host | None = None
) -> dict[str, Any]:
    """Set ``process.apparmorProfile`` (nothing where AppArmor is not enabled)."""
    h = host or HOST
    process = spec["process"]
    if not enabled(h):
        process.pop("apparmorProfile", None)
        return spec
    name = profile_for(requested, privileged)
    if name == DEFAULT_PROFILE:
        ensure_default(h)
    elif name != UNCONFINED:
        _require_loaded(name, h)
    process["apparmorProfile"] = name
    return spec


def ensure_for_process(process: dict[str, Any], host: Host | None = None) -> None:
    """Before an exec: the container's profile, if it is ours, must still be loaded."""
    h = host or HOST
    if process.get("apparmorProfile") == DEFAULT_PROFILE and enabled(h):
        ensure_default(h)

