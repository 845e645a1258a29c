"""Streaming pulls (each blob applied while it downloads) roll back completely; auto-pull
(``ensure``) speaks Docker's words; push compression is stable for a given setting."""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_fake import FakeImage, FakeRegistry, digest_of, make_image, make_layer

from cargohold.config import Settings
from cargohold.engine import Engine
from cargohold.engine.images.requests import PushRequest
from cargohold.errors import InvalidArgument, NotFound
from cargohold.oci.reference import parse_reference
from cargohold.store.compression import open_decompressed
from cargohold.store.drivers.base import Layout
from cargohold.store.drivers.overlay import OverlayDriver
from cargohold.transport.copy import copy_images
from cargohold.transport.local import LocalDestination
from cargohold.transport.registry.client import ClientOptions, RegistryClient
from cargohold.transport.registry.events import JSONMessage
from cargohold.transport.registry.hosts import Endpoint
from cargohold.transport.registry_dest import compressed_chunks
from cargohold.transport.registry_source import RegistrySource

OPTS = ClientOptions(retries=2, backoff=0.01, read_timeout=2.0, connect_timeout=2.0,
                     stall_timeout=0.5, min_speed=100_000)
THREE = make_image([{"etc/one": b"1" * 5000}, {"etc/two": os.urandom(400_000)},
                    {"etc/three": os.urandom(300_000)}])


@pytest.fixture(params=["vfs", "overlay"])
def engine(request: pytest.FixtureRequest, tmp_path: Path) -> Engine:
    """vfs publishes layer by layer (each copies its parent); overlay stages all layers in
    parallel and publishes at the end.  The overlay driver needs no mount to register."""
    driver = OverlayDriver(Layout(tmp_path / "root")) if request.param == "overlay" else None
    eng = Engine(Settings(root=tmp_path / "root", runroot=tmp_path / "run",
                          storage_driver="vfs"), driver=driver)
    return eng


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    reg = FakeRegistry().start()
    try:
        yield reg
    finally:
        reg.close()


def pull(engine: Engine, fake: FakeRegistry, ref: str = "x:1") -> str:
    registry = f"127.0.0.1:{fake.port}"
    client = RegistryClient(registry, Endpoint(fake.url, tls_verify=False), None, OPTS,
                            sleep=lambda s: None)
    stores = engine.stores
    source = RegistrySource([client], parse_reference(f"{registry}/{ref}"),
                            engine.settings.root / "tmp",
                            present=lambda chain, _d: stores.layers.exists(chain))
    try:
        return copy_images(source, LocalDestination(stores))[0].image_id
    finally:
        source.close()
        client.close()


def assert_clean(engine: Engine) -> None:
    assert engine.image_store.list() == []
    assert engine.layers.list() == []
    blobs = engine.settings.root / "blobs" / "sha256"
    assert not blobs.exists() or os.listdir(blobs) == []
    tmp = engine.settings.root / "tmp"
    assert not tmp.exists() or os.listdir(tmp) == []


def with_diff_ids(img: FakeImage, diff_ids: list[str]) -> FakeImage:
    """The same blobs under a config that claims other diff_ids."""
    config = json.loads(img.config)
    config["rootfs"]["diff_ids"] = diff_ids
    raw = json.dumps(config).encode()
    manifest = json.loads(img.manifest)
    manifest["config"].update(size=len(raw), digest=digest_of(raw))
    return FakeImage(json.dumps(manifest).encode(), raw, img.layers)


def test_streamed_pull_of_three_layers(engine: Engine, fake: FakeRegistry) -> None:
    fake.add_image("x", "1", THREE)
    image_id = pull(engine, fake)
    assert image_id == digest_of(THREE.config)
    assert len(engine.layers.list()) == 3
    tmp = engine.settings.root / "tmp"
    assert os.listdir(tmp) == []


def test_wrong_digest_in_the_second_of_three_layers_leaves_nothing(
        engine: Engine, fake: FakeRegistry) -> None:
    fake.add_image("x", "1", THREE)
    second = digest_of(THREE.layers[1])
    fake.faults[second] = "digest"
    with pytest.raises(InvalidArgument) as exc:
        pull(engine, fake)
    # the corrupt bytes may fail decoding first: the download's verdict names the blob
    assert second in str(exc.value) and "digest mismatch" in str(exc.value)
    assert_clean(engine)


