"""Request-scoped image calls: pull, push, load, import and build through the engine with no
terminal, each reporting Docker's JSON messages (or the build's events) to its own sink, in
order, ending with the result or the error; nothing reads this process's stdin or writes to
its stdout/stderr (fds 0-2 are files checked afterwards, ``sys.std*`` fail when touched)."""

from __future__ import annotations

import base64
import io
import os
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from registry_fake import FakeRegistry, digest_of, make_image

from cargohold.builder import events as E
from cargohold.config import Settings
from cargohold.engine import Engine
from cargohold.engine.builds import BuildResult
from cargohold.engine.images.requests import (
    AuthConfig,
    BuildRequest,
    ImportRequest,
    LoadRequest,
    PullRequest,
    PushRequest,
    SaveRequest,
)
from cargohold.engine.messages import JSONMessage
from cargohold.errors import CargoholdError, InvalidArgument, NotFound
from cargohold.runtime.fake import FakeRuntime
from cargohold.transport.registry.client import ClientOptions

OPTS = ClientOptions(retries=1, backoff=0.01, read_timeout=5.0, connect_timeout=2.0,
                     stall_timeout=2.0, min_speed=1000)
X = make_image([{"etc/one": b"1" * 5000}, {"etc/two": os.urandom(200_000)}])
Y = make_image([{"etc/why": os.urandom(150_000)}])


class Untouchable:
    """Stands in for ``sys.stdin``/``stdout``/``stderr``: any use fails the test."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attr: str) -> Any:
        raise AssertionError(f"sys.{self._name}.{attr} used inside the engine")


@pytest.fixture
def no_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """fds 0-2 are plain files (stdin full of bytes) and ``sys.std*`` refuse to be used; after
    the test fd 0 was not read from and fds 1 and 2 got nothing."""
    names = ("stdin", "stdout", "stderr")
    files = [tmp_path / f"fd{i}" for i in range(3)]
    files[0].write_bytes(b"this is not for the engine\n" * 1000)
    saved = [os.dup(fd) for fd in (0, 1, 2)]
    for fd, path in enumerate(files):
        opened = os.open(path, os.O_RDONLY if fd == 0 else os.O_WRONLY | os.O_CREAT, 0o600)
        os.dup2(opened, fd)
        os.close(opened)
    for name in names:
        monkeypatch.setattr(sys, name, Untouchable(name))
    try:
        yield
    finally:
        read = os.lseek(0, 0, os.SEEK_CUR)
        for fd, old in enumerate(saved):
            os.dup2(old, fd)
            os.close(old)
        for name in names:
            monkeypatch.setattr(sys, name, getattr(sys, f"__{name}__"))
    assert read == 0, "the engine read from fd 0"
    assert files[1].read_bytes() == b"" and files[2].read_bytes() == b""


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    reg = FakeRegistry().start()
    try:
        reg.add_image("x", "1", X)
        reg.add_image("y", "1", Y)
        yield reg
    finally:
        reg.close()


def new_engine(path: Path) -> Engine:
    eng = Engine(Settings(root=path / "root", runroot=path / "run", storage_driver="vfs"))
    eng.registry.options = OPTS
    conf = path / "registries.toml"
    conf.write_text("")
    eng.settings.extra["config_file"] = str(conf)
    return eng


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return new_engine(tmp_path / "a")


def wire(events: list[Any]) -> list[bytes]:
    return [msgspec.json.encode(e) for e in events]


def layer_statuses(events: list[JSONMessage], sid: str) -> list[str]:
    """A layer's statuses, repeated byte counts folded into one."""
    out: list[str] = []
    for e in events:
        if e.id == sid and e.progress_detail is not None and (not out or out[-1] != e.status):
            out.append(e.status)
    return out


def rootfs_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


# ---- pull ----------------------------------------------------------------------------------

