"""apply_layer: extraction semantics, whiteouts in "delete" mode and every attack class."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from cargohold.errors import InvalidArgument
from cargohold.store.archive import UnsafeArchive, apply_layer, clean_name, open_decompressed
from cargohold.store.archive_apply import xattrs_of

Spec = tuple[str, str, object]  # (name, kind, payload)


def make_tar(*entries: Spec, pax: dict[str, dict[str, str]] | None = None) -> bytes:
    """A tar built entry by entry; kinds: file (bytes), dir, symlink / hardlink (target)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_600_000_000
            info.mode = 0o755 if kind == "dir" else 0o644
            if pax and name in pax:
                info.pax_headers = pax[name]
            data = None
            if kind == "file":
                assert isinstance(payload, bytes)
                info.size = len(payload)
                data = io.BytesIO(payload)
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
            elif kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, str(payload)
            elif kind == "hardlink":
                info.type, info.linkname = tarfile.LNKTYPE, str(payload)
            elif kind == "fifo":
                info.type = tarfile.FIFOTYPE
            tar.addfile(info, data)
    return buf.getvalue()


def apply(data: bytes, root: Path) -> int:
    return apply_layer(io.BytesIO(data), root, whiteouts="delete")


@pytest.fixture
def box(tmp_path: Path) -> tuple[Path, Path]:
    """(root, outside): the layer root and a sibling dir holding a secret file."""
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret").write_text("keep")
    return root, outside


def assert_outside_untouched(outside: Path) -> None:
    assert sorted(os.listdir(outside)) == ["secret"]
    assert (outside / "secret").read_text() == "keep"
    assert os.lstat(outside / "secret").st_nlink == 1


# -- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "clean"),
    [
        ("./a/b", "a/b"),
        ("/etc/passwd", "etc/passwd"),
        ("a//b/./c/", "a/b/c"),
        ("./", ""),
        ("a/../b", "b"),
        ("/../x", "x"),
    ],
)
def test_names_are_cleaned_like_moby(name: str, clean: str) -> None:
    assert clean_name(name) == clean


@pytest.mark.parametrize("name", ["..", "../x", "a/../../x", "./../x"])
def test_climbing_names_are_rejected_with_the_entry_named(name: str) -> None:
    with pytest.raises(UnsafeArchive, match=r"unsafe tar entry '.*': path escapes the layer root"):
        clean_name(name)


# -- attack classes ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["../secret", "a/../../secret", "../outside/secret"])
def test_dotdot_entries_are_rejected(box: tuple[Path, Path], name: str) -> None:
    root, outside = box
    with pytest.raises(UnsafeArchive, match="path escapes the layer root"):
        apply(make_tar((name, "file", b"pwned")), root)
    assert_outside_untouched(outside)


def test_absolute_names_land_inside_the_root(box: tuple[Path, Path]) -> None:
    root, outside = box
    absolute = str(outside / "new")
    apply(make_tar((absolute, "file", b"x")), root)
    assert_outside_untouched(outside)
    assert (root / absolute.lstrip("/")).read_bytes() == b"x"


@pytest.mark.parametrize("target", ["OUTSIDE", "../outside", "../../../../../../"])
def test_no_write_through_a_symlink_dir(box: tuple[Path, Path], target: str) -> None:
    root, outside = box
    target = target.replace("OUTSIDE", str(outside))
    data = make_tar(("link", "symlink", target), ("link/secret", "file", b"pwned"))
    with pytest.raises(UnsafeArchive, match="'link' is a symbolic link"):
        apply(data, root)
    assert_outside_untouched(outside)


def test_symlink_named_dot_is_rejected(box: tuple[Path, Path]) -> None:
    root, outside = box
    data = make_tar((".", "symlink", str(outside)), ("./secret", "file", b"pwned"))
    with pytest.raises(UnsafeArchive, match="cannot replace the layer root"):
        apply(data, root)
    assert_outside_untouched(outside)
    assert not os.path.islink(root)


