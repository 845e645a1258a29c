"""ImageStore: records, tags, repo digests, name resolution, the one-file index."""

from __future__ import annotations

import builtins
import json
from pathlib import Path
from typing import Any

import pytest

from cargohold.errors import InvalidArgument, NotFound
from cargohold.store.blobs import BlobStore
from cargohold.store.images import ImageStore

CENTOS = "docker.io/library/centos:7"


def config(n: int, created: str = "2024-01-02T03:04:05Z") -> bytes:
    doc = {
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": {"Cmd": ["/bin/sh", str(n)]},
        "rootfs": {"type": "layers", "diff_ids": []},
    }
    return json.dumps(doc).encode()


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    return ImageStore(tmp_path, BlobStore(tmp_path))


def test_add_is_idempotent_and_keeps_config(store: ImageStore) -> None:
    rec = store.add(config(1), None, manifest_digest=None, size=42)
    again = store.add(config(1), None, manifest_digest="sha256:" + "a" * 64)
    assert rec.id == again.id
    assert rec.id.startswith("sha256:") and len(rec.id) == 71
    assert again.manifest_digest == "sha256:" + "a" * 64
    assert [r.id for r in store.list()] == [rec.id]
    assert store.config(rec.id)["config"]["Cmd"] == ["/bin/sh", "1"]
    assert store.get(rec.id).config_created == "2024-01-02T03:04:05Z"
    assert store.get(rec.id).size == 42
    assert store.blobs.has(rec.id)


def test_invalid_config_is_rejected(store: ImageStore) -> None:
    with pytest.raises(InvalidArgument):
        store.add(b"{not json", None)
    assert store.list() == []


def test_tag_moves_between_images(store: ImageStore) -> None:
    a = store.add(config(1), None)
    b = store.add(config(2), None)
    store.tag(a.id, CENTOS)
    store.tag(a.id, CENTOS)  # tagging twice keeps one entry
    assert store.get(a.id).repo_tags == (CENTOS,)
    store.tag(b.id, CENTOS)
    assert store.get(a.id).repo_tags == ()
    assert store.get(b.id).repo_tags == (CENTOS,)
    found = store.by_tag(CENTOS)
    assert found is not None and found.id == b.id
    assert store.by_tag("docker.io/library/other:latest") is None


def test_untag(store: ImageStore) -> None:
    a = store.add(config(1), None)
    store.tag(a.id, CENTOS)
    store.tag(a.id, "localhost/mine:1")
    rec = store.untag(CENTOS)
    assert rec.id == a.id
    assert rec.repo_tags == ("localhost/mine:1",)
    with pytest.raises(NotFound, match=r"No such image: docker\.io/library/centos:7"):
        store.untag(CENTOS)


def test_tag_unknown_image(store: ImageStore) -> None:
    with pytest.raises(NotFound, match="No such image"):
        store.tag("sha256:" + "0" * 64, CENTOS)


def test_repo_digests(store: ImageStore) -> None:
    a = store.add(config(1), None)
    ref = "docker.io/library/centos@sha256:" + "b" * 64
    store.add_repo_digest(a.id, ref)
    store.add_repo_digest(a.id, ref)
    assert store.get(a.id).repo_digests == (ref,)
    assert store.resolve(ref).id == a.id


def test_resolve_forms(store: ImageStore) -> None:
    a = store.add(config(1), None)
    store.add(config(2), None)
    store.tag(a.id, CENTOS)
    hex_id = a.id[7:]
    assert store.resolve(CENTOS).id == a.id
    assert store.resolve(a.id).id == a.id
    assert store.resolve(hex_id).id == a.id
    assert store.resolve(hex_id[:12]).id == a.id
    assert store.resolve("sha256:" + hex_id[:12]).id == a.id
    with pytest.raises(NotFound, match="No such image: nothere"):
        store.resolve("nothere")


def test_ambiguous_prefix_is_not_found(tmp_path: Path) -> None:
    store = ImageStore(tmp_path, BlobStore(tmp_path))
    ids = [store.add(config(n), None).id for n in range(40)]
    # with 40 ids over 16 first digits, some first digit is shared by two of them
    firsts = [i[7] for i in ids]
    shared = next(c for c in firsts if firsts.count(c) > 1)
    with pytest.raises(NotFound):
        store.resolve(shared)


def test_delete_removes_record_tags_and_config(store: ImageStore) -> None:
    a = store.add(config(1), None)
    store.tag(a.id, CENTOS)
    store.delete(a.id)
    assert store.list() == []
    assert store.by_tag(CENTOS) is None
    assert not store.blobs.has(a.id)
    with pytest.raises(NotFound):
        store.get(a.id)
    with pytest.raises(NotFound):
        store.delete(a.id)


def test_records_survive_a_new_store_object(tmp_path: Path) -> None:
    first = ImageStore(tmp_path, BlobStore(tmp_path))
    a = first.add(config(1), "sha256:" + "c" * 64)
    first.tag(a.id, CENTOS)
    second = ImageStore(tmp_path, BlobStore(tmp_path))
    rec = second.resolve(CENTOS)
    assert rec.top_layer == "sha256:" + "c" * 64
    assert rec.repo_tags == (CENTOS,)


def test_listing_fifty_images_reads_one_small_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = ImageStore(tmp_path, BlobStore(tmp_path))
    for n in range(50):
        rec = store.add(config(n), None, size=n)
        store.tag(rec.id, f"docker.io/library/img{n}:latest")
    fresh = ImageStore(tmp_path, BlobStore(tmp_path))
    opened: list[str] = []
    real_open = builtins.open

    def spy(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", spy)
    listed = fresh.list()
    monkeypatch.undo()
    assert len(listed) == 50
    assert opened == [str(tmp_path / "images" / "index.json")]
    assert {r.config_created for r in listed} == {"2024-01-02T03:04:05Z"}
    assert sorted(r.size for r in listed) == list(range(50))
