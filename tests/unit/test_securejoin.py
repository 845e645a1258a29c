from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cargohold.util import securejoin as sj

BACKENDS = [False] + ([True] if sj.has_openat2() else [])


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[tuple[Path, Path, int]]:
    """A fake rootfs with a sibling 'outside' directory the attacker wants to reach."""
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("inside\n")
    (root / "dir" / "sub").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret").write_text("outside\n")
    fd = sj.open_root(root)
    try:
        yield root, outside, fd
    finally:
        os.close(fd)


def read_beneath(root_fd: int, rel: str, kernel: bool) -> str:
    fd = sj.open_beneath(root_fd, rel, os.O_RDONLY, use_openat2=kernel)
    with open(fd, closefd=True) as f:
        return f.read()


# -- secure_join (path strings) ----------------------------------------------------------------


def test_secure_join_plain_and_missing(tree: tuple[Path, Path, int]) -> None:
    root, _, _ = tree
    assert sj.secure_join(root, "/etc/passwd") == str(root / "etc/passwd")
    assert sj.secure_join(root, "no/such/thing") == str(root / "no/such/thing")
    assert sj.secure_join(root, "/") == str(root)


def test_secure_join_clamps_dotdot(tree: tuple[Path, Path, int]) -> None:
    root, _, _ = tree
    assert sj.secure_join(root, "../../../../etc/passwd") == str(root / "etc/passwd")
    assert sj.secure_join(root, "dir/../../outside") == str(root / "outside")


def test_secure_join_absolute_symlink_is_rooted(tree: tuple[Path, Path, int]) -> None:
    root, outside, _ = tree
    (root / "evil").symlink_to(outside)
    (root / "etclink").symlink_to("/etc")
    assert sj.secure_join(root, "evil/secret") == str(root / outside.relative_to("/") / "secret")
    assert sj.secure_join(root, "etclink/passwd") == str(root / "etc/passwd")


def test_secure_join_relative_dotdot_symlink(tree: tuple[Path, Path, int]) -> None:
    root, _, _ = tree
    (root / "dir" / "sub" / "up").symlink_to("../../../../../../outside")
    assert sj.secure_join(root, "dir/sub/up/secret") == str(root / "outside/secret")


def test_secure_join_loop(tree: tuple[Path, Path, int]) -> None:
    root, _, _ = tree
    (root / "a").symlink_to("b")
    (root / "b").symlink_to("a")
    with pytest.raises(OSError) as info:
        sj.secure_join(root, "a/x")
    assert info.value.errno == errno.ELOOP


# -- open_beneath (descriptors) ----------------------------------------------------------------


@pytest.mark.parametrize("kernel", BACKENDS)
def test_open_beneath_reads_inside(tree: tuple[Path, Path, int], kernel: bool) -> None:
    _, _, fd = tree
    assert read_beneath(fd, "/etc/passwd", kernel) == "inside\n"
    assert read_beneath(fd, "dir/sub/../../etc/passwd", kernel) == "inside\n"


@pytest.mark.parametrize("kernel", BACKENDS)
def test_absolute_symlink_to_etc_stays_in_root(tree: tuple[Path, Path, int], kernel: bool) -> None:
    root, _, fd = tree
    (root / "hostetc").symlink_to("/etc")
    assert read_beneath(fd, "hostetc/passwd", kernel) == "inside\n"


@pytest.mark.parametrize("kernel", BACKENDS)
def test_dotdot_chain_symlink_cannot_escape(tree: tuple[Path, Path, int], kernel: bool) -> None:
    root, outside, fd = tree
    (root / "dir" / "up").symlink_to("../../../../../../../" + str(outside).lstrip("/"))
    with pytest.raises(FileNotFoundError):
        read_beneath(fd, "dir/up/secret", kernel)
    with pytest.raises(FileNotFoundError):
        read_beneath(fd, "../../../../outside/secret", kernel)


@pytest.mark.parametrize("kernel", BACKENDS)
def test_absolute_symlink_to_outside_cannot_escape(
    tree: tuple[Path, Path, int], kernel: bool
) -> None:
    root, outside, fd = tree
    (root / "evil").symlink_to(outside / "secret")
    with pytest.raises(FileNotFoundError):
        read_beneath(fd, "evil", kernel)


@pytest.mark.parametrize("kernel", BACKENDS)
def test_symlink_loop_is_eloop(tree: tuple[Path, Path, int], kernel: bool) -> None:
    root, _, fd = tree
    (root / "a").symlink_to("b")
    (root / "b").symlink_to("/a")
    with pytest.raises(OSError) as info:
        read_beneath(fd, "a/x", kernel)
    assert info.value.errno == errno.ELOOP


