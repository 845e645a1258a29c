"""The engine's container surface driven the way an Engine API handler will: request structs
decoded from Docker-shaped JSON, sessions over explicit streams, Docker's errors for bad
requests and nothing left behind.  No root: vfs, and the fake runtime that runs a container's
process as a plain host process (runtime/fake.py ProcessRuntime) under a real monitor."""

from __future__ import annotations

import io
import json
import os
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cargohold.config import Settings
from cargohold.engine import Engine
from cargohold.engine.containers.requests import (
    ContainerCreateRequest,
    EndpointSettings,
    ExecCreateRequest,
    ExecStartRequest,
    decode_request,
)
from cargohold.engine.containers.run import RunResult
from cargohold.engine.containers.sessions import AttachSession
from cargohold.engine.networks import NetworkCreateRequest
from cargohold.engine.volumes import VolumeCreateRequest
from cargohold.errors import CargoholdError, CommandNotFound, Conflict, InvalidArgument
from cargohold.runtime.fake import ProcessRuntime

SH = "/bin/sh"


def _image_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("etc/motd")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"hi\n"))
    return buf.getvalue()


class World:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.runtime = ProcessRuntime(tmp / "run" / "process")
        self.engine = Engine(Settings(root=tmp / "root", runroot=tmp / "run",
                                      storage_driver="vfs"), runtime=self.runtime)
        src = tmp / "img.tar"
        src.write_bytes(_image_tar())
        self.engine.images.import_tarball(str(src), "img:1", ['CMD ["/bin/sh"]'], "imported")

    def request(self, body: dict[str, Any]) -> ContainerCreateRequest:
        """A create body as the docker CLI sends it (nulls for what it leaves unset)."""
        base: dict[str, Any] = {
            "Hostname": "", "Domainname": "", "User": "", "AttachStdin": False,
            "AttachStdout": True, "AttachStderr": True, "Tty": False, "OpenStdin": False,
            "StdinOnce": False, "Env": None, "Cmd": None, "Image": "img:1", "Volumes": None,
            "WorkingDir": "", "Entrypoint": None, "OnBuild": None, "Labels": {},
            "HostConfig": {"Binds": None, "NetworkMode": "none", "PortBindings": {},
                           "RestartPolicy": {"Name": "no", "MaximumRetryCount": 0},
                           "AutoRemove": False, "LogConfig": {"Type": "", "Config": {}},
                           "ConsoleSize": [0, 0], "CapAdd": None, "Dns": [],
                           "Mounts": None},
            "NetworkingConfig": {"EndpointsConfig": {}},
        }  # fmt: skip
        host = {**base["HostConfig"], **body.pop("HostConfig", {})}
        return decode_request(json.dumps({**base, **body, "HostConfig": host}),
                              ContainerCreateRequest)

    def nothing_left(self) -> bool:
        rw = self.engine.settings.root / "containers-rw"
        return (
            self.engine.container_store.list() == []
            and not (rw.exists() and any(rw.iterdir()))
            and self.runtime.list_all() == []
        )


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    yield w
    for record in w.engine.container_store.list():  # a failed test stops what it started
        w.engine.containers.remove([record.id], force=True)


def attached(result: RunResult) -> AttachSession:
    assert result.session is not None
    return result.session


def collect(session: Any) -> tuple[bytes, bytes]:
    out = {1: b"", 2: b""}
    for kind, data in session:
        out[kind] += data
    return out[1], out[2]


def test_create_attach_start_wait_rm_from_docker_json(world: World) -> None:
    req = world.request({"Cmd": [SH, "-c", "echo out; echo err >&2; exit 3"],
                         "Env": ["A=1"], "Labels": {"l": "v"}})
    assert req.host_config.log_config.type == "" and req.env == ("A=1",)
    with attached(world.engine.containers.run(req, name="web", pull="never")) as session:
        assert collect(session) == (b"out\n", b"err\n")
        assert session.wait() == 3
    view = world.engine.containers.get("web")
    assert (view.state.status.value, view.state.exit_code) == ("exited", 3)
    inspect = world.engine.containers.inspect("web")
    assert inspect["HostConfig"]["LogConfig"]["Type"] == "json-file"  # what compose reads
    assert inspect["Config"]["Labels"] == {"l": "v"}
    entries = list(world.engine.container_ops.log_entries("web", _log_options()))
    assert [(e.stream, e.data) for e in entries] == [("stdout", b"out\n"), ("stderr", b"err\n")]
    assert world.engine.containers.wait("web", "not-running") == 3
    assert world.engine.containers.remove(["web"]) == [("web", None)]
    assert world.nothing_left()


