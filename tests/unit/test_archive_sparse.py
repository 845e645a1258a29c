"""Sparse tar members (GNU 'S' and PAX 0.0 / 0.1 / 1.0): holes stay holes on disk, the layer's
tar comes back byte for byte (tar-split), and maps beyond the limits are refused."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tar_samples import (
    SPARSE_FORMATS,
    end,
    file_size_limit,
    header,
    pax_header,
    plain_member,
    sparse_member,
)

from cargohold.cli.main import main
from cargohold.errors import InvalidArgument
from cargohold.store.drivers import select_driver
from cargohold.store.layers import LayerStore

REAL = 256 << 20  # what the old applier wrote out as zeros, so not 2 GiB in every test
REGIONS = [(1_000_000, b"hello"), (REAL // 2, b"middle"), (REAL - 3, b"end")]
BIG = 2 << 30
BIG_REGIONS = [(1_000_000, b"hello"), (1 << 30, b"middle"), (BIG - 3, b"end")]
SMALL = 1 << 20  # what "a few blocks" means: far below the real size
MAX_SPARSE_SIZE = 64 << 30  # the limits of store/archive_checks.py
MAX_SPARSE_ENTRIES = 1 << 17


@pytest.fixture(autouse=True)
def bounded_files() -> Iterator[None]:
    """Refused maps must be refused before anything is written (64 MiB would do); the
    largest file any test here makes is 2 GiB."""
    with file_size_limit(BIG):
        yield


@contextlib.contextmanager
def nothing_written() -> Iterator[None]:
    with file_size_limit(64 << 20):
        yield


@pytest.fixture
def store(tmp_path: Path) -> LayerStore:
    return LayerStore(tmp_path / "root", select_driver(tmp_path / "root", "vfs"))


def staging_left(store: LayerStore) -> list[str]:
    tmp = store.layout.tmp
    return os.listdir(tmp) if tmp.exists() else []


def check_file(path: Path, real: int, regions: list[tuple[int, bytes]]) -> None:
    st = os.stat(path)
    assert st.st_size == real
    assert st.st_blocks * 512 < SMALL, f"{st.st_blocks} blocks allocated: holes were written"
    with open(path, "rb") as f:
        for offset, chunk in regions:
            f.seek(offset)
            assert f.read(len(chunk)) == chunk
        offset, chunk = regions[0]
        f.seek(offset + len(chunk))
        assert f.read(10) == bytes(10)  # a hole reads as zeros


def round_trip(store: LayerStore, data: bytes) -> Path:
    layer = store.register(io.BytesIO(data), None)
    assert layer.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    out = bytearray()
    store.write_tar(layer.chain_id, out.extend)  # checked against the diff_id too
    assert bytes(out) == data
    assert store.tar_size(layer.chain_id) == len(data)
    return store.diff_path(layer.chain_id)


@pytest.mark.parametrize("fmt", SPARSE_FORMATS)
def test_sparse_member_keeps_its_holes_and_round_trips(store: LayerStore, fmt: str) -> None:
    data = sparse_member(fmt, "big", REAL, REGIONS) + plain_member("after", b"x") + end()
    diff = round_trip(store, data)
    check_file(diff / "big", REAL, REGIONS)
    assert (diff / "after").read_bytes() == b"x"


def test_old_gnu_sparse_with_extension_headers(store: LayerStore) -> None:
    regions = [(i * (8 << 20) + 7, bytes([65 + i % 26]) * (i + 1)) for i in range(30)]
    data = sparse_member("gnu", "many", 30 * (8 << 20), regions) + end()
    check_file(round_trip(store, data) / "many", 30 * (8 << 20), regions)


def test_sparse_file_replaced_later_in_the_archive_still_round_trips(store: LayerStore) -> None:
    data = (sparse_member("pax1.0", "f", REAL, [(4096, b"first"), (REAL // 2, b"second")])
            + plain_member("f", b"plain now") + end())
    assert (round_trip(store, data) / "f").read_bytes() == b"plain now"


def test_trailing_hole_gives_the_real_size(store: LayerStore) -> None:
    data = sparse_member("pax0.1", "t", REAL, [(0, b"head")]) + end()
    check_file(round_trip(store, data) / "t", REAL, [(0, b"head")])


def _refused(store: LayerStore, data: bytes, match: str) -> None:
    with nothing_written(), pytest.raises(InvalidArgument, match=match):
        store.register(io.BytesIO(data), None)
    assert store.list() == []
    assert staging_left(store) == []


@pytest.mark.parametrize("fmt", SPARSE_FORMATS)
def test_sparse_size_beyond_the_limit_is_refused(store: LayerStore, fmt: str) -> None:
    data = sparse_member(fmt, "huge", MAX_SPARSE_SIZE + 1, [(0, b"x")]) + end()
    _refused(store, data, r"invalid tar entry 'huge': sparse file of 68719476737 bytes is "
                          r"larger than the limit of 68719476736 bytes")


@pytest.mark.parametrize(
    ("regions", "match"),
    [
        ([(100, b"ab"), (50, b"cd")], "sparse map entries overlap or are out of order"),
        ([(100, b"abcd"), (102, b"cd")], "sparse map entries overlap or are out of order"),
        ([(4096, b"x" * 10)], r"sparse map entry \(4096, 10\) lies beyond the file's size"),
    ],
)
def test_inconsistent_sparse_maps_are_refused(store: LayerStore,
                                              regions: list[tuple[int, bytes]],
                                              match: str) -> None:
    data = sparse_member("pax0.1", "m", 4100, regions) + end()
    _refused(store, data, f"invalid tar entry 'm': {match}")


def test_sparse_map_claiming_more_data_than_stored_is_refused(store: LayerStore) -> None:
    records = [("GNU.sparse.size", str(1 << 30)), ("GNU.sparse.map", f"0,{1 << 20}")]
    data = pax_header(records) + header("m", 512) + bytes(512) + end()
    _refused(store, data, r"invalid tar entry 'm': sparse map refers to 1048576 bytes of data, "
                          r"the archive holds 512")


def test_sparse_map_with_too_many_entries_is_refused(store: LayerStore) -> None:
    count = MAX_SPARSE_ENTRIES + 1
    flat = ",".join(f"{2 * i},1" for i in range(count))
    data = (pax_header([("GNU.sparse.size", str(2 * count)), ("GNU.sparse.map", flat)])
            + header("m", count) + bytes(-count % 512 + count) + end())
    _refused(store, data, rf"invalid tar entry 'm': sparse map has {count} entries "
                          rf"\(the limit is {MAX_SPARSE_ENTRIES}\)")


def test_garbage_in_a_sparse_map_is_an_invalid_archive(store: LayerStore) -> None:
    data = pax_header([("GNU.sparse.size", "10"), ("GNU.sparse.map", "0,x")]) + header("m") + end()
    _refused(store, data, "invalid tar archive: malformed header at offset 0")


# -- through the CLI ---------------------------------------------------------------------------


def cli(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--root", str(root), "--runroot", str(root / "run"), "--storage-driver", "vfs",
                 *args])
    out, err = capsys.readouterr()
    return code, out, err


def layer_dirs(root: Path) -> list[Path]:
    layers = root / "layers"
    return [p for p in layers.iterdir() if len(p.name) == 64] if layers.exists() else []


def test_import_of_a_10k_sparse_tar_of_2gib_stays_small_and_saves_identically(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tar = tmp_path / "sparse.tar"
    tar.write_bytes(sparse_member("pax1.0", "big", BIG, BIG_REGIONS) + end())
    assert tar.stat().st_size <= 10 << 10
    root = tmp_path / "root"
    code, out, err = cli(root, capsys, "import", str(tar), "sparse:1")
    assert code == 0, err
    [layer] = layer_dirs(root)
    check_file(layer / "diff" / "big", BIG, BIG_REGIONS)
    saved = tmp_path / "saved.tar"
    code, _, err = cli(root, capsys, "save", "-o", str(saved), "sparse:1")
    assert code == 0, err
    digest = hashlib.sha256(tar.read_bytes()).hexdigest()
    with tarfile.open(saved) as archive:
        blob = archive.extractfile(f"blobs/sha256/{digest}")
        assert blob is not None and blob.read() == tar.read_bytes()
    assert cli(root, capsys, "rmi", "sparse:1")[0] == 0
    assert layer_dirs(root) == []
    code, out, err = cli(root, capsys, "load", "-i", str(saved))
    assert code == 0, err
    assert "Loaded image: sparse:1" in out
    [layer] = layer_dirs(root)
    check_file(layer / "diff" / "big", BIG, BIG_REGIONS)


def test_import_of_a_sparse_map_beyond_the_limit_leaves_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tar = tmp_path / "huge.tar"
    tar.write_bytes(sparse_member("gnu", "var/huge", 1 << 40, [(1 << 39, b"x")]) + end())
    root = tmp_path / "root"
    with nothing_written():
        code, _, err = cli(root, capsys, "import", str(tar), "huge:1")
    assert code == 125
    assert "invalid tar entry 'var/huge': sparse file of 1099511627776 bytes" in err
    assert cli(root, capsys, "images", "-q")[1] == ""
    assert layer_dirs(root) == []
    assert os.listdir(root / "tmp") == []


# -- archives made by GNU tar itself -----------------------------------------------------------


@pytest.mark.skipif(shutil.which("tar") is None, reason="needs GNU tar")
@pytest.mark.parametrize("options", [["--format=gnu"],
                                     ["--format=posix", "--sparse-version=0.0"],
                                     ["--format=posix", "--sparse-version=0.1"],
                                     ["--format=posix", "--sparse-version=1.0"]])
def test_gnu_tar_sparse_archives(store: LayerStore, tmp_path: Path, options: list[str]) -> None:
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "disk", "wb") as f:
        f.truncate(REAL)
        for offset, chunk in REGIONS:
            f.seek(offset)
            f.write(chunk)
    tar = tmp_path / "disk.tar"
    subprocess.run(["tar", "--sparse", *options, "-C", str(src), "-cf", str(tar), "disk"],
                   check=True)
    check_file(round_trip(store, tar.read_bytes()) / "disk", REAL, REGIONS)
