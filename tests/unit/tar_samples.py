"""Hand-made tar archives for the archive tests: sparse members in GNU's four formats and
headers holding values ``tarfile`` would never write itself."""

from __future__ import annotations

import contextlib
import io
import resource
import tarfile
from collections.abc import Iterator

BLOCK = 512
SPARSE_FORMATS = ("gnu", "pax0.0", "pax0.1", "pax1.0")

Regions = list[tuple[int, bytes]]  # (offset in the file, data there)


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """No file this process (or its children) writes grows beyond ``limit`` bytes: EFBIG
    instead (Python ignores SIGXFSZ).  Code that expands sparse files into zeros, as the old
    applier did, then fails fast instead of filling the disk."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))


def _pad(data: bytes) -> bytes:
    return data + bytes(-len(data) % BLOCK)


def pax_records(records: list[tuple[str, str]]) -> bytes:
    """PAX extended-header text, keys may repeat (as in GNU's sparse format 0.0)."""
    out = b""
    for key, value in records:
        body = f" {key}={value}\n".encode("utf-8", "surrogateescape")
        size = len(body) + 1
        while len(str(size)) + len(body) != size:
            size = len(str(size)) + len(body)
        out += str(size).encode() + body
    return out


def pax_header(records: list[tuple[str, str]], name: str = "PaxHeaders/x") -> bytes:
    text = pax_records(records)
    info = tarfile.TarInfo(name)
    info.type = tarfile.XHDTYPE
    info.size = len(text)
    return info.tobuf(tarfile.USTAR_FORMAT) + _pad(text)


def header(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE, **fields: object) -> bytes:
    info = tarfile.TarInfo(name)
    info.size, info.type, info.mode, info.mtime = size, kind, 0o644, 1_600_000_000
    for key, value in fields.items():
        setattr(info, key, value)
    return info.tobuf(tarfile.GNU_FORMAT if kind == tarfile.GNUTYPE_SPARSE else
                      tarfile.USTAR_FORMAT)


def end() -> bytes:
    return bytes(2 * BLOCK)


def with_checksum(block: bytearray) -> bytes:
    block[148:156] = b" " * 8
    block[148:156] = b"%06o\0 " % sum(block)
    return bytes(block)


def _octal(value: int, width: int) -> bytes:
    """A numeric header field: octal, or GNU's base-256 when it does not fit."""
    if value < 8 ** (width - 1):
        return b"%0*o\0" % (width - 1, value)
    return b"\x80" + value.to_bytes(width - 1, "big")


def _gnu_sparse(name: str, realsize: int, regions: Regions) -> bytes:
    data = b"".join(chunk for _, chunk in regions)
    head = bytearray(header(name, len(data), tarfile.GNUTYPE_SPARSE))
    entries = [_octal(off, 12) + _octal(len(chunk), 12) for off, chunk in regions]
    first, rest = entries[:4], entries[4:]
    head[386 : 386 + 24 * len(first)] = b"".join(first)
    head[482] = 1 if rest else 0
    head[483:495] = _octal(realsize, 12)
    out = with_checksum(head)
    while rest:
        chunk, rest = rest[:21], rest[21:]
        ext = bytearray(BLOCK)
        ext[: 24 * len(chunk)] = b"".join(chunk)
        ext[504] = 1 if rest else 0
        out += bytes(ext)
    return out + _pad(data)


def sparse_member(fmt: str, name: str, realsize: int, regions: Regions) -> bytes:
    """One sparse regular file: ``regions`` hold data, everything else is a hole."""
    data = b"".join(chunk for _, chunk in regions)
    pairs = [(off, len(chunk)) for off, chunk in regions]
    if fmt == "gnu":
        return _gnu_sparse(name, realsize, regions)
    if fmt == "pax0.0":
        records = [("GNU.sparse.size", str(realsize)), ("GNU.sparse.numblocks", str(len(pairs)))]
        for off, size in pairs:
            records += [("GNU.sparse.offset", str(off)), ("GNU.sparse.numbytes", str(size))]
        return pax_header(records) + header(name, len(data)) + _pad(data)
    if fmt == "pax0.1":
        flat = ",".join(f"{off},{size}" for off, size in pairs)
        records = [("GNU.sparse.size", str(realsize)), ("GNU.sparse.numblocks", str(len(pairs))),
                   ("GNU.sparse.map", flat)]
        return pax_header(records) + header(name, len(data)) + _pad(data)
    if fmt == "pax1.0":
        records = [("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"),
                   ("GNU.sparse.name", name), ("GNU.sparse.realsize", str(realsize))]
        text = f"{len(pairs)}\n" + "".join(f"{off}\n{size}\n" for off, size in pairs)
        body = _pad(text.encode()) + data
        return (pax_header(records) + header(f"GNUSparseFile.0/{name}", len(body))
                + _pad(body))
    raise ValueError(fmt)


def plain_member(name: str, data: bytes) -> bytes:
    if len(name) > 100:
        return pax_header([("path", name)]) + header("long-name", len(data)) + _pad(data)
    return header(name, len(data)) + _pad(data)


def sample_layer() -> bytes:
    """A small valid layer using most entry kinds (the seed of the fuzz cases)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"",
                **fields: object) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.size, info.mtime = kind, len(data), 1_600_000_000
            info.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
            for key, value in fields.items():
                setattr(info, key, value)
            tar.addfile(info, io.BytesIO(data) if data else None)

        add("d", tarfile.DIRTYPE)
        add("d/f", data=b"hello world\n" * 40)
        add("d/" + "x" * 150, data=b"long name")
        add("d/l", tarfile.SYMTYPE, linkname="f")
        add("d/h", tarfile.LNKTYPE, linkname="d/f")
        add("d/x", data=b"x", pax_headers={"SCHILY.xattr.user.k": "v"})
        add("d/.wh.gone")
        add("e", tarfile.DIRTYPE)
        add("e/.wh..wh..opq")
        add("p", tarfile.FIFOTYPE)
        add("d/f", data=b"replaced")
    return _with_sparse_members(buf.getvalue())


def _with_sparse_members(tar: bytes) -> bytes:
    body = tar
    while body.endswith(bytes(BLOCK)):  # drop tarfile's end-of-archive blocks and padding
        body = body[:-BLOCK]
    return (body
            + sparse_member("pax1.0", "s1", 1 << 20, [(4096, b"a" * 100), (1 << 19, b"b")])
            + sparse_member("gnu", "s2", 1 << 20, [(0, b"c" * 600), (1 << 18, b"d")])
            + end())
