"""``cargohold events`` with runc and a busybox image (root): what the CLI, the monitors and
the network and volume code write to the shared log, in order and with Docker's attributes,
and a follower that sees a ``run`` as it happens."""

from __future__ import annotations

import json
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from containers_env import Env, container_env, needs_runtime

pytestmark = needs_runtime

Event = dict[str, object]


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with container_env(tmp_path_factory.mktemp("ctr-events")) as e:
        yield e


def now() -> str:
    return f"{time.time():.6f}"


def events(env: Env, since: str, *filters: str) -> list[Event]:
    """The events from ``since`` until now (``--format json``: the API's objects)."""
    until = f"{time.time() + 0.001:.6f}"
    args = [f for word in filters for f in ("-f", word)]
    out = env.out("events", "--since", since, "--until", until, "--format", "json", *args)
    return [json.loads(line) for line in out.splitlines()]


def actions(got: list[Event], kind: str = "container") -> list[str]:
    return [str(e["Action"]) for e in got if e["Type"] == kind]


def attrs(event: Event) -> dict[str, str]:
    actor = event["Actor"]
    assert isinstance(actor, dict)
    return actor["Attributes"]  # type: ignore[no-any-return]


def test_run_rm_writes_create_attach_start_die_destroy(env: Env) -> None:
    t0 = now()
    r = env.ch("run", "--rm", "--network", "none", "--name", "once", "-l", "app=demo", "bb",
               "sh", "-c", "exit 3", check=False)  # fmt: skip
    assert r.returncode == 3
    got = events(env, t0)
    assert actions(got) == ["create", "attach", "start", "die", "destroy"]
    cid = got[0]["id"]
    assert all(e["id"] == cid and e["from"] == "bb" and e["status"] == e["Action"] for e in got)
    assert all(attrs(e)["name"] == "once" and attrs(e)["app"] == "demo" for e in got)
    die = next(e for e in got if e["Action"] == "die")
    assert attrs(die)["exitCode"] == "3" and die["scope"] == "local"
    times = [int(e["timeNano"]) for e in got]  # type: ignore[call-overload]
    assert times == sorted(times) and all(int(e["time"]) == t // 10**9  # type: ignore[call-overload]
                                          for e, t in zip(got, times, strict=True))


def test_lifecycle_verbs_write_their_events(env: Env) -> None:
    t0 = now()
    cid = env.out("create", "--network", "none", "--name", "life", "bb", "sleep", "60")
    env.ch("start", "life")
    env.ch("pause", "life")
    env.ch("unpause", "life")
    env.ch("rename", "life", "life2")
    env.ch("exec", "life2", "true")
    env.ch("stop", "-t", "1", "life2")  # sleep as pid 1 ignores SIGTERM: killed after 1 s
    env.ch("rm", "life2")
    got = events(env, t0, f"container={cid}")
    assert actions(got) == ["create", "start", "pause", "unpause", "rename",
                            "exec_create: true ", "exec_start: true ", "exec_die",
                            "kill", "kill", "die", "stop", "destroy"]  # fmt: skip
    by = {str(e["Action"]): attrs(e) for e in got}
    assert by["rename"]["oldName"] == "/life" and by["rename"]["name"] == "life2"
    assert by["exec_die"]["exitCode"] == "0"
    assert by["exec_die"]["execID"] == by["exec_start: true "]["execID"]
    kills = [attrs(e)["signal"] for e in got if e["Action"] == "kill"]
    assert kills == ["15", "9"] and by["die"]["exitCode"] == "137"