def _log_options() -> Any:
    from cargohold.engine.containers.ops import LogOptions

    return LogOptions()


def test_stdin_half_close_and_a_tty_session(world: World) -> None:
    cat = world.request({"Cmd": ["cat"], "OpenStdin": True, "StdinOnce": True,
                         "AttachStdin": True, "HostConfig": {"AutoRemove": True}})
    with attached(world.engine.containers.run(cat, pull="never")) as session:
        assert not session.write(b"hello\n")
        session.close_stdin()  # EOF reaches cat, which exits
        assert collect(session) == (b"hello\n", b"")
        assert session.wait() == 0
    tty = world.request({"Cmd": [SH, "-c", "stty size; read x; echo got $x"], "Tty": True,
                         "OpenStdin": True, "StdinOnce": True, "AttachStdin": True,
                         "AttachStderr": False,
                         "HostConfig": {"AutoRemove": True, "ConsoleSize": [33, 111]}})
    with attached(world.engine.containers.run(tty, pull="never")) as session:
        first = session.receive()
        while not first:
            first = session.receive()
        assert first[0] == (1, b"33 111\r\n")  # ConsoleSize applies from the start
        session.write(b"hi\r")
        rest, _ = collect(session)
        assert b"got hi" in rest
        assert session.wait() == 0
    _wait_gone(world)


def _wait_gone(world: World) -> None:
    deadline = time.monotonic() + 10  # --rm: the monitor removes the container after EXIT
    while not world.nothing_left() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert world.nothing_left()


def test_detach_keys_end_a_tty_session_and_the_container_runs_on(world: World) -> None:
    req = world.request({"Cmd": ["cat"], "Tty": True, "OpenStdin": True, "AttachStdin": True})
    with attached(world.engine.containers.run(req, name="c0", pull="never",
                                              detach_keys="ctrl-x")) as session:
        assert session.write(b"ab\x18") is True
        assert session.wait() is None
    deadline = time.monotonic() + 10  # the monitor launches it once the session connected
    while not world.engine.containers.get("c0").state.running:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    with world.engine.container_ops.attach("c0", stdin=True, detach_keys="a,b") as again:
        assert again.tty and again.stdin
        assert again.write(b"xab") is True
    world.engine.containers.kill("c0", "KILL")
    assert world.engine.containers.wait("c0") == 137
    world.engine.containers.remove(["c0"])
    assert world.nothing_left()


def test_exec_create_start_inspect_from_docker_json(world: World) -> None:
    world.engine.containers.create(world.request({"Cmd": ["sleep", "30"]}), name="s1",
                                   pull="never")  # fmt: skip
    world.engine.containers.start("s1")
    ops = world.engine.container_ops
    body = {"Cmd": [SH, "-c", "echo xo; echo xe >&2; exit 5"], "AttachStdout": True,
            "AttachStderr": True, "Env": None, "Tty": False, "DetachKeys": ""}
    exec_id = ops.exec_create("s1", decode_request(json.dumps(body), ExecCreateRequest))
    assert ops.exec_inspect(exec_id).to_docker()["Running"] is False
    start = decode_request(b'{"Detach":false,"Tty":false}', ExecStartRequest)
    with ops.exec_start(exec_id, start) as session:
        assert collect(session) == (b"xo\n", b"xe\n")
        assert session.wait() == 5
    shown = ops.exec_inspect(exec_id).to_docker()
    assert (shown["Running"], shown["ExitCode"], shown["ProcessConfig"]["entrypoint"]) == (
        False, 5, SH)
    tty_id = ops.exec_create("s1", ExecCreateRequest(cmd=(SH, "-c", "stty size"), tty=True,
                                                    attach_stdout=True))  # fmt: skip
    with ops.exec_start(tty_id, ExecStartRequest(tty=True, console_size=(30, 100))) as session:
        assert collect(session)[0] == b"30 100\r\n"
        assert session.wait() == 0
    missing = ops.exec_create("s1", ExecCreateRequest(cmd=("no-such-command",)))
    with pytest.raises(CargoholdError) as err, ops.exec_start(missing) as session:
        session.wait()
    assert err.value.exit_code == 127
    with pytest.raises(InvalidArgument, match="No exec command specified"):
        ops.exec_create("s1", ExecCreateRequest())
    world.engine.containers.stop("s1", timeout=1)
    with pytest.raises(Conflict, match="is not running"):
        ops.exec_create("s1", ExecCreateRequest(cmd=("true",)))
    world.engine.containers.remove(["s1"])
    assert world.nothing_left()