def test_wrong_diff_id_of_the_second_of_three_layers_leaves_nothing(
        engine: Engine, fake: FakeRegistry) -> None:
    ids = json.loads(THREE.config)["rootfs"]["diff_ids"]
    bad = with_diff_ids(THREE, [ids[0], "sha256:" + "0" * 64, ids[2]])
    fake.add_image("x", "1", bad)
    with pytest.raises(InvalidArgument, match="does not match its diff_id"):
        pull(engine, fake)
    assert_clean(engine)


def test_undecodable_second_layer_with_a_right_digest_leaves_nothing(
        engine: Engine, fake: FakeRegistry) -> None:
    blob, _ = make_layer({"etc/two": b"2" * 100_000})
    broken = blob[:-40] + bytes(40)  # a valid digest of invalid gzip
    img = make_image([{"etc/one": b"1"}, {"etc/x": b"x"}, {"etc/three": b"3"}])
    img = FakeImage(img.manifest, img.config, [img.layers[0], broken, img.layers[2]])
    manifest = json.loads(img.manifest)
    manifest["layers"][1].update(size=len(broken), digest=digest_of(broken))
    img = FakeImage(json.dumps(manifest).encode(), img.config, img.layers)
    fake.add_image("x", "1", img)
    with pytest.raises(InvalidArgument):
        pull(engine, fake)
    assert_clean(engine)


def test_failure_keeps_layers_another_image_brought(engine: Engine, fake: FakeRegistry) -> None:
    base = make_image([{"etc/one": b"1" * 5000}])
    fake.add_image("x", "base", base)
    pull(engine, fake, "x:base")
    fake.add_image("x", "1", THREE)  # shares its first layer with base
    fake.faults[digest_of(THREE.layers[2])] = "size"
    with pytest.raises(InvalidArgument, match="size mismatch"):
        pull(engine, fake)
    assert [ly.diff_id for ly in engine.layers.list()] == json.loads(base.config)[
        "rootfs"]["diff_ids"]
    assert len(engine.image_store.list()) == 1


# ---- auto-pull: engine.registry.ensure ------------------------------------------------------

@pytest.fixture
def vfs_engine(tmp_path: Path) -> Engine:
    eng = Engine(Settings(root=tmp_path / "root", runroot=tmp_path / "run",
                          storage_driver="vfs"))
    eng.registry.options = OPTS
    conf = tmp_path / "registries.toml"
    eng.settings.extra["config_file"] = str(conf)
    return eng


def insecure(engine: Engine, fake: FakeRegistry) -> None:
    Path(engine.settings.extra["config_file"]).write_text(
        f'insecure-registries = ["127.0.0.1:{fake.port}"]\n')


def test_ensure_pulls_a_missing_image_in_dockers_words(vfs_engine: Engine,
                                                       fake: FakeRegistry) -> None:
    insecure(vfs_engine, fake)
    fake.add_image("x", "latest", THREE)
    name = f"127.0.0.1:{fake.port}/x"
    events: list[JSONMessage] = []
    record = vfs_engine.registry.ensure(name, "missing", events.append)
    assert record.id == digest_of(THREE.config)
    lines = [e.status for e in events if not e.id]
    assert lines[0] == f"Unable to find image '{name}:latest' locally"
    assert lines[-1] == f"Status: Downloaded newer image for {name}:latest"
    before = len(fake.requests)
    assert vfs_engine.registry.ensure(name, "missing", events.append).id == record.id
    assert vfs_engine.registry.ensure(name, "never", events.append).id == record.id
    assert len(fake.requests) == before  # present: no registry traffic
    events.clear()
    vfs_engine.registry.ensure(name, "always", events.append)
    assert [e.status for e in events if not e.id][-1] == (
        f"Status: Image is up to date for {name}:latest")


def test_ensure_never_and_bad_policy(vfs_engine: Engine, fake: FakeRegistry) -> None:
    with pytest.raises(NotFound) as exc:
        vfs_engine.registry.ensure("nosuch", "never")
    assert str(exc.value) == "No such image: nosuch:latest"
    with pytest.raises(InvalidArgument, match="invalid pull option: 'sometimes'"):
        vfs_engine.registry.ensure("nosuch", "sometimes")