def test_networks_and_volumes(env: Env) -> None:
    t0 = now()
    net_id = env.out("network", "create", "evnet")
    env.ch("volume", "create", "evvol")
    cid = env.out("run", "-d", "--network", "evnet", "-v", "evvol:/data", "bb", "sleep", "60")
    env.ch("network", "connect", "bridge", cid)
    env.ch("network", "disconnect", "bridge", cid)
    env.ch("rm", "-f", cid)
    env.ch("network", "rm", "evnet")
    env.ch("volume", "rm", "evvol")
    got = events(env, t0)
    flow = [(e["Type"], e["Action"]) for e in got]
    assert flow == [  # moby logs "volume create" for a -v of an existing volume too
        ("network", "create"), ("volume", "create"), ("volume", "create"), ("container", "create"),
        ("network", "connect"), ("volume", "mount"), ("container", "start"),
        ("network", "connect"), ("network", "disconnect"),
        ("container", "kill"), ("container", "die"), ("volume", "unmount"),
        ("network", "disconnect"), ("container", "destroy"),
        ("network", "destroy"), ("volume", "destroy"),
    ]  # fmt: skip
    connect = got[4]
    assert connect["Actor"] == {"ID": net_id, "Attributes": {"container": cid, "name": "evnet",
                                                             "type": "bridge"}}  # fmt: skip
    mount = attrs(got[5])
    assert mount == {"container": cid, "destination": "/data", "driver": "local",
                     "propagation": "", "read/write": "true"}  # fmt: skip
    assert attrs(got[7])["name"] == "bridge" and attrs(got[8])["container"] == cid
    assert attrs(got[12])["name"] == "evnet"  # the container's exit tears its network down
    # filters: one key ORs its values, different keys AND
    only = events(env, t0, "type=network", "event=connect", "event=destroy")
    assert [(attrs(e)["name"], e["Action"]) for e in only] == [
        ("evnet", "connect"), ("bridge", "connect"), ("evnet", "destroy")]  # fmt: skip
    assert [e["Action"] for e in events(env, t0, "volume=evvol", "type=volume")] == [
        "create", "create", "mount", "unmount", "destroy"]  # fmt: skip


def test_health_status_from_the_monitor(env: Env) -> None:
    t0 = now()
    cid = env.out("run", "-d", "--network", "none", "--health-cmd", "true",
                  "--health-interval", "1s", "bb", "sleep", "60")  # fmt: skip
    try:
        env.wait_for(lambda: any(e["Action"] == "health_status: healthy"
                                 for e in events(env, t0, f"container={cid}")), 20)  # fmt: skip
        got = events(env, t0, f"container={cid}", "event=health_status")
        assert [e["Action"] for e in got] == ["health_status: healthy"]  # a change only, once
    finally:
        env.ch("rm", "-f", cid)


def test_restart_policy_restarts_show_as_die_and_start(env: Env) -> None:
    t0 = now()
    cid = env.out("run", "-d", "--network", "none", "--restart", "on-failure:2", "bb",
                  "sh", "-c", "exit 5")  # fmt: skip
    try:
        env.wait_for(lambda: env.inspect(cid)["State"]["Status"] == "exited"  # type: ignore[index]
                     and env.inspect(cid)["RestartCount"] == 2, 20)  # fmt: skip
        got = events(env, t0, f"container={cid}")
        assert actions(got) == ["create", "start", "die", "start", "die", "start", "die"]
        assert {attrs(e)["exitCode"] for e in got if e["Action"] == "die"} == {"5"}
    finally:
        env.ch("rm", "-f", cid)


def test_a_follower_sees_a_run_within_a_second(env: Env) -> None:
    argv = env.argv("events", "--format", "{{.Action}} {{.Actor.ID}}", "-f", "type=container")
    follower = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)  # the follower is up (it shows only what comes after it started)
        cid = env.out("run", "-d", "--rm", "--network", "none", "bb", "true")
        done = time.monotonic()
        seen: list[str] = []
        assert follower.stdout is not None
        while not seen or seen[-1] != "destroy":
            ready, _, _ = select.select([follower.stdout], [], [], 5)
            assert ready, f"no event within 5 s after {seen}"
            line = follower.stdout.readline()
            assert line, "the follower ended"
            action, actor = line.split()
            assert actor == cid
            seen.append(action)
        assert time.monotonic() - done < 1.0
        assert seen == ["create", "start", "die", "destroy"]
    finally:
        follower.send_signal(signal.SIGINT)  # Ctrl-C
        follower.wait(5)
    assert follower.returncode == 130  # as docker's CLI (128 + SIGINT), nothing printed


