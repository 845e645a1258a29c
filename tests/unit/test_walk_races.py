"""A container that swaps a directory for a symlink while its tree is read (issue #10 item 7).

Every reader of a container's files (``export``, both ``commit`` paths, ``diff``, the size of
a rw layer, ``cp``) must read what the container has, never host files.  The swap is made
deterministic by wrapping ``os.scandir``: right after the listing of a chosen directory was
taken (each entry's lstat included), its subdirectory ``victim`` is moved away and replaced
by a symlink to a host directory holding a marker file.  A walk by path names then goes on
in the host directory; a walk by descriptors must not.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import tarfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cargohold.config import Settings
from cargohold.container.copy import copy_out
from cargohold.container.model import ContainerConfig, ContainerRecord
from cargohold.engine import Engine
from cargohold.errors import NotFound
from cargohold.runtime.fake import FakeRuntime
from cargohold.store.archive import (
    write_layer_from_diff,
    write_layer_from_dir,
    write_layer_from_upper,
)
from cargohold.store.drivers.base import Layout
from cargohold.store.drivers.overlay import OverlayDriver
from cargohold.store.drivers.vfs import tree_changes
from cargohold.util.ids import random_id

SECRET = b"HOST-SECRET-CONTENT"
MARKER = "host-marker-name"
REAL_SCANDIR = os.scandir


class _Listing:
    """A finished listing that behaves like the iterator ``os.scandir`` returns."""

    def __init__(self, entries: list[os.DirEntry[str]]) -> None:
        self.entries = entries

    def __enter__(self) -> _Listing:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __iter__(self) -> Iterator[os.DirEntry[str]]:
        return iter(self.entries)

    def close(self) -> None:
        return None


class Swapper:
    """Replaces ``parent/victim`` by a symlink to ``target`` right after ``parent`` is listed."""

    def __init__(self, parent: Path, target: Path, stash: Path) -> None:
        st = os.stat(parent)
        self.key = (st.st_dev, st.st_ino)
        self.parent, self.target, self.stash = parent, target, stash
        self.swapped = False

    def __call__(self, arg: Any = ".") -> Any:
        it = REAL_SCANDIR(arg)
        st = os.fstat(arg) if isinstance(arg, int) else os.stat(arg)
        if self.swapped or (st.st_dev, st.st_ino) != self.key:
            return it
        with it:
            entries = list(it)
        for entry in entries:
            entry.stat(follow_symlinks=False)  # cached: the listing saw a directory
        os.rename(self.parent / "victim", self.stash)
        os.symlink(str(self.target), self.parent / "victim")
        self.swapped = True
        return _Listing(entries)


@pytest.fixture
def host_dir(tmp_path: Path) -> Path:
    """A host directory a walk must never read: a marker name holding secret content."""
    host = tmp_path / "host"
    host.mkdir()
    (host / MARKER).write_bytes(SECRET)
    return host


def container_tree(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "victim").mkdir()
    (root / "victim" / "own").write_bytes(b"container content")
    (root / "z-after").write_bytes(b"listed after the victim")


def swap_during(monkeypatch: pytest.MonkeyPatch, parent: Path, host: Path) -> Swapper:
    swapper = Swapper(parent, host, parent.parent / f"stash-{random_id()[:8]}")
    monkeypatch.setattr(os, "scandir", swapper)
    monkeypatch.setattr(os, "listdir", lambda arg=".": [e.name for e in swapper(arg)])
    return swapper


def tar_of(write: Callable[..., None], *args: Path) -> bytes:
    buf = io.BytesIO()
    write(*args, buf)
    return buf.getvalue()


def members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return {m.name: m for m in tf}


def assert_no_host_file(data: bytes) -> None:
    assert SECRET not in data
    names = list(members(data))
    assert not any(MARKER in n for n in names), names


def test_export_walk_does_not_follow_a_directory_swapped_for_a_symlink(
    tmp_path: Path, host_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "rootfs"
    container_tree(root)
    swapper = swap_during(monkeypatch, root, host_dir)
    data = tar_of(write_layer_from_dir, root)
    assert swapper.swapped
    assert_no_host_file(data)
    entries = members(data)
    # what the container has at that path when it is read: the symlink
    assert entries["victim"].issym() and entries["victim"].linkname == str(host_dir)
    assert "z-after" in entries


def test_commit_of_an_upper_dir_does_not_follow_a_swapped_directory(
    tmp_path: Path, host_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    upper = tmp_path / "upper"
    container_tree(upper)
    swap_during(monkeypatch, upper, host_dir)
    assert_no_host_file(tar_of(write_layer_from_upper, upper))


def test_commit_of_a_vfs_rootfs_does_not_follow_a_swapped_directory(
    tmp_path: Path, host_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lower, upper = tmp_path / "lower", tmp_path / "rootfs"
    lower.mkdir()
    container_tree(upper)
    swap_during(monkeypatch, upper, host_dir)
    assert_no_host_file(tar_of(write_layer_from_diff, lower, upper))


def test_diff_on_vfs_lists_no_host_names(
    tmp_path: Path, host_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lower, rootfs = tmp_path / "lower", tmp_path / "rootfs"
    lower.mkdir()
    container_tree(rootfs)
    swap_during(monkeypatch, rootfs, host_dir)
    changes = tree_changes(lower, rootfs)
    assert not any(MARKER in path for _, path in changes), changes
    assert ("A", "/victim") in changes


def test_diff_and_size_on_overlay_read_no_host_entries(
    tmp_path: Path, host_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = Layout(tmp_path / "store")
    (layout.layers / "base" / "diff").mkdir(parents=True)
    rw = layout.rw("ctr")
    container_tree(rw / "upper")
    driver = OverlayDriver(layout)
    swap_during(monkeypatch, rw / "upper", host_dir)
    changes = driver.rw_changes(rw, ["base"])
    assert not any(MARKER in path for _, path in changes), changes
    # the next walk sees the symlink itself: its size is the only thing counted
    assert driver.rw_size(rw, ["base"]) == len(b"listed after the victim")


def test_cp_out_of_a_container_does_not_follow_a_swapped_directory(
    tmp_path: Path, host_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "rootfs"
    container_tree(root)
    swapper = swap_during(monkeypatch, root, host_dir)
    out = io.BytesIO()
    copy_out(root, "/", "-", stream=out)
    assert swapper.swapped
    assert_no_host_file(out.getvalue())


def _cp_tar(root: Path, out: io.BytesIO) -> None:
    copy_out(root, "/.", "-", stream=out)


@pytest.mark.parametrize("write", [write_layer_from_dir, _cp_tar], ids=["export", "cp"])
def test_a_file_swapped_for_a_fifo_is_never_opened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, write: Callable[..., None]
) -> None:
    """Opening a FIFO blocks until a writer comes (a device node may act on the host):
    a regular file replaced by one after it was listed must not be opened."""
    root = tmp_path / "rootfs"
    root.mkdir()
    (root / "victim").write_bytes(b"x" * 10)
    st = os.stat(root)
    key = (st.st_dev, st.st_ino)
    real_scandir, real_stat = os.scandir, os.stat

    def swap() -> None:
        os.unlink(root / "victim")
        os.mkfifo(root / "victim")

    def scandir(arg: Any = ".") -> Any:  # swap right after the listing of the root ...
        it = real_scandir(arg)
        here = os.fstat(arg) if isinstance(arg, int) else real_stat(arg)
        if (here.st_dev, here.st_ino) != key or not (root / "victim").is_file():
            return it
        with it:
            entries = list(it)
        for entry in entries:
            entry.stat(follow_symlinks=False)
        swap()
        return _Listing(entries)

    def stat_then_swap(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        result = real_stat(path, *args, **kwargs)  # ... or right after victim's own lstat
        if path == "victim" and stat.S_ISREG(result.st_mode) and "dir_fd" in kwargs:
            swap()
        return result

    opened_by_walk = threading.Event()
    done = threading.Event()

    def watch() -> None:  # a writer end opens only while a reader holds the FIFO open
        while not done.is_set():
            try:
                fd = os.open(root / "victim", os.O_WRONLY | os.O_NONBLOCK)
            except OSError:
                time.sleep(0.005)
                continue
            fifo = stat.S_ISFIFO(os.fstat(fd).st_mode)  # not the regular file of before
            os.close(fd)  # lets a blocked reader see EOF
            if fifo:
                opened_by_walk.set()
                return
            time.sleep(0.005)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "stat", stat_then_swap)
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        data = b""
        with contextlib.suppress(NotFound):  # cp: "victim: changed during the copy"
            data = tar_of(write, root)
    finally:
        done.set()
        watcher.join(5)
    assert not opened_by_walk.is_set()
    if write is write_layer_from_dir:
        assert members(data)["victim"].isfifo()


# -- through the engine: export, commit --pause=false, diff of a (vfs) container --------------


class World:
    def __init__(self, tmp: Path) -> None:
        self.engine = Engine(Settings(root=tmp / "root", runroot=tmp / "run",
                                      storage_driver="vfs"), runtime=FakeRuntime())
        src = tmp / "base.tar"
        with tarfile.open(src, "w") as tf:
            info = tarfile.TarInfo("etc")
            info.type = tarfile.DIRTYPE
            tf.addfile(info)
        self.image_id = self.engine.images.import_tarball(str(src), "base:1", [], "imported")

    def container(self) -> tuple[str, Path]:
        cid = random_id()
        store = self.engine.container_store
        config = ContainerConfig(cmd=("sh",), image="base:1")
        store.add(ContainerRecord(id=cid, name="", image_id=self.image_id, path="sh",
                                  config=config, layer_id=cid))  # fmt: skip
        image = self.engine.image_store.get(self.image_id)
        self.engine.layers.create_rw(cid, image.top_layer)
        rootfs = self.engine.layers.mount_rw(cid)
        bundle = store.bundle_dir(cid)
        bundle.mkdir(parents=True)
        (bundle / "config.json").write_text(json.dumps({"root": {"path": str(rootfs)}}))
        container_tree(rootfs)
        return cid, rootfs


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_engine_export_commit_and_diff_of_a_swapping_container(
    world: World, host_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ops = world.engine.container_ops
    cid, rootfs = world.container()
    swap_during(monkeypatch, rootfs, host_dir)
    out = io.BytesIO()
    ops.export(cid, out)
    assert_no_host_file(out.getvalue())

    # the same swap again for commit --pause=false and for diff
    os.unlink(rootfs / "victim")
    (rootfs / "victim").mkdir()
    swap_during(monkeypatch, rootfs, host_dir)
    image_id = ops.commit(cid, "committed:1", pause=False)
    chain = world.engine.image_store.get(image_id).top_layer
    assert chain is not None
    layer_tar = io.BytesIO()
    world.engine.layers.diff_stream(chain, layer_tar)
    assert_no_host_file(layer_tar.getvalue())
    assert not list(world.engine.layers.layout.layers.glob(f"*/diff/**/{MARKER}"))

    os.unlink(rootfs / "victim")
    (rootfs / "victim").mkdir()
    swap_during(monkeypatch, rootfs, host_dir)
    changes = ops.changes(cid)
    assert not any(MARKER in path for _, path in changes), changes
