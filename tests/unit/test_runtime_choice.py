"""Choosing the OCI runtime (global --runtime, CARGOHOLD_RUNTIME, the configuration file's
[engine] and [runtimes]), recording it per container, and what ``version`` shows; plus the
create-time checks of --security-opt (no root: vfs, fake runtime, temporary directories)."""

from __future__ import annotations

import argparse
import io
import tarfile
from pathlib import Path

import pytest

from cargohold.cli.context import Context
from cargohold.cli.main import main
from cargohold.config import Settings
from cargohold.container import apparmor
from cargohold.container.model import ContainerRecord, HostConfig
from cargohold.engine import Engine
from cargohold.engine.containers.requests import ContainerCreateRequest
from cargohold.errors import InvalidArgument
from cargohold.runtime.choice import describe, record_name, resolve, runtime_binary
from cargohold.runtime.fake import FakeRuntime
from cargohold.runtime.runc import Runc


def fake_runtime(path: Path, lines: str = "runc version 9.9.9\ncommit: v9.9.9-0-gabc\n"
                 "spec: 1.2.1\ngo: go1.24\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\nprintf '{lines}'\n")
    path.chmod(0o755)
    return path


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("CARGOHOLD_CONFIG", "CARGOHOLD_RUNTIME", "CARGOHOLD_ROOT", "CARGOHOLD_RUNROOT",
                "CARGOHOLD_STORAGE_DRIVER", "CARGOHOLD_NETWORK_SUBNET",
                "CARGOHOLD_NETWORK_BRIDGE"):
        monkeypatch.delenv(var, raising=False)


# -- resolving a name ----------------------------------------------------------------------


def test_resolve_names_paths_and_the_builtin(tmp_path: Path) -> None:
    binary = fake_runtime(tmp_path / "bin/runc-new")
    assert resolve("new", {"new": str(binary)}) == str(binary)
    assert resolve(str(binary), {}) == str(binary)
    assert runtime_binary("new", {"new": "/x"}) == "/x" and runtime_binary("", {}) == "runc"
    with pytest.raises(InvalidArgument, match=r"^unknown or invalid runtime name: crun$"):
        resolve("crun", {})
    with pytest.raises(InvalidArgument, match='OCI runtime "/nope/runc": /nope/runc: no such'):
        resolve("/nope/runc", {})
    with pytest.raises(InvalidArgument, match="executable file not found in"):
        resolve("gone", {"gone": "no-such-runtime-binary"})
    plain = tmp_path / "plain"
    plain.write_text("")
    with pytest.raises(InvalidArgument, match="permission denied"):
        resolve(str(plain), {})
    assert record_name("./x/runc").startswith("/") and record_name("") == "runc"


def test_describe_shows_path_and_first_version_lines(tmp_path: Path) -> None:
    binary = fake_runtime(tmp_path / "runc")
    info = describe(str(binary), {})
    assert info.path == str(binary) and info.error == ""
    assert info.version == ("runc version 9.9.9", "commit: v9.9.9-0-gabc", "spec: 1.2.1")
    assert "unknown or invalid runtime name" in describe("nosuch", {}).error


def test_version_prints_the_runtimes_path_and_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    binary = fake_runtime(tmp_path / "opt/runc")
    assert main(["--root", str(tmp_path / "root"), "--runtime", str(binary), "version"]) == 0
    out = capsys.readouterr().out
    assert f" Runtime:       {binary}\n  Path:         {binary}\n" in out
    assert "  Version:      runc version 9.9.9\n                commit: v9.9.9-0-gabc\n" in out
    assert "go: go1.24" not in out
    assert main(["--runtime", "nosuch", "version"]) == 0
    assert "Error:        unknown or invalid runtime name: nosuch" in capsys.readouterr().out


# -- the configuration file and precedence --------------------------------------------------


def context(tmp_path: Path, runtime: str | None = None) -> Context:
    opts = argparse.Namespace(root=str(tmp_path / "root"), runroot=str(tmp_path / "run"),
                              runtime=runtime, storage_driver=None, debug=False)
    return Context.from_options(opts)


