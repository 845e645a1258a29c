"""Storage drivers (overlay, vfs) and the choice between them.

A store root remembers its driver in ``<root>/storage.json``: layers written by one driver
cannot be read by the other, so the first choice (or the overlay probe) sticks.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from cargohold.errors import InvalidArgument, Unavailable
from cargohold.store.drivers.base import Layout, StorageDriver
from cargohold.store.drivers.overlay import OverlayDriver, mount_overlay
from cargohold.store.drivers.vfs import VfsDriver
from cargohold.store.locking import Staging, store_lock, umount
from cargohold.util.atomic import read_json, write_json

__all__ = ["Layout", "StorageDriver", "overlay_supported", "select_driver"]

DRIVERS = ("overlay", "vfs")


def select_driver(root: Path, name: str) -> StorageDriver:
    """The driver for ``root``: ``""`` picks the recorded one, else overlay if usable, else vfs."""
    if name and name not in DRIVERS:
        raise InvalidArgument(f"unknown storage driver: {name!r} (choose overlay or vfs)")
    recorded = _recorded(root)
    if recorded is None:
        with store_lock(root, "storage"):
            recorded = _recorded(root)
            if recorded is None:
                recorded = _choose(root, name)
                root.mkdir(parents=True, exist_ok=True)
                write_json(root / "storage.json", {"driver": recorded})
    if name and name != recorded:
        raise InvalidArgument(
            f"storage at {root} uses the {recorded} driver, not {name}; "
            "use another --root or remove the store"
        )
    return _make(recorded, Layout(root))


def _recorded(root: Path) -> str | None:
    try:
        value = read_json(root / "storage.json").get("driver")
    except (OSError, ValueError, AttributeError):
        return None
    return value if value in DRIVERS else None


def _choose(root: Path, name: str) -> str:
    if name == "vfs":
        return "vfs"
    if overlay_supported(root):
        return "overlay"
    if name == "overlay":
        raise Unavailable(f"the overlay storage driver is not supported for {root} on this host")
    return "vfs"


def _make(name: str, layout: Layout) -> StorageDriver:
    if name == "overlay":
        return OverlayDriver(layout)
    return VfsDriver(layout)


def overlay_supported(root: Path) -> bool:
    """Mount a tiny overlay (with a whiteout) under ``root/tmp`` to see if the kernel allows it."""
    if os.geteuid() != 0:
        return False
    root.mkdir(parents=True, exist_ok=True)
    with Staging(root / "tmp", "probe") as stage:
        base = stage.path
        for sub in ("lower1", "lower2", "upper", "work", "merged"):
            (base / sub).mkdir()
        (base / "lower2" / "gone").write_bytes(b"")
        try:
            os.mknod(base / "lower1" / "gone", 0o600 | 0o020000, os.makedev(0, 0))
            lowers = ["lower1", "lower2"]
            mount_overlay(base, base / "merged", lowers, base / "upper", base / "work")
        except Exception:
            return False
        try:
            (base / "merged" / "probe").write_bytes(b"ok")
            return not (base / "merged" / "gone").exists()
        except OSError:
            return False
        finally:
            with contextlib.suppress(OSError):
                umount(base / "merged", detach=True)
