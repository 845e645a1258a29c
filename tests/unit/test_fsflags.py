"""The "top directory" inode flag the stores put on their layer, container and volume roots."""

from __future__ import annotations

import array
import fcntl
import io
import os
import tarfile
from pathlib import Path

import pytest

from cargohold.store.drivers import select_driver
from cargohold.store.layers import LayerStore
from cargohold.util.fsflags import spread_subdirectories
from cargohold.volume.store import VolumeStore

_GETFLAGS = 0x80086601
_TOPDIR = 0x00020000


def topdir_flag(path: Path) -> bool | None:
    """The flag as the kernel reports it; None where the file system has no inode flags."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        flags = array.array("i", [0])
        fcntl.ioctl(fd, _GETFLAGS, flags, True)
        return bool(flags[0] & _TOPDIR)
    except OSError:
        return None
    finally:
        os.close(fd)


@pytest.fixture
def flagged_fs(tmp_path: Path) -> Path:
    if topdir_flag(tmp_path) is None:
        pytest.skip("the file system under tmp_path has no inode flags (not ext2/3/4)")
    return tmp_path


def test_sets_the_flag_once_and_keeps_other_flags(flagged_fs: Path) -> None:
    d = flagged_fs / "layers"
    d.mkdir()
    assert topdir_flag(d) is False
    assert spread_subdirectories(d) is True
    assert topdir_flag(d) is True
    assert spread_subdirectories(d) is True  # already set: no change, still True
    assert topdir_flag(d) is True


def test_refuses_quietly_what_it_cannot_flag(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    assert spread_subdirectories(tmp_path / "file") is False
    assert spread_subdirectories(tmp_path / "missing") is False


def test_layer_store_flags_its_directories(flagged_fs: Path) -> None:
    store = LayerStore(flagged_fs, select_driver(flagged_fs, "vfs"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        tf.addfile(tarfile.TarInfo("empty"), io.BytesIO(b""))
    store.register(io.BytesIO(buf.getvalue()), None)
    for sub in ("layers", "containers-rw", "tmp"):
        assert topdir_flag(flagged_fs / sub) is True, sub


def test_volume_store_flags_its_directory(flagged_fs: Path) -> None:
    VolumeStore(flagged_fs).create("data")
    assert topdir_flag(flagged_fs / "volumes") is True
