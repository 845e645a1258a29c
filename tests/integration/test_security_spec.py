"""Security settings of real containers through the CLI (root, runc, busybox): the default
seccomp profile against a probe that calls io_uring and AF_ALG, capabilities of privileged
non-root processes, AppArmor and SELinux label options, and the choice of OCI runtime."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from containers_env import Env, container_env, needs_runtime

from cargohold.container.apparmor import enabled as apparmor_enabled
from cargohold.container.spec_security import ALL_CAPABILITIES

pytestmark = needs_runtime

PROBE_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

static void report(const char *what, long rc) {
    const char *name;
    if (rc >= 0) { printf("%s ok\n", what); return; }
    name = strerrorname_np(errno);
    printf("%s %s\n", what, name ? name : "E?");
}

int main(void) {
    unsigned char params[120]; /* struct io_uring_params */
    memset(params, 0, sizeof params);
    report("io_uring_setup", syscall(425, 1, params));
    report("io_uring_enter", syscall(426, -1, 0, 0, 0, NULL, 0));
    report("io_uring_register", syscall(427, -1, 0, NULL, 0));
    report("socket_alg", socket(38, SOCK_SEQPACKET, 0));
    report("socket_vsock", socket(40, SOCK_STREAM, 0));
    report("socket_inet", socket(AF_INET, SOCK_DGRAM, 0));
    return 0;
}
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with container_env(tmp_path_factory.mktemp("ctr-sec")) as e:
        yield e


@pytest.fixture(scope="module")
def probe_image(env: Env, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An image holding only a static probe binary compiled here (gcc + libc6-dev)."""
    if shutil.which("gcc") is None:
        pytest.skip("gcc not installed (scripts/install.sh installs it)")
    work = tmp_path_factory.mktemp("probe")
    (work / "probe.c").write_text(PROBE_C)
    built = subprocess.run(["gcc", "-static", "-O2", "-o", str(work / "probe"),
                            str(work / "probe.c")], capture_output=True, text=True)
    if built.returncode != 0:
        pytest.skip(f"gcc -static does not work here (libc6-dev missing?): {built.stderr}")
    tar = work / "probe.tar"
    with tarfile.open(tar, "w") as tf:
        tf.add(str(work / "probe"), "probe")
        info = tarfile.TarInfo("tmp")
        info.type, info.mode = tarfile.DIRTYPE, 0o1777
        tf.addfile(info)
    env.ch("import", "-c", 'CMD ["/probe"]', str(tar), "probe:latest")
    return "probe:latest"


def probe(env: Env, image: str, *opts: str) -> dict[str, str]:
    out = env.out("run", "--rm", "--network", "none", *opts, image)
    return dict(line.split(" ", 1) for line in out.splitlines())


def rw_layers(env: Env) -> set[str]:
    d = env.root / "containers-rw"
    return {p.name for p in d.iterdir()} if d.exists() else set()


# -- item 8: seccomp ---------------------------------------------------------------------


def test_default_profile_denies_io_uring_and_af_alg(env: Env, probe_image: str) -> None:
    got = probe(env, probe_image)
    for call in ("io_uring_setup", "io_uring_enter", "io_uring_register", "socket_alg",
                 "socket_vsock"):
        assert got[call] == "EPERM", (call, got)
    assert got["socket_inet"] == "ok"


def test_unconfined_seccomp_lets_them_through(env: Env, probe_image: str) -> None:
    got = probe(env, probe_image, "--security-opt", "seccomp=unconfined")
    # not EPERM: io_uring works (EBADF/EINVAL for the bogus fds), AF_ALG opens or the
    # kernel lacks the family (EAFNOSUPPORT)
    for call in ("io_uring_enter", "io_uring_register", "socket_alg", "socket_vsock"):
        assert got[call] != "EPERM", (call, got)
    disabled = Path("/proc/sys/kernel/io_uring_disabled")
    if disabled.exists() and disabled.read_text().strip() == "2":
        pytest.skip("io_uring is disabled host-wide (kernel.io_uring_disabled=2)")
    assert got["io_uring_setup"] == "ok", got


# -- item 9: capabilities ------------------------------------------------------------------


def host_bounding() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return int(line.split()[1], 16) & ((1 << len(ALL_CAPABILITIES)) - 1)
    raise AssertionError("no CapBnd")


def caps_of(text: str) -> dict[str, int]:
    return {k: int(v, 16) for k, v in (ln.split(":\t") for ln in text.splitlines())}


@pytest.fixture(scope="module")
def sleeper(env: Env) -> Iterator[str]:
    cid = env.out("run", "-d", "--network", "none", "bb", "sleep", "300")
    try:
        yield cid
    finally:
        env.ch("rm", "-f", cid, check=False)


def test_privileged_exec_as_a_user_has_no_effective_or_ambient_caps(
    env: Env, sleeper: str
) -> None:
    full = host_bounding()
    for user in ("app", "4242:4242"):
        caps = caps_of(env.out("exec", "--privileged", "-u", user, sleeper, "grep", "Cap",
                               "/proc/self/status"))
        assert caps == {"CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapBnd": full, "CapAmb": 0}, (
            user, caps)
    root = caps_of(env.out("exec", "--privileged", sleeper, "grep", "Cap", "/proc/self/status"))
    assert root == {"CapInh": 0, "CapPrm": full, "CapEff": full, "CapBnd": full, "CapAmb": 0}


def test_privileged_run_as_a_user_has_no_effective_caps(env: Env) -> None:
    caps = caps_of(env.out("run", "--rm", "--network", "none", "--privileged", "-u", "app",
                           "bb", "grep", "Cap", "/proc/self/status"))
    assert caps == {"CapInh": 0, "CapPrm": 0, "CapEff": 0, "CapBnd": host_bounding(),
                    "CapAmb": 0}


