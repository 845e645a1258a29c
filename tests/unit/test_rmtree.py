"""util/rmtree: trees of any depth are removed with few descriptors, never through a symlink."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cargohold.store.locking import Staging
from cargohold.util import rmtree
from cargohold.util.rmtree import remove_path


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    try:
        yield tmp_path
    finally:  # what a failing test left: pytest's own clean-up (shutil.rmtree) would recurse
        subprocess.run(["rm", "-rf", str(tmp_path / "tree")], check=False)


def chain(top: Path, depth: int) -> None:
    """``top/d/d/...`` (``depth`` levels), a file and a symlink on every tenth level."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for level in range(depth):
            os.mkdir("d", dir_fd=fd)
            if level % 10 == 0:
                os.close(os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd))
                os.symlink("/", "l", dir_fd=fd)
            nxt = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
    finally:
        os.close(fd)


def test_a_tree_deeper_than_the_recursion_limit_within_a_low_descriptor_limit(
        scratch: Path) -> None:
    """Run in a fresh interpreter: the descriptor count of the test process itself moves
    whenever an earlier test's thread or socket goes away."""
    tree = scratch / "tree"
    tree.mkdir()
    chain(tree, 1500)
    probe = (
        "import os, resource, sys\n"
        "from cargohold.util.rmtree import remove_path\n"
        "count = lambda: len(os.listdir('/proc/self/fd'))\n"
        "before = count()\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (min(before + 100, hard), hard))\n"
        "remove_path(sys.argv[1])\n"
        "print(before, count())\n"
    )
    proc = subprocess.run([sys.executable, "-c", probe, str(tree)], capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    before, after = proc.stdout.split()
    assert not tree.exists()
    assert after == before, "remove_path left descriptors open"


def test_descriptors_closed_for_the_window_are_reopened_by_name(
        scratch: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rmtree.DirPath, "WINDOW", 3)
    tree = scratch / "tree"
    rng = random.Random(7)
    dirs = [tree]
    tree.mkdir()
    for i in range(400):  # a bushy tree, 30 levels at most
        parent = rng.choice([d for d in dirs if len(d.parts) - len(tree.parts) < 30])
        child = parent / f"n{i}"
        if rng.random() < 0.6:
            child.mkdir()
            dirs.append(child)
        else:
            child.write_text("x")
    before = open_fds()
    remove_path(tree)
    assert not tree.exists()
    assert open_fds() == before


def test_symlinks_are_removed_not_followed(scratch: Path) -> None:
    outside = scratch / "outside"
    outside.mkdir()
    (outside / "keep").write_text("keep")
    tree = scratch / "tree"
    (tree / "a").mkdir(parents=True)
    (tree / "a" / "to-outside").symlink_to(outside)
    (tree / "to-file").symlink_to(outside / "keep")
    remove_path(tree)
    assert not tree.exists()
    assert (outside / "keep").read_text() == "keep"


def test_directories_without_owner_rights_are_removed(scratch: Path) -> None:
    tree = scratch / "tree"
    (tree / "ro" / "locked").mkdir(parents=True)
    (tree / "ro" / "locked" / "f").write_text("x")
    os.chmod(tree / "ro" / "locked", 0o000)
    os.chmod(tree / "ro", 0o500)
    remove_path(tree)
    assert not tree.exists()


def test_missing_paths_and_plain_files(scratch: Path) -> None:
    remove_path(scratch / "nothing")
    (scratch / "file").write_text("x")
    remove_path(scratch / "file")
    assert not (scratch / "file").exists()


def test_staging_of_a_deep_tree_is_dropped(scratch: Path) -> None:
    stage = Staging(scratch / "tree", "layer")
    chain(stage.path, 1200)
    stage.close()
    assert os.listdir(scratch / "tree") == []
