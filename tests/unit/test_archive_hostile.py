"""Hostile tar headers end in a clear error naming the entry and the field, never a Python
exception, and leave nothing behind (no layer, no image, no staging entry); trees of any
depth the limits allow are applied, saved and removed without recursion."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tar_samples import (
    end,
    file_size_limit,
    header,
    pax_header,
    plain_member,
    sparse_member,
    with_checksum,
)

from cargohold.cli.main import main
from cargohold.errors import InvalidArgument
from cargohold.store.archive import apply_layer
from cargohold.store.drivers import select_driver
from cargohold.store.layers import LayerStore


def pax_entry(records: list[tuple[str, str]], name: str = "a", data: bytes = b"",
              kind: bytes = tarfile.REGTYPE) -> bytes:
    return pax_header(records) + header(name, len(data), kind) + data + bytes(-len(data) % 512)


def raw_field(name: str, start: int, stop: int, value: bytes,
              kind: bytes = tarfile.REGTYPE) -> bytes:
    """An entry whose header field [start:stop] holds ``value`` (e.g. GNU base-256)."""
    block = bytearray(header(name, 0, kind))
    block[start:stop] = value.rjust(stop - start, b"\0")
    return with_checksum(block)


def base256(value: int, width: int = 8) -> bytes:
    if value < 0:
        return (value % (1 << (8 * width))).to_bytes(width, "big")  # two's complement, 0xff..
    return b"\x80" + value.to_bytes(width - 1, "big")


@pytest.fixture(autouse=True)
def bounded_files() -> Iterator[None]:
    """Nothing here needs a big file: code that writes sparse holes out as zeros (the old
    applier) fails with EFBIG instead of filling the disk."""
    with file_size_limit(256 << 20):
        yield


DEEP = "/".join(["d"] * 3000) + "/f"

HOSTILE: dict[str, tuple[bytes, str]] = {
    "mtime 1e30": (pax_entry([("mtime", "1e30")]), r"mtime 1e\+30 is out of range"),
    "mtime -1e30": (pax_entry([("mtime", "-1e30")]), r"mtime -1e\+30 is out of range"),
    "mtime nan": (pax_entry([("mtime", "nan")]), "mtime nan is not a number of seconds"),
    "mtime inf": (pax_entry([("mtime", "inf")]), "mtime inf is not a number of seconds"),
    "mtime base-256": (raw_field("a", 136, 148, base256(1 << 80, 12)),
                       "mtime 1208925819614629174706176 is out of range"),
    "uid 2**40": (pax_entry([("uid", str(2**40))]),
                  r"uid 1099511627776 is out of range \(0\.\.4294967294\)"),
    "uid -5": (pax_entry([("uid", "-5")]), r"uid -5 is out of range"),
    "uid -1 (chown's 'unchanged')": (pax_entry([("uid", str(2**32 - 1))]),
                                     "uid 4294967295 is out of range"),
    "gid -5": (pax_entry([("gid", "-5")]), "gid -5 is out of range"),
    "gid base-256 negative": (raw_field("a", 116, 124, base256(-5)), "gid -5 is out of range"),
    "size -5": (pax_entry([("size", "-5")]), "size -5 is out of range"),
    "size 2**70": (pax_entry([("size", str(2**70))]),
                   "size 1180591620717411303424 is out of range"),
    "devmajor 2**40": (raw_field("dev", 329, 337, base256(2**40), tarfile.CHRTYPE),
                       r"invalid tar entry 'dev': devmajor 1099511627776 is out of range"),
    "devminor 2**20": (raw_field("dev", 337, 345, base256(2**20), tarfile.BLKTYPE),
                       r"invalid tar entry 'dev': devminor 1048576 is out of range"),
    "devmajor -1": (raw_field("dev", 329, 337, base256(-1), tarfile.CHRTYPE),
                    "devmajor -1 is out of range"),
    "path 3000 deep": (pax_entry([("path", DEEP)]),
                       r"name is 6001 bytes long \(the limit is 4095\)"),
    "component of 300 bytes": (pax_entry([("path", "a/" + "x" * 300)]),
                               "name has a component longer than 255 bytes"),
    "NUL in name": (pax_entry([("path", "a\x00b")]), r"'a\\x00b': NUL byte in name"),
    "NUL in linkname": (pax_entry([("linkpath", "t\x00u")], kind=tarfile.SYMTYPE),
                        "invalid tar entry 'a': NUL byte in linkname"),
    "symlink target of 5000 bytes": (pax_entry([("linkpath", "t" * 5000)], kind=tarfile.SYMTYPE),
                                     "linkname is 5000 bytes long"),
    "NUL in an xattr name": (pax_entry([("SCHILY.xattr.user.a\x00b", "v")], data=b"x"),
                             r"NUL byte in xattr name 'user.a\\x00b'"),
    "3000 extended headers in a row": (pax_header([("comment", "x")]) * 3000 + header("a"),
                                       r"too many extended headers in a row at offset \d+"),
    "9 MiB of headers": (b"".join(pax_header([("comment", "x" * (1 << 20))]) for _ in range(9))
                         + header("a"), "more than 8388608 bytes of headers"),
}


@pytest.fixture
def store(tmp_path: Path) -> LayerStore:
    return LayerStore(tmp_path / "root", select_driver(tmp_path / "root", "vfs"))


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_header_is_refused_by_name(tmp_path: Path, case: str) -> None:
    data, message = HOSTILE[case]
    root = tmp_path / "layer"
    root.mkdir()
    with pytest.raises(InvalidArgument, match=message):
        apply_layer(io.BytesIO(data + end()), root, whiteouts="delete")


@pytest.mark.parametrize("case", ["mtime 1e30", "uid 2**40", "path 3000 deep", "size -5",
                                  "NUL in linkname", "3000 extended headers in a row"])
def test_hostile_header_leaves_no_layer_or_staging(store: LayerStore, case: str) -> None:
    data, message = HOSTILE[case]
    with pytest.raises(InvalidArgument, match=message):
        store.register(io.BytesIO(plain_member("ok", b"fine") + data + end()), None)
    assert store.list() == []
    assert os.listdir(store.layout.tmp) == []


def test_garbage_uname_and_gname_are_kept_as_they_are(store: LayerStore) -> None:
    """Never used for anything (moby ignores them too): accepted, and saved byte for byte."""
    block = bytearray(header("a", 0))
    block[265:297] = b"\xff\xfe\x00junk\x80".ljust(32, b"\x01")
    block[297:329] = bytes(range(200, 232))
    data = with_checksum(block) + pax_entry([("uname", "\udcff"), ("gname", "x" * 5000)], "b") \
        + end()
    layer = store.register(io.BytesIO(data), None)
    out = bytearray()
    store.write_tar(layer.chain_id, out.extend)
    assert bytes(out) == data


# -- through the CLI: import and load ----------------------------------------------------------


def cli(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--root", str(root), "--runroot", str(root / "run"), "--storage-driver", "vfs",
                 *args])
    out, err = capsys.readouterr()
    return code, out, err


def docker_archive(path: Path, layer: bytes, tag: str = "hostile:1") -> Path:
    """A `docker save` archive of one image whose only layer is ``layer``."""
    diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                         "rootfs": {"type": "layers", "diff_ids": [diff_id]}}).encode()
    manifest = json.dumps([{"Config": "config.json", "RepoTags": [tag],
                            "Layers": ["layer.tar"]}]).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in (("manifest.json", manifest), ("config.json", config),
                           ("layer.tar", layer)):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def assert_nothing_left(root: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(root, capsys, "images", "-q")[1] == ""
    layers = root / "layers"
    assert not [p for p in layers.iterdir() if len(p.name) == 64] if layers.exists() else True
    assert not (root / "tmp").exists() or os.listdir(root / "tmp") == []


@pytest.mark.parametrize("verb", ["import", "load"])
@pytest.mark.parametrize(
    ("case", "shown"),
    [("mtime 1e30", "Error response from daemon: invalid tar entry 'a': mtime 1e+30 is out of "
                    "range"),
     ("uid -5", "Error response from daemon: invalid tar entry 'a': uid -5 is out of range "
                "(0..4294967294)"),
     ("devmajor 2**40", "Error response from daemon: invalid tar entry 'dev': devmajor "
                        "1099511627776 is out of range (0..4095)"),
     ("path 3000 deep", "name is 6001 bytes long (the limit is 4095)"),
     ("size 2**70", "invalid tar entry 'a': size 1180591620717411303424 is out of range")],
)
def test_cli_reports_the_entry_and_field_and_registers_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], verb: str, case: str,
        shown: str) -> None:
    layer = plain_member("ok", b"fine") + HOSTILE[case][0] + end()
    root = tmp_path / "root"
    if verb == "import":
        tar = tmp_path / "layer.tar"
        tar.write_bytes(layer)
        code, _, err = cli(root, capsys, "import", str(tar), "hostile:1")
    else:
        archive = docker_archive(tmp_path / "image.tar", layer)
        code, _, err = cli(root, capsys, "load", "-i", str(archive))
    assert code == 125
    assert shown in err
    assert "Error: " not in err.replace("Error response from daemon: ", "")  # no Python name
    assert_nothing_left(root, capsys)


OUTER = {
    "3000 extended headers": (pax_header([("comment", "x")]) * 3000 + header("manifest.json"),
                              "invalid tar archive: too many extended headers in a row"),
    "garbage sparse map": (pax_header([("GNU.sparse.size", "10"), ("GNU.sparse.map", "0,x")])
                           + header("manifest.json"),
                           "invalid tar archive: malformed header at offset 0"),
    "size -5": (pax_header([("size", "-5")]) + header("manifest.json"),
                "archive member 'manifest.json' has an invalid size -5"),
    "sparse manifest": (sparse_member("pax1.0", "manifest.json", 1 << 20, [(0, b"[]")]),
                        "archive member 'manifest.json' is a sparse file"),
    "PAX header of 1 GiB": (header("x", 1 << 30, tarfile.XHDTYPE) + bytes(1024),
                            "invalid tar archive: header of 1073741824 bytes at offset 512"),
}


@pytest.mark.parametrize("case", list(OUTER))
def test_load_of_a_hostile_image_archive_is_refused_cleanly(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], case: str) -> None:
    data, message = OUTER[case]
    archive = tmp_path / "image.tar"
    archive.write_bytes(data + end())
    root = tmp_path / "root"
    code, _, err = cli(root, capsys, "load", "-i", str(archive))
    assert code == 125
    assert f"Error response from daemon: {message}" in err
    assert_nothing_left(root, capsys)


def test_a_tree_deep_within_the_limits_imports_saves_loads_and_is_removed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """1,500 directories (below PATH_MAX): applying, removing and reproducing the layer
    must not recurse per level (Python's limit is 1,000 frames)."""
    deep = "/".join(["d"] * 1500)
    layer = (plain_member(deep + "/f", b"bottom") + plain_member("top", b"x")
             + plain_member(deep + "/g", b"again") + end())
    tar = tmp_path / "deep.tar"
    tar.write_bytes(layer)
    root = tmp_path / "root"
    try:
        code, _, err = cli(root, capsys, "import", str(tar), "deep:1")
        assert code == 0, err
        [layer_dir] = [p for p in (root / "layers").iterdir() if len(p.name) == 64]
        fd = os.open(layer_dir / "diff", os.O_RDONLY)
        try:
            for _ in range(1500):
                nxt = os.open("d", os.O_RDONLY, dir_fd=fd)
                os.close(fd)
                fd = nxt
            with open(os.open("f", os.O_RDONLY, dir_fd=fd), "rb") as f:
                assert f.read() == b"bottom"
        finally:
            os.close(fd)
        saved = tmp_path / "saved.tar"
        assert cli(root, capsys, "save", "-o", str(saved), "deep:1")[0] == 0
        code, _, err = cli(root, capsys, "rmi", "deep:1")
        assert code == 0, err
        assert_nothing_left(root, capsys)
        code, out, err = cli(root, capsys, "load", "-i", str(saved))
        assert code == 0, err
        assert "Loaded image: deep:1" in out
        assert cli(root, capsys, "rmi", "deep:1")[0] == 0
        assert_nothing_left(root, capsys)
    finally:  # whatever is left: pytest's own clean-up (shutil.rmtree) would recurse
        subprocess.run(["rm", "-rf", str(root)], check=False)
