"""A hostile registry (security issue #10, items 11-13): credentials never reach another
origin, no response body is read without a bound, and a push never stands on a blob digest
that a manifest merely claimed."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_fake import FakeImage, FakeRegistry, digest_of, make_image

from cargohold.config import Settings
from cargohold.engine import Engine
from cargohold.engine.images.requests import PullRequest, PushRequest
from cargohold.errors import Forbidden, InvalidArgument, NotFound, Unavailable
from cargohold.transport.registry.auth import Credentials
from cargohold.transport.registry.client import ClientOptions, RegistryClient
from cargohold.transport.registry.events import JSONMessage
from cargohold.transport.registry.hosts import Endpoint

OPTS = ClientOptions(retries=2, backoff=0.01, read_timeout=5.0, connect_timeout=2.0,
                     stall_timeout=2.0, min_speed=1000)
HUGE = 256 << 20  # bytes of a hostile body (made as it is sent, never held)
SLACK = 16 << 20  # socket buffers: what a server may get out before the client hangs up


def new_engine(path: Path) -> Engine:
    eng = Engine(Settings(root=path / "root", runroot=path / "run", storage_driver="vfs"))
    eng.registry.options = OPTS
    return eng


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return new_engine(tmp_path / "a")


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    reg = FakeRegistry().start()
    try:
        yield reg
    finally:
        reg.close()


@pytest.fixture
def other(fake: FakeRegistry) -> Iterator[FakeRegistry]:
    """The same registry's content served on another origin (127.0.0.1, another port)."""
    reg = fake.sharing().start()
    try:
        yield reg
    finally:
        reg.close()


def host(fake: FakeRegistry) -> str:
    return f"127.0.0.1:{fake.port}"


def log_in(engine: Engine, fake: FakeRegistry, tmp_path: Path) -> None:
    fake.token_auth = ("alice", "secret")
    auth = tmp_path / "docker-config.json"
    auth.write_text(json.dumps({"auths": {host(fake): {
        "auth": base64.b64encode(b"alice:secret").decode()}}}))
    engine.settings.extra["auth_file"] = str(auth)


def import_image(engine: Engine, tmp_path: Path, name: str, files: dict[str, bytes]) -> str:
    tar = tmp_path / f"rootfs-{len(os.listdir(tmp_path))}.tar"
    with tarfile.open(tar, "w") as tf:
        for path, data in files.items():
            info = tarfile.TarInfo(path)
            info.size, info.mode = len(data), 0o644
            tf.addfile(info, io.BytesIO(data))
    return engine.images.import_tarball(str(tar), name, [], "")


def credentials_seen(reg: FakeRegistry) -> list[str]:
    return [f"{m} {p}" for m, p, h in reg.requests if "authorization" in h]


# ---- item 11: credentials stay with the origin that issued the challenge ------------------

def test_origin_is_normalised_as_distribution_compares_urls() -> None:
    from cargohold.transport.registry.client import origin

    assert origin("HTTP://Reg.Example:80/v2/") == origin("http://reg.example/v2/x")
    assert origin("https://reg.example/") == origin("https://reg.example:443/")
    assert origin("http://127.0.0.1:5000/") != origin("http://127.0.0.1:5001/")
    assert origin("http://reg.example/") != origin("https://reg.example/")


def test_upload_location_on_another_origin_gets_no_credentials(
        engine: Engine, fake: FakeRegistry, other: FakeRegistry, tmp_path: Path) -> None:
    log_in(engine, fake, tmp_path)
    fake.upload_base = other.url  # every upload continues on the other server
    name = f"{host(fake)}/team/app:1"
    image_id = import_image(engine, tmp_path, name, {"etc/data": os.urandom(50_000)})
    events: list[JSONMessage] = []
    result = engine.registry.push(PushRequest(name=name, tls_verify=False), events.append)[0]

    assert credentials_seen(other) == []
    assert [m for m, _, _ in other.requests].count("PUT") == 2  # the layer and the config
    assert any(h.get("authorization") == "Bearer good-token" for m, _, h in fake.requests
               if m == "POST")  # the registry itself was asked with its token
    assert "Pushed" in [e.status for e in events]
    fresh = new_engine(tmp_path / "b")
    fresh.settings.extra["auth_file"] = engine.settings.extra["auth_file"]
    pulled = fresh.registry.pull(PullRequest(from_image=f"{host(fake)}/team/app@{result.digest}",
                                                 tls_verify=False))
    assert pulled[0].image_id == image_id


