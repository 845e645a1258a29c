"""Tar-split: reproduce a layer's original tar byte for byte from its unpacked files.

While a layer is applied, every byte of the archive except regular-file content is recorded
(headers, PAX records, padding, the end-of-archive blocks and any trailing bytes); file
content is recorded as a reference (path inside the layer, size).  Reassembling the records
with the files' content gives back the exact stream, so its digest is the layer's diff_id and
`save`/`push` need no second copy of every layer (containers/storage keeps the same idea).

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

from cargohold.errors import Internal

MAGIC = b"CHTARSPLIT1\n"
_RAW = b"R"
_FILE = b"F"
_CHUNK = 1 << 20
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC

Segment = bytes | tuple[str, int]


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

    def _flush(self) -> None:
        if self._raw:
            self.segments.append(bytes(self._raw))
            self._raw.clear()

    def before_remove(self, rel: str) -> None:
        """``rel`` (a file or a whole tree) is about to be removed: inline what we point at."""
        prefix = rel + "/"
        for path in [p for p in self._files if p == rel or p.startswith(prefix)]:
            content = _read_beneath(self.root_fd, path)
            for index in self._files.pop(path):
                size = self.segments[index][1]  # type: ignore[index]
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
            else:
                name = seg[0].encode("utf-8", "surrogateescape")
                parts += [_FILE, struct.pack(">HQ", len(name), seg[1]), name]
        return bytes(zstandard.ZstdCompressor(level=3).compress(b"".join(parts)))


def _read_beneath(root_fd: int, rel: str) -> bytes:
    fd = _open_beneath(root_fd, rel)
    try:
        chunks = []
        while chunk := os.read(fd, _CHUNK):
            chunks.append(chunk)
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
            else:
                raise Internal("tar-split record is damaged")
        return out

    def write(self, root: Path, sink: Callable[[bytes | memoryview], object]) -> str:
        """Feed the original tar to ``sink``; returns its sha256 digest."""
        hasher = hashlib.sha256()
        buf = bytearray(_CHUNK)
        view = memoryview(buf)
        root_fd = os.open(root, _DIR_FLAGS)
        try:
            for seg in self.segments():
                if isinstance(seg, bytes):
                    hasher.update(seg)
                    sink(seg)
                    continue
                fd = _open_beneath(root_fd, seg[0])
                try:
                    left = seg[1]
                    while left:
                        got = os.readv(fd, [view[: min(_CHUNK, left)]])
                        if not got:
                            raise Internal(f"tar-split: layer file {seg[0]!r} is shorter")
                        hasher.update(view[:got])
                        sink(view[:got])
                        left -= got
                finally:
                    os.close(fd)
        finally:
            os.close(root_fd)
        return "sha256:" + hasher.hexdigest()