def test_pull_reports_dockers_messages_in_order(engine: Engine, fake: FakeRegistry,
                                                no_terminal: None) -> None:
    name = f"127.0.0.1:{fake.port}/x:1"
    events: list[JSONMessage] = []
    results = engine.registry.pull(PullRequest(from_image=name, tls_verify=False),
                                   events.append)
    assert results[0].image_id == digest_of(X.config)
    raw = wire(events)
    assert raw[0] == b'{"status":"Pulling from x","id":"1"}'
    for blob in X.layers:
        sid = digest_of(blob)[7:19]
        assert layer_statuses(events, sid) == [
            "Pulling fs layer", "Downloading", "Verifying Checksum", "Download complete",
            *(["Extracting"] if "Extracting" in layer_statuses(events, sid) else []),
            "Pull complete"]
        assert f'{{"status":"Pulling fs layer","progressDetail":{{}},"id":"{sid}"}}'.encode() in raw
        downloading = [e for e in events if e.id == sid and e.status == "Downloading"]
        last = downloading[-1]
        assert last.progress_detail is not None
        assert last.progress_detail.current == last.progress_detail.total == len(blob)
        assert last.progress.startswith("[" + "=" * 50 + ">] ")
        assert raw[events.index(last)].startswith(
            b'{"status":"Downloading","progressDetail":{"current":%d,"total":%d},"progress":"['
            % (len(blob), len(blob)))
    assert raw[-2] == f'{{"status":"Digest: {X.manifest_digest}"}}'.encode()
    assert raw[-1] == f'{{"status":"Status: Downloaded newer image for {name}"}}'.encode()


def test_pull_of_an_unknown_image_ends_with_the_error(engine: Engine, fake: FakeRegistry,
                                                      no_terminal: None) -> None:
    events: list[JSONMessage] = []
    with pytest.raises(CargoholdError) as exc:
        engine.registry.pull(PullRequest(from_image=f"127.0.0.1:{fake.port}/nosuch:1",
                                         tls_verify=False), events.append)
    message = exc.value.message
    assert "manifest unknown" in message
    assert wire(events) == [
        b'{"status":"Pulling from nosuch","id":"1"}',
        msgspec.json.encode({"errorDetail": {"message": message}, "error": message}),
    ]
    assert engine.image_store.list() == []


def test_pull_with_the_calls_own_credentials(engine: Engine, fake: FakeRegistry) -> None:
    """``X-Registry-Auth`` as ``AuthConfig``: used for this call only, none stored."""
    fake.token_auth = ("alice", "secret")
    name = f"127.0.0.1:{fake.port}/y:1"
    with pytest.raises(CargoholdError):
        engine.registry.pull(PullRequest(from_image=name, tls_verify=False))
    auth = AuthConfig(auth=base64.b64encode(b"alice:secret").decode())
    results = engine.registry.pull(PullRequest(from_image=name, tls_verify=False, auth=auth))
    assert results[0].image_id == digest_of(Y.config)
    with pytest.raises(InvalidArgument, match="invalid registry auth: auth is not base64"):
        engine.registry.pull(PullRequest(from_image=name, auth=AuthConfig(auth="%%")))


def test_pull_request_decodes_from_dockers_query(engine: Engine, fake: FakeRegistry) -> None:
    """An API handler's ``fromImage``/``tag`` (a tag, or a digest) map onto the same call."""
    request = msgspec.convert({"fromImage": f"127.0.0.1:{fake.port}/x", "tag": "1",
                               "tlsVerify": False}, PullRequest)
    assert engine.registry.pull(request)[0].reference.endswith("/x:1")
    by_digest = msgspec.convert({"fromImage": f"127.0.0.1:{fake.port}/x",
                                 "tag": X.manifest_digest, "tlsVerify": False}, PullRequest)
    assert engine.registry.pull(by_digest)[0].image_id == digest_of(X.config)
    with pytest.raises(InvalidArgument, match="tag can't be used with --all-tags/-a"):
        engine.registry.pull(PullRequest(from_image="x:1", all_tags=True))


