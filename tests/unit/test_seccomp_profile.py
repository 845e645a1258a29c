"""The default seccomp profile without root: Docker's current default (moby/profiles
seccomp/default.json) rule by rule, resolved for capabilities, architectures and kernels."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cargohold.container import spec as S
from cargohold.container.spec_security import DEFAULT_PROFILE, seccomp_for

PROFILE = json.loads(DEFAULT_PROFILE.read_text())
DEFAULT_CAPS = list(S.DEFAULT_CAPABILITIES)

AF_INET, AF_ALG, AF_NFC, AF_VSOCK, AF_XDP = 2, 38, 39, 40, 44


def _arg_matches(arg: dict[str, Any], value: int) -> bool:
    op, want = arg["op"], arg["value"]
    if op == "SCMP_CMP_EQ":
        return value == want
    if op == "SCMP_CMP_NE":
        return value != want
    if op == "SCMP_CMP_LT":
        return value < want
    if op == "SCMP_CMP_GT":
        return value > want
    if op == "SCMP_CMP_MASKED_EQ":
        return value & want == arg.get("valueTwo", 0)
    raise AssertionError(f"operator {op} not modelled")


def allowed(seccomp: dict[str, Any], name: str, arg0: int | None = None) -> bool:
    """Whether the resolved filter lets ``name`` (with first argument ``arg0``) through."""
    for rule in seccomp["syscalls"]:
        if name not in rule["names"] or rule["action"] != "SCMP_ACT_ALLOW":
            continue
        args = rule.get("args") or []
        if not args or (arg0 is not None and all(_arg_matches(a, arg0) for a in args)):
            return True
    return False


def resolved(caps: list[str] = DEFAULT_CAPS, arch: str = "amd64") -> dict[str, Any]:
    return seccomp_for(PROFILE, caps, arch=arch, kernel=(6, 8))


# -- seccomp: Docker's current default -------------------------------------------------------


@pytest.mark.parametrize("caps", [DEFAULT_CAPS, [*DEFAULT_CAPS, "CAP_SYS_ADMIN"]])
def test_io_uring_is_denied_whatever_the_capabilities(caps: list[str]) -> None:
    sc = resolved(caps)
    for name in ("io_uring_setup", "io_uring_enter", "io_uring_register"):
        assert not allowed(sc, name), name


def test_socket_families_alg_and_vsock_are_denied() -> None:
    sc = resolved()
    assert not allowed(sc, "socket", AF_ALG) and not allowed(sc, "socket", AF_VSOCK)
    for family in (0, 1, AF_INET, 10, 16, 17, 37, AF_NFC, 41, AF_XDP, 45):
        assert allowed(sc, "socket", family), family


def test_newer_syscalls_of_dockers_profile_are_allowed() -> None:
    sc = resolved()
    for name in ("cachestat", "fchmodat2", "futex_wait", "futex_wake", "futex_requeue",
                 "map_shadow_stack", "mseal", "statmount", "listmount", "getxattrat",
                 "setxattrat", "listxattrat", "removexattrat", "uretprobe"):
        assert allowed(sc, name), name
    assert not allowed(sc, "lsm_set_self_attr")
    admin = resolved([*DEFAULT_CAPS, "CAP_SYS_ADMIN"])
    assert all(allowed(admin, n) for n in ("lsm_get_self_attr", "lsm_list_modules"))


def test_argument_filters_and_conditions_follow_docker() -> None:
    sc = resolved()
    assert allowed(sc, "clone", 0x11) and not allowed(sc, "clone", 0x10000000)  # CLONE_NEWUSER
    assert [r["errnoRet"] for r in sc["syscalls"] if "clone3" in r["names"]] == [38]
    assert allowed(sc, "personality", 0) and allowed(sc, "personality", 0xFFFFFFFF)
    assert not allowed(sc, "personality", 0x0040000)  # READ_IMPLIES_EXEC
    assert allowed(sc, "ptrace")  # kernel >= 4.8, as Docker
    assert not allowed(sc, "reboot") and not allowed(sc, "mount") and not allowed(sc, "bpf")
    assert allowed(resolved([*DEFAULT_CAPS, "CAP_BPF"]), "bpf")
    assert allowed(resolved([*DEFAULT_CAPS, "CAP_SYS_PTRACE"]), "kcmp")


def test_architectures_use_libseccomp_names() -> None:
    amd64 = resolved()
    assert amd64["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert allowed(amd64, "arch_prctl") and allowed(amd64, "modify_ldt")
    x86 = resolved(arch="x86")
    assert allowed(x86, "modify_ldt") and not allowed(x86, "arch_prctl")
    assert resolved(arch="loongarch64")["architectures"] == ["SCMP_ARCH_LOONGARCH64"]
    arm64 = resolved(arch="arm64")
    assert allowed(arm64, "cacheflush") and not allowed(arm64, "arch_prctl")
    s390 = resolved(arch="s390x")
    clone = [r for r in s390["syscalls"] if r["names"] == ["clone"]]
    assert len(clone) == 1 and clone[0]["args"][0]["index"] == 1  # flags come second


def test_excludes_min_kernel_and_docker_list_arch_map() -> None:
    profile = {
        "defaultAction": "SCMP_ACT_ERRNO",
        "flags": ["SECCOMP_FILTER_FLAG_LOG"],
        "archMap": [{"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86"]},
                    {"architecture": "SCMP_ARCH_X86", "subArchitectures": None}],
        "syscalls": [{"names": ["old"], "action": "SCMP_ACT_ALLOW",
                      "excludes": {"minKernel": "5.10"}}],
    }
    new = seccomp_for(profile, [], arch="amd64", kernel=(6, 1))
    assert new["syscalls"] == [] and new["flags"] == ["SECCOMP_FILTER_FLAG_LOG"]
    assert new["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86"]
    assert seccomp_for(profile, [], arch="x86", kernel=(6, 1))["architectures"] == [
        "SCMP_ARCH_X86"]
    assert seccomp_for(profile, [], arch="amd64", kernel=(5, 4))["syscalls"][0]["names"] == [
        "old"]


def test_compare_script_finds_no_difference_with_itself(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[2] / "scripts/seccomp_compare.py"
    copy = tmp_path / "docker.json"
    docker_form = dict(PROFILE)
    docker_form["archMap"] = [{"architecture": v[0], "subArchitectures": v[1:] or None}
                              for v in PROFILE["archMap"].values()]
    copy.write_text(json.dumps(docker_form))
    same = subprocess.run(["python3", str(script), str(copy)], capture_output=True, text=True)
    assert same.returncode == 0 and same.stdout.strip() == "same rules"
    docker_form["syscalls"] = [*PROFILE["syscalls"],
                               {"names": ["io_uring_setup"], "action": "SCMP_ACT_ALLOW"}]
    copy.write_text(json.dumps(docker_form))
    diff = subprocess.run(["python3", str(script), str(copy)], capture_output=True, text=True)
    assert diff.returncode == 1 and "only theirs: ['io_uring_setup']" in diff.stdout
