"""Layer tar writers: determinism, normalised headers, round trips, the vfs diff."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest

from cargohold.store.archive import (
    apply_layer,
    write_layer_from_diff,
    write_layer_from_dir,
    write_layer_from_upper,
)


def user_xattrs_work(path: Path) -> bool:
    probe = path / ".xattr-probe"
    probe.touch()
    try:
        os.setxattr(probe, "user.probe", b"1")
        return True
    except OSError:
        return False
    finally:
        probe.unlink()


def populate(root: Path) -> None:
    """A tree with every kind of entry an unprivileged user can make."""
    (root / "bin").mkdir()
    (root / "bin/tool").write_bytes(b"#!/bin/sh\necho hi\n")
    os.chmod(root / "bin/tool", 0o4755)
    (root / "tmp").mkdir()
    os.chmod(root / "tmp", 0o1777)
    (root / "etc").mkdir()
    (root / "etc/big").write_bytes(os.urandom(3 * 1024 * 1024 + 7))
    (root / "etc/empty").touch()
    os.link(root / "etc/big", root / "bin/big-link")
    os.symlink("../etc/big", root / "bin/rel-link")
    os.symlink("/nowhere", root / "dangling")
    os.mkfifo(root / "fifo")
    (root / "ünïcode-ñame").write_text("u")
    (root / ("long-" + "x" * 150)).write_text("long")
    if user_xattrs_work(root):
        os.setxattr(root / "bin/tool", "user.note", b"\x00\xffbinary")
    for path in sorted(root.rglob("*"), reverse=True):
        os.utime(path, (1_500_000_000, 1_500_000_000), follow_symlinks=False)


def snapshot(root: Path) -> dict[str, tuple[object, ...]]:
    """What a user sees of a tree: type, mode, size, content, target, mtime, xattrs, links."""
    out: dict[str, tuple[object, ...]] = {}
    inodes: dict[int, str] = {}
    for path in sorted(root.rglob("*")):
        st = os.lstat(path)
        rel = str(path.relative_to(root))
        content: object = None
        if stat.S_ISREG(st.st_mode):
            content = hashlib.sha256(path.read_bytes()).hexdigest()
        elif stat.S_ISLNK(st.st_mode):
            content = os.readlink(path)
        link = inodes.setdefault(st.st_ino, rel) if st.st_nlink > 1 else None
        xattrs = {}
        if not stat.S_ISLNK(st.st_mode):
            xattrs = {k: os.getxattr(path, k) for k in sorted(os.listxattr(path))}
        out[rel] = (st.st_mode, st.st_uid, st.st_gid, int(st.st_mtime), content, link, xattrs)
    return out


def clone(src: Path, dst: Path) -> None:
    """A full copy keeping hard links, fifos, modes, xattrs and mtimes (like a vfs layer)."""
    subprocess.run(["cp", "-a", str(src), str(dst)], check=True)


def tar_bytes(fn: object, *roots: Path) -> bytes:
    buf = io.BytesIO()
    fn(*roots, buf)  # type: ignore[operator]
    return buf.getvalue()


def members(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return tar.getmembers()


def test_dir_round_trips_through_apply(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir()
    dst.mkdir()
    populate(src)
    written = apply_layer(io.BytesIO(tar_bytes(write_layer_from_dir, src)), dst, whiteouts="delete")
    assert snapshot(dst) == snapshot(src)
    regular = {
        os.lstat(p).st_ino: os.lstat(p).st_size
        for p in src.rglob("*")
        if stat.S_ISREG(os.lstat(p).st_mode)
    }
    assert written == sum(regular.values())  # a hard link's content is written once


def test_same_content_gives_identical_bytes(tmp_path: Path) -> None:
    a = tmp_path / "a"
    a.mkdir()
    populate(a)
    b = tmp_path / "b"
    clone(a, b)  # new inodes, new ctimes, same mtimes
    for path in sorted(b.rglob("*"), reverse=True):
        os.utime(path, ns=(1, 1_500_000_000_123_456_789), follow_symlinks=False)
    first = tar_bytes(write_layer_from_dir, a)
    assert first == tar_bytes(write_layer_from_dir, a)
    assert first == tar_bytes(write_layer_from_dir, b)  # sub-second mtimes do not matter


def test_headers_are_normalised_and_sorted(tmp_path: Path) -> None:
    populate(tmp_path)
    data = tar_bytes(write_layer_from_dir, tmp_path)
    infos = members(data)
    names = [m.name for m in infos]
    assert "." not in names and "" not in names
    assert names.index("bin") < names.index("bin/big-link") < names.index("bin/tool")
    assert names.index("bin/tool") < names.index("dangling") < names.index("etc")
    for m in infos:
        assert m.uname == "" and m.gname == ""
        assert isinstance(m.mtime, int)
        assert not {"atime", "ctime", "mtime"} & m.pax_headers.keys()
    link = next(m for m in infos if m.name == "etc/big")
    assert link.islnk() and link.linkname == "bin/big-link"
    tool = next(m for m in infos if m.name == "bin/tool")
    assert tool.mode == 0o4755
    if user_xattrs_work(tmp_path):
        assert tool.pax_headers["SCHILY.xattr.user.note"].encode("utf-8", "surrogateescape") == (
            b"\x00\xffbinary"
        )
    assert data.endswith(bytes(1024)) and len(data) % 512 == 0


def test_upper_without_overlay_markers_is_written_like_a_dir(tmp_path: Path) -> None:
    populate(tmp_path)
    assert tar_bytes(write_layer_from_upper, tmp_path) == tar_bytes(write_layer_from_dir, tmp_path)


def test_sockets_are_skipped(tmp_path: Path) -> None:
    import socket

    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(tmp_path / "s"))
        (tmp_path / "f").touch()
        assert [m.name for m in members(tar_bytes(write_layer_from_dir, tmp_path))] == ["f"]
    finally:
        sock.close()


def test_missing_root_is_invalid(tmp_path: Path) -> None:
    from cargohold.errors import InvalidArgument

    with pytest.raises(InvalidArgument):
        tar_bytes(write_layer_from_dir, tmp_path / "nope")


# -- vfs diff ---------------------------------------------------------------------------------


@pytest.fixture
def lower_upper(tmp_path: Path) -> tuple[Path, Path]:
    lower, upper = tmp_path / "lower", tmp_path / "upper"
    lower.mkdir()
    populate(lower)
    (lower / "olddir/sub").mkdir(parents=True)
    (lower / "olddir/sub/f").write_text("x")
    (lower / "keepdir/deep").mkdir(parents=True)
    (lower / "keepdir/deep/changed").write_text("before")
    (lower / "keepdir/untouched").write_text("same")
    for path in [
        lower / "olddir/sub/f",
        lower / "olddir/sub",
        lower / "olddir",
        lower / "keepdir/deep/changed",
        lower / "keepdir/untouched",
        lower / "keepdir/deep",
        lower / "keepdir",
    ]:
        os.utime(path, (1_500_000_000, 1_500_000_000))
    clone(lower, upper)
    return lower, upper


def test_unchanged_copy_gives_an_empty_layer(lower_upper: tuple[Path, Path]) -> None:
    lower, upper = lower_upper
    assert members(tar_bytes(write_layer_from_diff, lower, upper)) == []


def test_diff_lists_changes_with_parents_and_whiteouts(lower_upper: tuple[Path, Path]) -> None:
    lower, upper = lower_upper
    (upper / "keepdir/deep/changed").write_text("after!")
    shutil.rmtree(upper / "olddir")
    (upper / "etc/empty").unlink()
    (upper / "new/dir").mkdir(parents=True)
    (upper / "new/dir/file").write_text("n")
    os.chmod(upper / "tmp", 0o755)
    (upper / "dangling").unlink()
    (upper / "dangling").mkdir()  # type change: symlink -> dir
    names = [m.name for m in members(tar_bytes(write_layer_from_diff, lower, upper))]
    assert names == [
        "dangling",
        "etc",
        "etc/.wh.empty",
        "keepdir",
        "keepdir/deep",
        "keepdir/deep/changed",
        "new",
        "new/dir",
        "new/dir/file",
        ".wh.olddir",
        "tmp",
    ]


def test_diff_applied_to_a_copy_of_lower_reproduces_upper(
    lower_upper: tuple[Path, Path], tmp_path: Path
) -> None:
    lower, upper = lower_upper
    (upper / "keepdir/deep/changed").write_text("after!")
    shutil.rmtree(upper / "olddir")
    (upper / "bin/tool").write_text("replaced")
    (upper / "new").mkdir()
    (upper / "new/f").write_text("n")
    os.symlink("new/f", upper / "newlink")
    data = tar_bytes(write_layer_from_diff, lower, upper)
    target = tmp_path / "target"
    clone(lower, target)
    apply_layer(io.BytesIO(data), target, whiteouts="delete")
    assert snapshot(target) == snapshot(upper)