def test_config_file_names_runtimes_and_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "registries.toml"
    conf.write_text('[engine]\nruntime = "new"\n[runtimes.new]\npath = "/opt/runc/runc"\n'
                    '[runtimes.crun]\npath = "crun"\n')
    monkeypatch.setenv("CARGOHOLD_CONFIG", str(conf))
    s = context(tmp_path).settings
    assert s.runtime == "new" and s.runtimes == {"new": "/opt/runc/runc", "crun": "crun"}
    assert Runc.from_settings(s).binary == "/opt/runc/runc"
    assert context(tmp_path, runtime="crun").settings.runtime == "crun"  # the flag wins
    monkeypatch.setenv("CARGOHOLD_RUNTIME", "/usr/local/bin/runc")
    assert context(tmp_path).settings.runtime == "/usr/local/bin/runc"  # then the variable


@pytest.mark.parametrize("text, message", [
    ('[runtimes.runc]\npath = "/x"\n', "runtime name 'runc' is reserved"),
    ('[runtimes.a]\npath = "bin/runc"\n', "must be absolute or a command name"),
    ("[runtimes.a]\n", "runtimes.a.path must be a non-empty string"),
    ('[engine]\nruntime = 3\n', "engine.runtime must be a string"),
    ('runtimes = "x"\n', "[engine] and [runtimes] must be tables"),
])
def test_config_file_runtime_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    text: str, message: str) -> None:
    conf = tmp_path / "c.toml"
    conf.write_text(text)
    monkeypatch.setenv("CARGOHOLD_CONFIG", str(conf))
    with pytest.raises(InvalidArgument, match=f"invalid configuration file {conf}: .*"
                       + message.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        context(tmp_path)


# -- a container keeps its runtime ----------------------------------------------------------


def _image_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = b"root:x:0:0:root:/root:/bin/sh\n"
        info = tarfile.TarInfo("etc/passwd")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def engine_with_image(tmp_path: Path, **settings: object) -> Engine:
    engine = Engine(Settings(root=tmp_path / "root", runroot=tmp_path / "run",
                             storage_driver="vfs", **settings),  # type: ignore[arg-type]
                    runtime=FakeRuntime())
    src = tmp_path / "base.tar"
    src.write_bytes(_image_tar())
    engine.images.import_tarball(str(src), "base:1", ['CMD ["sh"]'], "imported")
    return engine


def nothing_made(engine: Engine) -> bool:
    rw = engine.settings.root / "containers-rw"
    return engine.container_store.list() == [] and not (rw.exists() and any(rw.iterdir()))


def test_create_records_the_runtime_and_later_commands_use_it(tmp_path: Path) -> None:
    binary = fake_runtime(tmp_path / "opt/runc-new")
    engine = engine_with_image(tmp_path, runtimes={"new": str(binary)})
    none = HostConfig(network_mode="none")
    default = engine.containers.create(ContainerCreateRequest(image="base:1", host_config=none))
    named = engine.containers.create(
        ContainerCreateRequest(image="base:1",
                               host_config=HostConfig(network_mode="none", runtime="new")))
    path = engine.containers.create(
        ContainerCreateRequest(image="base:1", host_config=HostConfig(network_mode="none",
                                                       runtime=str(binary))))
    assert default.host_config.runtime == "runc" and named.host_config.runtime == "new"
    assert path.host_config.runtime == str(binary)
    assert engine.runtime_for(default) is engine.runtime
    other = engine.runtime_for(named)
    assert isinstance(other, Runc) and other.binary == str(binary)
    assert engine.runtime_for(named) is other
    assert isinstance(engine.runtime_for(path), Runc)
    # a command whose own default is that binary drives the runc-made container with runc
    later = Engine(Settings(root=tmp_path / "root", runroot=tmp_path / "run",
                            runtime=str(binary)))
    rec = later.container_store.get(default.id)
    assert isinstance(later.runtime_for(rec), Runc) and later.runtime_for(rec).binary == "runc"


@pytest.mark.parametrize("host, message", [
    (HostConfig(network_mode="none", runtime="nosuch"), "unknown or invalid runtime name"),
    (HostConfig(network_mode="none", runtime="/nonexistent/runc"), "no such file"),
    (HostConfig(network_mode="none", security_opt=("label=bogus",)), "bad label option"),
    (HostConfig(network_mode="none", security_opt=("apparmor=",)), "Invalid --security-opt"),
])
def test_create_refuses_bad_host_options_and_leaves_nothing(
    tmp_path: Path, host: HostConfig, message: str
) -> None:
    engine = engine_with_image(tmp_path)
    with pytest.raises(InvalidArgument, match=message):
        engine.containers.create(ContainerCreateRequest(image="base:1", host_config=host))
    assert nothing_made(engine)


def test_global_runtime_that_is_missing_refuses_create(tmp_path: Path) -> None:
    engine = engine_with_image(tmp_path, runtime=str(tmp_path / "missing-runc"))
    with pytest.raises(InvalidArgument, match="missing-runc: no such file"):
        engine.containers.create(ContainerCreateRequest(image="base:1", host_config=HostConfig(
            network_mode="none")))
    assert nothing_made(engine)


def _host(tmp_path: Path, enabled: bool, loaded: str = "") -> apparmor.Host:
    tmp_path.mkdir(parents=True, exist_ok=True)
    sec = tmp_path / "sec"
    if enabled:
        sec.mkdir()
        (sec / "profiles").write_text(f"{loaded} (enforce)\n" if loaded else "")
    (tmp_path / "enabled").write_text("Y\n")
    return apparmor.Host(security_dir=sec, enabled_file=tmp_path / "enabled",
                         config_dir=tmp_path / "none", parser="/nonexistent/apparmor_parser")


def test_apparmor_request_warns_where_disabled_and_must_be_loaded_where_enabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = engine_with_image(tmp_path)
    asks = HostConfig(network_mode="none", security_opt=("apparmor=my-prof",))
    monkeypatch.setattr(apparmor, "HOST", _host(tmp_path / "off", enabled=False))
    rec = engine.containers.create(ContainerCreateRequest(image="base:1", host_config=asks))
    assert engine.containers.create_warnings(rec) == [
        "AppArmor is not enabled on this host: --security-opt apparmor=my-prof has no effect"]
    plain = engine.containers.create(ContainerCreateRequest(image="base:1", host_config=HostConfig(
        network_mode="none")))
    assert engine.containers.create_warnings(plain) == []
    engine.containers.remove([rec.id])
    monkeypatch.setattr(apparmor, "HOST", _host(tmp_path / "on", enabled=True))
    before = engine.container_store.list()
    with pytest.raises(InvalidArgument, match="AppArmor profile 'my-prof' is not loaded"):
        engine.containers.create(ContainerCreateRequest(image="base:1", host_config=asks))
    assert engine.container_store.list() == before
    monkeypatch.setattr(apparmor, "HOST", _host(tmp_path / "on2", enabled=True, loaded="my-prof"))
    rec = engine.containers.create(ContainerCreateRequest(image="base:1", host_config=asks))
    assert engine.containers.create_warnings(rec) == []
    assert engine.containers.inspect(rec.id)["AppArmorProfile"] == "my-prof"
    assert engine.containers.inspect(plain.id)["AppArmorProfile"] == "cargohold-default"
    monkeypatch.setattr(apparmor, "HOST", _host(tmp_path / "off2", enabled=False))
    assert engine.containers.inspect(rec.id)["AppArmorProfile"] == ""


def test_build_spec_applies_the_profile_on_an_apparmor_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cargohold.engine.containers.network import NetSetup
    from cargohold.engine.containers.start import build_spec

    (tmp_path / "rootfs/etc").mkdir(parents=True)
    (tmp_path / "rootfs/etc/passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    net = NetSetup(namespace="new", mounts=[], env=[])

    def profile(*security_opt: str, privileged: bool = False) -> object:
        rec = ContainerRecord(id="c" * 64, path="sh", host_config=HostConfig(
            security_opt=security_opt, privileged=privileged))
        return build_spec(rec, tmp_path / "rootfs", net)["process"].get("apparmorProfile")

    monkeypatch.setattr(apparmor, "HOST", _host(tmp_path / "on", True, "cargohold-default"))
    assert profile() == "cargohold-default"
    assert profile(privileged=True) == "unconfined"
    assert profile("apparmor=unconfined") == "unconfined"
    monkeypatch.setattr(apparmor, "HOST", _host(tmp_path / "off", enabled=False))
    assert profile() is None and profile("apparmor=x") is None
