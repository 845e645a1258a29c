"""Several processes mutating one store at once: nothing lost, nothing stored twice."""

from __future__ import annotations

import io
import json
import multiprocessing
import os
import tarfile
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from cargohold.store.blobs import BlobStore
from cargohold.store.drivers import select_driver
from cargohold.store.images import ImageStore
from cargohold.store.layers import LayerStore
from cargohold.store.locking import Staging, clean_stale

CTX = multiprocessing.get_context("fork")


def big_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for n in range(200):
            data = (f"file {n}\n" * 200).encode()
            info = tarfile.TarInfo(f"dir{n % 7}/f{n}")
            info.size = len(data)
            info.mtime = 1_700_000_000
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _register(root: str, data: bytes, barrier: Barrier, results: Any) -> None:
    store = LayerStore(Path(root), select_driver(Path(root), "vfs"))
    barrier.wait()
    layer = store.register(io.BytesIO(data), None)
    results.put(layer.chain_id)


def test_concurrent_registers_of_one_layer_both_succeed_and_store_once(tmp_path: Path) -> None:
    data = big_tar()
    barrier = CTX.Barrier(2)
    results = CTX.Queue()
    procs = [
        CTX.Process(target=_register, args=(str(tmp_path), data, barrier, results))
        for _ in range(2)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert [p.exitcode for p in procs] == [0, 0]
    ids = {results.get(timeout=5), results.get(timeout=5)}
    assert len(ids) == 1
    store = LayerStore(tmp_path, select_driver(tmp_path, "vfs"))
    assert [layer.chain_id for layer in store.list()] == list(ids)
    assert os.listdir(tmp_path / "tmp") == []


def _add_images(root: str, worker: int, barrier: Barrier) -> None:
    images = ImageStore(Path(root), BlobStore(Path(root)))
    barrier.wait()
    for n in range(10):
        cfg = json.dumps({"os": "linux", "worker": worker, "n": n,
                          "rootfs": {"type": "layers", "diff_ids": []}}).encode()
        rec = images.add(cfg, None)
        images.tag(rec.id, f"localhost/w{worker}:{n}")
        images.tag(rec.id, "localhost/shared:latest")


def test_concurrent_image_mutations_lose_nothing(tmp_path: Path) -> None:
    barrier = CTX.Barrier(4)
    procs = [CTX.Process(target=_add_images, args=(str(tmp_path), w, barrier)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    images = ImageStore(tmp_path, BlobStore(tmp_path))
    records = images.list()
    assert len(records) == 40
    tags = [t for r in records for t in r.repo_tags]
    assert tags.count("localhost/shared:latest") == 1
    assert sorted(t for t in tags if t != "localhost/shared:latest") == sorted(
        f"localhost/w{w}:{n}" for w in range(4) for n in range(10)
    )


def _put_blob(root: str, barrier: Barrier) -> None:
    blobs = BlobStore(Path(root))
    barrier.wait()
    for _ in range(20):
        with blobs.writer() as w:
            w.write(b"same content" * 1000)
            w.commit()


def test_concurrent_writers_of_one_blob(tmp_path: Path) -> None:
    barrier = CTX.Barrier(3)
    procs = [CTX.Process(target=_put_blob, args=(str(tmp_path), barrier)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    assert [p.exitcode for p in procs] == [0, 0, 0]
    blobs = BlobStore(tmp_path)
    (only,) = blobs.list()
    assert blobs.read(only) == b"same content" * 1000
    assert os.listdir(tmp_path / "tmp") == []


def test_clean_stale_spares_live_staging(tmp_path: Path) -> None:
    live = Staging(tmp_path / "tmp", "layer")
    (live.path / "partial").write_bytes(b"x")
    assert clean_stale(tmp_path / "tmp") == 0
    assert (live.path / "partial").exists()
    live.close()
    assert not live.path.exists()


def _abandon(root: str) -> None:
    stage = Staging(Path(root) / "tmp", "layer")
    (stage.path / "sub").mkdir()
    (stage.path / "sub" / "file").write_bytes(b"half")
    os.chmod(stage.path / "sub", 0o500)
    os._exit(0)


def test_clean_stale_removes_abandoned_staging(tmp_path: Path) -> None:
    proc = CTX.Process(target=_abandon, args=(str(tmp_path),))
    proc.start()
    proc.join()
    assert len(os.listdir(tmp_path / "tmp")) == 1
    assert clean_stale(tmp_path / "tmp") == 1
    assert os.listdir(tmp_path / "tmp") == []
