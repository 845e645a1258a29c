"""``system prune`` and ``info`` (and the prune filters they share with the other prune verbs)
through the CLI on a vfs store in a temp dir; containers are records (no runtime needed)."""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
import time
from pathlib import Path

import pytest

from cargohold.cli.main import main
from cargohold.config import Settings
from cargohold.container.model import ContainerConfig, ContainerRecord
from cargohold.engine import Engine
from cargohold.engine.prune_filters import PruneFilters
from cargohold.engine.system import host_info
from cargohold.errors import InvalidArgument
from cargohold.util.ids import random_id


class Cli:
    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root = root
        self.capsys = capsys

    def __call__(self, *args: str, stdin: str | None = None) -> tuple[int, str, str]:
        saved = sys.stdin
        if stdin is not None:
            sys.stdin = io.StringIO(stdin)
        try:
            code = main(["--root", str(self.root), "--runroot", str(self.root / "run"),
                         "--storage-driver", "vfs", *args])
        finally:
            sys.stdin = saved
        out, err = self.capsys.readouterr()
        return code, out, err

    @property
    def engine(self) -> Engine:
        return Engine(Settings(root=self.root, runroot=self.root / "run", storage_driver="vfs"))


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> Cli:
    monkeypatch.setenv("CARGOHOLD_CONFIG", str(tmp_path / "none.toml"))
    return Cli(tmp_path / "root", capsys)