def test_a_challenge_from_another_origin_is_not_answered(
        engine: Engine, fake: FakeRegistry, other: FakeRegistry, tmp_path: Path) -> None:
    """The other server asks for a token from a realm of its own: it must not get the
    registry's Basic credentials (nor its token), and the push fails in plain words."""
    log_in(engine, fake, tmp_path)
    other.token_auth = ("alice", "secret")
    fake.upload_base = other.url
    name = f"{host(fake)}/team/app:1"
    import_image(engine, tmp_path, name, {"etc/data": b"x" * 1000})
    with pytest.raises(Forbidden) as exc:
        engine.registry.push(PushRequest(name=name, tls_verify=False))
    assert "authentication required" in str(exc.value)
    assert other.requests and credentials_seen(other) == []
    assert not any(p.startswith("/token") for _, p, _ in other.requests)


def test_blob_redirect_to_an_origin_that_challenges_gets_no_credentials(
        engine: Engine, fake: FakeRegistry, other: FakeRegistry, tmp_path: Path) -> None:
    img = make_image([{"etc/one": os.urandom(20_000)}])
    fake.add_image("x", "1", img)
    log_in(engine, fake, tmp_path)
    other.token_auth = ("alice", "secret")
    fake.faults[digest_of(img.layers[0])] = "redirect"
    fake.redirect_to = other.url
    with pytest.raises(Forbidden):
        engine.registry.pull(PullRequest(from_image=f"{host(fake)}/x:1", tls_verify=False))
    assert other.requests and credentials_seen(other) == []
    assert engine.image_store.list() == []


def test_tags_next_page_on_another_origin_gets_no_credentials(
        engine: Engine, fake: FakeRegistry, other: FakeRegistry, tmp_path: Path) -> None:
    img = make_image([{"etc/one": b"1"}])
    for tag in ("a", "b", "c"):
        fake.add_image("x", tag, img)
    log_in(engine, fake, tmp_path)
    fake.tags_page = 2
    fake.link_base = other.url  # page 2 comes from the other server
    results = engine.registry.pull(PullRequest(from_image=f"{host(fake)}/x", all_tags=True,
                                                     tls_verify=False))
    assert [r.familiar for r in results] == [f"{host(fake)}/x:{t}" for t in "abc"]
    assert any("/tags/list" in p for _, p, _ in other.requests)
    assert credentials_seen(other) == []


@pytest.mark.parametrize("link", ["</v2/x/tags/list>", "<{url}/v2/x/tags/list?last=a>"])
def test_tags_pages_that_loop_end_in_an_error(fake: FakeRegistry, link: str) -> None:
    import threading

    fake.add_image("x", "a", make_image([{"etc/one": b"1"}]))
    fake.tags_link = link.format(url=fake.url) + '; rel="next"'
    client = client_for(fake)
    outcome: list[BaseException | list[str]] = []

    def run() -> None:
        try:
            outcome.append(client.list_tags("x", "x"))
        except BaseException as e:
            outcome.append(e)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(10)
    client.close()
    assert outcome, "the listing never ended"
    assert isinstance(outcome[0], InvalidArgument)
    assert str(outcome[0]) == "tags of x: the registry's pages loop"


# ---- item 12: every body read is bounded ---------------------------------------------------

def settle(reg: FakeRegistry, path: str) -> int:
    """The bytes the server got out for ``path`` once it stopped sending (or 10 s)."""
    deadline, last, since = time.monotonic() + 10, -1, time.monotonic()
    while time.monotonic() < deadline:
        now = reg.sent.get(path, 0)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since > 0.5:
            break
        time.sleep(0.05)
    return last


def client_for(fake: FakeRegistry, creds: Credentials | None = None) -> RegistryClient:
    return RegistryClient(host(fake), Endpoint(fake.url, tls_verify=False), creds, OPTS,
                          sleep=lambda s: None)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_huge_error_body_is_not_read(engine: Engine, fake: FakeRegistry,
                                     chunked: bool) -> None:
    path = "/v2/x/manifests/1"
    fake.huge[path] = (404, HUGE, chunked)
    with pytest.raises(NotFound) as exc:
        engine.registry.pull(PullRequest(from_image=f"{host(fake)}/x:1", tls_verify=False))
    assert str(exc.value) == (f"manifest for {host(fake)}/x:1 not found: "
                              "unexpected status 404 Not Found")
    assert settle(fake, path) < SLACK


