"""The entries of a stored layer's tar (path, type, size), read from its tar-split record.

The record holds every header byte of the original tar and only (path, size) for file
content, so the headers are parsed from a seekable view in which content reads as zeros:
listing a layer reads none of its files.  A layer without a record (made by an older
version) is read from the driver's diff tar instead.
"""

from __future__ import annotations

import bisect
import io
import tarfile
import tempfile
from collections.abc import Callable, Iterator, Sequence
from typing import BinaryIO

import msgspec

from cargohold.store.tarsplit import Segment, TarSplit, segment_length

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"


class Entry(msgspec.Struct, frozen=True):
    path: str  # relative, no leading "./" or "/", no trailing "/"
    kind: str  # file | dir | symlink | hardlink | other | whiteout | opaque
    size: int  # content bytes (regular files only)


class _Hollow(io.RawIOBase):
    """The tar of a tar-split record, seekable, with file content reading as zeros."""

    def __init__(self, segments: Sequence[Segment]) -> None:
        self._starts: list[int] = []
        self._segments = list(segments)
        pos = 0
        for seg in self._segments:
            self._starts.append(pos)
            pos += segment_length(seg)
        self._size, self._pos = pos, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(b).cast("B")
        done = 0
        while done < len(view) and self._pos < self._size:
            i = bisect.bisect_right(self._starts, self._pos) - 1
            seg, offset = self._segments[i], self._pos - self._starts[i]
            length = segment_length(seg)
            n = min(len(view) - done, length - offset)
            if isinstance(seg, bytes):
                view[done:done + n] = seg[offset:offset + n]
            else:
                view[done:done + n] = bytes(n)
            done += n
            self._pos += n
        return done


def _normal(name: str) -> str:
    while name.startswith("./"):
        name = name[2:]
    return name.strip("/")


def _entry(info: tarfile.TarInfo) -> Entry | None:
    path = _normal(info.name)
    if not path or path == ".":
        return None
    base = path.rsplit("/", 1)[-1]
    if base == OPAQUE:
        return Entry(path.rpartition("/")[0], "opaque", 0)
    if base.startswith(WHITEOUT_PREFIX):
        parent = path.rpartition("/")[0]
        return Entry(f"{parent}/{base[4:]}" if parent else base[4:], "whiteout", 0)
    if info.isreg():
        return Entry(path, "file", info.size)
    kind = ("dir" if info.isdir() else "symlink" if info.issym() else
            "hardlink" if info.islnk() else "other")
    return Entry(path, kind, 0)


def entries_of(tar: BinaryIO) -> Iterator[Entry]:
    """Every entry of a (seekable) layer tar, whiteouts decoded."""
    with tarfile.open(fileobj=tar, mode="r:") as archive:
        for info in archive:
            entry = _entry(info)
            if entry is not None:
                yield entry


def split_entries(split: TarSplit) -> list[Entry]:
    if not split.size:
        return []
    return list(entries_of(_Hollow(split.segments())))  # type: ignore[arg-type]


def diff_entries(write_tar: Callable[[BinaryIO], None]) -> list[Entry]:
    """Entries of a tar that ``write_tar`` produces (spooled to a temporary file)."""
    with tempfile.TemporaryFile() as tmp:
        write_tar(tmp)
        if not tmp.tell():
            return []
        tmp.seek(0)
        return list(entries_of(tmp))
