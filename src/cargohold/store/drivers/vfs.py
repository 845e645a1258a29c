"""The vfs driver: every layer and container holds a full copy of its file system.

Slow and space hungry, but it needs no kernel support and no privileges, so it backs the
unit tests and hosts without overlayfs.  Deletions are applied directly (``whiteouts =
"delete"``); diffs are computed by comparing a tree with its parent's.
"""

from __future__ import annotations

import os
import stat
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from cargohold.errors import Internal
from cargohold.store.drivers.base import Layout, Whiteouts
from cargohold.util import fdtree


class VfsDriver:
    name = "vfs"
    whiteouts: Whiteouts = "delete"

    def __init__(self, layout: Layout) -> None:
        self.layout = layout

    def _content(self, lowers: Sequence[str]) -> Path:
        return self.layout.diff(lowers[0]) if lowers else self.layout.empty

    def init_layer(self, diff: Path, parent: str | None) -> None:
        if parent is None:
            diff.mkdir(exist_ok=True)
        else:
            copy_tree(self.layout.diff(parent), diff)

    def layer_created(self, chain_hex: str) -> None:
        return None

    def layer_removed(self, chain_hex: str) -> None:
        return None

    def layer_diff(self, chain_hex: str, parent: str | None, out: BinaryIO) -> None:
        from cargohold.store import archive

        diff = self.layout.diff(chain_hex)
        if parent is None:
            archive.write_layer_from_dir(diff, out)
        else:
            archive.write_layer_from_diff(self.layout.diff(parent), diff, out)

    def create_rw(self, rw_dir: Path, lowers: Sequence[str]) -> None:
        copy_tree(self._content(lowers), rw_dir / "rootfs")

    def mount_rw(self, rw_dir: Path, lowers: Sequence[str], volatile: bool = False) -> Path:
        return rw_dir / "rootfs"

    def unmount_rw(self, rw_dir: Path) -> None:
        return None

    def rw_diff(self, rw_dir: Path, lowers: Sequence[str], out: BinaryIO) -> None:
        from cargohold.store import archive

        archive.write_layer_from_diff(self._content(lowers), rw_dir / "rootfs", out)

    def rw_changes(self, rw_dir: Path, lowers: Sequence[str]) -> list[tuple[str, str]]:
        return tree_changes(self._content(lowers), rw_dir / "rootfs")

    def rw_size(self, rw_dir: Path, lowers: Sequence[str]) -> int:
        sizes: list[int] = []
        tree_changes(self._content(lowers), rw_dir / "rootfs", sizes)
        return sum(sizes)

    def mount_ro(self, lowers: Sequence[str], target: Path) -> Path:
        return self._content(lowers)

    def unmount_ro(self, target: Path) -> None:
        return None

    def mount_scratch(self, lowers: Sequence[str], stage: Path) -> Path:
        """A copy: vfs has no upper dirs (the same way ``create_rw`` copies the parent)."""
        merged = stage / "merged"
        copy_tree(self._content(lowers), merged)
        return merged


def copy_tree(src: Path, dest: Path) -> None:
    """Copy ``src`` to a new ``dest`` keeping owners, modes, times, links and xattrs."""
    dest.mkdir(exist_ok=True)
    proc = subprocess.run(
        ["cp", "-a", "--reflink=auto", "--no-target-directory", f"{src}/.", str(dest)],
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise Internal(f"copying {src} to {dest}: {proc.stderr.strip()}")


def _same(old: os.stat_result, new: os.stat_result) -> bool:
    if (old.st_mode, old.st_uid, old.st_gid, old.st_rdev) != (
        new.st_mode,
        new.st_uid,
        new.st_gid,
        new.st_rdev,
    ):
        return False
    if old.st_mtime_ns != new.st_mtime_ns:
        return False
    return stat.S_ISDIR(new.st_mode) or old.st_size == new.st_size


def _compare(
    old_fd: int, new_fd: int, rel: str, out: list[tuple[str, str]], sizes: list[int]
) -> bool:
    """Append the changes below ``rel``; return whether anything below it changed.

    Both trees are read by descriptors (``util/fdtree.py``): ``new`` is a container's root
    file system, which a running container may be changing under the walk."""
    before = len(out)
    old_entries = dict(fdtree.listing(old_fd)) if old_fd >= 0 else {}
    new_entries = dict(fdtree.listing(new_fd))
    for name in old_entries.keys() - new_entries.keys():
        out.append(("D", f"{rel}/{name}"))
    for name, listed in new_entries.items():
        path = f"{rel}/{name}"
        node = fdtree.node_at(new_fd, name, path, listed)
        if node is None:
            continue  # changed while we looked
        try:
            _compare_entry(old_fd, old_entries.get(name), node, out, sizes)
        finally:
            if node.fd >= 0:
                os.close(node.fd)
    return len(out) > before


def _compare_entry(
    old_fd: int,
    ost: os.stat_result | None,
    node: fdtree.Node,
    out: list[tuple[str, str]],
    sizes: list[int],
) -> None:
    st, path = node.st, node.rel
    if stat.S_ISREG(st.st_mode) and (ost is None or not _same(ost, st)):
        sizes.append(st.st_size)
    if ost is None:
        out.append(("A", path))
        if node.fd >= 0:
            _compare(-1, node.fd, path, out, sizes)
        return
    changed = not _same(ost, st)
    if not changed and stat.S_ISLNK(st.st_mode):
        changed = fdtree.readlink_at(old_fd, node.name) != fdtree.readlink_at(
            node.parent, node.name
        )
    below = False
    if node.fd >= 0:
        old_sub = fdtree.open_subdir(old_fd, node.name) if stat.S_ISDIR(ost.st_mode) else -1
        try:
            below = _compare(old_sub, node.fd, path, out, sizes)
        finally:
            if old_sub >= 0:
                os.close(old_sub)
    if changed or below:
        out.append(("C", path))


def tree_changes(
    old: Path, new: Path, sizes: list[int] | None = None
) -> list[tuple[str, str]]:
    """Docker-style changes of ``new`` against ``old``, sorted by path; ``sizes`` collects the
    sizes of the added and changed regular files."""
    out: list[tuple[str, str]] = []
    old_fd = fdtree.open_dir(old)
    try:
        new_fd = fdtree.open_dir(new)
        try:
            _compare(old_fd, new_fd, "", out, [] if sizes is None else sizes)
        finally:
            os.close(new_fd)
    finally:
        os.close(old_fd)
    return sorted(out, key=lambda c: c[1])
