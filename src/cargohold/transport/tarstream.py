"""Minimal, fast tar plumbing for image archives (not layers: see store/archive.py).

The writer emits deterministic headers and copies blob files with ``os.sendfile`` so that a
``save`` of a large image costs little more than the copy itself.  The index reads the member
table of a seekable archive without reading member data.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable
from typing import IO, BinaryIO, cast

import msgspec

from cargohold.errors import InvalidArgument

Sink = Callable[[bytes | memoryview], object]
BLOCK = 512
RECORD = BLOCK * 20


class TarWriter:
    """Writes a tar stream to a file descriptor (a file or a pipe)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.offset = 0

    def _write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        self.offset += len(data)

    def _header(
        self, name: str, size: int, kind: bytes = tarfile.REGTYPE, mode: int = 0o644
    ) -> None:
        info = tarfile.TarInfo(name)
        info.size = size
        info.type = kind
        info.mode = mode
        info.mtime = 0
        self._write(info.tobuf(format=tarfile.PAX_FORMAT))

    def _pad(self, size: int) -> None:
        rem = size % BLOCK
        if rem:
            self._write(b"\0" * (BLOCK - rem))

    def add_dir(self, name: str) -> None:
        self._header(name.rstrip("/") + "/", 0, tarfile.DIRTYPE, 0o755)

    def add_bytes(self, name: str, data: bytes) -> None:
        self._header(name, len(data))
        self._write(data)
        self._pad(len(data))

    def add_file(self, name: str, path: str | os.PathLike[str]) -> None:
        """Add the regular file at ``path`` under ``name``, copied in the kernel."""
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            self._header(name, size)
            sent = 0
            while sent < size:
                n = os.sendfile(self.fd, f.fileno(), sent, min(size - sent, 1 << 30))
                if n == 0:
                    raise InvalidArgument(f"file {path} shrank while being saved")
                sent += n
            self.offset += size
        self._pad(size)

    def add_stream(self, name: str, size: int, produce: Callable[[Sink], None]) -> None:
        """Add ``size`` bytes that ``produce`` feeds to the sink it is given."""
        self._header(name, size)
        start = self.offset
        produce(self._write)
        if self.offset - start != size:
            raise InvalidArgument(f"{name}: produced {self.offset - start} bytes, expected {size}")
        self._pad(size)

    def close(self) -> None:
        self._write(b"\0" * (BLOCK * 2))
        rem = self.offset % RECORD
        if rem:
            self._write(b"\0" * (RECORD - rem))


class Member(msgspec.Struct, frozen=True):
    name: str
    offset: int  # of the data
    size: int
    is_file: bool
    linkname: str


class ArchiveIndex:
    """Member table of a seekable tar file; members are opened lazily by name.

    Header parsing is as guarded as a layer's (``store/archive_reader.py``): stray exceptions
    of tarfile become "invalid tar archive", and no header may claim more than 8 MiB.
    """

    def __init__(self, f: BinaryIO) -> None:
        from cargohold.store.archive_reader import PARSE_ERRORS, malformed

        self.f = f
        self.members: dict[str, Member] = {}
        start = 0
        try:
            with tarfile.open(fileobj=cast(IO[bytes], _HeaderReads(f)), mode="r:") as tf:
                for ti in tf:
                    self._add(ti)
                    start = tf.offset
        except tarfile.TarError as e:
            raise InvalidArgument(f"invalid tar archive: {e}") from None
        except PARSE_ERRORS as e:
            raise malformed(e, start) from None

    def _add(self, ti: tarfile.TarInfo) -> None:
        name = _clean(ti.name)
        if ti.sparse is not None:
            raise InvalidArgument(f"archive member {name!r} is a sparse file: not supported in "
                                  "an image archive")
        if ti.size < 0:
            raise InvalidArgument(f"archive member {name!r} has an invalid size {ti.size}")
        self.members[name] = Member(name, ti.offset_data, ti.size, ti.isreg(),
                                    _clean(ti.linkname))

    def _resolve(self, name: str) -> Member:
        name = _clean(name)
        for _ in range(16):
            m = self.members.get(name)
            if m is None:
                raise InvalidArgument(f"archive has no member {name!r}")
            if m.is_file:
                return m
            if not m.linkname:
                raise InvalidArgument(f"archive member {name!r} is not a regular file")
            name = m.linkname
        raise InvalidArgument(f"archive member {name!r}: too many links")

    def has(self, name: str) -> bool:
        return _clean(name) in self.members

    def read(self, name: str, limit: int = 64 << 20) -> bytes:
        m = self._resolve(name)
        if m.size > limit:
            raise InvalidArgument(f"archive member {name!r} is too large ({m.size} bytes)")
        self.f.seek(m.offset)
        data = self.f.read(m.size)
        if len(data) != m.size:
            raise InvalidArgument(f"archive member {name!r} is truncated")
        return data

    def open(self, name: str) -> BinaryIO:
        m = self._resolve(name)
        return SectionReader(self.f, m.offset, m.size)  # type: ignore[return-value]

    def size(self, name: str) -> int:
        return self._resolve(name).size


class _HeaderReads:
    """``f`` as tarfile reads it while listing members: it seeks over member data, so every
    read is a header (PAX records, long names), and one claiming more than 8 MiB is refused
    rather than read into memory."""

    _MAX = 8 << 20

    def __init__(self, f: BinaryIO) -> None:
        self._f = f

    def read(self, n: int = -1) -> bytes:
        if n < 0 or n > self._MAX:
            raise InvalidArgument(f"invalid tar archive: header of {n} bytes at offset "
                                  f"{self._f.tell()}")
        return self._f.read(n)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()


class SectionReader(io.RawIOBase):
    """A read-only window on a seekable file (positioned reads, so windows can interleave)."""

    def __init__(self, f: BinaryIO, offset: int, size: int) -> None:
        self.fd = f.fileno()
        self.start = offset
        self.end = offset + size
        self.pos = offset

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(b), self.end - self.pos)
        if n <= 0:
            return 0
        data = os.pread(self.fd, n, self.pos)
        if not data:
            raise InvalidArgument("archive is truncated")
        b[: len(data)] = data
        self.pos += len(data)
        return len(data)

    def read(self, size: int = -1) -> bytes:
        if size < 0:
            size = self.end - self.pos
        n = min(size, self.end - self.pos)
        if n <= 0:
            return b""
        data = os.pread(self.fd, n, self.pos)
        if not data:
            raise InvalidArgument("archive is truncated")
        self.pos += len(data)
        return data


def _clean(name: str) -> str:
    name = name.lstrip("/")
    while name.startswith("./"):
        name = name[2:]
    return name.rstrip("/")