def pull_both(engine: Engine, host: str, auto: bool) -> dict[str, list[JSONMessage]]:
    """x:1 and y:1 pulled at once in two threads, each call with a sink of its own."""
    seen: dict[str, list[JSONMessage]] = {"x": [], "y": []}
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def pull(repo: str) -> None:
        try:
            barrier.wait()
            if auto:
                engine.registry.ensure(f"{host}/{repo}:1", "missing", seen[repo].append)
            else:
                engine.registry.pull(PullRequest(from_image=f"{host}/{repo}:1"),
                                     seen[repo].append)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=pull, args=(r,)) for r in seen]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    return seen


@pytest.mark.parametrize("auto", [False, True], ids=["pull", "ensure"])
def test_concurrent_pulls_each_get_only_their_own_events(engine: Engine, fake: FakeRegistry,
                                                         auto: bool) -> None:
    """Two pulls on one engine (threads, as the API server runs them), or two auto-pulls
    (``ensure``, what ``run``/``create``/``FROM`` use): no event crosses to the other call."""
    host = f"127.0.0.1:{fake.port}"
    Path(engine.settings.extra["config_file"]).write_text(f'insecure-registries = ["{host}"]\n')
    mine = {"x": {digest_of(b)[7:19] for b in X.layers},
            "y": {digest_of(b)[7:19] for b in Y.layers}}
    seen = pull_both(engine, host, auto)
    for repo, other in (("x", "y"), ("y", "x")):
        assert {e.id for e in seen[repo] if e.progress_detail is not None} == mine[repo]
        lines = [e.status for e in seen[repo] if e.progress_detail is None]
        assert f"Pulling from {repo}" in lines
        assert not any(f"/{other}:" in s or s == f"Pulling from {other}" for s in lines)
        assert lines[-1] == f"Status: Downloaded newer image for {host}/{repo}:1"
        if auto:
            assert lines[0] == f"Unable to find image '{host}/{repo}:1' locally"


def test_engine_has_no_shared_pull_callback(engine: Engine) -> None:
    assert not hasattr(engine, "pull_progress")


# ---- push ----------------------------------------------------------------------------------

def test_push_reports_layers_digest_and_aux(tmp_path: Path, engine: Engine, fake: FakeRegistry,
                                            no_terminal: None) -> None:
    name = f"127.0.0.1:{fake.port}/team/app:1"
    engine.images.import_image(ImportRequest(repo=name), lambda m: None,
                               io.BytesIO(rootfs_tar({"etc/data": os.urandom(40_000)})))
    events: list[JSONMessage] = []
    result = engine.registry.push(PushRequest(name=name, tls_verify=False), events.append)[0]
    raw = wire(events)
    sid = engine.layers.list()[0].diff_id[7:19]
    assert raw[0] == f'{{"status":"The push refers to repository [{name[:-2]}]"}}'.encode()
    assert layer_statuses(events, sid) == ["Preparing", "Pushing", "Pushed"]
    assert raw[-2] == (f'{{"status":"1: digest: {result.digest} size: {result.size}"}}'.encode())
    assert raw[-1] == (f'{{"progressDetail":{{}},"aux":{{"Tag":"1","Digest":"{result.digest}",'
                       f'"Size":{result.size}}}}}').encode()
    events.clear()
    engine.registry.push(PushRequest(name=f"127.0.0.1:{fake.port}/team/app", tag="1",
                                     tls_verify=False), events.append)
    assert layer_statuses(events, sid) == ["Preparing", "Layer already exists"]


def test_push_of_a_missing_image_ends_with_the_error(engine: Engine, no_terminal: None) -> None:
    events: list[JSONMessage] = []
    with pytest.raises(NotFound):
        engine.registry.push(PushRequest(name="127.0.0.1:1/none:1"), events.append)
    message = "An image does not exist locally with the tag: 127.0.0.1:1/none:1"
    assert wire(events) == [msgspec.json.encode({"errorDetail": {"message": message},
                                                 "error": message})]