def test_launch_error_reaches_the_session(world: World) -> None:
    req = world.request({"Cmd": ["no-such-command"], "HostConfig": {"AutoRemove": True}})
    with pytest.raises(CommandNotFound) as err, \
            attached(world.engine.containers.run(req, pull="never")) as session:
        session.wait()
    assert err.value.exit_code == 127 and "executable file not found" in err.value.message
    _wait_gone(world)


BAD_REQUESTS = [
    pytest.param({"HostConfig": {"PortBindings": {"80/tcp": [{"HostPort": "99999"}]}},
                  "ExposedPorts": {"80/tcp": {}}}, "Invalid hostPort: 99999", id="host-port"),
    pytest.param({"HostConfig": {"PortBindings": {"x/tcp": [{"HostPort": "80"}]}}},
                 "invalid containerPort: x", id="container-port"),
    pytest.param({"ExposedPorts": {"80/bogus": {}}}, "invalid proto: bogus", id="exposed"),
    pytest.param({"HostConfig": {"PortBindings": {"80/tcp": [{"HostIp": "1.2.3"}]}}},
                 "invalid IP address: 1.2.3", id="host-ip"),
    pytest.param({"HostConfig": {"RestartPolicy": {"Name": "sometimes"}}},
                 "invalid restart policy: sometimes", id="restart"),
    pytest.param({"HostConfig": {"RestartPolicy": {"Name": "always", "MaximumRetryCount": 3}}},
                 "maximum retry count can only be used with 'on-failure'", id="retries"),
    pytest.param({"HostConfig": {"AutoRemove": True, "RestartPolicy": {"Name": "always"}}},
                 "can't create 'AutoRemove' container with restart policy", id="rm-restart"),
    pytest.param({"StopSignal": "SIGFOO"}, "Invalid signal: SIGFOO", id="signal"),
    pytest.param({"HostConfig": {"Memory": 1024}}, "Minimum memory limit allowed is 6MB",
                 id="memory"),
    pytest.param({"HostConfig": {"Memory": 64 << 20, "MemorySwap": 32 << 20}},
                 "Minimum memoryswap limit should be larger than memory limit", id="swap"),
    pytest.param({"HostConfig": {"NanoCpus": 10**15}}, "Range of CPUs is from 0.01",
                 id="cpus"),
    pytest.param({"HostConfig": {"Memory": "lots"}},
                 "invalid JSON: HostConfig.Memory: expected integer, got string", id="type"),
    pytest.param({"Env": [1]}, "invalid JSON: Env[0]: expected string, got integer",
                 id="env-type"),
    pytest.param({"Env": ["=x"]}, "invalid environment variable: =x", id="env"),
    pytest.param({"WorkingDir": "rel"}, "needs to be an absolute path", id="workdir"),
    pytest.param({"Healthcheck": {"Test": ["CMD", "true"], "Interval": 10}},
                 "Interval in Healthcheck cannot be less than 1ms", id="health"),
    pytest.param({"HostConfig": {"Binds": ["/tmp:relative"]}}, "must be absolute", id="bind"),
    pytest.param({"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/nonexistent-ha",
                                             "Target": "/x"}]}},
                 "bind source path does not exist: /nonexistent-ha", id="mount"),
    pytest.param({"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/tmp", "Target": "/x",
                                             "VolumeOptions": {"NoCopy": True}}]}},
                 'invalid mount config for type "bind": field VolumeOptions must not be '
                 "specified", id="mount-options"),
    pytest.param({"HostConfig": {"Tmpfs": {"/run": "bogus"}}}, "invalid tmpfs option",
                 id="tmpfs"),
    pytest.param({"HostConfig": {"CapAdd": ["CAP_FOO"]}}, 'unknown capability: "CAP_FOO"',
                 id="capability"),
    pytest.param({"HostConfig": {"SecurityOpt": ["bogus"]}}, "Invalid --security-opt",
                 id="security-opt"),
    pytest.param({"HostConfig": {"Runtime": "nosuch"}}, "unknown or invalid runtime name",
                 id="runtime"),
    pytest.param({"HostConfig": {"Dns": ["1.1.1.1\nnameserver 6.6.6.6"]}},
                 "IP address is not correctly formatted", id="dns"),
    pytest.param({"HostConfig": {"NetworkMode": "bridge"},
                  "NetworkingConfig": {"EndpointsConfig": {"bridge": {"Aliases": ["a"]}}}},
                 "network-scoped alias is supported only", id="alias"),
    pytest.param({"HostConfig": {"NetworkMode": "front"}, "NetworkingConfig": {
        "EndpointsConfig": {"front": {"IPAMConfig": {"IPv4Address": "10.1.2"}}}}},
                 "invalid IPv4 address: 10.1.2", id="ip"),
    pytest.param({"HostConfig": {"LogConfig": {"Type": "syslog"}}}, "logging driver",
                 id="log-driver"),
]