def test_symlink_to_inside_is_not_followed_either(box: tuple[Path, Path]) -> None:
    root, _ = box
    data = make_tar(("real", "dir", None), ("alias", "symlink", "real"), ("alias/f", "file", b"x"))
    with pytest.raises(UnsafeArchive):
        apply(data, root)
    assert os.listdir(root / "real") == []


def test_existing_symlink_under_root_is_not_followed(box: tuple[Path, Path]) -> None:
    root, outside = box
    os.symlink(outside, root / "etc")  # e.g. left by a parent layer in a vfs copy
    with pytest.raises(UnsafeArchive):
        apply(make_tar(("etc/secret", "file", b"pwned")), root)
    assert_outside_untouched(outside)


def test_file_entry_replaces_a_symlink_instead_of_writing_through_it(
    box: tuple[Path, Path],
) -> None:
    root, outside = box
    data = make_tar(("f", "symlink", str(outside / "secret")), ("f", "file", b"new"))
    apply(data, root)
    assert_outside_untouched(outside)
    assert not os.path.islink(root / "f")
    assert (root / "f").read_bytes() == b"new"


@pytest.mark.parametrize("target", ["../outside/secret", "../../outside/secret"])
def test_hardlink_to_outside_is_rejected(box: tuple[Path, Path], target: str) -> None:
    root, outside = box
    with pytest.raises(UnsafeArchive):
        apply(make_tar(("h", "hardlink", target)), root)
    assert_outside_untouched(outside)


def test_absolute_hardlink_target_resolves_inside(box: tuple[Path, Path]) -> None:
    root, outside = box
    with pytest.raises(InvalidArgument, match="not found"):
        apply(make_tar(("h", "hardlink", str(outside / "secret"))), root)
    assert_outside_untouched(outside)


def test_hardlink_through_a_symlink_is_rejected(box: tuple[Path, Path]) -> None:
    root, outside = box
    data = make_tar(("l", "symlink", str(outside)), ("h", "hardlink", "l/secret"))
    with pytest.raises(UnsafeArchive, match="'l' is a symbolic link"):
        apply(data, root)
    assert_outside_untouched(outside)


def test_hardlink_to_a_symlink_links_the_symlink_not_its_target(box: tuple[Path, Path]) -> None:
    root, outside = box
    data = make_tar(("l", "symlink", str(outside / "secret")), ("h", "hardlink", "l"))
    apply(data, root)
    assert os.path.islink(root / "h")
    assert os.readlink(root / "h") == str(outside / "secret")
    assert_outside_untouched(outside)


@pytest.mark.parametrize("name", [".wh..", "a/.wh..", "../.wh.secret", ".wh."])
def test_escaping_whiteouts_are_rejected(box: tuple[Path, Path], name: str) -> None:
    root, outside = box
    (root / "a").mkdir()
    with pytest.raises(UnsafeArchive):
        apply(make_tar((name, "file", b"")), root)
    assert_outside_untouched(outside)
    assert (root / "a").is_dir()


def test_whiteout_through_a_symlink_is_rejected(box: tuple[Path, Path]) -> None:
    root, outside = box
    os.symlink(outside, root / "l")
    with pytest.raises(UnsafeArchive):
        apply(make_tar(("l/.wh.secret", "file", b"")), root)
    assert_outside_untouched(outside)


def test_overlay_xattrs_from_an_archive_are_dropped() -> None:
    info = tarfile.TarInfo("d")
    info.pax_headers = {
        "SCHILY.xattr.trusted.overlay.opaque": "y",
        "SCHILY.xattr.user.overlay.redirect": "/x",
        "SCHILY.xattr.user.keep": "v",
    }
    assert xattrs_of(info) == {"user.keep": b"v"}


# -- malformed input --------------------------------------------------------------------------


def test_truncated_file_content_is_invalid(tmp_path: Path) -> None:
    data = make_tar(("big", "file", b"x" * 5000))
    with pytest.raises(InvalidArgument, match=r"truncated|unexpected end"):
        apply(data[: 512 + 2000], tmp_path)


def test_truncated_header_is_invalid(tmp_path: Path) -> None:
    data = make_tar(("a", "file", b"1"), ("b", "file", b"2"))
    with pytest.raises(InvalidArgument, match="invalid tar archive"):
        apply(data[: 1024 + 100], tmp_path)


