"""Pulls from a misbehaving fake registry: each fault ends in success or a clear error naming
the blob, and never leaves a partial blob, a temporary file or a registered image."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_fake import FakeRegistry, RedirectTarget, digest_of, make_image

from cargohold.config import Settings
from cargohold.engine import Engine
from cargohold.engine.images.requests import PullRequest
from cargohold.engine.messages import JSONMessage
from cargohold.errors import CargoholdError, Forbidden, InvalidArgument, NotFound, Unavailable
from cargohold.oci.reference import parse_reference
from cargohold.transport.copy import copy_images
from cargohold.transport.local import LocalDestination
from cargohold.transport.registry.auth import Credentials
from cargohold.transport.registry.client import ClientOptions, RegistryClient
from cargohold.transport.registry.hosts import Endpoint
from cargohold.transport.registry_source import RegistrySource

OPTS = ClientOptions(retries=3, backoff=0.01, read_timeout=2.0, connect_timeout=2.0,
                     stall_timeout=0.5, min_speed=100_000)


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return Engine(Settings(root=tmp_path / "root", runroot=tmp_path / "run",
                           storage_driver="vfs"))


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    reg = FakeRegistry().start()
    try:
        yield reg
    finally:
        reg.close()


IMAGE = make_image([{"etc/one": b"1" * 5000}, {"etc/two": os.urandom(300_000)}])


def pull(engine: Engine, fake: FakeRegistry, sleeps: list[float] | None = None,
         creds: Credentials | None = None, ref: str = "x:1",
         opts: ClientOptions = OPTS) -> str:
    registry = f"127.0.0.1:{fake.port}"
    client = RegistryClient(registry, Endpoint(fake.url, tls_verify=False), creds, opts,
                            sleep=(sleeps.append if sleeps is not None else lambda s: None))
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
    tmp = engine.settings.root / "tmp"
    assert not tmp.exists() or os.listdir(tmp) == []


def test_clean_pull_registers_the_image(engine: Engine, fake: FakeRegistry) -> None:
    fake.add_image("x", "1", IMAGE)
    image_id = pull(engine, fake)
    assert image_id == digest_of(IMAGE.config)
    assert len(engine.layers.list()) == 2
    assert engine.image_store.get(image_id).repo_tags == (f"127.0.0.1:{fake.port}/x:1",)


def test_dropped_connection_resumes_with_range(engine: Engine, fake: FakeRegistry) -> None:
    fake.add_image("x", "1", IMAGE)
    big = digest_of(IMAGE.layers[1])
    fake.faults[big] = "drop"
    pull(engine, fake)
    ranges = [hd.get("range") for m, p, hd in fake.requests if p.endswith(big)]
    assert ranges[0] is None and ranges[1] and ranges[1].startswith("bytes=")
    assert ranges[1] != "bytes=0-"


def test_server_ignoring_range_restarts_from_zero(engine: Engine, fake: FakeRegistry) -> None:
    fake.add_image("x", "1", IMAGE)
    big = digest_of(IMAGE.layers[1])
    fake.faults[big] = "drop,norange"
    pull(engine, fake)
    assert len(engine.layers.list()) == 2 and fake.hits[big] == 2


@pytest.mark.parametrize("fault,words", [("digest", "digest mismatch"),
                                         ("size", "size mismatch")])
def test_bad_blob_is_refused_by_name(engine: Engine, fake: FakeRegistry, fault: str,
                                     words: str) -> None:
    fake.add_image("x", "1", IMAGE)
    big = digest_of(IMAGE.layers[1])
    fake.faults[big] = fault
    with pytest.raises(InvalidArgument) as exc:
        pull(engine, fake)
    assert big in str(exc.value) and words in str(exc.value)
    assert_clean(engine)


def test_500s_then_success(engine: Engine, fake: FakeRegistry) -> None:
    fake.add_image("x", "1", IMAGE)
    big = digest_of(IMAGE.layers[1])
    fake.faults[big] = "500"
    sleeps: list[float] = []
    pull(engine, fake, sleeps)
    assert fake.hits[big] == 3 and len(sleeps) >= 2


def test_429_honours_retry_after(engine: Engine, fake: FakeRegistry) -> None:
    fake.add_image("x", "1", IMAGE)
    big = digest_of(IMAGE.layers[1])
    fake.faults[big] = "429"
    sleeps: list[float] = []
    pull(engine, fake, sleeps)
    assert 2.0 in sleeps


@pytest.mark.parametrize("fault", ["slow", "silent"])
def test_endless_slow_body_times_out(engine: Engine, fake: FakeRegistry, fault: str) -> None:
    fake.add_image("x", "1", IMAGE)
    big = digest_of(IMAGE.layers[1])
    fake.faults[big] = fault
    quick = ClientOptions(retries=1, backoff=0.01, read_timeout=0.5, stall_timeout=0.3,
                          min_speed=100_000)
    with pytest.raises(Unavailable) as exc:
        pull(engine, fake, opts=quick)
    assert big in str(exc.value) and "timeout" in str(exc.value).lower()
    assert_clean(engine)


def test_redirect_to_another_host_drops_credentials(engine: Engine, fake: FakeRegistry) -> None:
    fake.add_image("x", "1", IMAGE)
    fake.token_auth = ("alice", "secret")
    target = RedirectTarget(dict(fake.blobs))
    try:
        fake.redirect_to = target.url
        big = digest_of(IMAGE.layers[1])
        fake.faults[big] = "redirect"
        pull(engine, fake, creds=Credentials("alice", "secret"))
        assert target.seen, "the blob was not fetched from the redirect target"
        assert all("authorization" not in h for h in target.seen)
        # the registry itself did get the token
        assert any(h.get("authorization") == "Bearer good-token" for _, _, h in fake.requests)
    finally:
        target.close()


def test_token_flow_wrong_password_is_forbidden(engine: Engine, fake: FakeRegistry) -> None:
    fake.add_image("x", "1", IMAGE)
    fake.token_auth = ("alice", "secret")
    with pytest.raises(Forbidden) as exc:
        pull(engine, fake, creds=Credentials("alice", "wrong"))
    assert "incorrect username or password" in str(exc.value)
    assert_clean(engine)


def test_schema1_is_refused(engine: Engine, fake: FakeRegistry) -> None:
    body = json.dumps({"schemaVersion": 1, "name": "x", "tag": "1", "fsLayers": []}).encode()
    fake.manifests["x:1"] = (body, "application/vnd.docker.distribution.manifest.v1+prettyjws")
    with pytest.raises(InvalidArgument) as exc:
        pull(engine, fake)
    assert "schema 1" in str(exc.value)
    assert_clean(engine)


def test_missing_manifest_in_dockers_words(engine: Engine, fake: FakeRegistry) -> None:
    with pytest.raises(NotFound) as exc:
        pull(engine, fake, ref="x:nope")
    assert str(exc.value) == (f"manifest for 127.0.0.1:{fake.port}/x:nope not found: "
                              "manifest unknown: manifest unknown")


def test_index_selects_the_platform_and_layers_already_present_are_skipped(
        engine: Engine, fake: FakeRegistry) -> None:
    arm = make_image([{"arm": b"arm"}], media="oci")
    amd = make_image([{"etc/one": b"1" * 5000}, {"amd": b"amd"}], media="oci")
    fake.add_image("x", "arm", arm)
    fake.add_image("x", "amd", amd)
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [
                 {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "digest": arm.manifest_digest, "size": len(arm.manifest),
                  "platform": {"os": "linux", "architecture": "arm64"}},
                 {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                  "digest": amd.manifest_digest, "size": len(amd.manifest),
                  "platform": {"os": "linux", "architecture": "amd64"}}]}
    fake.manifests["x:multi"] = (json.dumps(index).encode(), index["mediaType"])
    fake.add_image("x", "1", IMAGE)
    pull(engine, fake)  # shares its first layer with amd
    first = digest_of(amd.layers[0])
    hits = fake.hits[first]
    engine.registry.options = OPTS
    results = engine.registry.pull(PullRequest(from_image=f"127.0.0.1:{fake.port}/x:multi",
                                               platform="linux/amd64", tls_verify=False))
    assert results[0].image_id == digest_of(amd.config)
    assert fake.hits[first] == hits  # the layer IMAGE brought is not fetched again
    results = engine.registry.pull(PullRequest(from_image=f"127.0.0.1:{fake.port}/x:multi",
                                               platform="linux/arm64", tls_verify=False))
    assert results[0].image_id == digest_of(arm.config)
    record = engine.image_store.get(results[0].image_id)
    assert record.repo_digests == (f"127.0.0.1:{fake.port}/x@"
                                   f"{digest_of(fake.manifests['x:multi'][0])}",)


def test_engine_pull_by_digest_and_progress(engine: Engine, fake: FakeRegistry) -> None:
    fake.add_image("x", "1", IMAGE)
    engine.registry.options = OPTS
    events: list[JSONMessage] = []
    ref = f"127.0.0.1:{fake.port}/x@{IMAGE.manifest_digest}"
    results = engine.registry.pull(PullRequest(from_image=ref, tls_verify=False), events.append)
    assert results[0].image_id == digest_of(IMAGE.config)
    statuses = [e.status for e in events]
    assert (events[0].id, statuses[0]) == (IMAGE.manifest_digest, "Pulling from x")
    assert "Pull complete" in statuses and "Download complete" in statuses
    assert statuses[-2] == f"Digest: {IMAGE.manifest_digest}"
    assert statuses[-1] == f"Status: Downloaded newer image for {ref}"


def test_mirror_is_tried_first_then_the_registry(engine: Engine, fake: FakeRegistry,
                                                 tmp_path: Path) -> None:
    mirror = FakeRegistry().start()
    try:
        fake.add_image("x", "1", IMAGE)
        conf = tmp_path / "registries.toml"
        conf.write_text(f'insecure-registries = ["127.0.0.1:{fake.port}"]\n'
                        f'[registry-mirrors]\n"127.0.0.1:{fake.port}" = ["{mirror.url}"]\n')
        engine.settings.extra["config_file"] = str(conf)
        engine.registry.options = OPTS
        # the mirror lacks it: fallback
        engine.registry.pull(PullRequest(from_image=f"127.0.0.1:{fake.port}/x:1"))
        assert any(p.startswith("/v2/x/manifests/") for _, p, _ in mirror.requests)
        mirror.add_image("x", "2", IMAGE)
        before = len(fake.requests)
        # served by the mirror alone
        engine.registry.pull(PullRequest(from_image=f"127.0.0.1:{fake.port}/x:2"))
        assert not any("/x/manifests/2" in p for _, p, _ in fake.requests[before:])
    finally:
        mirror.close()


def test_error_categories_are_cargohold_errors() -> None:
    assert issubclass(Unavailable, CargoholdError)
