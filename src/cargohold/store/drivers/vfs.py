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
        rootfs = rw_dir / "rootfs"
        total = 0
        for kind, path in self.rw_changes(rw_dir, lowers):
            if kind == "D":
                continue
            st = os.lstat(rootfs / path.lstrip("/"))
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
        return total

    def mount_ro(self, lowers: Sequence[str], target: Path) -> Path:
        return self._content(lowers)

    def unmount_ro(self, target: Path) -> None:
        return None


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


def _entries(directory: Path | None) -> dict[str, os.stat_result]:
    if directory is None:
        return {}
    with os.scandir(directory) as it:
        return {e.name: e.stat(follow_symlinks=False) for e in it}


def _compare(old: Path | None, new: Path, rel: str, out: list[tuple[str, str]]) -> bool:
    """Append the changes below ``rel``; return whether anything below it changed."""
    before = len(out)
    old_entries = _entries(old)
    new_entries = _entries(new)
    for name in old_entries.keys() - new_entries.keys():
        out.append(("D", f"{rel}/{name}"))
    for name, st in new_entries.items():
        path = f"{rel}/{name}"
        ost = old_entries.get(name)
        is_dir = stat.S_ISDIR(st.st_mode)
        if ost is None:
            out.append(("A", path))
            if is_dir:
                _compare(None, new / name, path, out)
            continue
        changed = not _same(ost, st)
        if not changed and stat.S_ISLNK(st.st_mode):
            changed = os.readlink(old / name if old else name) != os.readlink(new / name)
        below = False
        if is_dir:
            old_sub = old / name if old is not None and stat.S_ISDIR(ost.st_mode) else None
            below = _compare(old_sub, new / name, path, out)
        if changed or below:
            out.append(("C", path))
    return len(out) > before


def tree_changes(old: Path, new: Path) -> list[tuple[str, str]]:
    """Docker-style changes of ``new`` against ``old``, sorted by path."""
    out: list[tuple[str, str]] = []
    _compare(old, new, "", out)
    return sorted(out, key=lambda c: c[1])