def rootfs(path: Path, files: dict[str, bytes]) -> str:
    with tarfile.open(path, "w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return str(path)


def stopped_container(cli: Cli, image: str, labels: dict[str, str] | None = None,
                      created: float | None = None) -> str:
    """A created (never started) container record with its rw layer."""
    engine = cli.engine
    record = engine.images.resolve(image)
    cid = random_id()
    ns = int((created if created is not None else time.time()) * 1e9)
    engine.container_store.add(ContainerRecord(
        id=cid, created=ns, image_id=record.id, path="sh",
        config=ContainerConfig(image=image, labels=labels or {}), layer_id=cid))
    engine.layers.create_rw(cid, record.top_layer)
    return cid


# ------------------------------------------------------------------------------- filters


def test_prune_filters_follow_dockers_rules() -> None:
    f = PruneFilters.parse(["label=a", "label=b=2", "label!=gone", "until=1h"])
    old = time.time() - 7200
    assert f.match({"a": "x", "b": "2"}, old)
    assert not f.match({"a": "x", "b": "3"}, old)  # every label= must match
    assert not f.match({"a": "x", "b": "2", "gone": "1"}, old)  # label! excludes
    assert not f.match({"a": "x", "b": "2"}, time.time())  # newer than until
    # label! excludes only what matches all of its values (moby's MatchKVList)
    two = PruneFilters.parse(["label!=p", "label!=q"])
    assert two.match({"p": "1"}, None) and not two.match({"p": "1", "q": "1"}, None)
    assert PruneFilters.parse(["until=1700000000"]).until == 1700000000.0
    assert PruneFilters.parse(["until=2020-01-02"]).until == 1577923200.0
    with pytest.raises(InvalidArgument, match="Invalid filter 'dangling'"):
        PruneFilters.parse(["dangling=true"])
    with pytest.raises(InvalidArgument, match='failed to parse value as time or duration: "x"'):
        PruneFilters.parse(["until=x"])
    assert f.words() == ["label!=gone", "label=a", "label=b=2", "until=1h"]


def test_container_and_image_prune_honour_their_filters(cli: Cli, tmp_path: Path) -> None:
    cli("import", rootfs(tmp_path / "a.tar", {"a": b"a"}), "keep:1")
    keep = stopped_container(cli, "keep:1", {"keep": "yes"})
    gone = stopped_container(cli, "keep:1")
    code, out, _ = cli("container", "prune", "-f", "--filter", "label!=keep")
    assert code == 0 and out.startswith(f"Deleted Containers:\n{gone}\n\n"), out
    assert cli("ps", "-a", "-q", "--no-trunc")[1].split() == [keep]
    code, _, err = cli("container", "prune", "-f", "--filter", "name=x")
    assert code == 1 and err == "Error response from daemon: Invalid filter 'name'\n"
    cli("import", "--change", "LABEL team=web", rootfs(tmp_path / "b.tar", {"b": b"b"}))
    cli("import", rootfs(tmp_path / "c.tar", {"c": b"c"}))  # dangling, no label
    code, out, _ = cli("image", "prune", "-f", "--filter", "label=team=web")
    assert code == 0 and out.count("deleted: sha256:") == 2  # the image and its layer
    assert len(cli("images", "-a", "-q")[1].split()) == 2


# ------------------------------------------------------------------------------- system prune

PROMPT = ("WARNING! This will remove:\n"
          "  - all stopped containers\n"
          "  - all networks not used by at least one container\n"
          "  - all dangling images\n"
          "  - all dangling build cache\n"
          "\n"
          "Are you sure you want to continue? [y/N] ")


def test_system_prune_prompt_is_dockers_and_no_keeps_everything(cli: Cli, tmp_path: Path) -> None:
    cli("network", "create", "n1")
    assert cli("system", "prune", stdin="n\n") == (0, PROMPT, "")
    assert "n1" in cli("network", "ls")[1]
    code, out, _ = cli("system", "prune", "-a", "--volumes", "--filter", "label=a=b",
                       "--filter", "label!=c", stdin="\n")
    assert code == 0 and out == (
        "WARNING! This will remove:\n"
        "  - all stopped containers\n"
        "  - all networks not used by at least one container\n"
        "  - all volumes not used by at least one container\n"
        "  - all images without at least one container associated to them\n"
        "  - all build cache\n"
        "\n"
        "  Items to be pruned will be filtered with:\n"
        "  - label!=c\n"
        "  - label=a=b\n"
        "\n"
        "Are you sure you want to continue? [y/N] ")


def test_system_prune_composes_every_prune_with_dockers_output(cli: Cli, tmp_path: Path) -> None:
    cli("import", rootfs(tmp_path / "base.tar", {"bin/sh": b"x" * 100}), "base:1")
    cid = stopped_container(cli, "base:1")
    _, out, _ = cli("import", rootfs(tmp_path / "d.tar", {"big": b"d" * 5000}))
    dangling = out.strip()
    layer = cli.engine.image_store.get(dangling).top_layer
    cli("network", "create", "n1")
    cli("volume", "create", "v1")
    code, out, err = cli("system", "prune", "-f", stdin="")
    assert (code, err) == (0, "")
    assert out == (f"Deleted Containers:\n{cid}\n\n"
                   "Deleted Networks:\nn1\n\n"
                   f"Deleted Images:\ndeleted: {dangling}\ndeleted: {layer}\n\n"
                   "Total reclaimed space: 5kB\n")
    assert cli("volume", "ls", "-q")[1] == "v1\n"  # volumes only with --volumes
    code, out, _ = cli("system", "prune", "-f", "-a", "--volumes")
    assert code == 0 and out.startswith("Deleted Volumes:\nv1\n\nDeleted Images:\n"
                                        "untagged: base:1\ndeleted: sha256:"), out
    assert out.endswith("Total reclaimed space: 100B\n")
    assert cli("system", "prune", "-f")[1] == "Total reclaimed space: 0B\n"


def test_system_prune_bad_filters_remove_nothing(cli: Cli, tmp_path: Path) -> None:
    cli("import", rootfs(tmp_path / "base.tar", {"x": b"x"}), "base:1")
    cid = stopped_container(cli, "base:1", created=time.time() - 3 * 3600)
    young = stopped_container(cli, "base:1")
    code, _, err = cli("system", "prune", "-f", "--volumes", "--filter", "until=1h")
    assert (code, err) == (1, 'ERROR: The "until" filter is not supported with "--volumes"\n')
    code, _, err = cli("system", "prune", "-f", "--filter", "bogus=1")
    assert (code, err) == (1, "Error response from daemon: Invalid filter 'bogus'\n")
    # Docker's builder takes durations only; refused before any other prune ran
    code, _, err = cli("system", "prune", "-f", "--filter", "until=2020-01-01T00:00:00")
    assert code == 1 and 'failed to prune build cache: "until" filter expects a duration' in err
    assert sorted(cli("ps", "-a", "-q", "--no-trunc")[1].split()) == sorted([cid, young])
    code, out, _ = cli("system", "prune", "-f", "--filter", "until=2h")
    assert code == 0 and out.startswith(f"Deleted Containers:\n{cid}\n\n"), out
    assert cli("ps", "-a", "-q", "--no-trunc")[1].split() == [young]


# ------------------------------------------------------------------------------- info


def fake_host(tmp: Path, v2: bool = False, swap: bool = True, forward: str = "1") -> Path:
    sys_root, proc = tmp / "sys", tmp / "proc"
    cg = sys_root / "fs/cgroup"
    if v2:
        cg.mkdir(parents=True)
        (cg / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    else:
        files = ["memory/memory.limit_in_bytes", "memory/memory.kmem.limit_in_bytes",
                 "memory/memory.kmem.tcp.limit_in_bytes", "memory/memory.oom_control",
                 "cpu/cpu.cfs_period_us", "cpu/cpu.cfs_quota_us", "cpu/cpu.shares",
                 "cpuset/cpuset.cpus", "pids/pids.max"]
        if swap:
            files.append("memory/memory.memsw.limit_in_bytes")
        for f in files:
            (cg / f).parent.mkdir(parents=True, exist_ok=True)
            (cg / f).write_text("1\n")
    for f, v in (("sys/net/ipv4/ip_forward", forward), ("sys/kernel/osrelease", "6.1.0-test"),
                 ("meminfo", "MemTotal:       2048 kB\n")):
        (proc / f).parent.mkdir(parents=True, exist_ok=True)
        (proc / f).write_text(v)
    (tmp / "etc").mkdir()
    (tmp / "etc/os-release").write_text('PRETTY_NAME="Testix 1"\nVERSION_ID="1"\n')
    return tmp


def test_host_probe_and_dockers_warnings(tmp_path: Path) -> None:
    base = fake_host(tmp_path / "a", swap=False, forward="0")
    host = host_info.probe(base / "sys", base / "proc", base / "etc")
    assert (host.cgroup_version, host.kernel, host.os_name, host.os_version, host.mem_total) == (
        "1", "6.1.0-test", "Testix 1", "1", 2048 * 1024)
    assert host.features.memory_limit and not host.features.swap_limit
    assert host_info.warnings(host) == [
        "WARNING: No swap limit support", "WARNING: IPv4 forwarding is disabled",
        "WARNING: bridge-nf-call-iptables is disabled",
        "WARNING: bridge-nf-call-ip6tables is disabled"]
    v2 = fake_host(tmp_path / "b", v2=True)
    host = host_info.probe(v2 / "sys", v2 / "proc", v2 / "etc")
    assert host.cgroup_version == "2" and host.features.cpuset and host.features.blkio_weight


def fake_runtime(tmp: Path) -> str:
    script = tmp / "fakerunc"
    script.write_text("#!/bin/sh\necho 'fakerunc version 9.9.9'\necho 'commit: v9.9.9-0-gabc'\n"
                      "echo 'spec: 1.0.2'\n")
    script.chmod(0o755)
    return str(script)


def test_info_fields_and_format(cli: Cli, tmp_path: Path) -> None:
    cli("import", rootfs(tmp_path / "a.tar", {"a": b"a"}), "a:1")
    cli("import", rootfs(tmp_path / "b.tar", {"b": b"b"}), "b:1")
    stopped_container(cli, "a:1")
    runtime = fake_runtime(tmp_path)
    code, out, _ = cli("--runtime", runtime, "info", "--format",
                       "{{.Driver}}|{{.Images}}|{{.Containers}}|{{.ContainersStopped}}|"
                       "{{.DockerRootDir}}|{{.DefaultRuntime}}|{{.RuncCommit.ID}}")
    # (the global option goes before the verb)
    assert code == 0, out
    assert out == f"vfs|2|1|1|{cli.root}|fakerunc|v9.9.9-0-gabc\n"
    code, out, _ = cli("--runtime", runtime, "system", "info", "-f", "{{json .}}")
    data = json.loads(out)
    for key in ("ID", "Containers", "ContainersRunning", "ContainersPaused", "ContainersStopped",
                "Images", "Driver", "DriverStatus", "MemoryLimit", "SwapLimit", "CpuCfsQuota",
                "CPUShares", "CPUSet", "PidsLimit", "IPv4Forwarding", "CgroupDriver",
                "CgroupVersion", "KernelVersion", "OperatingSystem", "OSType", "Architecture",
                "NCPU", "MemTotal", "DockerRootDir", "RegistryConfig", "ServerVersion",
                "Runtimes", "DefaultRuntime", "RuncCommit", "SecurityOptions", "Warnings",
                "ClientInfo"):
        assert key in data, key
    assert data["Runtimes"] == {"fakerunc": {"path": runtime}}
    assert data["NCPU"] == os.cpu_count() and data["OSType"] == "linux"
    assert cli("info", "--format", "{{.Nope")[0] == 64


def test_info_lists_loopback_as_insecure_without_configuration(
        cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """dockerd treats 127.0.0.0/8 (and, since moby 25, ::1) as insecure registries whatever the
    configuration says, and ``info`` lists them."""
    monkeypatch.setenv("CARGOHOLD_CONFIG", str(tmp_path / "absent.toml"))
    code, out, _ = cli("--runtime", fake_runtime(tmp_path), "info")
    assert code == 0
    lines = out.splitlines()
    start = lines.index(" Insecure Registries:")
    assert lines[start + 1:start + 3] == ["  ::1/128", "  127.0.0.0/8"]
    code, out, _ = cli("--runtime", fake_runtime(tmp_path), "info", "--format",
                       "{{json .RegistryConfig.InsecureRegistryCIDRs}}")
    assert json.loads(out) == ["::1/128", "127.0.0.0/8"]


def test_info_text_lists_registries_and_mirrors(cli: Cli, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "registries.toml"
    config.write_text('insecure-registries = ["10.0.0.0/8", "reg.local:5000"]\n'
                      '[registry-mirrors]\n"docker.io" = ["http://127.0.0.1:5001"]\n'
                      '"quay.io" = ["https://mirror.example"]\n')
    monkeypatch.setenv("CARGOHOLD_CONFIG", str(config))
    code, out, _ = cli("--runtime", fake_runtime(tmp_path), "info")
    assert code == 0
    lines = out.splitlines()
    assert lines[:5] == ["Client:", " Context:    default", " Debug Mode: false", "", "Server:"]
    assert lines[5:10] == [" Containers: 0", "  Running: 0", "  Paused: 0", "  Stopped: 0",
                           " Images: 0"]
    assert " Storage Driver: vfs" in lines and " Cgroup Driver: cgroupfs" in lines
    assert " runc version: v9.9.9-0-gabc" in lines and " Runtimes: fakerunc" in lines
    assert f" Docker Root Dir: {cli.root}" in lines
    start = lines.index(" Insecure Registries:")
    assert lines[start:start + 8] == [" Insecure Registries:", "  reg.local:5000", "  10.0.0.0/8",
                                      "  ::1/128", "  127.0.0.0/8", " Registry Mirrors:",
                                      "  http://127.0.0.1:5001",
                                      "  https://mirror.example (quay.io)"]
    assert out.endswith(" Live Restore Enabled: true\n\n")