@pytest.mark.parametrize("what", ["manifest", "token", "tags"])
def test_oversized_document_is_an_error_naming_it(fake: FakeRegistry, what: str) -> None:
    fake.add_image("x", "1", make_image([{"etc/one": b"1"}]))
    creds = None
    if what == "manifest":
        path, limit = "/v2/x/manifests/1", "4 MiB"
    elif what == "token":
        fake.token_auth = ("alice", "secret")
        path, limit, creds = "/token", "1 MiB", Credentials("alice", "secret")
    else:
        path, limit = "/v2/x/tags/list", "16 MiB"
    fake.huge[path] = (200, HUGE, False)
    client = client_for(fake, creds)
    try:
        with pytest.raises(InvalidArgument) as exc:
            if what == "tags":
                client.list_tags("x", "x")
            else:
                client.get_manifest("x", "1", "x:1", "x")
    finally:
        client.close()
    named = {"manifest": "manifest for x:1", "token": f'token from "{fake.url}/token"',
             "tags": "tags of x"}[what]
    assert str(exc.value) == f"{named}: the response is larger than {limit}"
    assert settle(fake, path) < (16 << 20) + SLACK


def test_huge_error_bodies_of_blob_and_upload_requests_are_not_read(
        fake: FakeRegistry) -> None:
    blob = b"some blob"
    get_path, post_path = f"/v2/x/blobs/{digest_of(blob)}", "/v2/x/blobs/uploads/"
    fake.huge[get_path] = (500, HUGE, True)
    fake.huge[post_path] = (500, HUGE, False)
    client = client_for(fake)
    try:
        with pytest.raises(Unavailable) as exc:
            client.get_blob_bytes("x", digest_of(blob), len(blob))
        assert "unexpected status 500" in str(exc.value)
        with pytest.raises(Unavailable) as exc:
            client.put_blob("x", blob, digest_of(blob))
        assert str(exc.value) == ("starting an upload to x: unexpected status 500 "
                                  "Internal Server Error")
    finally:
        client.close()
    assert settle(fake, get_path) < SLACK and settle(fake, post_path) < SLACK


def test_config_larger_than_the_limit_is_refused_before_reading(fake: FakeRegistry) -> None:
    client = client_for(fake)
    try:
        with pytest.raises(InvalidArgument) as exc:
            client.get_blob_bytes("x", "sha256:" + "0" * 64, 9 << 20)
    finally:
        client.close()
    assert str(exc.value) == (f"blob sha256:{'0' * 64}: {9 << 20} bytes is larger than the "
                              "8 MiB limit")
    assert fake.requests == []


def test_long_error_text_is_cut() -> None:
    from urllib3 import HTTPResponse

    from cargohold.transport.registry.client import error_detail

    body = json.dumps({"errors": [{"code": "DENIED", "message": "m" * 50_000}]}).encode()
    resp = HTTPResponse(body=io.BytesIO(body), status=403, reason="Forbidden",
                        preload_content=False)
    detail = error_detail(resp)
    assert detail == ("denied: " + "m" * 50_000)[:1024] + "... (truncated)"
    assert error_detail(resp) == detail  # the body was read once and kept


def test_pull_of_a_gigabyte_error_body_keeps_memory_small(fake: FakeRegistry,
                                                           tmp_path: Path) -> None:
    """What a user sees: ``pull`` fails with the registry's status at once, and the process
    never holds the body.  The CLI runs as the grandchild of a small launcher whose wait4
    gives its peak RSS: a direct child's ru_maxrss would also count this (large) test
    process, whose memory the child is vforked from."""
    path = "/v2/x/manifests/1"
    fake.huge[path] = (404, 1 << 30, False)
    env = dict(os.environ, DOCKER_CONFIG=str(tmp_path / "docker"),
               CARGOHOLD_CONFIG=str(tmp_path / "none.toml"))
    peak = tmp_path / "vmhwm"
    probe = ("import os, sys\n"
             "pid = os.fork()\n"
             "if pid == 0:\n"
             "    os.execv(sys.executable, [sys.executable, '-m', 'cargohold', *sys.argv[2:]])\n"
             "_, status, usage = os.wait4(pid, 0)\n"
             "with open(sys.argv[1], 'w') as out:\n"
             "    out.write(str(usage.ru_maxrss))\n"
             "sys.exit(os.waitstatus_to_exitcode(status))\n")
    proc = subprocess.run(
        [sys.executable, "-c", probe, str(peak), "--root", str(tmp_path / "root"), "--runroot",
         str(tmp_path / "run"), "--storage-driver", "vfs", "pull", "--tls-verify=false",
         f"{host(fake)}/x:1"], capture_output=True, env=env, check=False)
    assert proc.returncode != 0, proc.stdout
    assert f"manifest for {host(fake)}/x:1 not found" in proc.stderr.decode()
    kib = int(peak.read_text())
    assert kib < 200 * 1024, f"peak RSS of the pull {kib} KiB"
    assert settle(fake, path) < SLACK


