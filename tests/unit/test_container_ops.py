"""Container operations without root: vfs driver, fake runtime, temporary directories."""

from __future__ import annotations

import argparse
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cargohold.cli.commands import commit as commit_cmd
from cargohold.cli.commands import cp as cp_cmd
from cargohold.cli.commands import logs as logs_cmd
from cargohold.cli.commands import top as top_cmd
from cargohold.config import Settings
from cargohold.container.logs import LogOptions, encode_entry
from cargohold.container.model import (
    ContainerConfig,
    ContainerRecord,
    HealthcheckConfig,
    State,
    Status,
)
from cargohold.engine import Engine
from cargohold.engine.containers.ops import (
    bind_mounts,
    filter_mountpoint_changes,
    merge_env,
)
from cargohold.engine.containers.requests import ExecCreateRequest
from cargohold.engine.containers.stats import (
    Sample,
    cgroup_dirs,
    cpu_percent,
    mem_percent,
    net_dev,
    parse_ps_output,
    sample,
)
from cargohold.errors import Conflict, InvalidArgument, NotFound
from cargohold.runtime.fake import FakeRuntime
from cargohold.util.ids import random_id
from cargohold.util.lockfile import FileLock


def _tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for d in ("etc", "bin"):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tf.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class World:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.engine = Engine(Settings(root=tmp / "root", runroot=tmp / "run",
                                      storage_driver="vfs"))  # fmt: skip
        self.runtime = FakeRuntime()
        self.engine.__dict__["runtime"] = self.runtime
        self.store = self.engine.container_store
        src = tmp / "base.tar"
        src.write_bytes(_tar({
            "etc/passwd": b"root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
            "etc/group": b"root:x:0:\napp:x:1000:\nextra:x:2000:app\n",
            "etc/motd": b"hello\n",
        }))
        self.image_id = self.engine.images.import_tarball(
            str(src), "base:1", ['CMD ["sh"]', "ENV PATH=/bin", "LABEL a=b"], "imported"
        )
        self.locks: list[FileLock] = []

    def container(self, *, cmd: tuple[str, ...] = ("sh", "-c", "echo hi"), running: bool = False,
                  tty: bool = False, env: tuple[str, ...] = ("PATH=/bin",)) -> ContainerRecord:
        cid = random_id()
        image = self.engine.image_store.get(self.image_id)
        config = ContainerConfig(cmd=cmd, env=env, tty=tty, image="base:1",
                                 labels={"a": "b"},
                                 healthcheck=HealthcheckConfig(test=("CMD", "true"), retries=3))
        record = self.store.add(ContainerRecord(id=cid, name="", image_id=self.image_id,
                                                path=cmd[0], args=cmd[1:], config=config,
                                                layer_id=cid))  # fmt: skip
        self.engine.layers.create_rw(cid, image.top_layer)
        merged = self.engine.layers.mount_rw(cid)
        bundle = self.store.bundle_dir(cid)
        bundle.mkdir(parents=True)
        spec = {
            "root": {"path": str(merged)},
            "process": {"args": list(cmd), "env": [*env, "HOSTNAME=h", "HOME=/root"],
                        "cwd": "/", "user": {"uid": 0, "gid": 0}, "terminal": tty,
                        "capabilities": {"bounding": ["CAP_CHOWN"]}},
            "mounts": [
                {"destination": "/proc", "type": "proc", "source": "proc"},
                {"destination": "/data", "type": "bind", "source": str(self.tmp / "vol"),
                 "options": ["rbind", "ro"]},
                {"destination": "/etc/hosts", "type": "bind", "source": str(self.tmp / "hosts"),
                 "options": ["rbind"]},
            ],
        }
        (bundle / "config.json").write_text(json.dumps(spec))
        if running:
            self.runtime.create(cid, bundle)
            self.runtime.start(cid)
            lock = FileLock(self.store.monitor_lock_path(cid))  # a live monitor
            lock.acquire()
            self.locks.append(lock)
            self.store.update_state(cid, lambda s: State(status=Status.RUNNING, pid=4242))
        return record

    def merged(self, record: ContainerRecord) -> Path:
        return self.engine.layers.mount_rw(record.id)

    def close(self) -> None:
        for lock in self.locks:
            lock.release()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    try:
        yield w
    finally:
        w.close()