# -- item 10: AppArmor and labels ------------------------------------------------------------


@pytest.mark.skipif(apparmor_enabled(), reason="AppArmor is enabled here: no warning path")
def test_apparmor_profile_request_warns_once_where_apparmor_is_off(env: Env) -> None:
    r = env.ch("run", "--rm", "--network", "none", "--security-opt", "apparmor=my-profile",
               "bb", "true", check=False)
    warning = ("WARNING: AppArmor is not enabled on this host: --security-opt "
               "apparmor=my-profile has no effect\n")
    assert (r.returncode, r.stderr) == (0, warning)
    created = env.ch("create", "--security-opt", "apparmor=my-profile", "bb", "true")
    assert created.stderr == warning
    env.ch("rm", created.stdout.strip())
    quiet = env.ch("run", "--rm", "--network", "none", "--security-opt", "apparmor=unconfined",
                   "bb", "true")
    assert quiet.stderr == ""


@pytest.mark.skipif(not apparmor_enabled(), reason="AppArmor is not enabled on this host")
def test_apparmor_default_profile_confines_containers(env: Env) -> None:
    out = env.out("run", "--rm", "--network", "none", "bb", "cat", "/proc/self/attr/current")
    assert out == "cargohold-default (enforce)"
    free = env.out("run", "--rm", "--network", "none", "--security-opt", "apparmor=unconfined",
                   "bb", "cat", "/proc/self/attr/current")
    assert free == "unconfined"


def test_unknown_label_option_is_refused_and_leaves_nothing(env: Env) -> None:
    before = rw_layers(env)
    r = env.ch("run", "--rm", "--name", "badlabel", "--security-opt", "label=bogus", "bb",
               "true", check=False)
    assert r.returncode == 125
    assert 'bad label option "bogus", valid options \'disable\' or' in r.stderr
    assert env.out("ps", "-a", "-q", "--filter", "name=badlabel") == ""
    assert rw_layers(env) == before


def test_valid_label_options_are_accepted_without_selinux(env: Env) -> None:
    r = env.ch("run", "--rm", "--network", "none", "--security-opt", "label=disable",
               "--security-opt", "label=type:svirt_apache_t", "--security-opt",
               "label=level:s0:c100,c200", "bb", "echo", "ok")
    assert (r.stdout, r.stderr) == ("ok\n", "")


# -- the OCI runtime -------------------------------------------------------------------------


def wrapper_runtime(directory: Path) -> tuple[Path, Path]:
    """A runc-compatible binary that logs each call's arguments, then runs the real runc."""
    runc = shutil.which("runc")
    assert runc is not None
    log = directory / "calls.log"
    script = directory / "logging-runc"
    script.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {runc} "$@"\n')
    script.chmod(0o755)
    return script, log


def verbs(log: Path) -> list[str]:
    known = {"create", "run", "start", "exec", "kill", "delete", "pause", "resume", "state",
             "ps", "list"}
    out = []
    for line in log.read_text().splitlines() if log.exists() else []:
        words = [w for w in line.split() if w in known]
        out.append(words[0] if words else line)
    return out


def test_runtime_flag_is_recorded_and_used_by_later_commands(env: Env, tmp_path: Path) -> None:
    script, log = wrapper_runtime(tmp_path)
    cid = env.out("--runtime", str(script), "run", "-d", "--network", "none", "bb", "sleep",
                  "300")
    try:
        assert env.inspect(cid)["HostConfig"]["Runtime"] == str(script)  # type: ignore[index]
        assert "run" in verbs(log) or "create" in verbs(log)
        env.ch("exec", cid, "true")  # no --runtime: the container's own binary
        env.ch("pause", cid)
        env.ch("unpause", cid)
        called = verbs(log)
        assert {"exec", "pause", "resume"} <= set(called), called
    finally:
        env.ch("rm", "-f", cid, check=False)
    assert "delete" in verbs(log)


def test_runtime_from_the_configuration_file(env: Env, tmp_path: Path) -> None:
    script, log = wrapper_runtime(tmp_path)
    conf = tmp_path / "cargohold.toml"
    conf.write_text(f'[engine]\nruntime = "logged"\n[runtimes.logged]\npath = "{script}"\n')
    run_env = {**os.environ, "CARGOHOLD_CONFIG": str(conf)}
    r = subprocess.run(env.argv("run", "--rm", "--network", "none", "bb", "echo", "hi"),
                       capture_output=True, text=True, env=run_env, timeout=60)
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr
    assert verbs(log), "the configured runtime was not used"
    version = subprocess.run(env.argv("version"), capture_output=True, text=True, env=run_env)
    assert f"  Path:         {script}\n  Version:      runc version" in version.stdout


def test_unknown_or_missing_runtime_is_refused_and_leaves_nothing(
    env: Env, tmp_path: Path
) -> None:
    before = rw_layers(env)
    r = env.ch("run", "--runtime", "bogus", "--name", "rtbad", "bb", "true", check=False)
    assert r.returncode == 125 and "unknown or invalid runtime name: bogus" in r.stderr
    missing = tmp_path / "no-runc"
    r = env.ch("--runtime", str(missing), "run", "--name", "rtbad", "bb", "true", check=False)
    assert r.returncode == 125 and f"{missing}: no such file" in r.stderr, r.stderr
    assert env.out("ps", "-a", "-q", "--filter", "name=rtbad") == ""
    assert rw_layers(env) == before


def test_version_shows_the_runtime_path_and_version(env: Env) -> None:
    out = env.out("version")
    runc = shutil.which("runc")
    first = subprocess.run([str(runc), "--version"], capture_output=True,
                           text=True).stdout.splitlines()[0]
    assert f"  Path:         {runc}\n  Version:      {first}\n" in out + "\n"
