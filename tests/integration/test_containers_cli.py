"""Container lifecycle through the CLI with runc and a busybox image (root)."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from containers_env import Env, container_env, needs_runtime

pytestmark = needs_runtime


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with container_env(tmp_path_factory.mktemp("ctr-cli")) as e:
        yield e


def rw_layers(env: Env) -> set[str]:
    d = env.root / "containers-rw"
    return {p.name for p in d.iterdir()} if d.exists() else set()


def test_foreground_output_and_exit_code(env: Env) -> None:
    before = rw_layers(env)
    r = env.ch(
        "run",
        "--rm",
        "--network",
        "none",
        "bb",
        "sh",
        "-c",
        "echo hi; echo err >&2; exit 3",
        check=False,
    )
    assert (r.returncode, r.stdout, r.stderr) == (3, "hi\n", "err\n")
    assert env.out("ps", "-a", "-q") == ""
    assert rw_layers(env) == before


def test_exit_codes_127_and_126(env: Env) -> None:
    r = env.ch("run", "--name", "nocmd", "bb", "nosuchcommand", check=False)
    assert r.returncode == 127, r.stderr
    assert "executable file not found" in r.stderr
    assert env.inspect("nocmd")["State"]["Status"] == "created"  # type: ignore[index]
    r = env.ch("run", "--rm", "bb", "/bin/notexec", check=False)
    assert r.returncode == 126, r.stderr
    env.ch("rm", "nocmd")


def env_processes(env: Env) -> set[int]:
    """Processes forked from this env's CLI calls (their cmdline names its --root)."""
    out = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path("/proc", entry, "cmdline").read_bytes()
            except OSError:
                continue
            if str(env.root).encode() in cmdline:
                out.add(int(entry))
    return out


def test_missing_image_and_bad_specs_leave_nothing(env: Env) -> None:
    before = (rw_layers(env), env.out("ps", "-a", "-q"))
    processes = env_processes(env)
    cases = [
        (["run", "--pull", "never", "nosuch:1", "true"], "No such image: nosuch:1"),
        (["run", "-v", "/tmp:relative", "bb", "true"], "must be absolute"),
        (["run", "-p", "99999:80", "bb", "true"], "Invalid hostPort"),
        (["run", "-e", "=x", "bb", "true"], "invalid environment variable"),
        (
            ["run", "--mount", "type=bind,src=/nonexistent-ch,dst=/x", "bb", "true"],
            "bind source path does not exist",
        ),
        (["run", "-v", "/tmp:/proc/x", "bb", "true"], "/proc"),
        (["run", "--restart", "bogus", "bb", "true"], "invalid restart policy"),
    ]
    for argv, message in cases:
        r = env.ch(*argv, check=False)
        assert r.returncode == 125, (argv, r.stderr)
        assert message in r.stderr, (argv, r.stderr)
    assert (rw_layers(env), env.out("ps", "-a", "-q")) == before
    # the monitor `run` forks ahead of the set-up exits when the set-up fails
    deadline = time.monotonic() + 5
    while env_processes(env) - processes and time.monotonic() < deadline:
        time.sleep(0.05)
    assert env_processes(env) - processes == set()


def test_start_failing_after_the_monitor_got_the_container_leaves_nothing(env: Env) -> None:
    """`run` names the container to its pre-forked monitor before wiring the network; a
    port already in use fails the wiring: 125, and no monitor, rw layer or container stays."""
    import socket

    before = (rw_layers(env), env.out("ps", "-a", "-q"))
    processes = env_processes(env)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        r = env.ch("run", "--rm", "-p", f"127.0.0.1:{port}:80", "bb", "true", check=False)
    assert r.returncode == 125, r.stderr
    assert "address already in use" in r.stderr, r.stderr
    assert (rw_layers(env), env.out("ps", "-a", "-q")) == before
    deadline = time.monotonic() + 5
    while env_processes(env) - processes and time.monotonic() < deadline:
        time.sleep(0.05)
    assert env_processes(env) - processes == set()


