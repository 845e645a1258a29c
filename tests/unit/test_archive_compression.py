"""open_decompressed (format sniffing, streaming, corrupt input) and compressor stability."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os

import pytest
import zstandard

from cargohold.errors import InvalidArgument
from cargohold.store.archive import compressor, open_decompressed

PAYLOAD = b"".join(b"line %d of a layer that compresses well\n" % i for i in range(50_000))
PAYLOAD += os.urandom(300_000)


def read_all(data: bytes, chunk: int = 65536) -> bytes:
    stream = open_decompressed(io.BytesIO(data))
    parts = []
    while part := stream.read(chunk):
        parts.append(part)
    return b"".join(parts)


@pytest.mark.parametrize(
    "compress",
    [
        lambda d: d,
        gzip.compress,
        bz2.compress,
        lzma.compress,
        lambda d: zstandard.ZstdCompressor().compress(d),
    ],
    ids=["plain", "gzip", "bzip2", "xz", "zstd"],
)
def test_every_format_is_sniffed_and_decoded(compress: object) -> None:
    assert read_all(compress(PAYLOAD)) == PAYLOAD  # type: ignore[operator]


def test_short_plain_input_is_passed_through() -> None:
    assert read_all(b"abc") == b"abc"
    assert read_all(b"") == b""


def test_multi_member_gzip_and_zero_padding() -> None:
    data = gzip.compress(PAYLOAD[:1000]) + gzip.compress(PAYLOAD[1000:]) + bytes(512)
    assert read_all(data) == PAYLOAD


def test_concatenated_zstd_frames() -> None:
    c = zstandard.ZstdCompressor()
    assert read_all(c.compress(b"one ") + c.compress(b"two")) == b"one two"


@pytest.mark.parametrize(
    "data",
    [
        b"\x1f\x8b\x08\x00" + os.urandom(2000),  # gzip magic, junk body
        gzip.compress(PAYLOAD)[:-100],  # truncated gzip
        gzip.compress(b"x") + b"trailing garbage",
        zstandard.ZstdCompressor().compress(PAYLOAD)[:-50],  # truncated zstd
        bz2.compress(PAYLOAD)[:5000],
        lzma.compress(PAYLOAD)[:5000],
    ],
    ids=["gzip-junk", "gzip-truncated", "gzip-trailing", "zstd-truncated", "bzip2", "xz"],
)
def test_corrupt_compressed_input_is_invalid_argument(data: bytes) -> None:
    with pytest.raises(InvalidArgument):
        read_all(data)


@pytest.mark.parametrize("algo", ["gzip", "zstd", "none"])
def test_compressor_round_trips_and_is_stable(algo: str) -> None:
    outputs = []
    for chunk_size in (4096, 1 << 20):  # how the caller writes must not change the bytes
        out = io.BytesIO()
        writer = compressor(out, algo, 6 if algo != "zstd" else 3)  # type: ignore[arg-type]
        for i in range(0, len(PAYLOAD), chunk_size):
            writer.write(PAYLOAD[i : i + chunk_size])
        writer.close()
        assert not out.closed
        outputs.append(out.getvalue())
    assert outputs[0] == outputs[1]
    assert read_all(outputs[0]) == PAYLOAD


def test_gzip_header_has_no_timestamp_or_name() -> None:
    out = io.BytesIO()
    writer = compressor(out, "gzip")
    writer.write(b"hello")
    writer.close()
    data = out.getvalue()
    assert data[:3] == b"\x1f\x8b\x08"
    assert data[3] == 0  # no FNAME / FEXTRA / FCOMMENT flags
    assert data[4:8] == bytes(4)  # mtime 0
    assert gzip.decompress(data) == b"hello"


def test_gzip_level_is_honoured() -> None:
    sizes = []
    for level in (1, 9):
        out = io.BytesIO()
        writer = compressor(out, "gzip", level)
        writer.write(PAYLOAD)
        writer.close()
        sizes.append(len(out.getvalue()))
    assert sizes[1] < sizes[0]


@pytest.mark.parametrize(("algo", "level"), [("gzip", 10), ("zstd", 0), ("lz4", 1)])
def test_bad_algorithm_or_level_is_invalid(algo: str, level: int) -> None:
    with pytest.raises(InvalidArgument):
        compressor(io.BytesIO(), algo, level)  # type: ignore[arg-type]
