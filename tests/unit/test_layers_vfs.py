"""LayerStore on the vfs driver (no root needed): layers, chains, rw layers, clean-up."""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import os
import tarfile
from pathlib import Path
from typing import BinaryIO

import pytest

from cargohold.errors import Conflict, InvalidArgument, NotFound
from cargohold.store.drivers import select_driver
from cargohold.store.drivers.vfs import VfsDriver
from cargohold.store.layers import LayerStore, chain_id_of

Entry = tuple[str, bytes | None]  # (name, content); None = directory


def make_tar(*entries: Entry, whiteouts: tuple[str, ...] = ()) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tf.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o644
                tf.addfile(info, io.BytesIO(data))
        for name in whiteouts:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            tf.addfile(info)
    return buf.getvalue()


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def files(root: Path) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for dirpath, dirs, names in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for d in dirs:
            out[os.path.normpath(os.path.join(rel, d))] = None
        for n in names:
            out[os.path.normpath(os.path.join(rel, n))] = Path(dirpath, n).read_bytes()
    return out


BASE = make_tar(("etc", None), ("etc/hostname", b"base\n"), ("bin", None), ("bin/sh", b"#!"))
CHILD = make_tar(("etc", None), ("etc/motd", b"hi\n"), whiteouts=("bin/.wh.sh",))


@pytest.fixture
def store(tmp_path: Path) -> LayerStore:
    return LayerStore(tmp_path, select_driver(tmp_path, "vfs"))


def test_select_driver_records_choice(tmp_path: Path) -> None:
    assert isinstance(select_driver(tmp_path, "vfs"), VfsDriver)
    assert select_driver(tmp_path, "").name == "vfs"
    with pytest.raises(InvalidArgument, match="vfs driver"):
        select_driver(tmp_path, "overlay")
    with pytest.raises(InvalidArgument):
        select_driver(tmp_path / "other", "zfs")


def test_register_base_layer(store: LayerStore) -> None:
    layer = store.register(io.BytesIO(BASE), None)
    assert layer.diff_id == sha(BASE)
    assert layer.chain_id == layer.diff_id
    assert layer.parent is None
    assert layer.size == len(b"base\n") + len(b"#!")
    assert store.get(layer.chain_id) == layer
    assert store.exists(layer.chain_id)
    assert store.list() == [layer]
    assert files(store.diff_path(layer.chain_id)) == {
        "etc": None,
        "etc/hostname": b"base\n",
        "bin": None,
        "bin/sh": b"#!",
    }


def test_child_layer_chain_and_whiteouts(store: LayerStore) -> None:
    base = store.register(io.BytesIO(BASE), None)
    child = store.register(io.BytesIO(CHILD), base.chain_id)
    expected = "sha256:" + hashlib.sha256(f"{base.chain_id} {sha(CHILD)}".encode()).hexdigest()
    assert child.chain_id == expected == chain_id_of(base.chain_id, child.diff_id)
    assert child.parent == base.chain_id
    assert store.chain(child.chain_id) == [base, child]
    view = store.mount_ro(child.chain_id)
    try:
        content = files(view)
    finally:
        store.unmount_ro(view)
    assert content == {"etc": None, "etc/hostname": b"base\n", "etc/motd": b"hi\n", "bin": None}


def test_scratch_view_writes_never_reach_the_layer(store: LayerStore, tmp_path: Path) -> None:
    base = store.register(io.BytesIO(BASE), None)
    child = store.register(io.BytesIO(CHILD), base.chain_id)
    stored = files(store.diff_path(child.chain_id))
    view = store.mount_scratch(child.chain_id)
    assert files(view) == stored
    (view / "etc" / "hostname").write_text("evil\n")
    (view / "new").write_text("new\n")
    os.unlink(view / "etc" / "motd")
    # the same layer's read-only views twice (vfs hands out the layer's own dir for each)
    ro_a, ro_b = store.mount_ro(child.chain_id), store.mount_ro(child.chain_id)
    assert files(ro_a) == stored
    store.unmount_ro(view)
    store.unmount_ro(ro_a)
    store.unmount_ro(ro_b)
    assert files(store.diff_path(child.chain_id)) == stored
    assert not view.exists() and os.listdir(tmp_path / "tmp") == []


def test_identical_layer_stored_once(store: LayerStore, tmp_path: Path) -> None:
    first = store.register(io.BytesIO(BASE), None)
    second = store.register(io.BytesIO(BASE), None)
    assert first == second
    assert len(store.list()) == 1
    assert os.listdir(tmp_path / "tmp") == []


def test_diff_id_covers_trailing_padding(store: LayerStore) -> None:
    padded = BASE + b"\0" * 10240
    layer = store.register(io.BytesIO(padded), None)
    assert layer.diff_id == sha(padded)


def test_rejected_archive_registers_nothing(store: LayerStore, tmp_path: Path) -> None:
    for bad in (BASE[:700], b"this is not a tar archive" * 40):
        with pytest.raises(InvalidArgument):
            store.register(io.BytesIO(bad), None)
    assert store.list() == []
    assert os.listdir(tmp_path / "tmp") == []


