"""Reading a layer tar for ``apply_layer``: a forward-only source ``tarfile`` can drive, with
a bound on every entry's headers, and tarfile's parse errors turned into InvalidArgument.

``tarfile`` parses headers only; content is copied by :class:`TarSource` itself (``copy_to``,
``copy_sparse``), and every byte read is handed to the tar-split recorder, if any.  Malformed
headers make ``tarfile`` raise more than ``TarError`` (ValueError from a bad sparse map,
IndexError from a short block, RecursionError from thousands of extended headers in a row,
which it parses by recursing); all of them become "invalid tar archive" naming the offset.
"""

from __future__ import annotations

import io
import os
import tarfile
from typing import IO, BinaryIO, cast

from cargohold.errors import Internal, InvalidArgument
from cargohold.store.archive_checks import shown
from cargohold.store.compression import buffered
from cargohold.store.tarsplit import SplitRecorder

BLOCK = 512
_CHUNK = 1 << 20
_MAX_METADATA = 8 << 20  # header bytes (PAX records, long names, sparse maps) per entry
# What tarfile's header parsing lets escape on malformed input (besides TarError).
PARSE_ERRORS = (ValueError, IndexError, OverflowError, KeyError, UnicodeError, RecursionError)


class TarSource:
    """Forward-only, position-tracking reader that ``tarfile.TarFile`` can drive in "r" mode.

    TarFile in stream mode ("r|") copies its whole buffer on every small read; in "r" mode it
    only needs ``tell`` and forward ``seek``, which this class provides by skipping.
    """

    def __init__(self, stream: BinaryIO, recorder: SplitRecorder | None = None) -> None:
        reader = stream if isinstance(stream, io.BufferedReader) else buffered(stream)
        self._f = cast(io.BufferedReader, reader)
        self.pos = 0
        self.last_block = b""
        self._buf = bytearray(_CHUNK)
        self.recorder = recorder
        self.header_left = _MAX_METADATA

    def read(self, n: int = -1) -> bytes:
        # tarfile reads headers, PAX records, GNU long names and sparse maps this way (content
        # goes through copy_to); cap them as Go's archive/tar does, or a header could claim
        # GBs.  ``header_left`` is what one entry's headers may still read (reset per entry).
        if n < 0 or n > _MAX_METADATA:
            raise InvalidArgument(f"invalid tar archive: metadata entry of {n} bytes")
        self.header_left -= n
        if self.header_left < 0:
            raise InvalidArgument(f"invalid tar archive: more than {_MAX_METADATA} bytes of "
                                  f"headers for the entry before offset {self.pos}")
        data = self._f.read(n)
        self.pos += len(data)
        if self.recorder is not None:
            self.recorder.raw(data)
        if n == BLOCK:
            self.last_block = data
        return data

    def tell(self) -> int:
        return self.pos

    def seek(self, target: int, whence: int = 0) -> int:
        if whence != 0:
            raise Internal("layer tar reader cannot seek relatively")
        if target < self.pos:  # a header whose sizes contradict the data already read
            raise InvalidArgument(f"invalid tar archive: an entry before offset {self.pos} "
                                  f"claims data at offset {target}")
        view = memoryview(self._buf)
        while self.pos < target:
            got = self._f.readinto(view[: min(_CHUNK, target - self.pos)])
            if not got:
                break
            self.pos += got
            if self.recorder is not None:
                self.recorder.raw(view[:got])
        return self.pos

    def drain(self) -> None:
        """Read to the end (padding and trailing blocks after the archive's last entry)."""
        view = memoryview(self._buf)
        while got := self._f.readinto(view):
            self.pos += got
            if self.recorder is not None:
                self.recorder.raw(view[:got])

    def copy_to(self, fd: int, size: int, name: str, rel: str) -> None:
        """Write the next ``size`` bytes of the archive (the content of ``rel``) to ``fd``."""
        if self.recorder is not None:
            self.recorder.file(rel, size)
        self.copy_data(fd, size, name)

    def copy_sparse(self, fd: int, regions: list[tuple[int, int]], name: str, rel: str) -> None:
        """Write the next bytes (the data of sparse file ``rel``) at ``regions`` of ``fd``."""
        if self.recorder is not None:
            self.recorder.sparse(rel, regions)
        for offset, length in regions:
            os.lseek(fd, offset, os.SEEK_SET)
            self.copy_data(fd, length, name)

    def copy_data(self, fd: int, size: int, name: str) -> None:
        view = memoryview(self._buf)
        while size:
            got = self._f.readinto(view[: min(_CHUNK, size)])
            if not got:
                raise InvalidArgument(
                    f"truncated tar archive: content of {shown(name)} is cut short")
            self.pos += got
            size -= got
            chunk = view[:got]
            while chunk:
                chunk = chunk[os.write(fd, chunk) :]



def next_entry(tar: tarfile.TarFile, src: TarSource) -> tarfile.TarInfo | None:
    src.header_left = _MAX_METADATA
    info = read_header(tar, src.pos)
    tar.members.clear()  # type: ignore[attr-defined]  # keep memory flat on huge archives
    if info is None:
        last = src.last_block
        if last and last != bytes(BLOCK):
            what = "truncated header" if len(last) < BLOCK else "invalid header"
            raise InvalidArgument(f"invalid tar archive: {what} at offset {src.pos - len(last)}")
    return info


def open_tar(src: TarSource) -> tarfile.TarFile | None:
    """A TarFile over ``src`` (its first entry read), or None for an empty stream."""
    try:
        return tarfile.TarFile(fileobj=cast(IO[bytes], src), mode="r")
    except tarfile.TarError as exc:
        if src.pos == 0:
            return None  # an empty stream is an empty layer, as in Go's archive/tar
        raise InvalidArgument(f"invalid tar archive: {exc}") from None
    except PARSE_ERRORS as exc:
        raise malformed(exc, 0) from None


def read_header(tar: tarfile.TarFile, start: int) -> tarfile.TarInfo | None:
    """``tar``'s next member (None at the end); a header tarfile cannot parse is
    InvalidArgument naming its offset ``start``, never another Python error."""
    try:
        return tar.next()
    except tarfile.TarError as exc:
        raise InvalidArgument(f"invalid tar archive: {exc}") from None
    except PARSE_ERRORS as exc:
        raise malformed(exc, start) from None


def malformed(exc: BaseException, start: int) -> InvalidArgument:
    """The error for one of :data:`PARSE_ERRORS` raised parsing the header at ``start``."""
    if isinstance(exc, RecursionError):  # tarfile recurses once per extended header
        return InvalidArgument(
            f"invalid tar archive: too many extended headers in a row at offset {start}")
    return InvalidArgument(f"invalid tar archive: malformed header at offset {start}: {exc}")
