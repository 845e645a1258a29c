"""ADD of a local archive re-reads its headers: hostile values end in the build's own error,
naming the Dockerfile line, the entry and the field, and no layer is made."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tar_samples import end, file_size_limit, header, pax_header, sparse_member
from test_build_layer_tar import Harness

from cargohold.builder.executor import BuildFailed


@pytest.fixture(autouse=True)
def bounded_files() -> Iterator[None]:
    """Nothing here needs a big file: code that writes sparse holes out as zeros (the old
    applier) fails with EFBIG instead of filling the disk."""
    with file_size_limit(256 << 20):
        yield


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


@pytest.mark.parametrize(("archive", "message"), [
    (pax_header([("mtime", "nan")]) + header("a"),
     "invalid tar entry 'a': mtime nan is not a number of seconds"),
    (pax_header([("uid", "-5")]) + header("a"), r"invalid tar entry 'a': uid -5 is out of range"),
    (pax_header([("GNU.sparse.size", "10"), ("GNU.sparse.map", "0,x")]) + header("a"),
     "invalid tar archive: malformed header at offset 0"),
    (pax_header([("comment", "x")]) * 3000 + header("a"),
     "invalid tar archive: too many extended headers in a row"),
    (sparse_member("pax0.1", "s", 1 << 40, [(0, b"x")]),
     "invalid tar entry 's': sparse file of 1099511627776 bytes is larger than the limit"),
], ids=["mtime nan", "uid -5", "garbage sparse map", "3000 PAX headers", "1 TiB sparse file"])
def test_add_of_a_hostile_local_archive_fails_by_name(h: Harness, archive: bytes,
                                                      message: str) -> None:
    (h.ctx / "bad.tar").write_bytes(archive + end())
    before = {layer.chain_id for layer in h.layers.list()}
    with pytest.raises(BuildFailed, match=f"Dockerfile:2: .*{message}"):
        h.build("ADD bad.tar /opt/\n")
    assert {layer.chain_id for layer in h.layers.list()} == before