def test_copy_export_top_commit(env: Env, tmp_path_factory: pytest.TempPathFactory) -> None:
    tmp = tmp_path_factory.mktemp("ev-ops")
    cid = env.out("run", "-d", "--network", "none", "bb", "sleep", "60")
    try:
        t0 = now()
        env.ch("top", cid)
        env.ch("cp", f"{cid}:/etc/passwd", str(tmp / "passwd"))
        env.ch("cp", str(tmp / "passwd"), f"{cid}:/tmp/")
        env.ch("export", "-o", str(tmp / "fs.tar"), cid)
        image_id = env.out("commit", "-m", "snap", cid, "evsnap:1")
        got = events(env, t0)
        assert [(e["Type"], e["Action"]) for e in got] == [
            ("container", "top"), ("container", "archive-path"), ("container", "extract-to-dir"),
            ("container", "export"), ("container", "pause"), ("container", "unpause"),
            ("image", "tag"), ("container", "commit"),
        ]  # fmt: skip
        commit = got[-1]
        assert {k: attrs(commit)[k] for k in ("comment", "imageID", "imageRef", "name")} == {
            "comment": "snap", "imageID": image_id, "imageRef": "evsnap:1",
            "name": env.inspect(cid)["Name"].lstrip("/")}  # type: ignore[union-attr]
        assert got[-2]["Actor"] == {"ID": image_id, "Attributes": {"name": "evsnap:1"}}
    finally:
        env.ch("rm", "-f", cid)
        env.ch("rmi", "evsnap:1", check=False)


def test_a_monitor_killed_leaves_a_die_written_by_the_next_command(env: Env) -> None:
    import os

    cid = env.out("run", "-d", "--network", "none", "bb", "sleep", "60")
    try:
        t0 = now()
        state = json.loads((env.root / "containers" / cid / "state.json").read_text())
        monitor = int(state["MonitorPid"])
        os.kill(monitor, signal.SIGKILL)
        env.wait_for(lambda: env.inspect(cid)["State"]["Status"] == "exited")  # type: ignore[index]
        got = events(env, t0, f"container={cid}")
        assert [(e["Action"], attrs(e).get("exitCode")) for e in got] == [("die", "137")]
    finally:
        env.ch("rm", "-f", cid)


def test_push_pull_tag_rmi(env: Env, tmp_path_factory: pytest.TempPathFactory,
                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import shutil

    if shutil.which("docker-registry") is None:
        pytest.skip("docker-registry is not installed (apt-get install docker-registry)")
    from test_registry import start_registry, stop_registry

    tmp = tmp_path_factory.mktemp("ev-reg")
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp / "docker-config"))
    monkeypatch.setenv("CARGOHOLD_CONFIG", str(tmp / "registries.toml"))
    reg = start_registry(tmp)
    name = f"{reg.host}/ev/bb:1"
    try:
        t0 = now()
        env.ch("tag", "bb", name)
        image_id = env.out("image", "inspect", "--format", "{{.Id}}", name)
        env.ch("push", "--tls-verify=false", name)
        env.ch("rmi", name)
        env.ch("pull", "--tls-verify=false", name)
        env.ch("rmi", name)
        got = [(e["Action"], e["Actor"]) for e in events(env, t0, "type=image")]
        repo = f"{reg.host}/ev/bb"
        assert got == [
            ("tag", {"ID": image_id, "Attributes": {"name": name}}),
            ("push", {"ID": name, "Attributes": {"name": repo}}),
            ("untag", {"ID": image_id, "Attributes": {"name": image_id}}),
            ("pull", {"ID": name, "Attributes": {"name": repo}}),
            ("untag", {"ID": image_id, "Attributes": {"name": image_id}}),
        ]  # bb keeps the image: untag only, no delete
        # the image filter matches the actor or its name, with the tag stripped
        assert [e["Action"] for e in events(env, t0, f"image={repo}")] == ["tag", "push", "pull"]
    finally:
        stop_registry(reg)
        env.ch("rmi", name, check=False)


def _memory_cgroup() -> bool:
    v2 = Path("/sys/fs/cgroup/cgroup.controllers")
    return Path("/sys/fs/cgroup/memory").is_dir() or (
        v2.exists() and "memory" in v2.read_text().split())


@pytest.mark.skipif(not _memory_cgroup(), reason="no memory cgroup controller on this host")
def test_oom_comes_before_die(env: Env) -> None:
    t0 = now()
    r = env.ch("run", "--rm", "--network", "none", "-m", "8m", "--memory-swap", "8m", "bb",
               "sh", "-c", "tail /dev/zero; exit 7", check=False)  # fmt: skip
    assert r.returncode == 7
    got = events(env, t0)
    assert actions(got) == ["create", "attach", "start", "oom", "die", "destroy"]
