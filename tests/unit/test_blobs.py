"""BlobStore: content addressing, verification while writing, nothing left on failure."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from cargohold.errors import InvalidArgument, NotFound
from cargohold.store.blobs import BlobStore


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def leftovers(root: Path) -> list[str]:
    tmp = root / "tmp"
    return sorted(os.listdir(tmp)) if tmp.exists() else []


def test_put_read_round_trip(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    d = store.put(b"hello")
    assert d == digest(b"hello")
    assert store.has(d)
    assert store.read(d) == b"hello"
    assert store.size(d) == 5
    assert store.path(d) == tmp_path / "blobs" / "sha256" / d[7:]
    with store.open(d) as f:
        assert f.read() == b"hello"
    assert store.list() == [d]


def test_put_twice_stores_once(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    assert store.put(b"x") == store.put(b"x")
    assert len(store.list()) == 1


def test_streaming_writer_with_expected_digest(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    data = os.urandom(300_000)
    with store.writer(expected=digest(data), size=len(data)) as w:
        for i in range(0, len(data), 65536):
            w.write(data[i : i + 65536])
        assert w.commit() == digest(data)
    assert store.read(digest(data)) == data
    assert leftovers(tmp_path) == []


def test_digest_mismatch_leaves_nothing(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    wrong = digest(b"other")
    with pytest.raises(InvalidArgument, match="digest mismatch"), store.writer(expected=wrong) as w:
        w.write(b"content")
        w.commit()
    assert not store.has(wrong)
    assert not store.has(digest(b"content"))
    assert leftovers(tmp_path) == []


def test_size_mismatch_is_rejected(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    with pytest.raises(InvalidArgument, match="size"), store.writer(size=3) as w:
        w.write(b"four")
    with pytest.raises(InvalidArgument, match="size"), store.writer(size=10) as w:
        w.write(b"four")
        w.commit()
    assert store.list() == []
    assert leftovers(tmp_path) == []


def test_exception_while_writing_leaves_nothing(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    with pytest.raises(RuntimeError), store.writer() as w:
        w.write(b"partial")
        raise RuntimeError("network dropped")
    assert store.list() == []
    assert leftovers(tmp_path) == []


def test_missing_blob_and_bad_digest(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    missing = digest(b"nope")
    assert not store.has(missing)
    with pytest.raises(NotFound):
        store.read(missing)
    with pytest.raises(NotFound):
        store.size(missing)
    with pytest.raises(NotFound):
        store.delete(missing)
    with pytest.raises(InvalidArgument):
        store.path("sha256:../../etc/passwd")


def test_delete(tmp_path: Path) -> None:
    store = BlobStore(tmp_path)
    d = store.put(b"gone soon")
    store.delete(d)
    assert not store.has(d)


def test_writer_of_a_killed_process_is_cleaned_up(tmp_path: Path) -> None:
    import multiprocessing

    def die_mid_write() -> None:
        w = BlobStore(tmp_path).writer()
        w.write(b"half a blob")
        os._exit(3)

    proc = multiprocessing.get_context("fork").Process(target=die_mid_write)
    proc.start()
    proc.join()
    assert proc.exitcode == 3
    assert len(leftovers(tmp_path)) == 1
    store = BlobStore(tmp_path)
    store.put(b"next")
    assert leftovers(tmp_path) == []
    assert store.list() == [digest(b"next")]
