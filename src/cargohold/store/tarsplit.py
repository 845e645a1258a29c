"""Tar-split: reproduce a layer's original tar byte for byte from its unpacked files.

While a layer is applied, every byte of the archive except regular-file content is recorded
(headers, PAX records, padding, the end-of-archive blocks and any trailing bytes); file
content is recorded as a reference (path inside the layer, size).  Reassembling the records
with the files' content gives back the exact stream, so its digest is the layer's diff_id and
`save`/`push` need no second copy of every layer (containers/storage keeps the same idea).

A sparse member's data is recorded as its regions ((offset, length) pairs of the file on
disk, holes are not stored), so reassembly reads exactly the bytes the archive held.

If the archive later removes or replaces a file it already wrote (duplicate names,
whiteouts of its own entries), that file's content is inlined into the record before it is
removed, so the record stays complete.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from cargohold.errors import Internal

MAGIC = b"CHTARSPLIT1\n"
_RAW = b"R"
_FILE = b"F"
_SPARSE = b"S"
_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC



class SparseFile(NamedTuple):
    """The data regions of a sparse member, in archive order."""

    path: str
    regions: tuple[tuple[int, int], ...]  # (offset in the file, length)

    @property
    def size(self) -> int:
        return sum(length for _, length in self.regions)


Segment = bytes | tuple[str, int] | SparseFile


def segment_length(seg: Segment) -> int:
    """How many bytes of the tar a segment stands for (a sparse file: its data regions)."""
    if isinstance(seg, bytes):
        return len(seg)
    if isinstance(seg, SparseFile):
        return seg.size
    return seg[1]


class SplitRecorder:
    """Collects the segments of one archive while ``apply_layer`` extracts it."""

    def __init__(self) -> None:
        self.root_fd = -1
        self.segments: list[Segment] = []
        self._raw = bytearray()
        self._files: dict[str, list[int]] = {}
        self.total = 0

    def raw(self, data: bytes | memoryview) -> None:
        self._raw += data
        self.total += len(data)

    def file(self, rel: str, size: int) -> None:
        self._flush()
        self._files.setdefault(rel, []).append(len(self.segments))
        self.segments.append((rel, size))
        self.total += size

    def sparse(self, rel: str, regions: list[tuple[int, int]]) -> None:
        """The next bytes are the data of sparse file ``rel``: its ``regions`` in order."""
        self._flush()
        seg = SparseFile(rel, tuple(regions))
        self._files.setdefault(rel, []).append(len(self.segments))
        self.segments.append(seg)
        self.total += seg.size

    def _flush(self) -> None:
        if self._raw:
            self.segments.append(bytes(self._raw))
            self._raw.clear()

    def before_remove(self, rel: str) -> None:
        """``rel`` (a file or a whole tree) is about to be removed: inline what we point at."""
        prefix = rel + "/"
        for path in [p for p in self._files if p == rel or p.startswith(prefix)]:
            for index in self._files.pop(path):
                seg = self.segments[index]
                regions = seg.regions if isinstance(seg, SparseFile) else None
                size = segment_length(seg)
                content = _read_beneath(self.root_fd, path, regions)
                if len(content) != size:
                    raise Internal(f"tar-split: {path} changed size while being applied")
                self.segments[index] = content

    def serialize(self) -> bytes:
        import zstandard

        self._flush()
        parts = [MAGIC, struct.pack(">Q", self.total)]
        for seg in self.segments:
            if isinstance(seg, bytes):
                parts += [_RAW, struct.pack(">I", len(seg)), seg]
            elif isinstance(seg, SparseFile):
                name = seg.path.encode("utf-8", "surrogateescape")
                parts += [_SPARSE, struct.pack(">HI", len(name), len(seg.regions)), name]
                parts += [struct.pack(">QQ", *region) for region in seg.regions]
            else:
                name = seg[0].encode("utf-8", "surrogateescape")
                parts += [_FILE, struct.pack(">HQ", len(name), seg[1]), name]
        return bytes(zstandard.ZstdCompressor(level=3).compress(b"".join(parts)))


def _read_beneath(root_fd: int, rel: str,
                  regions: tuple[tuple[int, int], ...] | None = None) -> bytes:
    """The content of ``rel``, or with ``regions`` the concatenation of those ranges."""
    fd = _open_beneath(root_fd, rel)
    try:
        chunks = []
        if regions is None:
            while chunk := os.read(fd, _CHUNK):
                chunks.append(chunk)
        else:
            for offset, length in regions:
                chunks.append(os.pread(fd, length, offset))
        return b"".join(chunks)
    finally:
        os.close(fd)


def _open_beneath(root_fd: int, rel: str) -> int:
    """Open ``rel`` under ``root_fd`` without following any symlink on the way."""
    parts = rel.split("/")
    dir_fd = root_fd
    try:
        for part in parts[:-1]:
            nxt = os.open(part, _DIR_FLAGS, dir_fd=dir_fd)
            if dir_fd != root_fd:
                os.close(dir_fd)
            dir_fd = nxt
        return os.open(parts[-1], _FILE_FLAGS, dir_fd=dir_fd)
    except OSError as exc:
        raise Internal(f"tar-split: cannot open layer file {rel!r}: {exc}") from None
    finally:
        if dir_fd != root_fd:
            os.close(dir_fd)


class TarSplit:
    """A stored record, ready to reassemble the tar."""

    def __init__(self, data: bytes) -> None:
        import zstandard

        raw = zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 31)
        if not raw.startswith(MAGIC):
            raise Internal("tar-split record is damaged")
        (self.size,) = struct.unpack_from(">Q", raw, len(MAGIC))
        self._raw = raw
        self._start = len(MAGIC) + 8

    @classmethod
    def load(cls, path: Path) -> TarSplit:
        return cls(path.read_bytes())

    def segments(self) -> list[Segment]:
        raw, pos = self._raw, self._start
        out: list[Segment] = []
        view = memoryview(raw)
        while pos < len(raw):
            kind = raw[pos : pos + 1]
            if kind == _RAW:
                (n,) = struct.unpack_from(">I", raw, pos + 1)
                out.append(bytes(view[pos + 5 : pos + 5 + n]))
                pos += 5 + n
            elif kind == _FILE:
                n, size = struct.unpack_from(">HQ", raw, pos + 1)
                name = raw[pos + 11 : pos + 11 + n].decode("utf-8", "surrogateescape")
                out.append((name, size))
                pos += 11 + n
            elif kind == _SPARSE:
                n, count = struct.unpack_from(">HI", raw, pos + 1)
                name = raw[pos + 7 : pos + 7 + n].decode("utf-8", "surrogateescape")
                pos += 7 + n
                pairs = struct.unpack_from(f">{2 * count}Q", raw, pos)
                out.append(SparseFile(name, tuple(zip(pairs[::2], pairs[1::2], strict=True))))
                pos += 16 * count
            else:
                raise Internal("tar-split record is damaged")
        return out

    def write(self, root: Path, sink: Callable[[bytes | memoryview], object]) -> str:
        """Feed the original tar to ``sink``; returns its sha256 digest."""
        hasher = hashlib.sha256()

        def emit(data: bytes | memoryview) -> None:
            hasher.update(data)
            sink(data)

        view = memoryview(bytearray(_CHUNK))
        root_fd = os.open(root, _DIR_FLAGS)
        try:
            for seg in self.segments():
                if isinstance(seg, bytes):
                    emit(seg)
                    continue
                fd = _open_beneath(root_fd, seg[0])
                try:
                    if isinstance(seg, SparseFile):
                        for offset, length in seg.regions:
                            _copy_range(fd, seg.path, offset, length, view, emit)
                    else:
                        _copy_range(fd, seg[0], None, seg[1], view, emit)
                finally:
                    os.close(fd)
        finally:
            os.close(root_fd)
        return "sha256:" + hasher.hexdigest()


def _copy_range(fd: int, name: str, offset: int | None, length: int, view: memoryview,
                emit: Callable[[memoryview], None]) -> None:
    """``length`` bytes of ``fd`` from ``offset`` (None: from where it is) into ``emit``."""
    while length:
        piece = [view[: min(_CHUNK, length)]]
        got = os.readv(fd, piece) if offset is None else os.preadv(fd, piece, offset)
        if not got:
            raise Internal(f"tar-split: layer file {name!r} is shorter")
        emit(view[:got])
        length -= got
        if offset is not None:
            offset += got