@pytest.mark.parametrize("kernel", BACKENDS)
def test_dangling_final_symlink_creates_inside(tree: tuple[Path, Path, int], kernel: bool) -> None:
    root, outside, fd = tree
    (root / "trap").symlink_to(outside / "created")
    # the link's directory does not exist inside the root: nothing is created anywhere
    with pytest.raises(FileNotFoundError):
        sj.open_beneath(fd, "trap", os.O_WRONLY | os.O_CREAT, 0o600, use_openat2=kernel)
    assert not (outside / "created").exists()
    # an absolute link whose directory exists in the root creates the file in the root
    (root / "trap2").symlink_to("/created")
    out = sj.open_beneath(fd, "trap2", os.O_WRONLY | os.O_CREAT, 0o600, use_openat2=kernel)
    os.write(out, b"x")
    os.close(out)
    assert (root / "created").read_bytes() == b"x"


@pytest.mark.parametrize("kernel", BACKENDS)
def test_nofollow_final_symlink_is_refused(tree: tuple[Path, Path, int], kernel: bool) -> None:
    root, outside, fd = tree
    (root / "trap").symlink_to(outside / "secret")
    with pytest.raises(OSError) as info:
        sj.open_beneath(fd, "trap", os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW, use_openat2=kernel)
    assert info.value.errno == errno.ELOOP
    assert (outside / "secret").read_text() == "outside\n"


def test_magic_link_is_refused_by_kernel_path(tree: tuple[Path, Path, int]) -> None:
    if not sj.has_openat2():
        pytest.skip("kernel without openat2")
    root, _, fd = tree
    (root / "magic").symlink_to("/proc/self/root")
    # inside the root /proc does not exist, so the link resolves to nothing there
    with pytest.raises(FileNotFoundError):
        read_beneath(fd, "magic/etc/passwd", True)


def test_symlink_swapped_in_before_final_open_is_not_followed(
    tree: tuple[Path, Path, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Simulate the race: the walk saw a plain name, then an attacker plants a symlink."""
    root, outside, fd = tree
    real_walk = sj._walk_to_parent

    def racing_walk(*args: object, **kwargs: object) -> tuple[int, str]:
        result = real_walk(*args, **kwargs)  # type: ignore[arg-type]
        (root / "dir" / "late").symlink_to(outside / "secret")
        return result

    monkeypatch.setattr(sj, "_walk_to_parent", racing_walk)
    with pytest.raises(OSError) as info:
        sj.open_beneath(fd, "dir/late", os.O_WRONLY | os.O_CREAT, use_openat2=False)
    assert info.value.errno == errno.ELOOP
    assert (outside / "secret").read_text() == "outside\n"


def test_mkdir_beneath_creates_through_symlinks_inside(tree: tuple[Path, Path, int]) -> None:
    root, outside, fd = tree
    (root / "evil").symlink_to(outside)
    (root / "up").symlink_to("../../../..")
    dfd = sj.mkdir_beneath(fd, "evil/new/deeper")
    os.close(dfd)
    dfd = sj.mkdir_beneath(fd, "up/up/made")
    os.close(dfd)
    assert not (outside / "new").exists()
    assert (root / outside.relative_to("/") / "new" / "deeper").is_dir()
    assert (root / "made").is_dir()


def test_mkdir_beneath_refuses_file_in_the_way(tree: tuple[Path, Path, int]) -> None:
    _, _, fd = tree
    with pytest.raises(NotADirectoryError):
        sj.mkdir_beneath(fd, "etc/passwd/x")


def test_resolve_parent_does_not_follow_final(tree: tuple[Path, Path, int]) -> None:
    root, outside, fd = tree
    (root / "dir" / "link").symlink_to(outside)
    parent, name = sj.resolve_parent(fd, "/dir/link")
    with sj.opened(parent):
        assert name == "link"
        assert os.readlink(name, dir_fd=parent) == str(outside)


@pytest.mark.parametrize("kernel", BACKENDS)
def test_open_directory_flag(tree: tuple[Path, Path, int], kernel: bool) -> None:
    root, _, fd = tree
    (root / "etclink").symlink_to("/etc")
    dfd = sj.open_beneath(fd, "etclink", os.O_RDONLY | os.O_DIRECTORY, use_openat2=kernel)
    with sj.opened(dfd):
        assert os.listdir(dfd) == ["passwd"]
    with pytest.raises(NotADirectoryError):
        sj.open_beneath(fd, "etc/passwd", os.O_RDONLY | os.O_DIRECTORY, use_openat2=kernel)