# ---- load / import / save --------------------------------------------------------------------

def test_import_save_and_load_from_explicit_streams(tmp_path: Path, engine: Engine,
                                                    no_terminal: None) -> None:
    events: list[JSONMessage] = []
    tar = rootfs_tar({"bin/tool": b"#!/bin/sh\n", "etc/x": b"x"})
    request = ImportRequest(repo="imported", tag="2", changes=('CMD ["/bin/tool"]',),
                            message="from a stream")
    image_id = engine.images.import_image(request, events.append, io.BytesIO(tar))
    assert wire(events) == [f'{{"status":"{image_id}"}}'.encode()]
    assert engine.images.resolve("imported:2").id == image_id
    archive = tmp_path / "saved.tar"
    fd = os.open(archive, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        engine.images.save(SaveRequest(names=("imported:2",)), fd)
    finally:
        os.close(fd)
    fresh = new_engine(tmp_path / "b")
    events.clear()
    r, w = os.pipe()  # a stream that cannot seek: spooled by the engine

    def feed() -> None:
        with os.fdopen(w, "wb") as out:
            out.write(archive.read_bytes())

    feeder = threading.Thread(target=feed)
    feeder.start()
    with os.fdopen(r, "rb") as pipe:
        lines = fresh.images.load(LoadRequest(), pipe, events.append)
    feeder.join()
    assert lines == ["Loaded image: imported:2"]
    assert wire(events) == [b'{"stream":"Loaded image: imported:2\\n"}']
    assert fresh.images.resolve("imported:2").id == image_id


def test_load_and_import_of_a_bad_tar_end_with_the_error(engine: Engine,
                                                         no_terminal: None) -> None:
    for call in (
        lambda sink: engine.images.load(LoadRequest(), io.BytesIO(b"not a tar" * 100), sink),
        lambda sink: engine.images.import_image(ImportRequest(repo="bad:1"), sink,
                                                io.BytesIO(b"\x1f\x8b garbage" * 100)),
    ):
        events: list[JSONMessage] = []
        with pytest.raises(CargoholdError) as exc:
            call(events.append)
        message = exc.value.message
        assert wire(events) == [msgspec.json.encode({"errorDetail": {"message": message},
                                                     "error": message})]
    assert engine.image_store.list() == [] and engine.layers.list() == []


def test_import_needs_a_stream_or_a_url(engine: Engine, no_terminal: None) -> None:
    """``-`` is the caller's stdin to open: the engine never falls back to its own."""
    with pytest.raises(InvalidArgument, match="no tarball given"):
        engine.images.import_image(ImportRequest(from_src="-"), lambda m: None)
    with pytest.raises(InvalidArgument, match="no tarball given"):
        engine.images.import_tarball("-", "x:1")


# ---- build ---------------------------------------------------------------------------------

@pytest.fixture
def build_engine(tmp_path: Path, engine: Engine) -> Engine:
    """A base image and the fake runtime (its RUN exits with ``run_exit_code``)."""
    engine.images.import_image(ImportRequest(repo="base:1"), lambda m: None,
                               io.BytesIO(rootfs_tar({"etc/passwd": b"root:x:0:0::/:/bin/sh\n"})))
    engine.__dict__["runtime"] = FakeRuntime(run_exit_code=3)
    return engine


def context_tar(files: dict[str, bytes]) -> io.BytesIO:
    return io.BytesIO(rootfs_tar(files))


def test_build_from_streams_reports_its_events_and_the_aux_id(build_engine: Engine,
                                                              no_terminal: None) -> None:
    events: list[Any] = []
    request = BuildRequest(tags=("built:1",), labels={"a": "b"})
    result = build_engine.builds.build(
        request, events.append,
        context=context_tar({"file.txt": b"hello\n"}),
        dockerfile=io.BytesIO(b"FROM base:1\nENV A=1\nCOPY file.txt /file.txt\n"))
    assert result == BuildResult(result.image_id, ("docker.io/library/built:1",))
    kinds = [type(e).__name__ for e in events]
    assert kinds == [
        "StepStarted", "StepNote", "StepDone", "Planned",
        "StepStarted", "StepCached",  # FROM base:1, a stored image (a pulled one: done)
        "StepStarted", "StepDone", "StepStarted", "StepDone",  # ENV, COPY
        "StepStarted", "ImageWritten", "ImageTagged", "StepDone", "JSONMessage"]
    starts = [e for e in events if isinstance(e, E.StepStarted)]
    assert [(s.instruction, s.number) for s in starts] == [
        ("", 0), ("FROM base:1", 1), ("ENV A=1", 2), ("COPY file.txt /file.txt", 3), ("", 0)]
    assert events[3] == E.Planned(steps=5, instructions=3)
    assert events[-3] == E.ImageTagged("docker.io/library/built:1")
    assert msgspec.json.encode(events[-1]) == f'{{"aux":{{"ID":"{result.image_id}"}}}}'.encode()
    again: list[Any] = []
    build_engine.builds.build(request, again.append,
                              context=context_tar({"file.txt": b"hello\n"}),
                              dockerfile=io.BytesIO(b"FROM base:1\nENV A=1\nCOPY file.txt "
                                                    b"/file.txt\n"))
    assert [type(e).__name__ for e in again].count("StepCached") == 3  # FROM, ENV, COPY


def test_failing_run_ends_with_its_exit_code(build_engine: Engine, tmp_path: Path,
                                             no_terminal: None) -> None:
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text("FROM base:1\nRUN false\n")
    events: list[Any] = []
    with pytest.raises(CargoholdError) as exc:
        build_engine.builds.build(BuildRequest(remote=str(tmp_path / "ctx"), network_mode="host"),
                                  events.append)
    message = "Dockerfile:2: The command '/bin/sh -c false' returned a non-zero code: 3"
    assert exc.value.message == message and exc.value.exit_code == 1
    assert isinstance(events[-3], E.StepContainer)
    assert events[-2] == E.StepFailed(message.split(": ", 1)[1])
    assert msgspec.json.encode(events[-1]) == msgspec.json.encode(
        {"errorDetail": {"code": 3, "message": message}, "error": message})
    assert build_engine.image_store.list()[0].repo_tags == ("docker.io/library/base:1",)


def test_build_never_reads_its_own_stdin(build_engine: Engine, tmp_path: Path,
                                         no_terminal: None) -> None:
    """The same stream for the context and the Dockerfile (``build -f - -``) is refused in
    Docker's words; a build with neither stream nor remote has no context."""
    stream = context_tar({"Dockerfile": b"FROM base:1\n"})
    with pytest.raises(InvalidArgument, match="can't use stdin for both build context and "
                                              "dockerfile"):
        build_engine.builds.build(BuildRequest(), lambda e: None, context=stream,
                                  dockerfile=stream)
    with pytest.raises(InvalidArgument, match="no build context"):
        build_engine.builds.build(BuildRequest(), lambda e: None)
    result = build_engine.builds.build(BuildRequest(), lambda e: None, context=stream)
    assert result.image_id


@pytest.mark.parametrize("fields,message", [
    ({"network_mode": "mynet"}, 'network mode "mynet" not supported by buildkit'),
    ({"progress": "fancy"}, "invalid progress mode 'fancy'"),
    ({"memory": -1}, "invalid memory -1: must not be negative"),
    ({"memory_swap": -2}, "invalid memswap -2"),
    ({"extra_hosts": ("nohost",)}, "bad format for add-host: \"nohost\""),
    ({"tags": ("x@sha256:" + "a" * 64,)}, "invalid reference format"),
    ({"build_args": {"": "x"}}, "invalid --build-arg: '=x'"),
    ({"labels": {"": "y"}}, "invalid --label: '=y'"),
    ({"allow": ("root.everything",)}, "unknown entitlement root.everything"),
    ({"platform": "linux/s390x"}, 'platform "linux/s390x" is not supported'),
    ({"platform": "a/b/c/d"}, "unknown operating system or architecture"),
    ({"source_date_epoch": "soon"}, "invalid SOURCE_DATE_EPOCH: 'soon'"),
    ({"secrets": {"": "/x"}}, "invalid secret ''"),
])
def test_build_requests_are_checked_by_the_engine(build_engine: Engine, fields: dict[str, Any],
                                                  message: str) -> None:
    events: list[Any] = []
    with pytest.raises(InvalidArgument) as exc:
        build_engine.builds.build(BuildRequest(**fields), events.append,
                                  context=context_tar({"Dockerfile": b"FROM base:1\n"}))
    assert message in exc.value.message
    assert len(events) == 1 and isinstance(events[0], JSONMessage)
    assert events[0].error == exc.value.message  # the only event: nothing ran


def test_build_request_decodes_dockers_query() -> None:
    request = msgspec.convert({"t": ["a:1", "b"], "buildargs": {"A": "1", "B": None},
                               "nocache": True, "q": True, "networkmode": "none",
                               "cachefrom": ["a:0"], "shmsize": 67108864}, BuildRequest)
    assert request.tags == ("a:1", "b") and request.build_args == {"A": "1", "B": None}
    assert request.no_cache and request.quiet and request.network_mode == "none"
    from cargohold.engine.images.requests import check_build

    options = check_build(request)
    assert options.build_args == {"A": "1"} and options.network == "none"
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"memory": "lots"}, BuildRequest)