def test_unknown_parent(store: LayerStore) -> None:
    with pytest.raises(NotFound):
        store.register(io.BytesIO(BASE), "sha256:" + "1" * 64)
    with pytest.raises(NotFound):
        store.get("sha256:" + "1" * 64)
    assert not store.exists("garbage")


def test_delete_refuses_layers_in_use(store: LayerStore) -> None:
    base = store.register(io.BytesIO(BASE), None)
    child = store.register(io.BytesIO(CHILD), base.chain_id)
    with pytest.raises(Conflict):
        store.delete(base.chain_id)
    store.create_rw("c1", child.chain_id)
    with pytest.raises(Conflict):
        store.delete(child.chain_id)
    store.remove_rw("c1")
    store.delete(child.chain_id)
    store.delete(base.chain_id)
    assert store.list() == []
    with pytest.raises(NotFound):
        store.delete(base.chain_id)


def test_diff_stream_of_base_layer(store: LayerStore) -> None:
    base = store.register(io.BytesIO(BASE), None)
    out = io.BytesIO()
    store.diff_stream(base.chain_id, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tf:
        names = {m.name.lstrip("./").rstrip("/") for m in tf.getmembers()} - {""}
    assert names == {"etc", "etc/hostname", "bin", "bin/sh"}


def test_diff_stream_of_child_has_only_its_changes(store: LayerStore) -> None:
    base = store.register(io.BytesIO(BASE), None)
    child = store.register(io.BytesIO(CHILD), base.chain_id)
    out = io.BytesIO()
    store.diff_stream(child.chain_id, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tf:
        names = {m.name.lstrip("./").rstrip("/") for m in tf.getmembers()}
    assert "etc/motd" in names
    assert "bin/.wh.sh" in names
    assert "etc/hostname" not in names


def test_rw_layer_changes_and_commit(store: LayerStore) -> None:
    base = store.register(io.BytesIO(BASE), None)
    store.create_rw("ctr", base.chain_id)
    with pytest.raises(Conflict):
        store.create_rw("ctr", base.chain_id)
    rootfs = store.mount_rw("ctr")
    assert store.mount_rw("ctr") == rootfs
    (rootfs / "etc" / "new").write_bytes(b"12345")
    os.unlink(rootfs / "bin" / "sh")
    os.makedirs(rootfs / "var" / "log")
    changes = store.rw_changes("ctr")
    assert changes == sorted(changes, key=lambda c: c[1])
    assert {p: k for k, p in changes} == {
        "/bin": "C",
        "/bin/sh": "D",
        "/etc": "C",
        "/etc/new": "A",
        "/var": "A",
        "/var/log": "A",
    }
    assert store.rw_size("ctr") == 5
    out = io.BytesIO()
    store.rw_diff("ctr", out)
    committed = store.register(io.BytesIO(out.getvalue()), base.chain_id)
    view = store.mount_ro(committed.chain_id)
    try:
        content = files(view)
    finally:
        store.unmount_ro(view)
    assert content["etc/new"] == b"12345"
    assert "bin/sh" not in content
    assert content["etc/hostname"] == b"base\n"
    store.unmount_rw("ctr")
    store.unmount_rw("ctr")
    store.remove_rw("ctr")
    store.remove_rw("ctr")
    assert store.list_rw() == []


def test_rw_layer_without_parent(store: LayerStore) -> None:
    store.create_rw("scratch", None)
    rootfs = store.mount_rw("scratch")
    assert os.listdir(rootfs) == []
    assert store.rw_changes("scratch") == []
    assert store.rw_parent("scratch") is None
    store.remove_rw("scratch")


def test_rw_ids_are_validated(store: LayerStore) -> None:
    with pytest.raises(InvalidArgument):
        store.create_rw("../escape", None)
    with pytest.raises(NotFound):
        store.rw_changes("missing")


class _DieAfter:
    """A stream that kills its process after handing out some bytes (a killed import)."""

    def __init__(self, data: bytes, limit: int) -> None:
        self._io = io.BytesIO(data)
        self._limit = limit

    def read(self, n: int = -1) -> bytes:
        if self._io.tell() >= self._limit:
            os._exit(9)
        return self._io.read(min(n, 512) if n > 0 else 512)


def _killed_import(root: str) -> None:
    store = LayerStore(Path(root), select_driver(Path(root), "vfs"))
    stream: BinaryIO = _DieAfter(BASE, 1024)  # type: ignore[assignment]
    store.register(stream, None)


def test_killed_import_leaves_nothing_visible(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    proc = ctx.Process(target=_killed_import, args=(str(tmp_path),))
    proc.start()
    proc.join()
    assert proc.exitcode == 9
    assert os.listdir(tmp_path / "tmp") != []  # the dead import's staging entry
    store = LayerStore(tmp_path, select_driver(tmp_path, ""))
    assert store.list() == []
    layer = store.register(io.BytesIO(BASE), None)
    assert store.list() == [layer]
    assert os.listdir(tmp_path / "tmp") == []