# --------------------------------------------------------------------------- pure helpers


def test_merge_env_replaces_in_place_and_appends() -> None:
    assert merge_env(["A=1", "B=2"], ["B=3", "C=4", "A=5"]) == ["A=5", "B=3", "C=4"]


def test_bind_mounts_skip_system_and_non_bind_mounts() -> None:
    spec = {"mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev/shm", "type": "bind", "source": "/dev/shm", "options": ["rbind"]},
        {"destination": "/data", "type": "bind", "source": "/srv/vol", "options": ["rbind", "ro"]},
        {"destination": "/x", "type": "none", "source": "/srv/x", "options": ["bind"]},
    ]}
    points = bind_mounts(spec)
    assert [(m.destination, m.source, m.readonly) for m in points] == [
        ("/data", "/srv/vol", True), ("/x", "/srv/x", False)]


def test_mountpoint_changes_are_hidden() -> None:
    changes = [("A", "/dev"), ("C", "/etc"), ("A", "/etc/hosts"), ("A", "/etc/new"),
               ("C", "/var"), ("A", "/var/run"), ("A", "/var/run/x")]
    out = filter_mountpoint_changes(changes, ["/dev", "/etc/hosts", "/var/run/x"])
    assert out == [("C", "/etc"), ("A", "/etc/new")]


def test_parse_ps_output_keeps_spaces_in_the_last_column() -> None:
    text = ("UID PID PPID C STIME TTY TIME CMD\n"
            "root 10 1 0 10:00 ? 00:00:00 sleep 1000\n"
            "root 11 1 0 10:00 ? 00:00:00 other thing\n")
    titles, rows = parse_ps_output(text, {10})
    assert titles[1] == "PID"
    assert rows == [["root", "10", "1", "0", "10:00", "?", "00:00:00", "sleep 1000"]]
    with pytest.raises(Exception, match="Couldn't find PID field"):
        parse_ps_output("USER COMMAND\nroot x\n", {1})


def test_top_render_is_dockers_tabwriter() -> None:
    text = top_cmd.render(["UID", "PID", "CMD"], [["root", "1", "sleep 10"]])
    assert text == "UID" + " " * 17 + "PID" + " " * 17 + "CMD\n" + \
        "root" + " " * 16 + "1" + " " * 19 + "sleep 10\n"