def test_skipped_content_cut_short_is_invalid(tmp_path: Path) -> None:
    data = make_tar(("d", "dir", None), ("f", "file", b"y" * 3000))
    with pytest.raises(InvalidArgument):
        apply(data[: 512 * 3 + 700], tmp_path)


@pytest.mark.parametrize("junk", [b"not a tar at all" * 100, os.urandom(4096)])
def test_junk_is_invalid(tmp_path: Path, junk: bytes) -> None:
    with pytest.raises(InvalidArgument, match="invalid tar archive"):
        apply(junk, tmp_path)


def test_junk_after_valid_entries_is_invalid(tmp_path: Path) -> None:
    data = make_tar(("a", "file", b"1"))
    valid = data[:1024]  # header + content block, no end-of-archive marker
    with pytest.raises(InvalidArgument, match="invalid header"):
        apply(valid + b"garbage!" * 64, tmp_path)


def test_gzip_of_junk_is_invalid(tmp_path: Path) -> None:
    import gzip

    stream = open_decompressed(io.BytesIO(gzip.compress(b"junk" * 1000)))
    with pytest.raises(InvalidArgument):
        apply_layer(stream, tmp_path, whiteouts="delete")


def test_empty_stream_and_empty_tar_are_empty_layers(tmp_path: Path) -> None:
    assert apply(b"", tmp_path) == 0
    assert apply(bytes(1024), tmp_path) == 0
    assert os.listdir(tmp_path) == []


def test_unknown_whiteout_mode_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument):
        apply_layer(io.BytesIO(b""), tmp_path, whiteouts="aufs")  # type: ignore[arg-type]


# -- semantics --------------------------------------------------------------------------------


def test_returns_content_bytes_and_creates_implicit_parents(tmp_path: Path) -> None:
    data = make_tar(("a/b/c.txt", "file", b"hello"), ("top", "file", b"12345678"))
    assert apply(data, tmp_path) == 13
    assert (tmp_path / "a/b/c.txt").read_bytes() == b"hello"
    assert stat.S_IMODE(os.stat(tmp_path / "a/b").st_mode) == 0o755


