"""The storage driver seam: how layer content is laid out, mounted and diffed.

The :class:`~cargohold.store.layers.LayerStore` owns metadata, locking and staging; a driver
only knows how to fill a layer's ``diff/`` directory, build a container's root file system
over a chain of layers and describe what a container changed.  Chains are passed as layer
directory names (the chain id's hex), top layer first.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

import msgspec

Whiteouts = Literal["overlay", "delete"]


class Layout(msgspec.Struct, frozen=True):
    """Paths under the store root shared by the layer store and the drivers."""

    root: Path

    @property
    def layers(self) -> Path:
        return self.root / "layers"

    @property
    def rw_root(self) -> Path:
        return self.root / "containers-rw"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def empty(self) -> Path:
        """An always-empty directory (the content of a chain with no layers)."""
        path = self.layers / ".empty"
        if not path.is_dir():
            path.mkdir(parents=True, exist_ok=True)
        return path

    def layer_dir(self, chain_hex: str) -> Path:
        return self.layers / chain_hex

    def diff(self, chain_hex: str) -> Path:
        return self.layers / chain_hex / "diff"

    def rw(self, rw_id: str) -> Path:
        return self.rw_root / rw_id


class StorageDriver(Protocol):
    """What a storage driver implements (overlay, vfs)."""

    name: str
    whiteouts: Whiteouts
    layout: Layout

    def init_layer(self, diff: Path, parent: str | None) -> None:
        """Prepare an empty staging ``diff`` directory before a layer tar is applied."""
        ...

    def layer_created(self, chain_hex: str) -> None:
        """Called (under the layer lock) once a layer directory is published."""
        ...

    def layer_removed(self, chain_hex: str) -> None:
        """Called (under the layer lock) after a layer directory was unpublished."""
        ...

    def layer_diff(self, chain_hex: str, parent: str | None, out: BinaryIO) -> None:
        """Write the layer's own changes as an uncompressed tar."""
        ...

    def create_rw(self, rw_dir: Path, lowers: Sequence[str]) -> None:
        """Fill a fresh (staging) container directory."""
        ...

    def mount_rw(self, rw_dir: Path, lowers: Sequence[str], volatile: bool = False) -> Path:
        """Return the container's root file system, mounting it if needed (idempotent).

        ``volatile``: the content is thrown away after use (``--rm``), so the driver may skip
        syncing it (overlay's ``volatile`` option: no sync of the upper fs on unmount)."""
        ...

    def unmount_rw(self, rw_dir: Path) -> None:
        """Unmount the container's root file system if mounted (idempotent)."""
        ...

    def rw_diff(self, rw_dir: Path, lowers: Sequence[str], out: BinaryIO) -> None:
        """Write the container's changes as an uncompressed tar."""
        ...

    def rw_changes(self, rw_dir: Path, lowers: Sequence[str]) -> list[tuple[str, str]]:
        """The container's changes as sorted ("A"|"C"|"D", "/path") pairs."""
        ...

    def rw_size(self, rw_dir: Path, lowers: Sequence[str]) -> int:
        """Bytes of regular-file content the container added or changed."""
        ...

    def rw_unchanged(self, rw_dir: Path, lowers: Sequence[str]) -> bool:
        """Whether the container changed nothing (its diff would be an empty tar)."""
        ...

    def rw_prune_dirs(self, rw_dir: Path, dirs: dict[str, tuple[int, int, int, int]]) -> None:
        """Forget directories (rel path -> mode, uid, gid, mtime ns as in the lower layers)
        that are in the container's changes only because something was made in them and
        removed again: empty there, not opaque and with the lower's metadata (unmounted)."""
        ...

    def mount_ro(self, lowers: Sequence[str], target: Path) -> Path:
        """A read-only view of the chain's merged content (``target`` is an empty dir)."""
        ...

    def unmount_ro(self, target: Path) -> None:
        """Undo :meth:`mount_ro` or :meth:`mount_scratch` (idempotent)."""
        ...

    def mount_scratch(self, lowers: Sequence[str], stage: Path) -> Path:
        """A writable view of the chain's merged content at ``stage/merged`` whose changes
        land in ``stage`` (an empty private dir, removed afterwards), never in a layer."""
        ...