def test_import_from_a_url_does_not_read_a_huge_redirect_body(
        engine: Engine, fake: FakeRegistry, tmp_path: Path) -> None:
    from cargohold.builder.dispatch_copy import fetch_url

    tar = io.BytesIO()
    with tarfile.open(fileobj=tar, mode="w") as tf:
        info = tarfile.TarInfo("etc/hello")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"hi"))
    fake.blobs["sha256:tarball"] = tar.getvalue()
    fake.huge["/moved"] = (302, HUGE, False)
    fake.redirect_to = f"{fake.url}/v2/x/blobs/sha256:tarball"
    image_id = engine.images.import_tarball(f"{fake.url}/moved", "imported:1", [], "")
    assert engine.image_store.get(image_id).repo_tags == ("docker.io/library/imported:1",)
    assert settle(fake, "/moved") < SLACK
    fake.sent.clear()
    download = fetch_url(f"{fake.url}/moved", tmp_path / "urls")  # ADD <url>
    assert download.path.read_bytes() == tar.getvalue()
    assert settle(fake, "/moved") < SLACK


# ---- item 13: only verified blob <-> diff_id pairs are remembered -------------------------

def claiming(diff_id: str, blob: bytes) -> FakeImage:
    """An image whose manifest claims ``blob`` for the layer ``diff_id`` (never checked when
    the layer is already present)."""
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                   "size": len(config), "digest": digest_of(config)},
        "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip",
                    "size": len(blob), "digest": digest_of(blob)}]}
    return FakeImage(json.dumps(manifest).encode(), config, [blob])


def test_push_does_not_stand_on_a_blob_a_pull_never_fetched(
        engine: Engine, fake: FakeRegistry, tmp_path: Path) -> None:
    mine = f"{host(fake)}/team/app:1"
    image_id = import_image(engine, tmp_path, mine, {"etc/data": os.urandom(30_000)})
    diff_id = engine.image_store.config(image_id)["rootfs"]["diff_ids"][0]
    bogus = b"not the layer at all"
    fake.add_image("evil/x", "1", claiming(diff_id, bogus))  # the bogus blob is in the registry
    events: list[JSONMessage] = []
    engine.registry.pull(PullRequest(from_image=f"{host(fake)}/evil/x:1", tls_verify=False),
                         events.append)
    assert "Already exists" in [e.status for e in events]  # the layer was present: no download

    target = f"{host(fake)}/other/app:1"
    engine.images.tag(mine, target)
    events.clear()
    result = engine.registry.push(PushRequest(name=target, tls_verify=False), events.append)[0]
    statuses = [e.status for e in events]
    assert "Layer already exists" not in statuses and "Pushed" in statuses
    manifest = json.loads(fake.manifests[f"other/app:{result.digest}"][0])
    assert manifest["layers"][0]["digest"] != digest_of(bogus)

    fresh = new_engine(tmp_path / "b")
    # verifies every blob and diff_id
    pulled = fresh.registry.pull(PullRequest(from_image=target, tls_verify=False))
    assert pulled[0].image_id == image_id


def test_entries_recorded_before_verification_was_required_are_ignored(tmp_path: Path) -> None:
    from cargohold.transport.registry.cache import DigestCache

    path = tmp_path / "blobinfo.json"
    legacy = {"digest": "sha256:" + "1" * 64, "size": 3, "media_type": "x", "compression": "",
              "repos": ["r/a"]}
    made = {"digest": "sha256:" + "2" * 64, "size": 3, "media_type": "x",
            "compression": "gzip:2:8m", "repos": []}
    path.write_text(json.dumps({"sha256:" + "d" * 64: [legacy, made]}))
    cache = DigestCache(path)
    assert [e.digest for e in cache.entries("sha256:" + "d" * 64)] == [made["digest"]]
    cache.record("sha256:" + "d" * 64, legacy["digest"], 3, "x", "", "r/b")  # now verified
    assert len(cache.entries("sha256:" + "d" * 64)) == 2
