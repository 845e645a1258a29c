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

    def rw_unchanged(self, rw_dir: Path, lowers: Sequence[str]) -> bool:
        return not self.rw_changes(rw_dir, lowers)

    def rw_prune_dirs(self, rw_dir: Path, dirs: dict[str, tuple[int, int, int, int]]) -> None:
        return None  # a naive diff already leaves out a directory with the lower's metadata

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


class _Frame:
    """One directory pair being compared: the new side's entries left to look at and the
    descriptors this frame owns (closed when the walk leaves it)."""

    def __init__(self, old_fd: int, new_fd: int, rel: str, owned: tuple[int, ...]) -> None:
        self.old_fd, self.new_fd, self.rel, self.owned = old_fd, new_fd, rel, owned
        try:
            self.old_entries = dict(fdtree.listing(old_fd)) if old_fd >= 0 else {}
            self.listing = fdtree.listing(new_fd)
            self.entries = iter(self.listing)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        for fd in self.owned:
            if fd >= 0:
                os.close(fd)


class _Comparison:
    """The walk behind :func:`tree_changes`: both trees read by descriptors
    (``util/fdtree.py``; ``new`` is a container's root file system, which a running
    container may be changing under the walk), with its own stack instead of recursion (any
    depth works) and only the descriptors of the current path open."""

    def __init__(self, sizes: list[int]) -> None:
        self.out: list[tuple[str, str]] = []
        self.sizes = sizes
        self.both: dict[str, bool] = {}  # directories on both sides -> changed themselves

    def run(self, old_fd: int, new_fd: int) -> list[tuple[str, str]]:
        stack = [self._enter(old_fd, new_fd, "", ())]
        try:
            while stack:
                child = self._next_dir(stack[-1])
                if child is None:
                    stack.pop().close()
                else:
                    stack.append(child)
        finally:
            for frame in stack:
                frame.close()
        return self.out + self._changed_dirs()

    def _enter(self, old_fd: int, new_fd: int, rel: str, owned: tuple[int, ...]) -> _Frame:
        frame = _Frame(old_fd, new_fd, rel, owned)
        for name in frame.old_entries.keys() - {name for name, _ in frame.listing}:
            self.out.append(("D", f"{rel}/{name}"))
        return frame

    def _next_dir(self, frame: _Frame) -> _Frame | None:
        """Record ``frame``'s next entries up to a directory (returned, entered next)."""
        for name, listed in frame.entries:
            path = f"{frame.rel}/{name}"
            node = fdtree.node_at(frame.new_fd, name, path, listed)
            if node is None:
                continue  # changed while we looked
            st, ost = node.st, frame.old_entries.get(name)
            if stat.S_ISREG(st.st_mode) and (ost is None or not _same(ost, st)):
                self.sizes.append(st.st_size)
            if ost is None:
                self.out.append(("A", path))
                if node.fd >= 0:
                    return self._enter(-1, node.fd, path, (node.fd,))
                continue
            changed = not _same(ost, st)
            if not changed and stat.S_ISLNK(st.st_mode):
                changed = fdtree.readlink_at(frame.old_fd, name) != fdtree.readlink_at(
                    frame.new_fd, name
                )
            if node.fd < 0:
                if changed:
                    self.out.append(("C", path))
                continue
            self.both[path] = changed
            old_sub = -1
            try:
                if stat.S_ISDIR(ost.st_mode):
                    old_sub = fdtree.open_subdir(frame.old_fd, name)
                return self._enter(old_sub, node.fd, path, (node.fd, old_sub))
            except BaseException:
                os.close(node.fd)
                if old_sub >= 0:
                    os.close(old_sub)
                raise
        return None

    def _changed_dirs(self) -> list[tuple[str, str]]:
        """A directory on both sides is "C" when it changed itself or anything below it did."""
        below: set[str] = set()
        for path in [p for _, p in self.out] + [p for p, ch in self.both.items() if ch]:
            parent = path.rpartition("/")[0]
            while parent and parent not in below:
                below.add(parent)
                parent = parent.rpartition("/")[0]
        return [("C", path) for path, ch in self.both.items() if ch or path in below]


def tree_changes(
    old: Path, new: Path, sizes: list[int] | None = None
) -> list[tuple[str, str]]:
    """Docker-style changes of ``new`` against ``old``, sorted by path; ``sizes`` collects the
    sizes of the added and changed regular files."""
    old_fd = fdtree.open_dir(old)
    try:
        new_fd = fdtree.open_dir(new)
        try:
            out = _Comparison([] if sizes is None else sizes).run(old_fd, new_fd)
        finally:
            os.close(new_fd)
    finally:
        os.close(old_fd)
    return sorted(out, key=lambda c: c[1])
