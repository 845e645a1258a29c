"""OCI spec builders: composition, security defaults, limits, user resolution (no root)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from cargohold.container import spec as S
from cargohold.container.spec_security import (
    ALL_CAPABILITIES,
    DEFAULT_PROFILE,
    host_capabilities,
    normalize_capability,
    resolve_capabilities,
    seccomp_for,
)
from cargohold.container.users import (
    open_in_root,
    parse_group,
    parse_passwd,
    read_root_file,
    resolve_user,
)
from cargohold.errors import InvalidArgument, Unavailable

EVERY = frozenset(ALL_CAPABILITIES)


def full_spec(tmp_path: Path) -> dict[str, object]:
    spec = S.base_spec()
    S.with_process(spec, ["sh", "-c", "true"], env=["A=1", "A=2"], cwd="/work", tty=True)
    S.with_hostname(spec, "box")
    S.with_rootfs(spec, tmp_path, readonly=True)
    S.with_default_mounts(spec)
    S.with_mounts(spec, [S.Mount("bind", "/data", "/srv/data", readonly=True)])
    S.with_namespaces(spec, network="new")
    S.with_capabilities(spec, available=EVERY)
    S.with_masked_paths(spec)
    S.with_seccomp(spec)
    S.with_no_new_privileges(spec)
    S.with_devices(spec)
    S.with_rlimits(spec, hard_limits={"nofile": 20000})
    S.with_resources(
        spec,
        memory=S.parse_memory("512m"),
        nano_cpus=S.parse_cpus("1.5"),
        pids_limit=50,
        cpu_count=4,
    )
    return spec


# -- composition -----------------------------------------------------------------------------


def test_composition_produces_a_json_serialisable_spec(tmp_path: Path) -> None:
    spec = full_spec(tmp_path)
    path = S.write_spec(tmp_path, spec)
    loaded = json.loads(path.read_text())
    proc = loaded["process"]
    assert proc["args"] == ["sh", "-c", "true"]
    assert "A=2" in proc["env"] and "A=1" not in proc["env"]
    assert S.DEFAULT_PATH in proc["env"] and "TERM=xterm" in proc["env"]
    assert "HOSTNAME=box" in proc["env"]
    assert proc["cwd"] == "/work" and proc["terminal"] is True
    assert proc["noNewPrivileges"] is True
    assert loaded["root"] == {"path": str(tmp_path), "readonly": True}
    assert loaded["hostname"] == "box"
    dests = [m["destination"] for m in loaded["mounts"]]
    assert dests[:7] == [
        "/proc",
        "/dev",
        "/dev/pts",
        "/sys",
        "/sys/fs/cgroup",
        "/dev/mqueue",
        "/dev/shm",
    ]
    assert dests[-1] == "/data"
    shm = loaded["mounts"][6]
    assert f"size={64 * 1024 * 1024}" in shm["options"]
    ns = [n["type"] for n in loaded["linux"]["namespaces"]]
    assert ns == ["mount", "network", "pid", "ipc", "uts"]
    res = loaded["linux"]["resources"]
    assert res["memory"] == {"limit": 512 << 20, "swap": 1024 << 20}
    assert res["cpu"] == {"period": 100000, "quota": 150000}
    assert res["pids"] == {"limit": 50}
    assert res["devices"][0] == {"allow": False, "access": "rwm"}


def test_process_requires_a_command_and_absolute_cwd() -> None:
    with pytest.raises(InvalidArgument):
        S.with_process(S.base_spec(), [])
    with pytest.raises(InvalidArgument, match="absolute path"):
        S.with_process(S.base_spec(), ["true"], cwd="rel")


def test_env_path_is_kept_when_given() -> None:
    spec = S.with_process(S.base_spec(), ["x"], env=["PATH=/bin"])
    assert [e for e in spec["process"]["env"] if e.startswith("PATH=")] == ["PATH=/bin"]
    assert not any(e.startswith("TERM=") for e in spec["process"]["env"])


def test_default_mounts_privileged_makes_sys_writable() -> None:
    spec = S.with_default_mounts(S.base_spec(), privileged=True, shm_size=1024)
    sysfs = next(m for m in spec["mounts"] if m["destination"] == "/sys")
    assert "ro" not in sysfs["options"]
    cg = next(m for m in spec["mounts"] if m["destination"] == "/sys/fs/cgroup")
    assert "ro" in cg["options"]
    shm = next(m for m in spec["mounts"] if m["destination"] == "/dev/shm")
    assert "size=1024" in shm["options"]


def test_user_mount_replaces_defaults_at_and_below() -> None:
    spec = S.with_default_mounts(S.base_spec())
    S.with_mounts(spec, [S.Mount("tmpfs", "/dev", tmpfs_size=1000, tmpfs_mode=0o755)])
    dests = [m["destination"] for m in spec["mounts"]]
    assert dests.count("/dev") == 1 and "/dev/shm" not in dests and "/dev/pts" not in dests
    tmpfs = spec["mounts"][-1]
    assert (
        tmpfs["type"] == "tmpfs"
        and "size=1000" in tmpfs["options"]
        and "mode=755" in tmpfs["options"]
    )


def test_bind_options_and_propagation() -> None:
    spec = S.base_spec()
    S.with_mounts(
        spec,
        [
            S.Mount("volume", "/v", "/var/lib/cargohold/volumes/x/_data"),
            S.Mount("bind", "/b", "/src", readonly=True, recursive=False, propagation="rshared"),
        ],
    )
    v, b = spec["mounts"]
    assert v["type"] == "bind" and v["options"] == ["rbind", "rw", "rprivate"]
    assert b["options"] == ["bind", "ro", "rshared"]
    assert spec["linux"]["rootfsPropagation"] == "rshared"
    with pytest.raises(InvalidArgument, match="propagation"):
        S.with_mounts(S.base_spec(), [S.Mount("bind", "/x", "/y", propagation="weird")])


@pytest.mark.parametrize(
    ("dest", "match"),
    [
        ("rel/path", "must be absolute"),
        ("/", "can't be '/'"),
        ("/proc", "not allowed"),
        ("/proc/sys", "not allowed"),
        ("/sys/", "not allowed"),
        ("/a/../etc", "invalid mount path"),
    ],
)
def test_bad_mount_destinations(dest: str, match: str) -> None:
    with pytest.raises(InvalidArgument, match=match):
        S.with_mounts(S.base_spec(), [S.Mount("bind", dest, "/src")])


def test_namespaces_host_and_path() -> None:
    spec = S.with_hostname(S.base_spec(), "h")
    S.with_namespaces(spec, network="host", pid="/proc/1/ns/pid", uts="host")
    assert spec["linux"]["namespaces"] == [
        {"type": "mount"},
        {"type": "pid", "path": "/proc/1/ns/pid"},
        {"type": "ipc"},
    ]
    assert "hostname" not in spec
    with pytest.raises(InvalidArgument):
        S.with_namespaces(S.base_spec(), network="bogus")


# -- capabilities ------------------------------------------------------------------------------


def caps_of(spec: dict[str, object]) -> list[str]:
    c = spec["process"]["capabilities"]  # type: ignore[index]
    assert c["bounding"] == c["effective"] == c["permitted"]
    return list(c["bounding"])


def test_default_capabilities_are_dockers() -> None:
    caps = caps_of(S.with_capabilities(S.base_spec(), available=EVERY))
    docker = ("CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW", "SETGID")
    docker += ("SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE", "SYS_CHROOT", "KILL")
    docker += ("AUDIT_WRITE",)
    assert sorted(caps) == sorted("CAP_" + c for c in docker)
    assert "inheritable" not in S.base_spec()["process"]


def test_cap_add_drop_names_case_insensitive() -> None:
    caps = caps_of(
        S.with_capabilities(
            S.base_spec(),
            add=["net_admin", "CAP_sys_time"],
            drop=["chown", "Cap_Kill"],
            available=EVERY,
        )
    )
    assert "CAP_NET_ADMIN" in caps and "CAP_SYS_TIME" in caps
    assert "CAP_CHOWN" not in caps and "CAP_KILL" not in caps
    assert len(caps) == len(set(caps))


def test_cap_all() -> None:
    every = resolve_capabilities(add=["ALL"], drop=["NET_RAW"], available=EVERY)
    assert len(every) == len(ALL_CAPABILITIES) - 1 and "CAP_NET_RAW" not in every
    only = resolve_capabilities(add=["chown"], drop=["all"], available=EVERY)
    assert only == ["CAP_CHOWN"]
    assert resolve_capabilities(drop=["ALL"], available=EVERY) == []


def test_privileged_is_all_available_capabilities() -> None:
    limited = EVERY - {"CAP_SYS_RESOURCE"}
    caps = resolve_capabilities(add=["x"] * 0, drop=["CHOWN"], privileged=True, available=limited)
    assert "CAP_SYS_RESOURCE" not in caps and "CAP_CHOWN" in caps
    assert len(caps) == len(ALL_CAPABILITIES) - 1
    # explicitly added but not grantable here: left out rather than failing in runc
    assert "CAP_SYS_RESOURCE" not in resolve_capabilities(add=["SYS_RESOURCE"], available=limited)


def test_unknown_capability() -> None:
    with pytest.raises(InvalidArgument, match='unknown capability: "CAP_FOO"'):
        normalize_capability("foo")
    with pytest.raises(InvalidArgument):
        S.with_capabilities(S.base_spec(), add=["bogus"], available=EVERY)


def test_host_capabilities_parses_capbnd(tmp_path: Path) -> None:
    status = tmp_path / "status"
    status.write_text("Name:\tx\nCapBnd:\t000001fffeffffff\n")
    caps = host_capabilities(status)
    assert "CAP_SYS_RESOURCE" not in caps and "CAP_CHECKPOINT_RESTORE" in caps
    assert len(caps) == 40


# -- masked paths, seccomp, devices ----------------------------------------------------------


def test_masked_paths(tmp_path: Path) -> None:
    (tmp_path / "devices/system/cpu/cpu0/thermal_throttle").mkdir(parents=True)
    (tmp_path / "devices/system/cpu/cpufreq").mkdir(parents=True)
    spec = S.with_masked_paths(S.base_spec(), sys_root=tmp_path)
    masked = spec["linux"]["maskedPaths"]
    assert "/proc/kcore" in masked and "/sys/firmware" in masked
    assert "/sys/devices/system/cpu/cpu0/thermal_throttle" in masked
    assert not any("cpufreq" in m for m in masked)
    assert "/proc/sys" in spec["linux"]["readonlyPaths"]
    priv = S.with_masked_paths(S.base_spec(), privileged=True)
    assert priv["linux"]["maskedPaths"] == [] and priv["linux"]["readonlyPaths"] == []


def rules_for(seccomp: dict[str, object], name: str) -> list[dict[str, object]]:
    return [r for r in seccomp["syscalls"] if name in r["names"]]  # type: ignore[attr-defined, index]


def test_default_seccomp_profile_semantics() -> None:
    profile = json.loads(DEFAULT_PROFILE.read_text())
    default_caps = list(S.DEFAULT_CAPABILITIES)
    sc = seccomp_for(profile, default_caps, arch="amd64", kernel=(6, 1))
    assert sc["defaultAction"] == "SCMP_ACT_ERRNO" and sc["defaultErrnoRet"] == 1
    assert sc["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert rules_for(sc, "read") and rules_for(sc, "arch_prctl") and rules_for(sc, "chroot")
    assert (
        not rules_for(sc, "mount")
        and not rules_for(sc, "reboot")
        and not rules_for(sc, "riscv_flush_icache")
    )
    clone = rules_for(sc, "clone")
    assert len(clone) == 1 and clone[0]["args"][0]["op"] == "SCMP_CMP_MASKED_EQ"  # type: ignore[index]
    assert clone[0]["args"][0]["value"] == 0x7E020000  # type: ignore[index]
    clone3 = rules_for(sc, "clone3")
    assert clone3 == [{"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": 38}]
    assert len(rules_for(sc, "personality")) == 5
    assert rules_for(sc, "ptrace")  # kernel >= 4.8
    assert not rules_for(seccomp_for(profile, default_caps, arch="amd64", kernel=(4, 4)), "ptrace")


def test_seccomp_with_sys_admin_allows_mount_and_any_clone() -> None:
    profile = json.loads(DEFAULT_PROFILE.read_text())
    sc = seccomp_for(
        profile, [*S.DEFAULT_CAPABILITIES, "CAP_SYS_ADMIN"], arch="amd64", kernel=(6, 1)
    )
    assert rules_for(sc, "mount")
    clone = rules_for(sc, "clone")
    assert len(clone) == 1 and "args" not in clone[0]
    assert all(r["action"] == "SCMP_ACT_ALLOW" for r in rules_for(sc, "clone3"))


def test_with_seccomp_modes(tmp_path: Path) -> None:
    spec = S.with_capabilities(S.base_spec(), available=EVERY)
    assert "seccomp" in S.with_seccomp(spec)["linux"]
    assert "seccomp" not in S.with_seccomp(spec, "unconfined")["linux"]
    assert "seccomp" not in S.with_seccomp(spec, privileged=True)["linux"]
    custom = tmp_path / "p.json"
    custom.write_text(
        json.dumps(
            {
                "defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["kexec_load"], "action": "SCMP_ACT_ERRNO"}],
            }
        )
    )
    sc = S.with_seccomp(spec, str(custom))["linux"]["seccomp"]
    assert sc["defaultAction"] == "SCMP_ACT_ALLOW" and sc["syscalls"][0]["names"] == ["kexec_load"]
    with pytest.raises(InvalidArgument, match="seccomp profile"):
        S.with_seccomp(spec, str(tmp_path / "missing.json"))


def test_devices_default_and_privileged(tmp_path: Path) -> None:
    spec = S.with_devices(S.base_spec())
    rules = spec["linux"]["resources"]["devices"]
    assert rules[0] == {"allow": False, "access": "rwm"}
    assert {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"} in rules
    assert "devices" not in spec["linux"]
    priv = S.with_devices(S.base_spec(), privileged=True, dev_root=Path("/dev"))
    assert priv["linux"]["resources"]["devices"] == [{"allow": True, "access": "rwm"}]
    paths = [d["path"] for d in priv["linux"]["devices"]]
    assert "/dev/null" in paths and not any(p.startswith("/dev/pts/") for p in paths)


# -- rlimits, resources ------------------------------------------------------------------------


def test_rlimits_clamped_to_hard_limit() -> None:
    spec = S.with_rlimits(S.base_spec(), hard_limits={"nofile": 20000})
    assert spec["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "soft": 20000, "hard": 20000}]
    spec = S.with_rlimits(
        S.base_spec(),
        [S.parse_ulimit("nofile=100:200"), S.parse_ulimit("nproc=-1")],
        hard_limits={"nofile": 150, "nproc": None},
    )
    got = {r["type"]: (r["soft"], r["hard"]) for r in spec["process"]["rlimits"]}
    assert got == {"RLIMIT_NOFILE": (100, 150), "RLIMIT_NPROC": (2**64 - 1, 2**64 - 1)}


def test_rlimits_never_exceed_this_process() -> None:
    import resource

    spec = S.with_rlimits(
        S.base_spec(), [S.Ulimit("nofile", 10**9, 10**9), S.Ulimit("nproc", 10**9, 10**9)]
    )
    for r in spec["process"]["rlimits"]:
        hard = resource.getrlimit(getattr(resource, r["type"]))[1]
        if hard != resource.RLIM_INFINITY:
            assert r["hard"] <= hard and r["soft"] <= r["hard"]


def test_parse_ulimit_errors() -> None:
    for bad in ("nofile", "bogus=1", "nofile=a", "nofile=10:5"):
        with pytest.raises(InvalidArgument):
            S.parse_ulimit(bad)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("512m", 512 << 20),
        ("1g", 1 << 30),
        ("1GB", 1 << 30),
        ("1.5k", 1536),
        ("100", 100),
        ("64 MiB", 64 << 20),
        ("2t", 2 << 40),
        ("10b", 10),
    ],
)
def test_parse_memory(text: str, value: int) -> None:
    assert S.parse_memory(text) == value


@pytest.mark.parametrize("bad", ["", "abc", "-1m", "1x", "m"])
def test_parse_memory_errors(bad: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid size"):
        S.parse_memory(bad)


def test_parse_cpus() -> None:
    assert S.parse_cpus("1.5") == 1_500_000_000
    assert S.parse_cpus("3/4") == 750_000_000
    with pytest.raises(InvalidArgument, match="rational number"):
        S.parse_cpus("lots")
    with pytest.raises(InvalidArgument, match="too precise"):
        S.parse_cpus("0.0000000001")


def test_resources_validation() -> None:
    with pytest.raises(InvalidArgument, match="Minimum memory limit allowed is 6MB"):
        S.with_resources(S.base_spec(), memory=1024)
    with pytest.raises(InvalidArgument, match="Range of CPUs"):
        S.with_resources(S.base_spec(), nano_cpus=S.parse_cpus("64"), cpu_count=2)
    spec = S.with_resources(S.base_spec(), memory=64 << 20, memory_swap=-1, pids_limit=-1)
    assert spec["linux"]["resources"] == {"memory": {"limit": 64 << 20, "swap": -1}}
    spec = S.with_resources(S.base_spec(), memory=64 << 20, memory_swap=0)
    assert spec["linux"]["resources"]["memory"] == {"limit": 64 << 20}


def test_with_init(tmp_path: Path) -> None:
    tini = tmp_path / "tini"
    tini.write_bytes(b"")
    spec = S.with_process(S.base_spec(), ["sleep", "1"])
    S.with_init(spec, tini)
    assert spec["process"]["args"] == ["/sbin/docker-init", "--", "sleep", "1"]
    assert spec["mounts"][-1]["source"] == str(tini)
    with pytest.raises(Unavailable, match="tini"):
        S.with_init(S.base_spec(), tmp_path / "none")


# -- users -----------------------------------------------------------------------------------

PASSWD = b"""root:x:0:0:root:/root:/bin/sh
# comment
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
app:x:1000:1000:App:/home/app:/bin/sh
broken:x:notanumber:1::/:
"""
GROUP = b"""root:x:0:
wheel:x:10:root,app
app:x:1000:
staff:x:50:app
"""


def test_resolve_user_forms() -> None:
    pw, gr = parse_passwd(PASSWD), parse_group(GROUP)
    assert resolve_user("", pw, gr) == S.ExecUser(0, 0, (0, 10), "/root", "root")
    assert resolve_user("app", pw, gr) == S.ExecUser(1000, 1000, (1000, 10, 50), "/home/app",
                                                     "app")
    assert resolve_user("1000", pw, gr).name == "app"
    assert resolve_user("4242", pw, gr) == S.ExecUser(4242, 0, (0,), "/", "")
    explicit = resolve_user("app:staff", pw, gr)
    assert (explicit.uid, explicit.gid, explicit.additional_gids) == (1000, 50, (50,))
    assert resolve_user("app:777", pw, gr).gid == 777
    assert resolve_user("4242:4343", pw, gr).gid == 4343
    added = resolve_user("daemon", pw, gr, group_add=["staff", "99", "staff"])
    assert added.additional_gids == (1, 50, 99)


# dockerd 20.10, ``docker run -u SPEC [--group-add G] IMAGE id`` with this passwd and group
DOCKER_PASSWD = b"root:x:0:0:root:/root:/bin/sh\napp:x:1234:1234::/home/app:/bin/sh\n" \
    b"multi:x:2000:2000::/:/bin/sh\n"
DOCKER_GROUP = b"root:x:0:\napp:x:1234:\nstaff:x:50:multi,app\nwheel:x:10:multi\n" \
    b"multi:x:2000:\nother:x:3000:\n"


@pytest.mark.parametrize(("spec", "group_add", "gid", "groups"), [
    ("", (), 0, {0}),                      # uid=0(root) gid=0(root) groups=0(root)
    ("app", (), 1234, {50, 1234}),         # groups=50(staff),1234(app)
    ("1234", (), 1234, {50, 1234}),
    ("1234:50", (), 50, {50}),             # an explicit group: no member lists
    ("app:wheel", (), 10, {10}),
    ("multi", (), 2000, {10, 50, 2000}),
    ("root:staff", (), 50, {50}),
    ("5555", (), 0, {0}),                  # uid=5555 gid=0(root) groups=0(root)
    ("5555:77", (), 77, {77}),
    ("multi", ("staff", "99", "other"), 2000, {10, 50, 99, 2000, 3000}),
    ("", ("1234",), 0, {0, 1234}),
])
def test_additional_gids_as_dockerd(spec: str, group_add: tuple[str, ...], gid: int,
                                    groups: set[int]) -> None:
    user = resolve_user(spec, parse_passwd(DOCKER_PASSWD), parse_group(DOCKER_GROUP), group_add)
    assert user.gid == gid and set(user.additional_gids) == groups
    assert user.additional_gids[0] == gid  # the primary group first, as dockerd's getUser


def test_resolve_user_errors() -> None:
    pw, gr = parse_passwd(PASSWD), parse_group(GROUP)
    with pytest.raises(
        InvalidArgument, match=r"^unable to find user foo: no matching entries in passwd file$"
    ):
        resolve_user("foo", pw, gr)
    with pytest.raises(
        InvalidArgument, match="unable to find group nogroup: no matching entries in group file"
    ):
        resolve_user("app:nogroup", pw, gr)
    with pytest.raises(InvalidArgument, match="Unable to find group nope"):
        resolve_user("app", pw, gr, group_add=["nope"])
    with pytest.raises(InvalidArgument, match="range"):
        resolve_user("99999999999", pw, gr)


def make_rootfs(root: Path) -> Path:
    (root / "etc").mkdir(parents=True)
    (root / "etc/passwd").write_bytes(PASSWD)
    (root / "etc/group").write_bytes(GROUP)
    return root


def test_with_user_sets_process_user_and_home(tmp_path: Path) -> None:
    rootfs = make_rootfs(tmp_path / "rootfs")
    spec = S.with_process(S.base_spec(), ["id"])
    S.with_user(spec, rootfs, "app", group_add=["root"])
    assert spec["process"]["user"] == {"uid": 1000, "gid": 1000,
                                      "additionalGids": [1000, 10, 50, 0]}
    assert "HOME=/home/app" in spec["process"]["env"]
    spec = S.with_process(S.base_spec(), ["id"], env=["HOME=/x"])
    S.with_user(spec, rootfs, "4242")
    assert spec["process"]["user"] == {"uid": 4242, "gid": 0, "additionalGids": [0]}
    assert [e for e in spec["process"]["env"] if e.startswith("HOME=")] == ["HOME=/x"]


def test_missing_passwd_file(tmp_path: Path) -> None:
    rootfs = tmp_path / "empty"
    rootfs.mkdir()
    assert S.resolve_user("", [], []) == S.ExecUser(0, 0, (0,), "/", "")
    spec = S.with_user(S.base_spec(), rootfs, "123:456")
    assert spec["process"]["user"] == {"uid": 123, "gid": 456, "additionalGids": [456]}
    with pytest.raises(InvalidArgument, match="unable to find user app"):
        S.with_user(S.base_spec(), rootfs, "app")


def test_symlinked_passwd_cannot_escape_the_rootfs(tmp_path: Path) -> None:
    outside = tmp_path / "host"
    make_rootfs(outside)
    (outside / "etc/passwd").write_bytes(b"evil:x:0:0::/:/bin/sh\n")
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc").mkdir(parents=True)
    # absolute link and a relative one climbing far above the root: both stay inside
    (rootfs / "etc/passwd").symlink_to(str(outside / "etc/passwd"))
    (rootfs / "etc/group").symlink_to("../../../../../../" + str(outside / "etc/group").lstrip("/"))
    assert read_root_file(rootfs, "/etc/passwd") is None
    assert read_root_file(rootfs, "/etc/group") is None
    with pytest.raises(InvalidArgument, match="unable to find user evil"):
        S.with_user(S.base_spec(), rootfs, "evil")


def test_symlinks_inside_the_rootfs_are_followed(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "data").mkdir(parents=True)
    (rootfs / "data/passwd").write_bytes(b"u:x:7:8::/h:/bin/sh\n")
    (rootfs / "etc").symlink_to("/data/../data")  # absolute target, resolved in the rootfs
    (rootfs / "data/group").symlink_to("passwd")
    assert read_root_file(rootfs, "/etc/passwd") == b"u:x:7:8::/h:/bin/sh\n"
    assert S.with_user(S.base_spec(), rootfs, "u")["process"]["user"] == {
        "uid": 7, "gid": 8, "additionalGids": [8]}


def test_only_regular_files_are_read(tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "etc/passwd").mkdir(parents=True)
    assert read_root_file(rootfs, "/etc/passwd") is None
    os.mkfifo(rootfs / "etc/group")
    assert read_root_file(rootfs, "/etc/group") is None  # and does not block
    (rootfs / "loop").symlink_to("loop")
    assert read_root_file(rootfs, "/loop") is None


def test_open_in_root_dotdot_stops_at_root(tmp_path: Path) -> None:
    rootfs = make_rootfs(tmp_path / "r")
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY)
    try:
        fd = open_in_root(root_fd, "../../../etc/passwd")
        try:
            assert os.readlink(f"/proc/self/fd/{fd}") == str(rootfs / "etc/passwd")
        finally:
            os.close(fd)
    finally:
        os.close(root_fd)