@pytest.mark.parametrize(("body", "message"), BAD_REQUESTS)
def test_bad_requests_get_dockers_errors_and_leave_nothing(
    world: World, body: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidArgument) as err:
        world.engine.containers.create(world.request({"Cmd": ["true"], **body}), pull="never")
    assert message in err.value.message and err.value.http_status == 400
    with pytest.raises(InvalidArgument):  # run checks it the same way, and forks nothing
        world.engine.containers.run(world.request({"Cmd": ["true"], **body}), pull="never")
    assert world.nothing_left()


def test_bad_names_and_call_arguments(world: World) -> None:
    req = world.request({"Cmd": ["true"]})
    with pytest.raises(InvalidArgument, match=r"Invalid container name \(bad name\)"):
        world.engine.containers.create(req, name="bad name")
    with pytest.raises(InvalidArgument, match="invalid pull option: 'sometimes'"):
        world.engine.containers.create(req, pull="sometimes")
    with pytest.raises(InvalidArgument, match="Invalid detach keys"):
        world.engine.containers.run(req, pull="never", detach_keys="ctrl-")
    assert world.nothing_left()
    world.engine.containers.create(req, name="c1", pull="never")
    with pytest.raises(Conflict, match='The container name "/c1" is already in use'):
        world.engine.containers.create(req, name="c1", pull="never")
    with pytest.raises(InvalidArgument, match="Invalid signal: NOPE"):
        world.engine.containers.kill("c1", "NOPE")
    with pytest.raises(InvalidArgument, match="Invalid signal: NOPE"):
        world.engine.containers.stop("c1", signal="NOPE")
    with pytest.raises(InvalidArgument, match='invalid condition: "sometime"'):
        world.engine.containers.wait("c1", "sometime")
    world.engine.containers.remove(["c1"])
    assert world.nothing_left()


def test_wait_next_exit_and_removed(world: World) -> None:
    import threading

    containers = world.engine.containers
    containers.create(world.request({"Cmd": [SH, "-c", "exit 7"],
                                     "HostConfig": {"AutoRemove": True}}),
                      name="w1", pull="never")  # fmt: skip
    codes: dict[str, int] = {}

    def waiter(condition: str) -> None:
        codes[condition] = containers.wait("w1", condition)

    threads = [threading.Thread(target=waiter, args=(c,)) for c in ("next-exit", "removed")]
    for t in threads:
        t.start()
    time.sleep(0.2)  # both wait on the created container (docker run's order)
    containers.start("w1")
    for t in threads:
        t.join(20)
    assert codes == {"next-exit": 7, "removed": 7}
    _wait_gone(world)