def test_create_start_by_short_id_ps_stop(env: Env) -> None:
    cid = env.out("create", "-it", "bb", "sh")
    assert re.fullmatch(r"[0-9a-f]{64}", cid)
    ps = env.out("ps", "-a")
    line = next(ln for ln in ps.splitlines() if ln.startswith(cid[:12]))
    assert "Created" in line and '"sh"' in line and "bb" in line
    assert env.out("start", cid[:12]) == cid[:12]
    line = next(ln for ln in env.out("ps").splitlines() if ln.startswith(cid[:12]))
    assert re.search(r"Up (Less than a second|\d+ seconds?)", line), line
    header = env.out("ps").splitlines()[0]
    assert header.split() == [
        "CONTAINER",
        "ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ]
    env.ch("stop", "-t", "1", cid)  # an interactive sh ignores SIGTERM: killed after 1 s
    state = env.inspect(cid)["State"]
    assert state["Status"] == "exited" and state["ExitCode"] == 137  # type: ignore[index]
    assert re.search(r"Exited \(137\) ", env.out("ps", "-a", "--filter", f"id={cid}"))
    env.ch("rm", cid)
    assert cid[:12] not in env.out("ps", "-a")


def _image_with_stop_signal(env: Env, tmp: Path, signal_name: str, tag: str) -> Path:
    """``bb`` saved, its config given ``StopSignal``, as an archive tagged ``tag``."""
    import hashlib
    import io
    import tarfile

    saved = tmp / "bb.tar"
    env.ch("save", "-o", str(saved), "bb")
    out = tmp / "sig.tar"
    with tarfile.open(saved) as src, tarfile.open(out, "w") as dst:
        entry = json.load(src.extractfile("manifest.json"))[0]  # type: ignore[arg-type]
        config = json.load(src.extractfile(entry["Config"]))  # type: ignore[arg-type]
        config["config"]["StopSignal"] = signal_name
        raw = json.dumps(config).encode()
        name = "blobs/sha256/" + hashlib.sha256(raw).hexdigest()
        manifest = json.dumps([{"Config": name, "RepoTags": [tag],
                                "Layers": entry["Layers"]}]).encode()
        for member in src.getmembers():
            if member.name in entry["Layers"] or member.isdir():
                dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        for path, data in ((name, raw), ("manifest.json", manifest)):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            dst.addfile(info, io.BytesIO(data))
    return out


def test_image_with_an_invalid_stop_signal_stops_with_sigterm(env: Env, tmp_path: Path) -> None:
    """Docker keeps an image's unknown STOPSIGNAL at create and stops with SIGTERM (moby's
    Container.StopSignal); ``--stop-signal SIGFOO`` is refused at create (unit tests)."""
    env.ch("load", "-i", str(_image_with_stop_signal(env, tmp_path, "SIGFOO", "badsig:1")))
    cid = env.out("run", "-d", "--network", "none", "badsig:1", "sh", "-c",
                  "trap 'exit 7' TERM; while :; do sleep 0.1; done")
    try:
        assert env.inspect(cid)["Config"]["StopSignal"] == "SIGFOO"  # type: ignore[index]
        started = time.monotonic()
        env.ch("stop", "-t", "20", cid)
        assert time.monotonic() - started < 10  # SIGTERM ended it, not the SIGKILL after 20 s
        assert env.inspect(cid)["State"]["ExitCode"] == 7  # type: ignore[index]
    finally:
        env.ch("rm", "-f", cid, check=False)
        env.ch("rmi", "badsig:1", check=False)


def test_name_conflict_and_concurrent_names(env: Env) -> None:
    initial = rw_layers(env)
    env.ch("run", "-d", "--name", "taken", "bb", "sleep", "60")
    before = rw_layers(env)
    r = env.ch("run", "-d", "--name", "taken", "bb", "true", check=False)
    assert r.returncode == 125
    assert 'Conflict. The container name "/taken" is already in use by container' in r.stderr
    assert rw_layers(env) == before
    r = env.ch("rm", "taken", check=False)
    assert r.returncode == 1
    assert "You cannot remove a running container" in r.stderr
    assert "Stop the container before attempting removal or force remove" in r.stderr
    env.ch("rm", "-f", "taken")
    procs = [
        subprocess.Popen(
            env.argv("run", "-d", "--network", "none", "--name", "race", "bb", "sleep", "30"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    results = [p.communicate(timeout=60) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 125], results
    assert len(env.out("ps", "-q", "--filter", "name=^race$").split()) == 1
    env.ch("rm", "-f", "race")
    assert rw_layers(env) == initial


def test_process_options(env: Env) -> None:
    out = env.out(
        "run",
        "--rm",
        "-e",
        "FOO=bar",
        "-w",
        "/tmp",
        "-u",
        "app",
        "-h",
        "myhost",
        "--entrypoint",
        "sh",
        "bb",
        "-c",
        "echo $FOO $(pwd) $(id -u) $(hostname) $HOME",
    )
    assert out == "bar /tmp 1000 myhost /home/app"
    envfile = env.base / "env.list"
    envfile.write_text("# comment\nA=1\nB=two words\n")
    out = env.out("run", "--rm", "--env-file", str(envfile), "bb", "sh", "-c", 'echo "$A|$B"')
    assert out == "1|two words"


def test_supplementary_groups_as_docker(env: Env) -> None:
    """The user's primary group and the groups /etc/group lists it in, plus --group-add, in
    run, exec (with the container's --group-add) and healthchecks: dockerd 20.10's ``id``."""
    net = ("--rm", "--network", "none")
    for user, expected in (
        ("", "uid=0(root) gid=0(root) groups=0(root)"),
        ("app", "uid=1000(app) gid=1000(app) groups=50(staff),1000(app)"),
        ("1000:50", "uid=1000(app) gid=50(staff) groups=50(staff)"),
        ("app:app", "uid=1000(app) gid=1000(app) groups=1000(app)"),
        ("4242", "uid=4242 gid=0(root) groups=0(root)"),
    ):
        args = ("-u", user) if user else ()
        assert env.out("run", *net, *args, "bb", "id") == expected, user
    out = env.out("run", *net, "-u", "app", "--group-add", "root", "--group-add", "77", "bb", "id")
    assert out == "uid=1000(app) gid=1000(app) groups=0(root),50(staff),77,1000(app)"
    env.ch("run", "-d", "--name", "grp", "--network", "none", "-u", "app", "--group-add", "77",
           "--health-cmd", "id", "--health-interval", "1s", "bb", "sleep", "100")
    try:
        assert env.out("exec", "grp", "id") == (
            "uid=1000(app) gid=1000(app) groups=50(staff),77,1000(app)")
        assert env.out("exec", "-u", "root", "grp", "id") == (
            "uid=0(root) gid=0(root) groups=0(root),77")

        def probed() -> bool:
            health = env.inspect("grp")["State"].get("Health") or {}  # type: ignore[attr-defined]
            return bool(health.get("Log"))

        env.wait_for(probed)
        log = env.inspect("grp")["State"]["Health"]["Log"]  # type: ignore[index]
        assert log[0]["Output"] == "uid=1000(app) gid=1000(app) groups=50(staff),77,1000(app)\n"
    finally:
        env.ch("rm", "-f", "grp")


def test_inspect_shape(env: Env) -> None:
    cid = env.out(
        "create",
        "--name",
        "shape",
        "-l",
        "k=v",
        "--restart",
        "on-failure:2",
        "--stop-signal",
        "SIGUSR1",
        "bb",
        "echo",
        "x",
    )
    data = env.inspect("shape")
    for key in (
        "Id",
        "Created",
        "Path",
        "Args",
        "State",
        "Image",
        "ResolvConfPath",
        "HostnamePath",
        "HostsPath",
        "LogPath",
        "Name",
        "RestartCount",
        "Driver",
        "Platform",
        "MountLabel",
        "ProcessLabel",
        "AppArmorProfile",
        "ExecIDs",
        "HostConfig",
        "GraphDriver",
        "Mounts",
        "Config",
        "NetworkSettings",
    ):
        assert key in data, key
    assert data["Id"] == cid and data["Name"] == "/shape"
    assert (data["Path"], data["Args"]) == ("echo", ["x"])
    cfg = data["Config"]
    assert cfg["Cmd"] == ["echo", "x"] and cfg["Image"] == "bb"  # type: ignore[index]
    assert cfg["Labels"] == {"k": "v"} and cfg["StopSignal"] == "SIGUSR1"  # type: ignore[index]
    host = data["HostConfig"]
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}  # type: ignore[index]
    assert str(data["Image"]).startswith("sha256:")
    fmt = env.out("inspect", "-f", "{{.Name}} {{.State.Status}}", "shape")
    assert fmt == "/shape created"
    env.ch("rm", "shape")


def test_restart_policy_and_wait(env: Env) -> None:
    env.ch("run", "-d", "--name", "flaky", "--restart", "on-failure:2", "bb", "sh", "-c", "exit 4")
    assert env.out("wait", "flaky") in ("4",)
    env.wait_for(lambda: env.inspect("flaky")["State"]["Status"] == "exited")  # type: ignore[index]
    data = env.inspect("flaky")
    assert data["RestartCount"] == 2 and data["State"]["ExitCode"] == 4  # type: ignore[index]
    env.ch("rm", "flaky")


def test_kill_pause_unpause_restart_rename(env: Env) -> None:
    loop = "trap 'exit 143' TERM; while :; do sleep 0.1; done"
    env.ch("run", "-d", "--name", "life", "bb", "sh", "-c", loop)
    env.ch("pause", "life")
    assert "(Paused)" in env.out("ps", "--filter", "name=life")
    r = env.ch("pause", "life", check=False)
    assert r.returncode == 1 and "is already paused" in r.stderr
    env.ch("unpause", "life")
    first = env.inspect("life")["State"]["StartedAt"]  # type: ignore[index]
    env.ch("restart", "-t", "0", "life")
    state = env.inspect("life")["State"]
    assert state["Running"] and state["StartedAt"] != first  # type: ignore[index]
    env.ch("rename", "life", "life2")
    assert env.inspect("life2")["Name"] == "/life2"
    env.ch("kill", "-s", "TERM", "life2")
    env.wait_for(lambda: not env.inspect("life2")["State"]["Running"])  # type: ignore[index]
    assert env.inspect("life2")["State"]["ExitCode"] == 143  # type: ignore[index]
    r = env.ch("kill", "life2", check=False)
    assert r.returncode == 1 and "is not running" in r.stderr
    env.ch("rm", "life2")


def test_monitor_kill_9_is_reconciled(env: Env) -> None:
    cid = env.out("run", "-d", "bb", "sleep", "300")
    data = env.inspect(cid)
    netns = Path("/run/netns") / f"cargohold-{cid[:12]}"
    assert netns.exists()
    pid = json.loads((env.root / "containers" / cid / "state.json").read_text())["MonitorPid"]
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.2)
    state = env.inspect(cid)["State"]
    assert state["Status"] == "exited" and state["ExitCode"] in (137, 255)  # type: ignore[index]
    assert not netns.exists()
    merged = env.root / "containers-rw" / cid / "merged"
    assert not os.path.ismount(merged)
    del data
    env.ch("start", cid)  # nothing stale blocks the next start
    assert env.inspect(cid)["State"]["Running"]  # type: ignore[index]
    env.ch("rm", "-f", cid)


def test_ps_filters_format_and_prune(env: Env) -> None:
    a = env.out("run", "-d", "--name", "psa", "-l", "team=x", "bb", "sleep", "300")
    env.ch("run", "--name", "psb", "bb", "sh", "-c", "exit 2", check=False)
    b = env.inspect("psb")["Id"]
    assert env.out("ps", "-q").split() == [a[:12]]
    assert env.out("ps", "-a", "-q", "--filter", "exited=2") == str(b)[:12]
    assert env.out("ps", "-a", "-q", "--filter", "label=team=x") == a[:12]
    assert env.out("ps", "-a", "-q", "--filter", "status=exited", "--no-trunc") == b
    assert env.out("ps", "-l", "-q") == str(b)[:12]
    assert env.out("ps", "-a", "--format", "{{.Names}}:{{.State}}", "-n", "2").splitlines() == [
        "psb:exited",
        "psa:running",
    ]
    out = env.out("container", "prune", "-f")
    assert f"Deleted Containers:\n{b}" in out and "Total reclaimed space:" in out
    assert env.out("ps", "-a", "-q") == a[:12]
    env.ch("rm", "-f", "psa")


def test_run_it_with_a_pty(env: Env) -> None:
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - child
        os.execv(env.argv()[0], env.argv("run", "-it", "--rm", "bb", "sh"))
    output = b""

    def read_until(token: bytes, limit: float = 20) -> None:
        nonlocal output
        deadline = time.monotonic() + limit
        while token not in output:
            assert time.monotonic() < deadline, output
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    output += os.read(fd, 4096)
                except OSError:
                    return

    read_until(b"# ")
    os.write(fd, b"tty; echo $TERM; exit 5\r")
    read_until(b"xterm")
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    assert b"/dev/pts/0" in output
    assert os.waitstatus_to_exitcode(status) == 5


def test_run_i_pipes_stdin(env: Env) -> None:
    r = env.ch("run", "-i", "--rm", "bb", "sh", "-c", "cat; echo done", stdin="piped\n")
    assert r.stdout == "piped\ndone\n"


@pytest.mark.skipif(
    not Path("/sys/fs/cgroup/memory").is_dir()
    and not Path("/sys/fs/cgroup/cgroup.controllers").exists(),
    reason="no memory cgroup controller on this host",
)
def test_memory_limit_oom_kill_is_reported(env: Env) -> None:
    """A process killed by the kernel's OOM killer under -m: exit 137 and State.OOMKilled."""
    script = 'x=$(head -c 60000000 /dev/zero | tr "\\0" a); echo survived ${#x}'
    r = env.ch("run", "--name", "oomer", "-m", "16m", "bb", "sh", "-c", script, check=False)
    try:
        assert r.returncode == 137, (r.stdout, r.stderr)
        assert "survived" not in r.stdout
        state = env.inspect("oomer")["State"]
        assert state["OOMKilled"] is True and state["ExitCode"] == 137, state  # type: ignore[index]
        # a container that exits by itself under the same limit is not reported as OOM-killed
        env.ch("run", "--name", "fine", "-m", "16m", "bb", "true")
        assert env.inspect("fine")["State"]["OOMKilled"] is False  # type: ignore[index]
    finally:
        env.ch("rm", "-f", "oomer", "fine", check=False)