def test_cli_printer_renders_messages_as_dockers_cli() -> None:
    """Lines of text as ``id: status``, each layer status once (no byte counts) off a
    terminal, redrawn rows on one; ``stream`` text as it is; results and errors unprinted."""
    from cargohold.cli.progress import ProgressPrinter
    from cargohold.transport.registry.events import Aux, aux, failure, status, stream, update

    messages = [
        status("Pulling from library/busybox", "latest"),
        update("0123456789ab", "Pulling fs layer"),
        update("0123456789ab", "Downloading", 500, 2000),
        update("0123456789ab", "Downloading", 2000, 2000),
        update("0123456789ab", "Pull complete"),
        status("Digest: sha256:" + "d" * 64),
        aux(Aux(tag="1", digest="sha256:" + "e" * 64, size=5), progress=True),
        stream("Loaded image: x:1\n"),
        failure("boom"),
    ]
    out = io.StringIO()
    plain = ProgressPrinter(out, tty=False)
    for m in messages:
        plain(m)
    assert out.getvalue() == (
        "latest: Pulling from library/busybox\n0123456789ab: Pulling fs layer\n"
        "0123456789ab: Downloading\n0123456789ab: Pull complete\n"
        f"Digest: sha256:{'d' * 64}\nLoaded image: x:1\n")
    out = io.StringIO()
    term = ProgressPrinter(out, tty=True, interval=0)
    for m in messages[:5]:
        term(m)
    bar = "=" * 12 + ">" + " " * 37
    assert out.getvalue() == (
        "latest: Pulling from library/busybox\n0123456789ab: Pulling fs layer\n"
        f"\x1b[1A\r\x1b[2K0123456789ab: Downloading [{bar}]  500B/2kB\r\x1b[1B"
        f"\x1b[1A\r\x1b[2K0123456789ab: Downloading [{'=' * 50}]  2kB/2kB\r\x1b[1B"
        "\x1b[1A\r\x1b[2K0123456789ab: Pull complete\r\x1b[1B")
