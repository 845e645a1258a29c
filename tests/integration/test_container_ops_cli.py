"""exec, logs, attach, top, stats, cp, diff, export and commit through the CLI, on runc with a
busybox image (root only).

Containers are made the way the lifecycle service makes them (record, rw layer on the
image, bundle whose root is the mounted rw layer, a monitor), so these tests do not depend on
``run``.  Every test module gets a private --root/--runroot; everything is killed, deleted and
unmounted afterwards, also when a test fails.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import tarfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cargohold.cli.main import main
from cargohold.config import Settings
from cargohold.container import monitor_spawn as monitor
from cargohold.container.model import ContainerConfig, ContainerRecord, Status
from cargohold.container.reconcile import monitor_alive
from cargohold.engine import Engine
from cargohold.util.ids import random_id

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("runc") is None or not Path("/bin/busybox").exists(),
        reason="needs root, runc and busybox",
    ),
]
APPLETS = (
    "sh",
    "echo",
    "sleep",
    "cat",
    "ls",
    "true",
    "false",
    "id",
    "env",
    "pwd",
    "mkdir",
    "rm",
    "dd",
    "touch",
    "ln",
    "chmod",
    "printf",
    "test",
    "head",
    "stat",
)


def busybox_tar(path: Path) -> Path:
    with tarfile.open(path, "w") as tf:
        for d in ("bin", "etc", "tmp", "root", "home", "home/app"):
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o1777 if d == "tmp" else 0o755
            if d == "home/app":
                info.uid = info.gid = 1000
            tf.addfile(info)
        tf.add("/bin/busybox", "bin/busybox")
        for applet in APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            tf.addfile(info)
        for name, text in (
            (
                "etc/passwd",
                "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
            ),
            ("etc/group", "root:x:0:\napp:x:1000:\n"),
            ("etc/motd", "hello from the image\n"),
            ("bin/notexec", "#!/bin/sh\necho no\n"),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
    return path


class Env:
    def __init__(self, base: Path, spec: dict[str, object]) -> None:
        self.base = base
        self.root = base / "root"
        self.run = base / "run"
        self.engine = Engine(Settings(root=self.root, runroot=self.run))
        self.store = self.engine.container_store
        self.spec = spec
        self.ids: list[str] = []
        self.images: dict[str, str] = {}

    def ch(self, *args: str) -> int:
        return main(["--root", str(self.root), "--runroot", str(self.run), *args])

    def out(self, capfd: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
        capfd.readouterr()
        code = self.ch(*args)
        captured = capfd.readouterr()
        return code, captured.out, captured.err

    def image(self, name: str) -> str:
        return self.engine.images.resolve(name).id

    def create(
        self,
        cmd: list[str],
        *,
        image: str = "busybox:test",
        tty: bool = False,
        stdin: bool = False,
        name: str = "",
        binds: tuple[tuple[str, str], ...] = (),
        start: bool = True,
    ) -> str:
        engine = Engine(Settings(root=self.root, runroot=self.run))
        rec_image = engine.images.resolve(image)
        img_cfg = engine.images.config(rec_image).get("config") or {}
        cid = random_id()
        config = ContainerConfig(
            cmd=tuple(cmd),
            tty=tty,
            open_stdin=stdin,
            stdin_once=stdin,
            image=image,
            env=tuple(img_cfg.get("Env") or ("PATH=/bin",)),
            hostname=cid[:12],
        )
        record = ContainerRecord(id=cid, name=name, image_id=rec_image.id, path=cmd[0],
                                 args=tuple(cmd[1:]), config=config, layer_id=cid,
                                 created=time.time_ns())  # fmt: skip
        record = self.store.add(record)
        self.ids.append(cid)
        engine.layers.create_rw(cid, rec_image.top_layer)
        merged = engine.layers.mount_rw(cid)
        bundle = self.store.bundle_dir(cid)
        bundle.mkdir(parents=True)
        spec = json.loads(json.dumps(self.spec))
        spec["root"] = {"path": str(merged), "readonly": False}
        spec["process"]["args"] = cmd
        spec["process"]["terminal"] = tty
        spec["process"]["env"] = [*config.env, f"HOSTNAME={cid[:12]}", "HOME=/root"]
        spec["hostname"] = cid[:12]
        spec["linux"]["cgroupsPath"] = f"/cargohold-test/{cid}"
        for dest, source in binds:
            spec["mounts"].append({"destination": dest, "type": "bind", "source": source,
                                   "options": ["rbind", "rw"]})  # fmt: skip
        (bundle / "config.json").write_text(json.dumps(spec))
        if start:
            self.start(cid)
        return cid

    def start(self, cid: str) -> None:
        spec = monitor.MonitorSpec(self.root, self.run, cid, "runc", self.run / "runc")
        monitor.spawn(spec)

    def wait(self, cid: str, pred: Callable[[Status], bool], limit: float = 20) -> None:
        deadline = time.monotonic() + limit
        while not pred(self.store.read_state(cid).status):
            if time.monotonic() > deadline:
                raise AssertionError(f"state never matched: {self.store.read_state(cid)}")
            time.sleep(0.05)

    def wait_exited(self, cid: str) -> None:
        self.wait(cid, lambda s: s is Status.EXITED and not monitor_alive(self.store, cid))

    def cleanup(self) -> None:
        for cid in self.ids:
            with contextlib.suppress(Exception):
                pid = self.store.read_state(cid).monitor_pid
                if pid and monitor_alive(self.store, cid):
                    os.kill(pid, signal.SIGKILL)
            subprocess.run(["runc", "--root", str(self.run / "runc"), "delete", "-f", cid],
                           capture_output=True, check=False)  # fmt: skip
            with contextlib.suppress(Exception):
                self.engine.layers.unmount_rw(cid)
            for sub in (
                "cpu",
                "cpuacct",
                "memory",
                "pids",
                "blkio",
                "devices",
                "freezer",
                "cpuset",
                "systemd",
                "unified",
            ):
                with contextlib.suppress(OSError):
                    os.rmdir(f"/sys/fs/cgroup/{sub}/cargohold-test/{cid}")
        subprocess.run(["umount", "-R", "-l", str(self.run)], capture_output=True, check=False)
        if self.root.exists():
            for merged in sorted(self.root.rglob("merged"), reverse=True):
                subprocess.run(["umount", "-l", str(merged)], capture_output=True, check=False)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    base = Path(tmp_path_factory.mktemp("ops"))
    d = base / "spec"
    d.mkdir()
    subprocess.run(["runc", "spec"], cwd=d, check=True)
    spec = json.loads((d / "config.json").read_text())
    e = Env(base, spec)
    try:
        tar = busybox_tar(base / "busybox.tar")
        assert e.ch("import", "-c", "ENV PATH=/bin", "-c", 'CMD ["sh"]', str(tar),
                    "busybox:test") == 0  # fmt: skip
        yield e
    finally:
        e.cleanup()
        with contextlib.suppress(OSError):
            for sub in (
                "cpu",
                "cpuacct",
                "memory",
                "pids",
                "blkio",
                "devices",
                "freezer",
                "cpuset",
                "systemd",
                "unified",
            ):
                os.rmdir(f"/sys/fs/cgroup/{sub}/cargohold-test")


@pytest.fixture
def running(env: Env) -> str:
    cid = env.create(["sleep", "1000"])
    env.wait(cid, lambda s: s is Status.RUNNING)
    return cid


# --------------------------------------------------------------------------- exec


def test_exec_output_env_user_workdir_and_exit_code(
    env: Env, running: str, capfd: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = env.out(capfd, "exec", running[:12], "sh", "-c", "echo hi; exit 3")
    assert (code, out) == (3, "hi\n")
    code, out, _ = env.out(capfd, "exec", "-e", "FOO=bar", "-w", "/etc", running, "sh", "-c",
                           'echo "$FOO $(pwd) $HOSTNAME"')  # fmt: skip
    assert (code, out) == (0, f"bar /etc {running[:12]}\n")
    code, out, _ = env.out(capfd, "exec", "-u", "app", running, "sh", "-c", "id -u; echo $HOME")
    assert (code, out) == (0, "1000\n/home/app\n")
    code, out, _ = env.out(capfd, "exec", "-u", "4242:4343", running, "id")
    assert code == 0 and "uid=4242" in out and "gid=4343" in out


def test_exec_missing_and_not_executable_commands(
    env: Env, running: str, capfd: pytest.CaptureFixture[str]
) -> None:
    code, _, err = env.out(capfd, "exec", running, "nosuchcmd")
    assert code == 127
    assert "executable file not found" in err
    code, _, err = env.out(capfd, "exec", running, "/bin/notexec")
    assert code == 126
    assert "permission denied" in err


def test_exec_stdin_and_detach(env: Env, running: str, tmp_path: Path) -> None:
    r = (
        subprocess.run(
            [
                shutil.which("cargohold") or "cargohold",
                "--root",
                str(env.root),
                "--runroot",
                str(env.run),
                "exec",
                "-i",
                running,
                "cat",
            ],
            input=b"piped\n",
            capture_output=True,
            check=False,
        )
        if shutil.which("cargohold")
        else None
    )
    if r is not None:
        assert (r.returncode, r.stdout) == (0, b"piped\n")
    assert env.ch("exec", "-d", running, "sh", "-c", "sleep 0.2; touch /tmp/detached") == 0
    merged = env.engine.layers.layout.rw(running) / "upper" / "tmp" / "detached"
    deadline = time.monotonic() + 10
    while not merged.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert merged.exists()


def test_exec_tty_through_a_pty(env: Env, running: str) -> None:
    import pty

    exe = shutil.which("cargohold")
    if exe is None:
        pytest.skip("cargohold is not installed in PATH")
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(exe, [exe, "--root", str(env.root), "--runroot", str(env.run), "exec", "-it",
                       running, "sh", "-c", "tty; echo $TERM; exit 5"])  # fmt: skip
    out = b""
    with contextlib.suppress(OSError):
        while True:
            chunk = os.read(fd, 1024)
            if not chunk:
                break
            out += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 5, out
    assert b"/dev/pts/" in out and b"xterm" in out


def test_exec_on_stopped_and_missing_containers(
    env: Env, capfd: pytest.CaptureFixture[str]
) -> None:
    cid = env.create(["true"], start=False)
    code, _, err = env.out(capfd, "exec", cid, "true")
    assert code == 1
    assert err == f"Error response from daemon: Container {cid} is not running\n"
    code, _, err = env.out(capfd, "exec", "nosuch", "true")
    assert (code, err) == (1, "Error: No such container: nosuch\n")


# --------------------------------------------------------------------------- logs, attach


def test_logs_tail_timestamps_and_follow(env: Env, capfd: pytest.CaptureFixture[str]) -> None:
    cid = env.create(["sh", "-c", "echo one; echo two >&2; echo three"])
    env.wait_exited(cid)
    code, out, err = env.out(capfd, "logs", cid)
    assert (code, out, err) == (0, "one\nthree\n", "two\n")
    code, out, err = env.out(capfd, "logs", "--tail", "1", cid)  # stdout and stderr interleave
    assert out + err in ("three\n", "two\n")
    code, out, err = env.out(capfd, "logs", "-t", "--tail", "2", cid)
    lines = sorted((out + err).splitlines(), key=lambda line: line.split()[1])
    assert [line.split(" ", 1)[1] for line in lines] in (["three", "two"], ["one", "three"])
    assert lines[0][:4].isdigit() and lines[0].split()[0].endswith("Z")
    code, out, _ = env.out(capfd, "logs", "--until", "1h", cid)  # an hour ago: nothing yet
    assert out == ""
    follow = env.create(["sh", "-c", "echo a; sleep 0.5; echo b"])
    code, out, _ = env.out(capfd, "logs", "-f", follow)
    assert (code, out) == (0, "a\nb\n")
    code, _, err = env.out(capfd, "logs", "nosuch")
    assert (code, err) == (1, "Error: No such container: nosuch\n")


def test_attach_gets_output_and_exit_code(env: Env) -> None:
    exe = shutil.which("cargohold")
    if exe is None:
        pytest.skip("cargohold is not installed in PATH")
    cid = env.create(["sh", "-c", "read x; echo got $x; exit 7"], stdin=True)
    env.wait(cid, lambda s: s is Status.RUNNING)
    r = subprocess.run(
        [exe, "--root", str(env.root), "--runroot", str(env.run), "attach", cid],
        input=b"hello\n",
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert (r.returncode, r.stdout) == (7, b"got hello\n")
    r = subprocess.run(
        [exe, "--root", str(env.root), "--runroot", str(env.run), "attach", cid],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert r.returncode == 1
    assert b"You cannot attach to a stopped container, start it first" in r.stderr


def test_attach_detach_keys_through_a_pty(env: Env) -> None:
    import pty

    exe = shutil.which("cargohold")
    if exe is None:
        pytest.skip("cargohold is not installed in PATH")
    cid = env.create(["sh"], tty=True, stdin=True)
    env.wait(cid, lambda s: s is Status.RUNNING)
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(exe, [exe, "--root", str(env.root), "--runroot", str(env.run), "attach", cid])
    time.sleep(0.5)
    os.write(fd, b"echo mark$((40+2))\r")
    time.sleep(0.5)
    os.write(fd, b"\x10\x11")
    out = b""
    with contextlib.suppress(OSError):
        while True:
            chunk = os.read(fd, 1024)
            if not chunk:
                break
            out += chunk
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    assert b"mark42" in out and b"read escape sequence" in out
    assert env.store.read_state(cid).status is Status.RUNNING


# --------------------------------------------------------------------------- top, stats


def test_top_and_stats(env: Env, running: str, capfd: pytest.CaptureFixture[str]) -> None:
    code, out, _ = env.out(capfd, "top", running)
    lines = out.splitlines()
    assert code == 0
    assert lines[0].split() == ["UID", "PID", "PPID", "C", "STIME", "TTY", "TIME", "CMD"]
    assert lines[0].startswith("UID" + " " * 17 + "PID")
    assert any(line.endswith("sleep 1000") for line in lines[1:])
    code, out, _ = env.out(capfd, "top", running, "-o", "pid,comm")
    assert out.splitlines()[0].split() == ["PID", "COMMAND"]
    assert out.splitlines()[1].split()[1] == "sleep"
    code, out, _ = env.out(capfd, "stats", "--no-stream", running)
    header, row = out.splitlines()
    assert header.split("   ")[0] == "CONTAINER ID"
    assert "MEM USAGE / LIMIT" in header and "BLOCK I/O" in header
    assert row.startswith(running[:12])
    fields = [f.strip() for f in row.split("   ") if f.strip()]
    assert fields[2].endswith("%") and "/" in fields[3] and fields[-1] == "1"
    code, out, _ = env.out(capfd, "stats", "--no-stream", "--format", "{{.Name}} {{.PIDs}}",
                           running)  # fmt: skip
    assert out == f"{env.store.get(running).name} 1\n"
    stopped = env.create(["true"], start=False)
    code, _, err = env.out(capfd, "top", stopped)
    assert (code, err) == (1, f"Error response from daemon: Container {stopped} is not running\n")


# --------------------------------------------------------------------------- cp, diff, export


def test_cp_both_ways_and_tar_streams(
    env: Env, running: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "hostfile"
    src.write_text("from host\n")
    assert env.ch("cp", str(src), f"{running}:/tmp/") == 0
    code, out, _ = env.out(capfd, "exec", running, "cat", "/tmp/hostfile")
    assert (code, out) == (0, "from host\n")
    assert env.ch("cp", f"{running}:/etc/motd", str(tmp_path / "motd")) == 0
    assert (tmp_path / "motd").read_text() == "hello from the image\n"
    exe = shutil.which("cargohold")
    if exe is not None:
        base = [exe, "--root", str(env.root), "--runroot", str(env.run)]
        r = subprocess.run([*base, "cp", f"{running}:/etc", "-"], capture_output=True, check=True)
        with tarfile.open(fileobj=io.BytesIO(r.stdout)) as tf_out:
            names = tf_out.getnames()
        assert "etc/motd" in names and "etc/passwd" in names
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            info = tarfile.TarInfo("streamed.txt")
            info.size = 3
            tf.addfile(info, io.BytesIO(b"abc"))
        subprocess.run([*base, "cp", "-", f"{running}:/root"], input=buf.getvalue(), check=True)
        _, out, _ = env.out(capfd, "exec", running, "cat", "/root/streamed.txt")
        assert out == "abc"


def test_cp_through_hostile_symlink_stays_inside(
    env: Env, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    cid = env.create(["sleep", "1000"])
    env.wait(cid, lambda s: s is Status.RUNNING)
    outside = tmp_path / "outside"
    outside.mkdir()
    assert env.ch("exec", cid, "ln", "-s", str(outside), "/tmp/escape") == 0
    assert env.ch("exec", cid, "ln", "-s", "/../../../../../../etc", "/tmp/up") == 0
    src = tmp_path / "payload"
    src.write_text("x\n")
    # the link's target does not exist inside the container: an error, nothing written outside
    code, _, err = env.out(capfd, "cp", str(src), f"{cid}:/tmp/escape/")
    assert code == 1 and "does not exist" in err
    assert env.ch("exec", cid, "mkdir", "-p", str(outside)) == 0
    assert env.ch("cp", str(src), f"{cid}:/tmp/escape/") == 0
    assert env.ch("cp", str(src), f"{cid}:/tmp/up/payload-up") == 0
    assert not (outside / "payload").exists()
    assert not Path("/etc/payload-up").exists()
    code, out, _ = env.out(capfd, "exec", cid, "ls", str(outside))
    assert "payload" in out  # it landed at the same path inside the container
    code, out, _ = env.out(capfd, "exec", cid, "cat", "/etc/payload-up")
    assert out == "x\n"


def test_diff_and_export_of_a_created_container(
    env: Env, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    cid = env.create(["sh"], start=False)
    src = tmp_path / "added"
    src.write_text("new\n")
    assert env.ch("cp", str(src), f"{cid}:/etc/added") == 0
    code, out, _ = env.out(capfd, "diff", cid)
    assert (code, out) == (0, "C /etc\nA /etc/added\n")
    out_tar = tmp_path / "export.tar"
    assert env.ch("export", "-o", str(out_tar), cid) == 0
    with tarfile.open(out_tar) as tf:
        names = set(tf.getnames())
        assert {"etc/added", "etc/motd", "bin/busybox"} <= names
        member = tf.extractfile("etc/added")
        assert member is not None and member.read() == b"new\n"
    # export | import round trip, then the file is in a container of the new image
    assert env.ch("import", str(out_tar), "exported:1") == 0
    cid2 = env.create(["cat", "/etc/added"], image="exported:1")
    env.wait_exited(cid2)
    code, out, _ = env.out(capfd, "logs", cid2)
    assert out == "new\n"


# --------------------------------------------------------------------------- commit


def test_commit_then_run_the_new_image(env: Env, capfd: pytest.CaptureFixture[str]) -> None:
    cid = env.create(["sh", "-c", "echo committed > /root/file; rm /etc/motd; sleep 1000"])
    env.wait(cid, lambda s: s is Status.RUNNING)
    deadline = time.monotonic() + 10
    upper = env.engine.layers.layout.rw(cid) / "upper" / "root" / "file"
    while not upper.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    code, out, _ = env.out(capfd, "commit", "-m", "new", "-a", "centos", "-c", "ENV COMMITTED=1",
                           cid[:12], "centos:test")  # fmt: skip
    assert code == 0 and out.startswith("sha256:")
    image_id = out.strip()
    assert env.store.read_state(cid).status is Status.RUNNING  # paused and resumed
    code, out, _ = env.out(capfd, "inspect", "centos:test")
    info = json.loads(out)[0]
    assert info["Id"] == image_id
    assert (info["Author"], info["Comment"]) == ("centos", "new")
    assert "COMMITTED=1" in info["Config"]["Env"]
    assert info["Container"] == cid
    assert len(info["RootFS"]["Layers"]) == 2
    code, out, _ = env.out(capfd, "history", "--no-trunc", "--format",
                           "{{.CreatedBy}}|{{.Comment}}", "centos:test")  # fmt: skip
    assert out.splitlines()[0] == "sh -c echo committed > /root/file; rm /etc/motd; sleep 1000|new"
    script = "cat /root/file; test -e /etc/motd || echo gone; echo $COMMITTED"
    new = env.create(["sh", "-c", script], image="centos:test")
    env.wait_exited(new)
    code, out, _ = env.out(capfd, "logs", new)
    assert out == "committed\ngone\n1\n"


def test_commit_errors(env: Env, capfd: pytest.CaptureFixture[str]) -> None:
    cid = env.create(["true"], start=False)
    code, _, err = env.out(capfd, "commit", "-c", "FROM x", cid, "bad:1")
    assert (code, err) == (1, "Error response from daemon: from is not a valid change command\n")
    code, _, err = env.out(capfd, "commit", cid, "Bad:Ref")
    assert code == 1 and "invalid reference format" in err
    code, _, err = env.out(capfd, "commit", "nosuch")
    assert (code, err) == (1, "Error: No such container: nosuch\n")
    code, out, _ = env.out(capfd, "commit", "-p=false", cid)
    assert code == 0 and out.startswith("sha256:")


# --------------------------------------------------------------------------- the seed tutorial


def test_seed_commit_and_export_import_with_run(env: Env) -> None:
    """Seed section 3: run, change, ``commit -m -a``, run the new image; ``export >`` then
    ``cat | import -`` and run that image too."""
    exe = shutil.which("cargohold")
    if exe is None:
        pytest.skip("cargohold is not installed in PATH")
    base = [exe, "--root", str(env.root), "--runroot", str(env.run)]

    def ch(*args: str, data: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([*base, *args], input=data, capture_output=True, timeout=60,
                              check=False)  # fmt: skip

    r = ch("run", "-d", "--name", "seed", "--network", "none", "busybox:test", "sleep", "1000")
    assert r.returncode == 0, r.stderr
    try:
        cid = r.stdout.decode().strip()
        env.ids.append(cid)
        assert ch("exec", "seed", "sh", "-c", "echo tutorial > /root/note").returncode == 0
        r = ch("commit", "-m", "new", "-a", "centos", cid[:12], "centos:test")
        assert r.returncode == 0, r.stderr
        r = ch("run", "--rm", "--network", "none", "centos:test", "cat", "/root/note")
        assert (r.returncode, r.stdout) == (0, b"tutorial\n"), r.stderr
        r = ch("inspect", "-f", "{{.Author}}|{{.Comment}}", "centos:test")
        assert r.stdout == b"centos|new\n"
        exported = ch("export", "seed")
        assert exported.returncode == 0, exported.stderr
        r = ch("import", "-", "image_name:tag", data=exported.stdout)
        assert r.returncode == 0, r.stderr
        r = ch("run", "--rm", "--network", "none", "image_name:tag", "/bin/cat", "/root/note")
        assert (r.returncode, r.stdout) == (0, b"tutorial\n"), r.stderr
    finally:
        ch("rm", "-f", "seed")
