"""Container service pieces that need no root: option parsing, image config merge, signals,
ps filters, security options, port specs, and the wait/stop logic against a fake runtime."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from cargohold.cli import runopts
from cargohold.config import Settings
from cargohold.container.model import (
    ContainerConfig,
    ContainerRecord,
    HostConfig,
    PortBinding,
    State,
    Status,
)
from cargohold.engine import Engine
from cargohold.engine.containers.create import merge_config
from cargohold.engine.containers.network import mode_of, port_specs
from cargohold.engine.containers.requests import ContainerCreateRequest, HealthcheckConfig
from cargohold.engine.containers.service import ContainerView, parse_signal, view_filter
from cargohold.engine.containers.start import security_options
from cargohold.errors import InvalidArgument
from cargohold.runtime.fake import FakeRuntime
from cargohold.util.ids import random_id


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    runopts.configure(p, run=True)
    return p.parse_args(list(argv))


def test_options_stop_at_the_image() -> None:
    ns = parse("-itd", "-P", "--name", "web1", "-h", "box", "centos:7", "bash", "-c", "ls -l")
    assert (ns.interactive, ns.tty, ns.detach, ns.publish_all) == (True, True, True, True)
    assert (ns.image, ns.command, ns.hostname) == ("centos:7", ["bash", "-c", "ls -l"], "box")
    opts = runopts.to_request(ns)
    assert ns.name == "web1" and opts.tty and opts.open_stdin
    assert opts.host_config.publish_all_ports


def test_options_validation() -> None:
    with pytest.raises(InvalidArgument, match="Conflicting options: --restart and --rm"):
        runopts.to_request(parse("--rm", "--restart", "always", "img"))
    with pytest.raises(InvalidArgument, match="invalid containerPort"):
        runopts.to_request(parse("-p", "80:x", "img"))
    with pytest.raises(InvalidArgument, match="time: invalid duration"):
        runopts.to_request(parse("--health-interval", "5x", "img"))
    opts = runopts.to_request(
        parse(
            "-m",
            "64m",
            "--cpus",
            "0.5",
            "--health-cmd",
            "true",
            "--health-interval",
            "1s",
            "-p",
            "127.0.0.1:8080:80/udp",
            "--entrypoint",
            "",
            "img",
        )
    )
    assert opts.host_config.memory == 64 << 20 and opts.host_config.nano_cpus == 500_000_000
    assert opts.healthcheck is not None and opts.healthcheck.interval == 10**9
    binding = opts.host_config.port_bindings["80/udp"][0]
    assert (binding.host_ip, binding.host_port) == ("127.0.0.1", "8080")
    assert opts.entrypoint == ("",)


def test_env_file_and_passthrough(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    f = tmp_path / "env"
    f.write_text("# c\nA=1\nB\n")
    monkeypatch.setenv("B", "from-host")
    monkeypatch.delenv("UNSET_X", raising=False)
    assert runopts.parse_env(["C=3", "UNSET_X"], [str(f)]) == ("A=1", "B=from-host", "C=3")


IMAGE = {
    "Env": ["PATH=/bin", "A=image"],
    "Cmd": ["sh"],
    "Entrypoint": None,
    "WorkingDir": "/srv",
    "ExposedPorts": {"80/tcp": {}},
    "Volumes": {"/data": {}},
    "StopSignal": "SIGQUIT",
    "Healthcheck": {"Test": ["CMD-SHELL", "true"], "Interval": 5_000_000_000},
}


def test_merge_config_cmd_entrypoint_env() -> None:
    run = ContainerCreateRequest(image="img", cmd=("echo", "x"), env=("A=run", "B=2"))
    cfg = merge_config(run, IMAGE, frozenset())
    assert cfg.cmd == ("echo", "x") and cfg.entrypoint is None
    assert cfg.env == ("PATH=/bin", "A=run", "B=2")
    assert (cfg.working_dir, cfg.stop_signal, cfg.image) == ("/srv", "SIGQUIT", "img")
    assert cfg.exposed_ports == {"80/tcp"} and cfg.volumes == {"/data"}
    assert cfg.healthcheck is not None and cfg.healthcheck.interval == 5_000_000_000
    assert type(cfg) is ContainerConfig  # the record keeps the Config part alone
    # --entrypoint resets CMD unless arguments are given
    cfg = merge_config(ContainerCreateRequest(image="img", entrypoint=("ls",)), IMAGE,
                       frozenset())
    assert (cfg.entrypoint, cfg.cmd) == (("ls",), None)
    none = ContainerCreateRequest(image="img", healthcheck=HealthcheckConfig(test=("NONE",)))
    cfg = merge_config(none, IMAGE, frozenset({"53/udp"}))
    assert cfg.healthcheck is not None and cfg.healthcheck.test == ("NONE",)
    assert cfg.exposed_ports == {"80/tcp", "53/udp"}


def test_signals_and_security_options() -> None:
    assert parse_signal("KILL") == parse_signal("SIGKILL") == parse_signal("9") == 9
    with pytest.raises(InvalidArgument):
        parse_signal("NOPE")
    nnp = security_options(("no-new-privileges",))
    assert (nnp.no_new_privileges, nnp.seccomp) == (True, "default")
    opts = security_options(("seccomp=unconfined", "no-new-privileges:false"))
    assert (opts.no_new_privileges, opts.seccomp) == (False, "unconfined")
    with pytest.raises(InvalidArgument):
        security_options(("bogus",))


def _view(
    name: str, status: Status, code: int = 0, labels: dict[str, str] | None = None
) -> ContainerView:
    rec = ContainerRecord(
        id=random_id(),
        name=name,
        image_id="sha256:" + "ab" * 32,
        config=ContainerConfig(image="centos:7", labels=labels or {}),
    )
    return ContainerView(rec, State(status=status, exit_code=code))


def test_ps_filters() -> None:
    a = _view("web1", Status.RUNNING, labels={"team": "x"})
    b = _view("web2", Status.EXITED, code=2)
    views = [a, b]

    def names(*filters: str) -> list[str]:
        match = view_filter(list(filters))
        return [v.record.name for v in views if match(v)]

    assert names("status=exited") == ["web2"]
    assert names("exited=2") == ["web2"]
    assert names("label=team=x") == ["web1"]
    assert names("name=web", "status=running") == ["web1"]
    assert names("status=running", "status=exited") == ["web1", "web2"]
    assert names("ancestor=centos:7") == ["web1", "web2"]
    assert names("ancestor=abab") == ["web1", "web2"]
    assert names(f"id={a.record.id[:6]}") == ["web1"]
    with pytest.raises(InvalidArgument):
        view_filter(["bogus=1"])


def test_port_specs_from_record() -> None:
    rec = ContainerRecord(
        id=random_id(),
        config=ContainerConfig(exposed_ports=frozenset({"80/tcp", "443/tcp"})),
        host_config=HostConfig(
            port_bindings={"80/tcp": (PortBinding("", "6666"),)},
            publish_all_ports=True,
            network_mode="default",
        ),
    )
    specs = port_specs(rec)
    assert [(s.container_port, s.host_port_start) for s in specs] == [(80, 6666), (443, 0)]
    assert mode_of(rec.host_config) == "bridge"


def test_stop_kill_and_wait_with_a_fake_runtime(tmp_path: Path) -> None:
    fake = FakeRuntime()
    engine = Engine(Settings(root=tmp_path / "root", runroot=tmp_path / "run"), runtime=fake)
    store = engine.container_store
    rec = store.add(ContainerRecord(id=random_id(), name="c1"))
    svc = engine.containers
    # a container marked running whose monitor is gone is reconciled to exited
    store.update_state(rec.id, lambda s: State(status=Status.RUNNING, pid=0, started_at=1))
    view = svc.get("c1")
    assert view.state.status is Status.EXITED and view.state.exit_code == 255
    assert svc.wait("c1") == 255
    from cargohold.errors import Conflict

    with pytest.raises(Conflict, match="is not running"):
        svc.kill("c1")
    svc.stop("c1")  # stopping a stopped container is a no-op
    results = svc.remove(["c1", "nosuch"])
    assert results[0] == ("c1", None)
    assert results[1][1] is not None and "No such container: nosuch" in results[1][1].message
