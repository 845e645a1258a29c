"""Layers reproduce their original tar byte for byte (tar-split), whatever the archive does."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from cargohold.errors import Internal
from cargohold.store.drivers import select_driver
from cargohold.store.layers import LayerStore


@pytest.fixture
def store(tmp_path: Path) -> LayerStore:
    return LayerStore(tmp_path, select_driver(tmp_path, "vfs"))


def tar_bytes(build: list[tuple[tarfile.TarInfo, bytes | None]], fmt: int = tarfile.PAX_FORMAT,
              trailer: bytes = b"") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
        for info, data in build:
            if data is not None:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
            else:
                tf.addfile(info)
    return buf.getvalue() + trailer


def reg(name: str, data: bytes, **kw: object) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    for k, v in kw.items():
        setattr(info, k, v)
    return info, data


def node(name: str, kind: bytes, linkname: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    if kind == tarfile.DIRTYPE:
        info.mode = 0o755
    return info, None


def reproduce(store: LayerStore, data: bytes, parent: str | None = None) -> bytes:
    layer = store.register(io.BytesIO(data), parent)
    assert layer.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    out = bytearray()
    store.write_tar(layer.chain_id, out.extend)
    assert store.tar_size(layer.chain_id) == len(data)
    return bytes(out)


def test_plain_archive_round_trips(store: LayerStore) -> None:
    data = tar_bytes([node("etc", tarfile.DIRTYPE), reg("etc/motd", b"hello\n" * 1000),
                      reg("bin/tool", b"\x7fELF" + bytes(5000), mode=0o4755),
                      node("bin/link", tarfile.SYMTYPE, "tool"),
                      node("bin/hard", tarfile.LNKTYPE, "bin/tool")])
    assert reproduce(store, data) == data


def test_pax_long_names_gnu_format_and_trailing_padding(store: LayerStore) -> None:
    long = "d/" + "x" * 180 + "/file"
    data = tar_bytes([reg(long, b"content", pax_headers={"SCHILY.xattr.user.k": "v"})])
    assert reproduce(store, data) == data
    gnu = tar_bytes([reg("g/" + "y" * 150, b"abc")], fmt=tarfile.GNU_FORMAT,
                    trailer=bytes(4096))
    assert reproduce(store, gnu) == gnu


def test_duplicate_names_keep_the_first_content(store: LayerStore) -> None:
    data = tar_bytes([reg("a", b"first version"), reg("a", b"second, longer version"),
                      node("d", tarfile.DIRTYPE), reg("d/f", b"inside"),
                      node("d", tarfile.SYMTYPE, "/etc")])
    assert reproduce(store, data) == data


def test_whiteout_of_an_own_entry(store: LayerStore) -> None:
    base = store.register(io.BytesIO(tar_bytes([reg("keep", b"k")])), None)
    data = tar_bytes([node("dir", tarfile.DIRTYPE), reg("dir/x", b"x" * 3000),
                      reg("dir/.wh.x", b""), reg("dir/.wh..wh..opq", b"")])
    assert reproduce(store, data, base.chain_id) == data


def test_changed_content_on_disk_is_detected(store: LayerStore) -> None:
    data = tar_bytes([reg("f", b"original")])
    layer = store.register(io.BytesIO(data), None)
    (store.diff_path(layer.chain_id) / "f").write_bytes(b"tampered")
    with pytest.raises(Internal, match="could not be reproduced"):
        store.write_tar(layer.chain_id, bytearray().extend)


def test_symlink_swapped_into_a_recorded_path_is_not_followed(store: LayerStore,
                                                              tmp_path: Path) -> None:
    data = tar_bytes([node("d", tarfile.DIRTYPE), reg("d/f", b"secret-free")])
    layer = store.register(io.BytesIO(data), None)
    diff = store.diff_path(layer.chain_id)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_bytes(b"host file!!")
    (diff / "d" / "f").unlink()
    (diff / "d").rmdir()
    (diff / "d").symlink_to(outside)
    with pytest.raises(Internal):
        store.write_tar(layer.chain_id, bytearray().extend)