def test_create_pulls_through_ensure(vfs_engine: Engine, fake: FakeRegistry) -> None:
    from cargohold.engine.containers.create import _find_image

    insecure(vfs_engine, fake)
    fake.add_image("x", "1", THREE)
    name = f"127.0.0.1:{fake.port}/x:1"
    with pytest.raises(NotFound, match=f"No such image: {name}"):
        _find_image(vfs_engine, name, "never")
    events: list[JSONMessage] = []  # what the CLI renders on stderr: this create's own sink
    record = _find_image(vfs_engine, name, "missing", events.append)
    assert record.id == digest_of(THREE.config)
    assert events[0].status == f"Unable to find image '{name}' locally"


# ---- push compression: the digest depends only on (input, algorithm, level) ----------------

def _produce(data: bytes) -> object:
    def produce(feed: object) -> None:
        for i in range(0, len(data), 300_001):  # an odd write size: blocks are fixed anyway
            feed(data[i:i + 300_001])  # type: ignore[operator]
    return produce


@pytest.mark.parametrize("algo,level", [("gzip", 1), ("gzip", 3), ("gzip", 4), ("gzip", 6),
                                        ("zstd", 3)])
def test_compressed_layer_digest_is_stable(algo: str, level: int) -> None:
    rng = hashlib.sha256(b"seed").digest() * 40_000
    data = os.urandom(1 << 20) + rng + b"text " * 2_000_000  # > one 8 MiB block
    digests = set()
    for threads in (1, 2, 5):
        blob = b"".join(compressed_chunks(_produce(data), algo, level,  # type: ignore[arg-type]
                                          lambda n: None, threads=threads))
        digests.add(hashlib.sha256(blob).hexdigest())
        assert open_decompressed(io.BytesIO(blob)).read() == data
    assert len(digests) == 1


def test_levels_give_different_blobs_and_bad_levels_are_refused(vfs_engine: Engine) -> None:
    data = b"some text " * 100_000
    blobs = {lvl: b"".join(compressed_chunks(_produce(data), "gzip", lvl,  # type: ignore[arg-type]
                                             lambda n: None)) for lvl in (1, 6)}
    assert blobs[1] != blobs[6]
    with pytest.raises(InvalidArgument, match="invalid gzip compression level 12"):
        vfs_engine.registry.push(PushRequest(name="127.0.0.1:1/x:1", compression_format="gzip",
                                             compression_level=12))


@pytest.mark.parametrize("kind", ["gzip", "zstd", "bzip2", "xz", "none"])
def test_decoding_ahead_reads_and_hashes_every_format(kind: str) -> None:
    import bz2
    import gzip
    import lzma

    import zstandard

    from cargohold.store.compression import open_decompressed_ahead

    data = os.urandom(300_000) + b"abc" * 1_000_000
    packed = {"gzip": lambda d: gzip.compress(d, mtime=0) + gzip.compress(b"tail", mtime=0),
              "zstd": lambda d: zstandard.ZstdCompressor().compress(d),
              "bzip2": bz2.compress, "xz": lzma.compress, "none": lambda d: d}[kind](data)
    expected = data + (b"tail" if kind == "gzip" else b"")
    stream, ahead = open_decompressed_ahead(io.BytesIO(packed))
    try:
        assert stream.read() == expected
    finally:
        stream.close()
    if kind == "none":
        assert ahead is None
    else:
        assert ahead is not None
        assert ahead.digest() == "sha256:" + hashlib.sha256(expected).hexdigest()


def test_decoding_ahead_reports_corrupt_gzip() -> None:
    import gzip

    from cargohold.store.compression import open_decompressed_ahead

    packed = bytearray(gzip.compress(os.urandom(200_000), mtime=0))
    packed[100:110] = bytes(10)
    stream, _ = open_decompressed_ahead(io.BytesIO(bytes(packed)))
    try:
        with pytest.raises(InvalidArgument, match="corrupt gzip data"):
            stream.read()
    finally:
        stream.close()