def test_network_and_volume_requests_from_docker_json(world: World) -> None:
    net = world.engine.networks.create(decode_request(
        '{"Name":"front","Driver":"bridge","IPAM":{"Driver":"default","Config":['
        '{"Subnet":"10.231.0.0/24","Gateway":"10.231.0.1"}]},"Internal":false,'
        '"Attachable":true,"CheckDuplicate":true,"Labels":{"a":"b"},"Options":null}',
        NetworkCreateRequest))
    assert (net.subnet, net.gateway, net.labels) == ("10.231.0.0/24", "10.231.0.1", {"a": "b"})
    for body, message in [
        ('{"Name":"n2","IPAM":{"Config":[{"Subnet":"10.232.0.0/24","IPRange":"10.232.0.0/25"}]}}',
         "--ip-range is not supported"),
        ('{"Name":"n3","EnableIPv6":true}', "IPv6 networks are not supported"),
        ('{"Name":"n4","IPAM":{"Config":[{"Gateway":"10.1.0.1"}]}}',
         "every ip-range or gateway must have a corresponding subnet"),
    ]:
        with pytest.raises(InvalidArgument, match=message):
            world.engine.networks.create(decode_request(body, NetworkCreateRequest))
    world.engine.containers.create(world.request({"Cmd": ["true"], "HostConfig": {
        "NetworkMode": "default"}}), name="c0", pull="never")
    connect = decode_request('{"Aliases":["api"],"IPAMConfig":{"IPv4Address":"10.231.0.9"}}',
                             EndpointSettings)
    world.engine.networks.connect("front", "c0", connect)
    ep = world.engine.container_store.get("c0").networks["front"]
    assert (ep.aliases, ep.ipv4_address) == (("api",), "10.231.0.9")
    with pytest.raises(InvalidArgument, match='invalid network alias "a\\\\nb"'):
        world.engine.networks.connect("front", "c0", EndpointSettings(aliases=("a\nb",)))
    vol = world.engine.volumes.create(decode_request(
        '{"Name":"data","Driver":"local","DriverOpts":{},"Labels":{"x":"y"}}',
        VolumeCreateRequest))
    assert vol.name == "data" and dict(vol.labels) == {"x": "y"}
    with pytest.raises(CargoholdError, match="includes invalid characters"):
        world.engine.volumes.create(VolumeCreateRequest(name="bad\n"))
    world.engine.containers.remove(["c0"])
    assert world.nothing_left()


def test_a_flow_with_stdio_closed_or_redirected_never_touches_fds_0_to_2(world: World) -> None:
    """The engine reads no stdin and writes no stdout/stderr of its own: with fds 0-2 on a
    file, a run with output, an exec and a removal leave that file empty."""
    sink = world.tmp / "stdio"
    saved = [os.dup(fd) for fd in (0, 1, 2)]
    fd = os.open(sink, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        for target in (0, 1, 2):
            os.dup2(fd, target)
        req = world.request({"Cmd": [SH, "-c", "echo out; echo err >&2; exec sleep 30"],
                             "OpenStdin": True, "AttachStdin": True})
        result = world.engine.containers.run(req, name="quiet", pull="never")
        session = result.session
        assert session is not None
        got: list[tuple[int, bytes]] = []
        while len(got) < 2:
            got += session.receive()
        ops = world.engine.container_ops
        exec_id = ops.exec_create("quiet", ExecCreateRequest(cmd=(SH, "-c", "echo e1"),
                                                             attach_stdout=True))
        with ops.exec_start(exec_id) as ex:
            exec_out = collect(ex)
            ex.wait()
        world.engine.containers.remove(["quiet"], force=True)
        session.close()
    finally:
        for target, old in zip((0, 1, 2), saved, strict=True):
            os.dup2(old, target)
            os.close(old)
        os.close(fd)
    assert sorted(got) == [(1, b"out\n"), (2, b"err\n")]
    assert exec_out == (b"e1\n", b"")
    assert sink.read_bytes() == b""
    assert world.nothing_left()
