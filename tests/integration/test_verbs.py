"""``update``, ``system prune``, ``info`` and ``image analyze`` on real containers (runc,
cgroups, overlay) in a private store; ``manifest inspect`` against a local Distribution
registry.  Everything made here is removed, even when a test fails."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from containers_env import Env, container_env, needs_runtime

pytestmark = needs_runtime
MB = 1 << 20
CGROUP_V1 = Path("/sys/fs/cgroup/memory/memory.limit_in_bytes").exists()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with container_env(tmp_path_factory.mktemp("verbs")) as e:
        yield e


def cgroup_value(cid: str, controller: str, name: str) -> str:
    return (Path("/sys/fs/cgroup") / controller / "cargohold" / cid / name).read_text().strip()


# ------------------------------------------------------------------------------- update


@pytest.mark.skipif(not CGROUP_V1, reason="the cgroup file checks are written for cgroup v1")
def test_update_changes_a_running_containers_limits_and_restart_keeps_them(env: Env) -> None:
    env.ch("run", "-d", "--name", "upd", "--network", "none", "-m", "64m", "bb", "sleep", "1000")
    try:
        cid = env.inspect("upd")["Id"]
        assert isinstance(cid, str)
        r = env.ch("update", "-m", "128m", "--memory-swap", "256m", "--cpu-shares", "512",
                   "--pids-limit", "40", "--memory-reservation", "32m", "upd")
        assert (r.stdout, r.stderr) == ("upd\n", "")
        assert cgroup_value(cid, "memory", "memory.limit_in_bytes") == str(128 * MB)
        assert cgroup_value(cid, "memory", "memory.memsw.limit_in_bytes") == str(256 * MB)
        assert cgroup_value(cid, "memory", "memory.soft_limit_in_bytes") == str(32 * MB)
        assert cgroup_value(cid, "cpu", "cpu.shares") == "512"
        assert cgroup_value(cid, "pids", "pids.max") == "40"
        # what the container itself sees
        inside = env.out("exec", "upd", "cat", "/sys/fs/cgroup/memory/memory.limit_in_bytes")
        assert inside == str(128 * MB)
        host = env.inspect("upd")["HostConfig"]
        assert isinstance(host, dict)
        assert (host["Memory"], host["MemorySwap"], host["CpuShares"], host["PidsLimit"],
                host["MemoryReservation"]) == (128 * MB, 256 * MB, 512, 40, 32 * MB)
        env.ch("restart", "-t", "0", "upd")
        assert cgroup_value(cid, "memory", "memory.limit_in_bytes") == str(128 * MB)
        assert cgroup_value(cid, "cpu", "cpu.shares") == "512"
        assert cgroup_value(cid, "pids", "pids.max") == "40"
        r = env.ch("update", "-m", "1m", "upd", check=False)
        assert (r.returncode, r.stderr) == (1, "Error response from daemon: Minimum memory "
                                               "limit allowed is 6MB\n")
        r = env.ch("update", "-m", "300m", "upd", check=False)
        assert r.returncode == 1 and r.stderr == (
            f"Error response from daemon: Cannot update container {cid}: Memory limit should "
            "be smaller than already set memoryswap limit, update the memoryswap at the same "
            "time\n")
        assert cgroup_value(cid, "memory", "memory.limit_in_bytes") == str(128 * MB)
    finally:
        env.ch("rm", "-f", "upd", check=False)


def _state(env: Env, name: str) -> tuple[str, int, int]:
    s = env.inspect(name)
    state = s["State"]
    assert isinstance(state, dict)
    return str(state["Status"]), int(s["RestartCount"]), int(state["ExitCode"])  # type: ignore[call-overload]


LOOP = "while [ ! -f /stop ]; do sleep 0.1; done; exit 3"


def test_update_restart_policy_is_honoured_by_the_running_containers_monitor(env: Env) -> None:
    env.ch("run", "-d", "--name", "pol1", "--network", "none", "bb", "sh", "-c", LOOP)
    env.ch("run", "-d", "--name", "pol2", "--restart", "always", "--network", "none", "bb",
           "sh", "-c", LOOP)
    env.ch("run", "-d", "--rm", "--name", "pol3", "--network", "none", "bb", "sleep", "100")
    try:
        assert env.out("update", "--restart", "on-failure:1", "pol1") == "pol1"
        assert env.out("update", "--restart", "no", "pol2") == "pol2"
        for name in ("pol1", "pol2"):
            env.ch("exec", name, "sh", "-c", "> /stop")
        # pol1 now restarts once (on-failure:1) and stays exited; pol2 no longer restarts
        env.wait_for(lambda: _state(env, "pol1") == ("exited", 1, 3))
        env.wait_for(lambda: _state(env, "pol2")[0] == "exited")
        time.sleep(0.5)
        assert _state(env, "pol2") == ("exited", 0, 3)
        assert _state(env, "pol1") == ("exited", 1, 3)
        r = env.ch("update", "--restart", "always", "pol3", check=False)
        cid = env.inspect("pol3")["Id"]
        assert r.returncode == 1 and r.stderr == (
            f"Error response from daemon: Cannot update container {cid}: Restart policy cannot "
            "be updated because AutoRemove is enabled for the container\n")
    finally:
        env.ch("rm", "-f", "pol1", "pol2", "pol3", check=False)


@pytest.mark.skipif(not CGROUP_V1, reason="the cgroup file checks are written for cgroup v1")
def test_update_of_a_stopped_container_applies_at_its_start(env: Env) -> None:
    env.ch("create", "--name", "later", "--network", "none", "bb", "sleep", "1000")
    try:
        assert env.out("update", "--cpus", "0.5", "--cpuset-cpus", "0", "later") == "later"
        env.ch("start", "later")
        cid = env.inspect("later")["Id"]
        assert isinstance(cid, str)
        assert cgroup_value(cid, "cpu", "cpu.cfs_quota_us") == "50000"
        assert cgroup_value(cid, "cpuset", "cpuset.cpus") == "0"
    finally:
        env.ch("rm", "-f", "later", check=False)


# ------------------------------------------------------------------------------- system prune


def test_system_prune_removes_and_reports_what_docker_does(env: Env) -> None:
    env.ch("run", "--name", "done1", "--network", "none", "bb", "sh", "-c",
           "head -c 300000 /dev/zero > /blob")
    done = env.inspect("done1")["Id"]
    env.ch("run", "-d", "--name", "alive", "--network", "none", "bb", "sleep", "1000")
    env.ch("network", "create", "prunenet")
    env.ch("volume", "create", "prunevol")
    try:
        r = env.ch("system", "prune", "-f", "--volumes")
        assert r.stdout == (
            f"Deleted Containers:\n{done}\n\nDeleted Networks:\nprunenet\n\n"
            "Deleted Volumes:\nprunevol\n\nTotal reclaimed space: 300kB\n"), r.stdout
        assert env.out("ps", "-q", "--no-trunc") == env.inspect("alive")["Id"]
        assert "bb:latest" in env.out("images", "--format", "{{.Repository}}:{{.Tag}}")
    finally:
        env.ch("rm", "-f", "done1", "alive", check=False)
        env.ch("network", "rm", "prunenet", check=False)
        env.ch("volume", "rm", "prunevol", check=False)


# ------------------------------------------------------------------------------- info


def test_info_reports_the_store_runtime_and_counts(env: Env) -> None:
    env.ch("run", "-d", "--name", "counted", "--network", "none", "bb", "sleep", "1000")
    env.ch("create", "--name", "idle", "--network", "none", "bb", "true")
    try:
        fmt = ("{{.Containers}} {{.ContainersRunning}} {{.ContainersStopped}} {{.Images}} "
               "{{.Driver}} {{.CgroupVersion}} {{.DefaultRuntime}}")
        assert env.out("info", "--format", fmt).split() == [
            "2", "1", "1", "2", "overlay2", "1" if CGROUP_V1 else "2", "runc"]
        data = json.loads(env.out("system", "info", "--format", "{{json .}}"))
        version = subprocess.run(["runc", "--version"], capture_output=True, text=True).stdout
        commit = next(ln.split(":", 1)[1].strip() for ln in version.splitlines()
                      if ln.startswith("commit:"))
        assert data["RuncCommit"]["ID"] == commit
        assert data["Runtimes"]["runc"]["path"] == shutil.which("runc")
        assert data["DockerRootDir"] == str(env.root)
        text = env.ch("info").stdout
        assert " Storage Driver: overlay2\n" in text and f" runc version: {commit}\n" in text
        assert " Containers: 2\n  Running: 1\n  Paused: 0\n  Stopped: 1\n Images: 2\n" in text
    finally:
        env.ch("rm", "-f", "counted", "idle", check=False)


# ------------------------------------------------------------------------------- image analyze


def test_image_analyze_counts_the_bytes_a_later_layer_deletes(env: Env, tmp_path: Path) -> None:
    ctx = tmp_path / "waste"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(
        "FROM bb\n"
        "RUN head -c 1048576 /dev/zero > /big && head -c 4096 /dev/zero > /keep\n"
        "RUN rm /big && head -c 10 /dev/zero > /keep\n")
    env.ch("build", "--network", "none", "-t", "waste:1", str(ctx))
    try:
        data = json.loads(env.out("image", "analyze", "--format", "json", "waste:1"))
        assert data["wastedBytes"] == 1048576 + 4096
        assert data["wastedPaths"][:2] == [{"path": "/big", "sizeBytes": 1048576, "count": 1},
                                           {"path": "/keep", "sizeBytes": 4096, "count": 1}]
        run1, run2 = data["layers"][-2:]
        assert (run1["added"], run1["wastedBytes"]) == (2, 1048576 + 4096)
        assert (run2["removed"], run2["changed"], run2["sizeBytes"]) == (1, 1, 10)
        assert run2["createdBy"] == "/bin/sh -c rm /big && head -c 10 /dev/zero > /keep"
        efficiency = data["efficiency"]
        assert efficiency == pytest.approx(1 - (1048576 + 4096) / data["totalBytes"], abs=1e-6)
        assert env.ch("image", "analyze", "--fail-under", f"{efficiency * 100 - 1:.2f}",
                      "waste:1").returncode == 0
        r = env.ch("image", "analyze", "--fail-under", f"{efficiency * 100 + 1:.2f}", "waste:1",
                   check=False)
        assert r.returncode == 1 and "Wasted space:  1.05MB (1052672 bytes)" in r.stdout
        assert r.stderr.startswith("efficiency ") and "is below" in r.stderr
    finally:
        env.ch("rmi", "waste:1", check=False)


# ------------------------------------------------------------------------------- manifest


REGISTRY = shutil.which("docker-registry")


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[str]:
    from test_registry import start_registry, stop_registry

    reg = start_registry(tmp_path)
    try:
        yield reg.host
    finally:
        stop_registry(reg)


def _get(url: str, accept: str) -> bytes:
    with urllib.request.urlopen(urllib.request.Request(url, headers={"Accept": accept})) as r:
        return bytes(r.read())


@pytest.mark.skipif(REGISTRY is None, reason="docker-registry is not installed")
def test_manifest_inspect_shows_what_the_registry_serves(env: Env, registry: str,
                                                         tmp_path: Path) -> None:
    from cargohold.cli.commands.manifest_inspect import go_indent

    config = tmp_path / "registries.toml"
    config.write_text(f'insecure-registries = ["{registry}"]\n')
    name = f"{registry}/verbs/bb:1"
    env.ch("tag", "bb", name)
    try:
        subprocess.run([*env.argv("push", name)], check=True, capture_output=True,
                       env={"CARGOHOLD_CONFIG": str(config), "PATH": "/usr/sbin:/usr/bin"})
        docker_v2 = "application/vnd.docker.distribution.manifest.v2+json"
        raw = _get(f"http://{registry}/v2/verbs/bb/manifests/1", docker_v2)
        r = env.ch("manifest", "inspect", "--insecure", name)
        assert r.stdout == go_indent(raw, "\t") + "\n"
        assert json.loads(r.stdout)["layers"][0]["mediaType"].endswith("tar.gzip")
        r = env.ch("manifest", "inspect", "--insecure", "--verbose", name)
        verbose = json.loads(r.stdout)
        assert verbose["Ref"] == name and verbose["Descriptor"]["platform"]["os"] == "linux"
        assert verbose["SchemaV2Manifest"] == json.loads(raw)
        r = env.ch("manifest", "inspect", "--insecure", f"{registry}/verbs/bb:missing",
                   check=False)
        assert (r.returncode, r.stderr) == (1, f"no such manifest: {registry}/verbs/bb:missing\n")
    finally:
        env.ch("rmi", name, check=False)
