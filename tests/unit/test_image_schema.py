"""Hostile image configs, manifests and indexes are refused when they enter the store (load,
pull), with a message naming the field, and leave nothing behind (security issue #10, items
15 and 16); ``create`` refuses a bad config that reached a store before that, creating
nothing."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from registry_fake import FakeImage, FakeRegistry, digest_of, make_image

from cargohold.cli.main import main
from cargohold.config import Settings
from cargohold.engine import Engine
from cargohold.errors import InvalidArgument
from cargohold.oci.image import CONFIG_SCHEMA_VERSION
from cargohold.oci.reference import parse_reference
from cargohold.transport.copy import copy_images
from cargohold.transport.local import LocalDestination
from cargohold.transport.registry.client import ClientOptions, RegistryClient
from cargohold.transport.registry.hosts import Endpoint
from cargohold.transport.registry_source import RegistrySource

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class Cli:
    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root = root
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        code = main(["--root", str(self.root), "--runroot", str(self.root / "run"),
                     "--storage-driver", "vfs", *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def assert_nothing_left(self) -> None:
        """No image, tag, layer, blob or staging entry."""
        assert self("images", "-aq")[1] == ""
        for sub in ("layers", "blobs/sha256", "tmp"):
            d = self.root / sub
            entries = [n for n in os.listdir(d) if not n.startswith(".")] if d.exists() else []
            assert entries == [], f"{sub}: {entries}"


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(tmp_path / "root", capsys)


def _layer() -> tuple[bytes, str]:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("etc/motd")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"hi\n"))
    data = buf.getvalue()
    return data, digest_of(data)


def _config(diff_id: str, **top: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {"architecture": "amd64", "os": "linux",
                           "created": "2024-01-02T03:04:05Z",
                           "config": {"Cmd": ["/bin/sh"]},
                           "rootfs": {"type": "layers", "diff_ids": [diff_id]}}
    cfg.update(top)
    return cfg


def _add(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def _blob_path(data: bytes) -> str:
    return "blobs/sha256/" + hashlib.sha256(data).hexdigest()


def docker_archive(path: Path, config: dict[str, Any] | None = None,
                   repo_tags: Any = ("bad:1",)) -> Path:
    layer, diff_id = _layer()
    raw = json.dumps(config if config is not None else _config(diff_id)).encode()
    tags = list(repo_tags) if isinstance(repo_tags, tuple) else repo_tags
    manifest = [{"Config": _blob_path(raw), "RepoTags": tags, "Layers": [_blob_path(layer)]}]
    with tarfile.open(path, "w") as tf:
        _add(tf, _blob_path(raw), raw)
        _add(tf, _blob_path(layer), layer)
        _add(tf, "manifest.json", json.dumps(manifest).encode())
    return path


def oci_archive(path: Path, index: Any = None, annotations: Any = None) -> Path:
    layer, diff_id = _layer()
    raw = json.dumps(_config(diff_id)).encode()
    manifest: dict[str, Any] = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest_of(raw), "size": len(raw)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": diff_id, "size": len(layer)}],
    }
    if annotations is not None:
        manifest["annotations"] = annotations
    mbytes = json.dumps(manifest).encode()
    if index is None:
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX,
                 "manifests": [{"mediaType": OCI_MANIFEST, "digest": digest_of(mbytes),
                                "size": len(mbytes),
                                "annotations": {"io.containerd.image.name": "bad:1"}}]}
    with tarfile.open(path, "w") as tf:
        for data in (raw, layer, mbytes):
            _add(tf, _blob_path(data), data)
        _add(tf, "index.json", json.dumps(index).encode())
        _add(tf, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    return path


def _with_section(**section: Any) -> dict[str, Any]:
    _, diff_id = _layer()
    return _config(diff_id, config=section)


BAD_CONFIGS = [
    pytest.param(_config(_layer()[1], config="abc"),
                 "invalid image config: config: expected object, got string", id="config-str"),
    pytest.param(_with_section(Env=[1, 2]),
                 "invalid image config: config.Env[0]: expected string, got integer", id="env"),
    pytest.param(_with_section(Healthcheck=["CMD", "true"]),
                 "invalid image config: config.Healthcheck: expected object, got array",
                 id="healthcheck-list"),
    pytest.param(_with_section(Healthcheck={"Test": ["CMD", "true"], "Interval": "abc"}),
                 "invalid image config: config.Healthcheck.Interval: expected integer, got "
                 "string", id="healthcheck-interval"),
    pytest.param(_with_section(Healthcheck={"Interval": 2**70}),
                 "invalid image config: config.Healthcheck.Interval: expected integer <= "
                 "9223372036854775807", id="healthcheck-interval-range"),
    pytest.param(_with_section(Healthcheck={"Test": ["CMD", "true"], "Interval": -5}),
                 "invalid image config: config.Healthcheck.Interval: expected integer >= 0",
                 id="healthcheck-negative"),
    pytest.param(_with_section(ExposedPorts={"abc": {}}),
                 "invalid image config: config.ExposedPorts: a key: expected a port",
                 id="exposed-port"),
    pytest.param(_with_section(Labels=["a=b"]),
                 "invalid image config: config.Labels: expected object, got array", id="labels"),
    pytest.param(_with_section(Entrypoint="echo hi"),
                 "invalid image config: config.Entrypoint: expected array, got string",
                 id="entrypoint-str"),
    pytest.param(_with_section(StopTimeout="10"),
                 "invalid image config: config.StopTimeout: expected integer, got string",
                 id="stoptimeout"),
    pytest.param(_config(_layer()[1], created="yesterday"),
                 "invalid image config: created: expected an RFC 3339 time", id="created"),
    pytest.param(_config(_layer()[1], rootfs={"type": "layers", "diff_ids": ["sha256:x"]}),
                 "invalid image config: rootfs.diff_ids[0]: expected a sha256 digest",
                 id="diff-id"),
    pytest.param({"architecture": "amd64", "os": "linux"},
                 "invalid image config: missing required field rootfs", id="no-rootfs"),
    pytest.param(_config(_layer()[1], history=[{"created_by": "a"}, {"created_by": "b"}]),
                 "invalid image config: too many non-empty layers in History section",
                 id="history"),
]


@pytest.mark.parametrize(("config", "message"), BAD_CONFIGS)
def test_load_refuses_a_bad_config_by_field_and_leaves_nothing(
    cli: Cli, tmp_path: Path, config: dict[str, Any], message: str
) -> None:
    code, _, err = cli("load", "-i", str(docker_archive(tmp_path / "a.tar", config)))
    assert code == 125
    assert message in err, err
    cli.assert_nothing_left()


def test_a_good_archive_still_loads(cli: Cli, tmp_path: Path) -> None:
    code, out, err = cli("load", "-i", str(docker_archive(tmp_path / "a.tar")))
    assert code == 0, err
    assert out.strip() == "Loaded image: bad:1"
    engine = Engine(Settings(root=cli.root, runroot=cli.root / "run", storage_driver="vfs"))
    record = engine.image_store.resolve("docker.io/library/bad:1")
    assert record.schema == CONFIG_SCHEMA_VERSION  # create need not check it again


def test_repo_tags_as_a_string_is_refused_not_split_into_letters(
    cli: Cli, tmp_path: Path
) -> None:
    code, _, err = cli("load", "-i", str(docker_archive(tmp_path / "a.tar", repo_tags="abc")))
    assert code == 125
    assert "invalid manifest.json: [0].RepoTags: expected array, got string" in err
    cli.assert_nothing_left()


@pytest.mark.parametrize(("kwargs", "message"), [
    pytest.param({"index": [{"schemaVersion": 2}]},
                 "invalid index.json: expected object, got array", id="index-list"),
    pytest.param({"annotations": ["org.opencontainers.image.ref.name=x"]},
                 "invalid manifest: annotations: expected object, got array",
                 id="manifest-annotations"),
    pytest.param({"index": {"schemaVersion": 2, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "0" * 64, "size": 1,
         "annotations": ["a"]}]}},
        "invalid index.json: manifests[0].annotations: expected object, got array",
        id="descriptor-annotations"),
    pytest.param({"index": {"schemaVersion": 2, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": "sha256:" + "0" * 64, "size": 2**64}]}},
        "invalid index.json: manifests[0].size: expected integer <= 9223372036854775807",
        id="descriptor-size"),
])
def test_load_refuses_bad_oci_indexes_and_manifests(
    cli: Cli, tmp_path: Path, kwargs: dict[str, Any], message: str
) -> None:
    code, _, err = cli("load", "-i", str(oci_archive(tmp_path / "o.tar", **kwargs)))
    assert code == 125
    assert message in err, err
    cli.assert_nothing_left()


def test_a_good_oci_archive_still_loads(cli: Cli, tmp_path: Path) -> None:
    code, out, err = cli("load", "-i", str(oci_archive(tmp_path / "o.tar")))
    assert code == 0, err
    assert out.strip() == "Loaded image: bad:1"


# ---------------------------------------------------------------- pull


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    reg = FakeRegistry().start()
    try:
        yield reg
    finally:
        reg.close()


def _with_config(img: FakeImage, change: dict[str, Any]) -> FakeImage:
    config = json.loads(img.config)
    config["config"].update(change)
    raw = json.dumps(config).encode()
    manifest = json.loads(img.manifest)
    manifest["config"].update(size=len(raw), digest=digest_of(raw))
    return FakeImage(json.dumps(manifest).encode(), raw, img.layers)


def test_pull_refuses_a_bad_config_and_leaves_nothing(tmp_path: Path,
                                                      fake: FakeRegistry) -> None:
    engine = Engine(Settings(root=tmp_path / "root", runroot=tmp_path / "run",
                             storage_driver="vfs"))
    img = _with_config(make_image([{"etc/a": b"a"}, {"etc/b": b"b"}]), {"Env": [1, 2]})
    fake.add_image("x", "1", img)
    registry = f"127.0.0.1:{fake.port}"
    client = RegistryClient(registry, Endpoint(fake.url, tls_verify=False), None,
                            ClientOptions(retries=1, backoff=0.01), sleep=lambda s: None)
    source = RegistrySource([client], parse_reference(f"{registry}/x:1"),
                            engine.settings.root / "tmp")
    try:
        with pytest.raises(InvalidArgument,
                           match=r"invalid image config: config.Env\[0\]: expected string"):
            copy_images(source, LocalDestination(engine.stores))
    finally:
        source.close()
        client.close()
    assert engine.image_store.list() == [] and engine.layers.list() == []
    layer_digests = {digest_of(b) for b in img.layers}
    assert not layer_digests & set(fake.hits), "no layer download starts for a bad config"
    for sub in ("blobs/sha256", "tmp"):
        d = engine.settings.root / sub
        assert not d.exists() or os.listdir(d) == []


# ---------------------------------------------------------------- create


def _store_unchecked(cli: Cli, config: dict[str, Any], tag: str) -> None:
    """An image stored before configs were checked on entry (an old store)."""
    from msgspec.structs import replace

    engine = Engine(Settings(root=cli.root, runroot=cli.root / "run", storage_driver="vfs"))
    store = engine.image_store
    good = store.add(json.dumps({**config, "config": {}}).encode(), None)
    raw = json.dumps(config).encode()
    bad_id = engine.blobs.put(raw)

    def change(index: dict[str, Any]) -> Any:
        record = index.pop(good.id)
        index[bad_id] = replace(record, id=bad_id, repo_tags=(tag,), schema=0)
        return index[bad_id]

    store._mutate(change)


@pytest.mark.parametrize(("section", "field"), [
    ({"Env": [1, 2], "Cmd": ["/bin/sh"]}, "config.Env[0]: expected string, got integer"),
    ({"Healthcheck": ["x"], "Cmd": ["/bin/sh"]}, "config.Healthcheck: expected object"),
    ({"Labels": ["a"], "Cmd": ["/bin/sh"]}, "config.Labels: expected object, got array"),
])
def test_create_from_an_image_stored_unchecked_creates_nothing(
    cli: Cli, section: dict[str, Any], field: str
) -> None:
    _store_unchecked(cli, {"rootfs": {"type": "layers", "diff_ids": []}, "config": section},
                     "docker.io/library/old:1")
    code, _, err = cli("create", "--name", "c1", "old:1")
    assert code == 125
    assert field in err, err
    assert cli("ps", "-aq")[1] == ""
    containers = cli.root / "containers"
    assert not containers.exists() or [p for p in containers.iterdir() if p.is_dir()] == []
    rw = cli.root / "containers-rw"
    assert not rw.exists() or os.listdir(rw) == []


@pytest.mark.parametrize("verb", [("inspect",), ("image", "inspect"), ("history",)])
def test_reading_an_image_stored_unchecked_names_the_field(cli: Cli, verb: tuple[str, ...]) -> None:
    """A bad config from an old store (``config`` a string) gives an error naming the field,
    not a Python error, for every reader."""
    _store_unchecked(cli, {"rootfs": {"type": "layers", "diff_ids": []}, "config": "abc"},
                     "docker.io/library/old:2")
    code, _, err = cli(*verb, "old:2")
    assert code == 125, err
    assert "invalid image config: config: expected object, got string" in err, err
