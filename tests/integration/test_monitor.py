"""The monitor with runc and a busybox rootfs (root only)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

from cargohold.container import attach as proto
from cargohold.container import monitor_spawn as monitor
from cargohold.container.cleanup import Command, RemoveContainer
from cargohold.container.model import (
    ContainerConfig,
    ContainerRecord,
    HealthcheckConfig,
    HealthStatus,
    HostConfig,
    RestartPolicy,
    State,
    Status,
)
from cargohold.container.reconcile import (
    monitor_alive,
    read_cleanup,
    reconcile,
    record_cleanup,
)
from cargohold.container.records import ContainerStore
from cargohold.errors import CommandNotFound
from cargohold.runtime.runc import Runc
from cargohold.util.ids import random_id

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "echo", "sleep", "tty", "stty", "cat", "true", "false", "exit")
pytestmark = pytest.mark.skipif(
    not BUSYBOX.exists() or shutil.which("runc") is None, reason="needs runc and busybox"
)


@pytest.fixture(scope="module")
def base_config(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    d = tmp_path_factory.mktemp("spec")
    subprocess.run(["runc", "spec"], cwd=d, check=True)
    config: dict[str, object] = json.loads((d / "config.json").read_text())
    config["root"] = {"path": "rootfs", "readonly": False}
    return config


class Env:
    def __init__(self, base: Path, config: dict[str, object]) -> None:
        self.store = ContainerStore(base / "root", base / "run")
        self.runtime = Runc("runc", base / "run" / "runc")
        self.config = config
        self.ids: list[str] = []

    def create(
        self,
        args: list[str],
        *,
        tty: bool = False,
        stdin: bool = False,
        restart: str = "no",
        healthcheck: HealthcheckConfig | None = None,
    ) -> str:
        cfg = ContainerConfig(
            cmd=tuple(args), tty=tty, open_stdin=stdin, stdin_once=stdin, healthcheck=healthcheck
        )
        host = HostConfig(restart_policy=RestartPolicy.parse(restart))
        rec = self.store.add(ContainerRecord(id=random_id(), config=cfg, host_config=host))
        self.ids.append(rec.id)
        bundle = self.store.bundle_dir(rec.id)
        rootfs = bundle / "rootfs"
        (rootfs / "bin").mkdir(parents=True)
        shutil.copy(BUSYBOX, rootfs / "bin" / "busybox")
        for applet in APPLETS:
            (rootfs / "bin" / applet).symlink_to("busybox")
        config = json.loads(json.dumps(self.config))
        config["process"]["args"] = args
        config["process"]["terminal"] = tty
        (bundle / "config.json").write_text(json.dumps(config))
        return rec.id

    def spawn(self, cid: str, wait_for_attach: bool = False) -> monitor.SpawnResult:
        spec = monitor.MonitorSpec(
            self.store.base.parent,
            self.store.runbase.parent,
            cid,
            "runc",
            self.runtime.state_root,
            wait_for_attach,
        )
        return monitor.spawn(spec)

    def wait_state(self, cid: str, pred: Callable[[State], bool], limit: float = 30) -> State:
        deadline = time.monotonic() + limit
        while True:
            state = self.store.read_state(cid)
            if pred(state):
                return state
            if time.monotonic() > deadline:
                raise AssertionError(f"state never matched: {state}")
            time.sleep(0.05)

    def wait_exited(self, cid: str) -> State:
        return self.wait_state(
            cid,
            lambda s: (
                s.status in (Status.EXITED, Status.CREATED) and not monitor_alive(self.store, cid)
            ),
        )

    def log(self, cid: str) -> list[dict[str, str]]:
        path = self.store.log_path(cid)
        return [json.loads(line) for line in path.read_text().splitlines()]

    def cleanup(self) -> None:
        for cid in self.ids:
            with contextlib.suppress(Exception):
                pid = self.store.read_state(cid).monitor_pid
                if pid and monitor_alive(self.store, cid):
                    os.kill(pid, signal.SIGKILL)
            subprocess.run(
                ["runc", "--root", str(self.runtime.state_root), "delete", "-f", cid],
                capture_output=True,
                check=False,
            )


@pytest.fixture
def env(tmp_path: Path, base_config: dict[str, object]) -> Iterator[Env]:
    e = Env(tmp_path, base_config)
    try:
        yield e
    finally:
        e.cleanup()


def test_detached_output_and_exit_code(env: Env) -> None:
    cid = env.create(["sh", "-c", "echo hi; echo oops >&2; exit 3"])
    result = env.spawn(cid)
    assert result.pid > 0
    state = env.wait_exited(cid)
    assert (state.status, state.exit_code) == (Status.EXITED, 3)
    assert state.started_at and state.finished_at >= state.started_at
    lines = env.log(cid)
    assert {"log": "hi\n", "stream": "stdout"}.items() <= lines[0].items() or any(
        x["log"] == "hi\n" and x["stream"] == "stdout" for x in lines
    )
    assert any(x["log"] == "oops\n" and x["stream"] == "stderr" for x in lines)


def test_kill_gives_137(env: Env) -> None:
    cid = env.create(["sleep", "100"])
    env.spawn(cid)
    env.wait_state(cid, lambda s: s.status is Status.RUNNING)
    env.runtime.kill(cid, "KILL")
    state = env.wait_exited(cid)
    assert state.exit_code == 137


def test_missing_command_is_127(env: Env) -> None:
    cid = env.create(["nosuchcmd"])
    with pytest.raises(CommandNotFound, match="executable file not found"):
        env.spawn(cid)
    state = env.store.read_state(cid)
    assert (state.status, state.exit_code) == (Status.CREATED, 127)


def test_on_failure_restarts_twice(env: Env) -> None:
    cid = env.create(["sh", "-c", "echo run; exit 1"], restart="on-failure:2")
    env.spawn(cid)
    state = env.wait_exited(cid)
    assert (state.exit_code, state.restart_count) == (1, 2)
    assert [x["log"] for x in env.log(cid)] == ["run\n"] * 3


def test_stop_prevents_restart(env: Env) -> None:
    cid = env.create(["sleep", "100"], restart="always")
    env.spawn(cid)
    env.wait_state(cid, lambda s: s.status is Status.RUNNING)
    env.store.update_state(cid, lambda s: msgspec.structs.replace(s, manually_stopped=True))
    env.runtime.kill(cid, "KILL")
    state = env.wait_exited(cid)
    assert (state.exit_code, state.restart_count) == (137, 0)


def _hc(cmd: str) -> HealthcheckConfig:
    return HealthcheckConfig(test=("CMD-SHELL", cmd), interval=100_000_000, retries=2)


def test_healthcheck_healthy(env: Env) -> None:
    cid = env.create(["sleep", "100"], healthcheck=_hc("echo ok"))
    env.spawn(cid)
    state = env.wait_state(
        cid, lambda s: s.health is not None and s.health.status is HealthStatus.HEALTHY
    )
    assert state.health is not None and state.health.log[-1].output == "ok\n"
    env.runtime.kill(cid, "KILL")
    env.wait_exited(cid)


def test_healthcheck_unhealthy(env: Env) -> None:
    cid = env.create(["sleep", "100"], healthcheck=_hc("exit 1"))
    env.spawn(cid)
    state = env.wait_state(
        cid, lambda s: s.health is not None and s.health.status is HealthStatus.UNHEALTHY
    )
    assert state.health is not None and state.health.failing_streak >= 2
    env.runtime.kill(cid, "KILL")
    env.wait_exited(cid)


def test_kill_9_of_monitor_then_reconcile(env: Env, tmp_path: Path) -> None:
    cid = env.create(["sleep", "100"])
    marker = tmp_path / "cleanup-ran"
    record_cleanup(env.store, cid, [Command(argv=("touch", str(marker)))])
    result = env.spawn(cid)
    env.wait_state(cid, lambda s: s.status is Status.RUNNING)
    os.kill(result.monitor_pid, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while monitor_alive(env.store, cid) and time.monotonic() < deadline:
        time.sleep(0.02)
    state = reconcile(env.store, env.runtime, cid)
    assert state.status is Status.EXITED and state.exit_code == 137
    assert marker.exists() and all(a.done for a in read_cleanup(env.store, cid))
    assert env.store.get(cid).id == cid  # the name is kept until rm


def test_cleanup_actions_and_auto_remove_run_on_exit(env: Env, tmp_path: Path) -> None:
    cid = env.create(["true"])
    marker = tmp_path / "done"
    record_cleanup(
        env.store,
        cid,
        [Command(argv=("touch", str(marker))), RemoveContainer()],
    )
    env.spawn(cid)
    deadline = time.monotonic() + 30
    while env.store.dir(cid).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists() and not env.store.dir(cid).exists()


def test_cleanup_file_of_the_previous_version_runs_on_exit(env: Env, tmp_path: Path) -> None:
    """A container started before an upgrade: its cleanup.json is in the old format."""
    cid = env.create(["true"])
    marker = tmp_path / "done"
    env.store.cleanup_path(cid).write_text(json.dumps([
        {"Kind": "argv", "Args": ["touch", str(marker)], "Done": False},
        {"Kind": "unmount", "Args": [str(tmp_path / "not-mounted")], "Done": False},
        {"Kind": "remove_container", "Args": [], "Done": False},
    ]))
    env.spawn(cid)
    deadline = time.monotonic() + 30
    while env.store.dir(cid).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists() and not env.store.dir(cid).exists()


def test_pty_through_attach_socket(env: Env) -> None:
    cid = env.create(["sh"], tty=True, stdin=True)
    env.spawn(cid, wait_for_attach=True)
    with proto.AttachSession(proto.connect(env.store.run_dir(cid)), tty=True,
                             stdin=True) as session:  # fmt: skip
        session.resize(40, 100)
        session.write(b"tty; stty size; exit 5\n")
        out = b"".join(data for _, data in session)
        code = session.wait()
    assert code == 5
    assert b"/dev/pts/0" in out
    assert b"40 100" in out


def test_stdin_pipe_through_attach_socket(env: Env) -> None:
    cid = env.create(["cat"], stdin=True)
    env.spawn(cid, wait_for_attach=True)
    with proto.AttachSession(proto.connect(env.store.run_dir(cid)), tty=False,
                             stdin=True) as session:  # fmt: skip
        assert not session.write(b"hello\n")
        session.close_stdin()  # the half-close reaches cat (StdinOnce)
        frames = list(session)
        code = session.wait()
    assert (code, frames) == (0, [(proto.STDOUT, b"hello\n")])
