"""One conformance suite for every storage driver (overlay, vfs), run as root.

Each test gets its own store root; the fixture detaches every mount under it afterwards,
also when the test fails.
"""

from __future__ import annotations

import io
import multiprocessing
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cargohold.errors import InvalidArgument
from cargohold.store.drivers import overlay_supported, select_driver
from cargohold.store.layers import LayerStore
from cargohold.store.locking import detach_mounts_under, remove_path

DRIVERS = ["overlay", "vfs"]
MTIME = 1_700_000_000


def make_tar(*entries: tuple[str, bytes | None], marks: tuple[str, ...] = ()) -> bytes:
    """Entries: (name, content) with None for a directory; marks: whiteout/opaque names."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.mtime = MTIME
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(info)
            else:
                info.size, info.mode = len(data), 0o644
                tf.addfile(info, io.BytesIO(data))
        for name in marks:
            info = tarfile.TarInfo(name)
            info.mtime = MTIME
            tf.addfile(info)
    return buf.getvalue()


def files(root: Path) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for dirpath, dirs, names in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        for d in dirs:
            out[os.path.normpath(os.path.join(rel, d))] = None
        for n in names:
            out[os.path.normpath(os.path.join(rel, n))] = Path(dirpath, n).read_bytes()
    return out


def tar_names(data: bytes) -> set[str]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return {m.name.removeprefix("./").rstrip("/") for m in tf.getmembers()} - {"", "."}


def mounted(path: Path) -> bool:
    return os.path.ismount(path)


BASE = make_tar(
    ("etc", None),
    ("etc/hostname", b"base\n"),
    ("etc/conf.d", None),
    ("etc/conf.d/a", b"a"),
    ("bin", None),
    ("bin/sh", b"#!"),
)
# deletes bin/sh, replaces etc/conf.d with an opaque directory holding only "b"
CHILD = make_tar(
    ("etc", None),
    ("etc/motd", b"hi\n"),
    ("etc/conf.d", None),
    ("etc/conf.d/b", b"b"),
    marks=("bin/.wh.sh", "etc/conf.d/.wh..wh..opq"),
)
MERGED = {
    "etc": None,
    "etc/hostname": b"base\n",
    "etc/motd": b"hi\n",
    "etc/conf.d": None,
    "etc/conf.d/b": b"b",
    "bin": None,
}


@pytest.fixture(params=DRIVERS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LayerStore]:
    if request.param == "overlay" and not overlay_supported(tmp_path / "probe"):
        pytest.skip("overlayfs is not usable here")
    root = tmp_path / "root"
    try:
        yield LayerStore(root, select_driver(root, request.param))
    finally:
        detach_mounts_under(tmp_path)
        if not any(mounted(Path(d)) for d, _, _ in os.walk(tmp_path)):
            remove_path(tmp_path)


def base_and_child(store: LayerStore) -> tuple[str, str]:
    base = store.register(io.BytesIO(BASE), None)
    child = store.register(io.BytesIO(CHILD), base.chain_id)
    return base.chain_id, child.chain_id


def test_driver_is_the_one_asked_for(store: LayerStore) -> None:
    assert select_driver(store.root, "").name == store.driver.name
    other = "vfs" if store.driver.name == "overlay" else "overlay"
    with pytest.raises(InvalidArgument):
        select_driver(store.root, other)


def test_merged_view_applies_whiteouts_and_opaque_dirs(store: LayerStore) -> None:
    _, child = base_and_child(store)
    view = store.mount_ro(child)
    try:
        assert files(view) == MERGED
    finally:
        store.unmount_ro(view)
    assert not mounted(view)


def test_rw_layer_sees_merged_content_and_records_changes(store: LayerStore) -> None:
    _, child = base_and_child(store)
    store.create_rw("ctr", child)
    rootfs = store.mount_rw("ctr")
    assert store.mount_rw("ctr") == rootfs
    assert files(rootfs) == MERGED
    (rootfs / "etc" / "hostname").write_bytes(b"changed\n")
    (rootfs / "etc" / "motd").unlink()
    (rootfs / "new").mkdir()
    (rootfs / "new" / "file").write_bytes(b"123")
    changes = store.rw_changes("ctr")
    assert changes == sorted(changes, key=lambda c: c[1])
    by_path = {p: k for k, p in changes}
    assert by_path["/etc/hostname"] == "C"
    assert by_path["/etc/motd"] == "D"
    assert by_path["/new"] == "A"
    assert by_path["/new/file"] == "A"
    assert by_path["/etc"] == "C"
    assert "/bin" not in by_path
    assert store.rw_size("ctr") == len(b"changed\n") + 3
    store.unmount_rw("ctr")
    store.unmount_rw("ctr")
    store.remove_rw("ctr")


def test_rw_diff_holds_only_changes_and_commits(store: LayerStore) -> None:
    _, child = base_and_child(store)
    store.create_rw("ctr", child)
    rootfs = store.mount_rw("ctr")
    (rootfs / "etc" / "conf.d" / "c").write_bytes(b"c")
    (rootfs / "etc" / "hostname").unlink()
    out = io.BytesIO()
    store.rw_diff("ctr", out)
    names = tar_names(out.getvalue())
    assert "etc/conf.d/c" in names
    assert "etc/.wh.hostname" in names
    assert "etc/motd" not in names  # unchanged lower content is never part of the diff
    assert "etc/conf.d/b" not in names
    committed = store.register(io.BytesIO(out.getvalue()), child)
    view = store.mount_ro(committed.chain_id)
    try:
        content = files(view)
    finally:
        store.unmount_ro(view)
    expected = dict(MERGED, **{"etc/conf.d/c": b"c"})
    del expected["etc/hostname"]
    assert content == expected
    store.remove_rw("ctr")


def test_unchanged_rw_and_pruned_copied_up_dirs(store: LayerStore) -> None:
    """A file made and removed again in a lower directory (a build's mount point) leaves the
    directory, with its mtime put back, out of the changes: the rw layer is unchanged."""
    _, child = base_and_child(store)
    store.create_rw("ctr", child)
    rootfs = store.mount_rw("ctr")
    assert store.rw_unchanged("ctr")
    st = os.lstat(rootfs / "etc")
    (rootfs / "etc" / "hosts").write_bytes(b"")
    (rootfs / "etc" / "hosts").unlink()
    os.utime(rootfs / "etc", ns=(st.st_atime_ns, st.st_mtime_ns))
    (rootfs / "etc" / "conf.d" / "c").write_bytes(b"c")  # a real change beside it stays
    store.unmount_rw("ctr")
    keep = {"etc": (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns)}
    store.rw_prune_dirs("ctr", {"etc/conf.d": keep["etc"], **keep})
    assert not store.rw_unchanged("ctr")
    out = io.BytesIO()
    store.rw_diff("ctr", out)
    assert "etc/conf.d/c" in tar_names(out.getvalue())
    store.remove_rw("ctr")
    store.create_rw("ctr2", child)
    rootfs = store.mount_rw("ctr2")
    (rootfs / "etc" / "hosts").write_bytes(b"")
    (rootfs / "etc" / "hosts").unlink()
    os.utime(rootfs / "etc", ns=(st.st_atime_ns, st.st_mtime_ns))
    store.unmount_rw("ctr2")
    store.rw_prune_dirs("ctr2", keep)
    assert store.rw_unchanged("ctr2")
    out = io.BytesIO()
    store.rw_diff("ctr2", out)
    assert tar_names(out.getvalue()) == set()
    store.remove_rw("ctr2")


def test_diff_stream_round_trips_through_register(store: LayerStore, tmp_path: Path) -> None:
    base, child = base_and_child(store)
    base_tar, child_tar = io.BytesIO(), io.BytesIO()
    store.diff_stream(base, base_tar)
    store.diff_stream(child, child_tar)
    assert "bin/.wh.sh" in tar_names(child_tar.getvalue())
    assert "etc/hostname" not in tar_names(child_tar.getvalue())
    other_root = tmp_path / "other"
    other = LayerStore(other_root, select_driver(other_root, store.driver.name))
    b = other.register(io.BytesIO(base_tar.getvalue()), None)
    c = other.register(io.BytesIO(child_tar.getvalue()), b.chain_id)
    view = other.mount_ro(c.chain_id)
    try:
        assert files(view) == MERGED
    finally:
        other.unmount_ro(view)


def test_remove_rw_unmounts_first(store: LayerStore) -> None:
    base, _ = base_and_child(store)
    store.create_rw("ctr", base)
    rootfs = store.mount_rw("ctr")
    (rootfs / "x").write_bytes(b"x")
    store.remove_rw("ctr")
    store.remove_rw("ctr")
    assert not mounted(rootfs)
    assert not rootfs.exists()
    assert store.list_rw() == []
    view = store.mount_ro(base)
    try:
        assert "x" not in files(view)  # the container's write never reached the layer
    finally:
        store.unmount_ro(view)


def test_deep_tree_in_a_rw_layer_is_diffed_committed_and_removed(store: LayerStore) -> None:
    """1,100 levels (a container's ``mkdir d && cd d`` loop): no walk may recurse per level."""
    base, _ = base_and_child(store)
    store.create_rw("deep", base)
    rootfs = store.mount_rw("deep")
    fd = os.open(rootfs, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(1100):
            os.mkdir("d", dir_fd=fd)
            nxt = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        leaf = os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(leaf, b"bottom")
        os.close(leaf)
    finally:
        os.close(fd)
    deep = "/".join(["d"] * 1100) + "/f"
    try:
        changes = store.rw_changes("deep")
        assert ("A", "/" + deep) in changes and len(changes) == 1101
        assert store.rw_size("deep") == len(b"bottom")
        out = io.BytesIO()
        store.rw_diff("deep", out)
        assert deep in tar_names(out.getvalue())
        committed = store.register(io.BytesIO(out.getvalue()), base)
    finally:  # the fixture's clean-up walks with os.walk, which recurses
        subprocess.run(["rm", "-rf", str(rootfs / "d")], check=False)
    store.remove_rw("deep")
    store.delete(committed.chain_id)
    assert store.list_rw() == []


def test_rw_layer_from_scratch(store: LayerStore) -> None:
    store.create_rw("scratch", None)
    rootfs = store.mount_rw("scratch")
    assert os.listdir(rootfs) == []
    (rootfs / "hello").write_bytes(b"hi")
    assert store.rw_changes("scratch") == [("A", "/hello")]
    out = io.BytesIO()
    store.rw_diff("scratch", out)
    assert tar_names(out.getvalue()) == {"hello"}
    store.remove_rw("scratch")


def test_deep_chain_of_120_layers_mounts(store: LayerStore) -> None:
    parent: str | None = None
    for n in range(120):
        parent = store.register(io.BytesIO(make_tar((f"f{n:03}", str(n).encode()))), parent)
        parent = parent.chain_id
    assert parent is not None
    assert len(store.chain(parent)) == 120
    store.create_rw("deep", parent)
    rootfs = store.mount_rw("deep")
    try:
        names = sorted(os.listdir(rootfs))
        assert names == [f"f{n:03}" for n in range(120)]
        assert (rootfs / "f000").read_bytes() == b"0"
        assert (rootfs / "f119").read_bytes() == b"119"
    finally:
        store.remove_rw("deep")


def _mount_and_die(root: str, driver: str, chain_id: str) -> None:
    store = LayerStore(Path(root), select_driver(Path(root), driver))
    store.mount_ro(chain_id)
    os._exit(0)


def test_killed_process_mounts_are_cleaned_on_next_use(store: LayerStore) -> None:
    base, _ = base_and_child(store)
    ctx = multiprocessing.get_context("fork")
    proc = ctx.Process(target=_mount_and_die, args=(str(store.root), store.driver.name, base))
    proc.start()
    proc.join()
    assert proc.exitcode == 0
    assert os.listdir(store.root / "tmp") != []
    fresh = LayerStore(store.root, select_driver(store.root, ""))
    fresh.create_rw("next", base)  # any mutation cleans up what the dead process left
    assert os.listdir(store.root / "tmp") == []
    fresh.remove_rw("next")