def test_cgroup_v1_and_v2_samples(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    (proc / "77" / "net").mkdir(parents=True)
    (proc / "stat").write_text("cpu  100 0 100 800 0 0 0 0 0 0\n")
    (proc / "meminfo").write_text("MemTotal:       1000000 kB\n")
    (proc / "77" / "net" / "dev").write_text(
        "Inter-|   Receive\n face |bytes\n"
        "    lo: 500 5 0 0 0 0 0 0 500 5 0 0 0 0 0 0\n"
        "  eth0: 1200 10 0 0 0 0 0 0 3400 20 0 0 0 0 0 0\n")
    root = tmp_path / "cg"
    (proc / "77" / "cgroup").write_text(
        "5:memory:/ch/x\n4:cpu,cpuacct:/ch/x\n3:pids:/ch/x\n2:blkio:/ch/x\n0::/\n")
    for ctrl in ("memory", "cpu,cpuacct", "pids", "blkio"):
        (root / ctrl / "ch" / "x").mkdir(parents=True)
    (root / "cpuacct").symlink_to("cpu,cpuacct")
    (root / "memory/ch/x/memory.usage_in_bytes").write_text("3000000\n")
    (root / "memory/ch/x/memory.stat").write_text("cache 10\ntotal_inactive_file 1000000\n")
    (root / "memory/ch/x/memory.limit_in_bytes").write_text("9223372036854771712\n")
    (root / "cpu,cpuacct/ch/x/cpuacct.usage").write_text("5000000000\n")
    (root / "pids/ch/x/pids.current").write_text("3\n")
    (root / "blkio/ch/x/blkio.throttle.io_service_bytes").write_text(
        "8:0 Read 4096\n8:0 Write 8192\n8:0 Total 12288\nTotal 12288\n")
    assert cgroup_dirs(77, proc, root)["cpuacct"] == root / "cpuacct" / "ch" / "x"
    s = sample(77, proc, root)
    assert (s.mem_usage, s.mem_limit, s.pids) == (2_000_000, 1_024_000_000, 3)
    assert (s.net_rx, s.net_tx, s.blk_read, s.blk_write) == (1200, 3400, 4096, 8192)
    assert s.cpu_ns == 5_000_000_000
    assert net_dev(99, proc) == (0, 0)
    # cgroup v2
    (proc / "77" / "cgroup").write_text("0::/ch/y\n")
    v2 = tmp_path / "cg2"
    (v2 / "ch" / "y").mkdir(parents=True)
    (v2 / "ch/y/memory.current").write_text("5000\n")
    (v2 / "ch/y/memory.stat").write_text("inactive_file 1000\n")
    (v2 / "ch/y/memory.max").write_text("max\n")
    (v2 / "ch/y/cpu.stat").write_text("usage_usec 20\n")
    (v2 / "ch/y/pids.current").write_text("2\n")
    (v2 / "ch/y/io.stat").write_text("8:0 rbytes=10 wbytes=20 rios=1\n")
    s2 = sample(77, proc, v2)
    assert (s2.mem_usage, s2.mem_limit, s2.cpu_ns, s2.pids) == (4000, 1_024_000_000, 20_000, 2)
    assert (s2.blk_read, s2.blk_write) == (10, 20)


def test_cpu_and_memory_percent() -> None:
    a = Sample(cpu_ns=1_000, system_ns=10_000, online_cpus=2)
    b = Sample(cpu_ns=2_000, system_ns=20_000, online_cpus=2, mem_usage=50, mem_limit=200)
    assert cpu_percent(a, b) == pytest.approx(20.0)
    assert cpu_percent(b, a) == 0.0
    assert mem_percent(b) == 25.0 and mem_percent(a) == 0.0


def test_cli_argument_helpers() -> None:
    assert cp_cmd.split_cp_arg("/abs:path") == ("", "/abs:path")
    assert cp_cmd.split_cp_arg("./rel:x") == ("", "./rel:x")
    assert cp_cmd.split_cp_arg("web:/etc") == ("web", "/etc")
    assert cp_cmd.split_cp_arg("file") == ("", "file")
    assert logs_cmd.tail_lines("all") == -1 and logs_cmd.tail_lines("5") == 5
    assert logs_cmd.tail_lines("-3") == -1 and logs_cmd.tail_lines("x") == -1
    ns = argparse.Namespace(pause="web", container="img:1", reference=None)
    assert commit_cmd._fix_pause(ns)
    assert (ns.pause, ns.container, ns.reference) == ("true", "web", "img:1")
    ns = argparse.Namespace(pause="false", container="web", reference=None)
    assert commit_cmd._fix_pause(ns) and ns.pause == "false"


# --------------------------------------------------------------------------- exec


def test_exec_process_from_the_bundle(world: World) -> None:
    record = world.container(running=True)
    opts = ExecCreateRequest(cmd=("id",), tty=True, env=("FOO=1", "PATH=/usr/bin"),
                             user="app", working_dir="/etc")  # fmt: skip
    process = world.engine.container_ops.exec_process(record, opts)
    assert process["args"] == ["id"] and process["terminal"] is True
    assert process["cwd"] == "/etc"
    assert process["user"] == {"uid": 1000, "gid": 1000, "additionalGids": [1000, 2000]}
    assert process["env"] == ["PATH=/usr/bin", "HOSTNAME=h", "HOME=/home/app", "TERM=xterm",
                              "FOO=1"]
    assert process["capabilities"] == {"bounding": ["CAP_CHOWN"]}
    with pytest.raises(InvalidArgument, match="needs to be an absolute path"):
        world.engine.container_ops.exec_process(record,
                                                ExecCreateRequest(("id",), working_dir="etc"))
    with pytest.raises(InvalidArgument, match="unable to find user nobody"):
        world.engine.container_ops.exec_process(record, ExecCreateRequest(("id",), user="nobody"))


def test_privileged_exec_sets_no_inheritable_or_ambient_capabilities(world: World) -> None:
    """As Docker: bounding/permitted/effective only, so a non-root user's execve keeps no
    capabilities; the container's AppArmor profile stays (exec --privileged keeps it)."""
    record = world.container(running=True)
    bundle = world.store.bundle_dir(record.id) / "config.json"
    spec = json.loads(bundle.read_text())
    spec["process"]["apparmorProfile"] = "cargohold-default"
    bundle.write_text(json.dumps(spec))
    ops = world.engine.container_ops
    for user in ("app", ""):
        process = ops.exec_process(record, ExecCreateRequest(("id",), privileged=True, user=user))
        caps = process["capabilities"]
        assert sorted(caps) == ["bounding", "effective", "permitted"], user
        assert "CAP_SYS_ADMIN" in caps["bounding"] and caps["effective"] == caps["bounding"]
        assert process["apparmorProfile"] == "cargohold-default"


def test_exec_runs_through_the_runtime_and_refuses_stopped(world: World) -> None:
    running = world.container(running=True)
    world.runtime.exec_exit_code = 3
    ops = world.engine.container_ops
    exec_id = ops.exec_create(running.id, ExecCreateRequest(("false",)))
    with ops.exec_start(exec_id) as session:
        assert session.wait() == 3
    assert ("exec", running.id) in world.runtime.calls
    assert list(world.store.run_dir(running.id).glob("exec-*.json")) == []
    inspect = ops.exec_inspect(exec_id).to_docker()
    assert (inspect["Running"], inspect["ExitCode"], inspect["ContainerID"]) == (
        False, 3, running.id)
    with pytest.raises(Conflict, match="has already run"):
        ops.exec_start(exec_id)
    stopped = world.container()
    with pytest.raises(Conflict, match=f"Container {stopped.id} is not running"):
        ops.exec_create(stopped.id, ExecCreateRequest(("true",)))
    with pytest.raises(NotFound, match="No such container: nosuch"):
        ops.exec_create("nosuch", ExecCreateRequest(("true",)))
    with pytest.raises(NotFound, match="No such exec instance: nosuch"):
        ops.exec_start("nosuch")


def test_exec_of_a_container_whose_monitor_died_is_refused(world: World) -> None:
    record = world.container(running=True)
    world.locks.pop().release()  # the monitor is gone: reconciliation marks it exited
    with pytest.raises(Conflict, match="is not running"):
        world.engine.container_ops.exec_create(record.id, ExecCreateRequest(("true",)))
    assert world.store.read_state(record.id).status is Status.EXITED


# --------------------------------------------------------------------------- logs, top, stats


def test_logs_by_stream_with_tail(world: World) -> None:
    record = world.container()
    log = world.store.log_path(record.id)
    log.write_bytes(encode_entry("stdout", b"one\n", 1_000_000_000)
                    + encode_entry("stderr", b"two\n", 2_000_000_000)
                    + encode_entry("stdout", b"three\n", 3_000_000_000))
    out, err = io.BytesIO(), io.BytesIO()
    world.engine.container_ops.logs(record.id[:10], LogOptions(), out, err)
    assert (out.getvalue(), err.getvalue()) == (b"one\nthree\n", b"two\n")
    out, err = io.BytesIO(), io.BytesIO()
    world.engine.container_ops.logs(record.id, LogOptions(tail=1, timestamps=True), out, err)
    assert out.getvalue() == b"1970-01-01T00:00:03.000000000Z three\n"
    with pytest.raises(NotFound):
        world.engine.container_ops.logs("nosuch", LogOptions(), out, err)


def test_top_and_stats_of_stopped_containers(world: World) -> None:
    record = world.container()
    with pytest.raises(Conflict, match=f"Container {record.id} is not running"):
        world.engine.container_ops.top(record.id)
    rows = world.engine.container_ops.stats([record.id])
    assert len(rows) == 1 and not rows[0].running and rows[0].pids == 0
    assert world.engine.container_ops.stats([]) == []


def test_attach_refuses_stopped_containers(world: World) -> None:
    record = world.container()
    with pytest.raises(Conflict, match="You cannot attach to a stopped container, start it first"):
        world.engine.container_ops.attach(record.id)


# --------------------------------------------------------------------------- cp, diff, export


def test_diff_export_and_cp(world: World, tmp_path: Path) -> None:
    record = world.container()
    merged = world.merged(record)
    (merged / "etc" / "new").write_text("new\n")
    (merged / "etc" / "motd").unlink()
    (merged / "etc" / "hosts").write_text("")  # a mount point the runtime made
    changes = world.engine.container_ops.changes(record.id)
    assert changes == [("C", "/etc"), ("D", "/etc/motd"), ("A", "/etc/new")]
    out = io.BytesIO()
    world.engine.container_ops.export(record.id, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tf:
        names = tf.getnames()
    assert "etc/new" in names and "etc/passwd" in names and "etc/motd" not in names
    host = tmp_path / "copied"
    world.engine.container_ops.copy_from(record.id, "/etc/new", str(host))
    assert host.read_text() == "new\n"
    src = tmp_path / "in.txt"
    src.write_text("in\n")
    world.engine.container_ops.copy_to(record.id, str(src), "/etc/in.txt")
    assert (merged / "etc" / "in.txt").read_text() == "in\n"
    (tmp_path / "vol").mkdir()
    with pytest.raises(Exception, match="read-only"):
        world.engine.container_ops.copy_to(record.id, str(src), "/data/")


# --------------------------------------------------------------------------- commit


def test_commit_makes_a_layer_history_and_docker_fields(world: World) -> None:
    record = world.container(running=True)
    merged = world.merged(record)
    (merged / "etc" / "committed").write_text("yes\n")
    ops = world.engine.container_ops
    image_id = ops.commit(record.id, "centos:test", author="centos", message="new",
                          changes=["ENV X=1", "EXPOSE 80"])  # fmt: skip
    assert [c[0] for c in world.runtime.calls if c[0] in ("pause", "resume")] == [
        "pause", "resume"]
    info = world.engine.images.inspect("centos:test")
    assert info["Id"] == image_id
    assert (info["Author"], info["Comment"], info["Container"]) == ("centos", "new", record.id)
    assert info["Config"]["Env"] == ["PATH=/bin", "X=1"]
    assert info["Config"]["Cmd"] == ["sh", "-c", "echo hi"]
    assert info["Config"]["ExposedPorts"] == {"80/tcp": {}}
    assert info["Config"]["Labels"] == {"a": "b"}
    assert info["ContainerConfig"]["Healthcheck"] == {"Test": ["CMD", "true"], "Retries": 3}
    parent = world.engine.images.inspect("base:1")
    assert info["RootFS"]["Layers"][:-1] == parent["RootFS"]["Layers"]
    assert len(info["RootFS"]["Layers"]) == 2
    config = world.engine.image_store.config(image_id)
    assert config["history"][-1]["created_by"] == "sh -c echo hi"
    assert config["history"][-1]["author"] == "centos"
    assert config["history"][-1]["comment"] == "new"
    assert config["history"][0]["comment"] == "imported"
    top = world.engine.image_store.get(image_id).top_layer
    assert top is not None
    layer_tar = io.BytesIO()
    world.engine.layers.diff_stream(top, layer_tar)
    with tarfile.open(fileobj=io.BytesIO(layer_tar.getvalue())) as tf:
        assert "etc/committed" in tf.getnames()


def test_commit_without_pause_or_tag_and_bad_input(world: World) -> None:
    record = world.container(running=True)
    ops = world.engine.container_ops
    image_id = ops.commit(record.id, pause=False)
    assert not [c for c in world.runtime.calls if c[0] == "pause"]
    assert world.engine.image_store.get(image_id).repo_tags == ()
    with pytest.raises(InvalidArgument, match="from is not a valid change command"):
        ops.commit(record.id, "x:1", changes=["FROM scratch"])
    with pytest.raises(InvalidArgument, match="invalid reference format"):
        ops.commit(record.id, "UPPER:case")
    with pytest.raises(InvalidArgument, match="refusing to create a tag with a digest"):
        ops.commit(record.id, "x@sha256:" + "a" * 64)
    with pytest.raises(NotFound):
        ops.commit("nosuch")