def test_modes_mtimes_and_dir_mtime_after_children(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        d = tarfile.TarInfo("d")
        d.type, d.mode, d.mtime = tarfile.DIRTYPE, 0o1777, 1_000_000_000
        tar.addfile(d)
        f = tarfile.TarInfo("d/suid")
        f.mode, f.mtime, f.size = 0o6755, 1_200_000_000, 3
        tar.addfile(f, io.BytesIO(b"abc"))
        ro = tarfile.TarInfo("ro")
        ro.type, ro.mode, ro.mtime = tarfile.DIRTYPE, 0o555, 1_300_000_000
        tar.addfile(ro)
        inner = tarfile.TarInfo("ro/inner")
        inner.size, inner.mode = 1, 0o400
        tar.addfile(inner, io.BytesIO(b"z"))
    apply(buf.getvalue(), tmp_path)
    st_d = os.stat(tmp_path / "d")
    assert stat.S_IMODE(st_d.st_mode) == 0o1777
    assert st_d.st_mtime == 1_000_000_000
    st_f = os.stat(tmp_path / "d/suid")
    assert stat.S_IMODE(st_f.st_mode) == 0o6755
    assert st_f.st_mtime == 1_200_000_000
    assert stat.S_IMODE(os.stat(tmp_path / "ro").st_mode) == 0o555
    assert (tmp_path / "ro/inner").read_bytes() == b"z"
    assert os.stat(tmp_path / "ro").st_mtime == 1_300_000_000


def test_user_xattrs_are_applied(tmp_path: Path) -> None:
    probe = tmp_path / "probe"
    probe.touch()
    try:
        os.setxattr(probe, "user.test", b"1")
    except OSError:
        pytest.skip("file system without user xattrs")
    data = make_tar(("f", "file", b"x"), pax={"f": {"SCHILY.xattr.user.note": "hi"}})
    root = tmp_path / "root"
    root.mkdir()
    apply(data, root)
    assert os.getxattr(root / "f", "user.note") == b"hi"


def test_replacing_rules(tmp_path: Path) -> None:
    (tmp_path / "dir_to_file").mkdir()
    (tmp_path / "dir_to_file/child").touch()
    (tmp_path / "file_to_dir").write_text("old")
    (tmp_path / "merge").mkdir()
    (tmp_path / "merge/old").write_text("kept")
    (tmp_path / "plain").write_text("old")
    data = make_tar(
        ("dir_to_file", "file", b"now a file"),
        ("file_to_dir", "dir", None),
        ("merge", "dir", None),
        ("merge/new", "file", b"n"),
        ("plain", "file", b"new"),
    )
    apply(data, tmp_path)
    assert (tmp_path / "dir_to_file").read_bytes() == b"now a file"
    assert (tmp_path / "file_to_dir").is_dir()
    assert sorted(os.listdir(tmp_path / "merge")) == ["new", "old"]
    assert stat.S_IMODE(os.stat(tmp_path / "merge").st_mode) == 0o755
    assert (tmp_path / "plain").read_bytes() == b"new"


def test_hardlinks_share_the_inode(tmp_path: Path) -> None:
    apply(make_tar(("a", "file", b"data"), ("sub/b", "hardlink", "a")), tmp_path)
    assert os.stat(tmp_path / "a").st_ino == os.stat(tmp_path / "sub/b").st_ino


def test_hardlink_to_missing_target_is_invalid(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="not found"):
        apply(make_tar(("b", "hardlink", "nope")), tmp_path)


def test_fifo_is_created(tmp_path: Path) -> None:
    apply(make_tar(("p", "fifo", None)), tmp_path)
    assert stat.S_ISFIFO(os.lstat(tmp_path / "p").st_mode)


# -- whiteouts in delete mode -----------------------------------------------------------------


def test_whiteouts_delete_files_and_trees(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc/gone").write_text("x")
    (tmp_path / "etc/stays").write_text("x")
    (tmp_path / "tree/deep").mkdir(parents=True)
    (tmp_path / "tree/deep/f").write_text("x")
    os.symlink("/", tmp_path / "rootlink")
    data = make_tar(
        ("etc/.wh.gone", "file", b""),
        (".wh.tree", "file", b""),
        (".wh.rootlink", "file", b""),
        (".wh.never-existed", "file", b""),
        ("nodir/.wh.x", "file", b""),
    )
    apply(data, tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["etc"]
    assert os.listdir(tmp_path / "etc") == ["stays"]


def test_opaque_dir_keeps_only_what_this_archive_brings(tmp_path: Path) -> None:
    (tmp_path / "d/sub").mkdir(parents=True)
    (tmp_path / "d/old").write_text("x")
    (tmp_path / "d/sub/old").write_text("x")
    (tmp_path / "other").write_text("x")
    data = make_tar(
        ("d", "dir", None),
        ("d/-early", "file", b"before the marker"),
        ("d/.wh..wh..opq", "file", b""),
        ("d/new", "file", b"n"),
        ("d/sub", "dir", None),
        ("d/sub/.wh..wh..opq", "file", b""),
    )
    apply(data, tmp_path)
    assert sorted(os.listdir(tmp_path / "d")) == ["-early", "new", "sub"]
    assert os.listdir(tmp_path / "d/sub") == []
    assert (tmp_path / "other").exists()


def test_a_rejected_archive_leaves_the_caller_a_root_to_delete(box: tuple[Path, Path]) -> None:
    root, outside = box
    data = make_tar(("ok", "file", b"1"), ("../secret", "file", b"pwned"))
    with pytest.raises(UnsafeArchive, match=r"'\.\./secret'"):
        apply(data, root)
    assert_outside_untouched(outside)


def test_huge_long_name_header_is_rejected_without_reading_it(tmp_path: Path) -> None:
    header = tarfile.TarInfo("././@LongLink")
    header.type = tarfile.GNUTYPE_LONGNAME
    header.size = 1 << 40
    data = header.tobuf(tarfile.GNU_FORMAT) + bytes(4096)
    with pytest.raises(InvalidArgument, match="metadata entry"):
        apply(data, tmp_path)
