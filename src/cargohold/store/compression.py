"""Streaming (de)compression of layer blobs.

``open_decompressed`` sniffs the format by its magic bytes, so callers never trust a media type
or a file name.  ``compressor`` produces stable bytes for a given (algorithm, level): gzip uses
zlib-ng single-threaded with a fixed header (mtime 0, no file name), so the same tar always gives
the same blob digest.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import lzma
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO, Literal, cast

import zstandard
from zlib_ng import zlib_ng

from cargohold.errors import InvalidArgument

Algorithm = Literal["gzip", "zstd", "none"]

_CHUNK = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_BZIP2_MAGIC = b"BZh"
_XZ_MAGIC = b"\xfd7zXZ\x00"

# Errors the decompressors raise on corrupt or truncated input.
_CODEC_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    EOFError,
    zlib.error,
    lzma.LZMAError,
    zstandard.ZstdError,
    cast(type[BaseException], zlib_ng.error),
)


class _RawReader(io.RawIOBase):
    """Raw adapter: replays ``prefix`` and then reads ``src``; codec errors -> InvalidArgument."""

    def __init__(self, src: BinaryIO, prefix: bytes = b"", what: str = "stream") -> None:
        super().__init__()
        self._src = src
        self._prefix = prefix
        self._what = what

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buf).cast("B")
        if self._prefix:
            n = min(len(view), len(self._prefix))
            view[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        try:
            readinto = getattr(self._src, "readinto", None)
            if readinto is not None:
                got = readinto(view)
                return 0 if got is None else int(got)
            data = self._src.read(len(view))
        except InvalidArgument:
            raise
        except _CODEC_ERRORS as exc:
            raise InvalidArgument(f"corrupt {self._what}: {exc}") from exc
        view[: len(data)] = data
        return len(data)


def buffered(src: BinaryIO, prefix: bytes = b"", what: str = "stream") -> BinaryIO:
    """A 1 MiB-buffered reader over ``src`` (cheap small reads, big reads go straight through)."""
    return cast(BinaryIO, io.BufferedReader(_RawReader(src, prefix, what), _CHUNK))


def _read_prefix(f: BinaryIO, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = f.read(n - len(out))
        if not chunk:
            break
        out += chunk
    return out


def sniff(prefix: bytes) -> str:
    """The compression format named by a stream's first bytes: gzip, zstd, bzip2, xz or none."""
    if prefix.startswith(_GZIP_MAGIC):
        return "gzip"
    if prefix.startswith(_ZSTD_MAGIC):
        return "zstd"
    if prefix.startswith(_BZIP2_MAGIC):
        return "bzip2"
    if prefix.startswith(_XZ_MAGIC):
        return "xz"
    return "none"


def open_decompressed(f: BinaryIO) -> BinaryIO:
    """A streaming reader of ``f``'s decompressed content (gzip, zstd, bzip2, xz or plain).

    Corrupt or truncated compressed data raises InvalidArgument from ``read``.
    """
    return _open(f, False)[0]


def open_decompressed_ahead(f: BinaryIO) -> tuple[BinaryIO, ReadAhead | None]:
    """Like :func:`open_decompressed`, but compressed input is read, decoded and hashed
    (sha256) by a thread of its own a few MiB ahead of the reader (the codecs and hashlib
    release the GIL), so that work overlaps whatever the reader does with the data.

    Returns the stream and, for compressed input, its :class:`ReadAhead` (whose ``digest``
    is the sha256 of the decoded bytes once the stream was read to its end).  ``close``
    stops the thread; ``f`` is never closed.
    """
    return _open(f, True)


def _open(f: BinaryIO, ahead: bool) -> tuple[BinaryIO, ReadAhead | None]:
    prefix = _read_prefix(f, 6)
    kind = sniff(prefix)
    if kind == "none":
        return buffered(f, prefix), None
    source = buffered(f, prefix)
    decoded: BinaryIO
    if kind == "gzip":
        decoded = cast(BinaryIO, _GzipReader(source))
    elif kind == "zstd":
        decoded = cast(BinaryIO, _ZstdReader(source))
    elif kind == "bzip2":
        decoded = cast(BinaryIO, bz2.BZ2File(source))
    else:
        decoded = cast(BinaryIO, lzma.LZMAFile(source))  # noqa: SIM115
    reader = buffered(decoded, what=f"{kind} data")
    if ahead:
        chunks = (_gzip_chunks(cast(_GzipReader, decoded)) if kind == "gzip"
                  else iter(lambda: reader.read(_CHUNK), b""))
        thread = ReadAhead(chunks, f"{kind} data")
        return cast(BinaryIO, io.BufferedReader(thread, _CHUNK)), thread
    return reader, None


def _gzip_chunks(g: _GzipReader) -> Iterator[bytes]:
    """The decoder's output as it comes (no copy into a reader's buffer)."""
    while not g._done:
        out = g._step(_CHUNK)
        if out:
            yield out


class ReadAhead(io.RawIOBase):
    """Runs the chunk iterator ``src`` (a decoder) in a daemon thread, a bounded queue ahead
    of the reader (the thread's errors are raised by ``readinto``); a second thread hashes
    the chunks meanwhile."""

    _DEPTH = 8  # chunks of _CHUNK bytes ahead of the reader

    def __init__(self, src: Iterator[bytes], what: str = "stream") -> None:
        import queue
        import threading

        super().__init__()
        self._what = what
        self._q: queue.Queue[bytes | BaseException] = queue.Queue(self._DEPTH)
        self._hq: queue.Queue[bytes | None] = queue.Queue(self._DEPTH * 2)
        self._hash = hashlib.sha256()
        self._stop = threading.Event()
        self._pending = memoryview(b"")
        self._eof = False
        self._hasher = threading.Thread(target=self._digest_chunks, daemon=True, name="hash")
        self._thread = threading.Thread(target=self._run, args=(src,), daemon=True,
                                        name="decompress")
        self._hasher.start()
        self._thread.start()

    def _offer(self, q: Any, item: object) -> bool:
        import queue

        while not self._stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, src: Iterator[bytes]) -> None:
        try:
            for chunk in src:
                if not self._offer(self._hq, chunk) or not self._offer(self._q, chunk):
                    return
            self._offer(self._q, b"")
        except InvalidArgument as e:  # handed to the reader
            self._offer(self._q, e)
        except _CODEC_ERRORS as e:
            self._offer(self._q, InvalidArgument(f"corrupt {self._what}: {e}"))
        except BaseException as e:
            self._offer(self._q, e)
        finally:
            self._hq.put(None)  # ends the hasher (``digest`` waits for it); it always drains

    def _digest_chunks(self) -> None:
        while (chunk := self._hq.get()) is not None:  # ``_run`` always ends with None
            self._hash.update(chunk)

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buf).cast("B")
        if not self._pending:
            if self._eof:
                return 0
            item = self._q.get()
            if isinstance(item, BaseException):
                self._eof = True
                raise item
            if not item:
                self._eof = True
                return 0
            self._pending = memoryview(item)
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def digest(self) -> str:
        """sha256 of every byte handed out (complete once ``readinto`` returned 0)."""
        if not self._eof:
            raise ValueError("digest of a stream that was not read to its end")
        self._hasher.join()
        return "sha256:" + self._hash.hexdigest()

    def close(self) -> None:
        if not self.closed:
            self._stop.set()
        super().close()


class _GzipReader(io.RawIOBase):
    """Multi-member gzip decoder on zlib-ng (about twice the speed of stdlib gzip)."""

    def __init__(self, src: BinaryIO) -> None:
        super().__init__()
        self._src = src
        self._d = zlib_ng.decompressobj(47)  # 32 + 15: gzip header, max window
        self._pending = b""
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buf).cast("B")
        while not self._pending and not self._done:
            self._pending = self._step(len(view))
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n

    def _step(self, want: int) -> bytes:
        d = self._d
        if d.eof:  # checked first: at the end of a member the tail repeats unused_data
            rest = d.unused_data.lstrip(b"\0")  # gzip(1) tolerates zero padding too
            while not rest:
                rest = self._src.read(_CHUNK)
                if not rest:
                    self._done = True
                    return b""
                rest = rest.lstrip(b"\0")
            if not rest.startswith(_GZIP_MAGIC):
                raise InvalidArgument("corrupt gzip data: trailing garbage after the last member")
            self._d = d = zlib_ng.decompressobj(47)
            return d.decompress(rest, want)
        if d.unconsumed_tail:
            return d.decompress(d.unconsumed_tail, want)
        chunk = self._src.read(_CHUNK)
        if not chunk:
            raise InvalidArgument("corrupt gzip data: unexpected end of stream")
        return d.decompress(chunk, want)


class _ZstdReader(io.RawIOBase):
    """Multi-frame zstd decoder that, unlike ``stream_reader``, reports a truncated frame.

    Input goes in small slices because one call's output is unbounded (about 32000:1 at most).
    """

    _SLICE = 8192

    def __init__(self, src: BinaryIO) -> None:
        super().__init__()
        self._src = src
        self._dctx = zstandard.ZstdDecompressor()
        self._d = self._dctx.decompressobj()
        self._input = b""
        self._pending = b""
        self._in_frame = False

    def readable(self) -> bool:
        return True

    def readinto(self, buf: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buf).cast("B")
        while not self._pending:
            if not self._input:
                self._input = self._src.read(_CHUNK)
                if not self._input:
                    if self._in_frame:
                        raise InvalidArgument("corrupt zstd data: unexpected end of stream")
                    return 0
            piece, self._input = self._input[: self._SLICE], self._input[self._SLICE :]
            self._in_frame = True
            self._pending = self._d.decompress(piece)
            if self._d.eof:
                self._input = self._d.unused_data + self._input
                self._d = self._dctx.decompressobj()
                self._in_frame = False
        n = min(len(view), len(self._pending))
        view[:n] = self._pending[:n]
        self._pending = self._pending[n:]
        return n


class _Writer(io.BufferedIOBase):
    """Base of the compressing writers: ``close`` flushes the codec but never closes ``out``."""

    # Codecs see the input in fixed-size blocks: zlib-ng's output depends on how the input is
    # split, and the digest must not depend on how the caller happens to write.
    _block = 0

    def __init__(self, out: BinaryIO) -> None:
        super().__init__()
        self._out = out
        self._pending = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        if self.closed:
            raise ValueError("write to a closed compressor")
        view = memoryview(data).cast("B")
        size, block = len(view), self._block
        if not block:
            self._encode(view)
            return size
        if self._pending:
            take = min(block - len(self._pending), len(view))
            self._pending += view[:take]
            view = view[take:]
            if len(self._pending) < block:
                return size
            self._encode(bytes(self._pending))
            self._pending.clear()
        while len(view) >= block:
            self._encode(view[:block])
            view = view[block:]
        self._pending += view
        return size

    def close(self) -> None:
        if not self.closed:
            if self._pending:
                self._encode(bytes(self._pending))
                self._pending.clear()
            self._finish()
            self._out.flush()
        super().close()

    def _encode(self, data: bytes | bytearray | memoryview) -> None:
        self._out.write(data)

    def _finish(self) -> None:
        pass


class _GzipWriter(_Writer):
    _block = _CHUNK

    def __init__(self, out: BinaryIO, level: int) -> None:
        super().__init__(out)
        # wbits 31: gzip wrapper with a fixed header (mtime 0, no name, OS byte of the library).
        self._c = zlib_ng.compressobj(level, zlib_ng.DEFLATED, 31)

    def _encode(self, data: bytes | bytearray | memoryview) -> None:
        chunk = self._c.compress(data)
        if chunk:
            self._out.write(chunk)

    def _finish(self) -> None:
        self._out.write(self._c.flush())


class _ZstdWriter(_Writer):
    _block = _CHUNK

    def __init__(self, out: BinaryIO, level: int) -> None:
        super().__init__(out)
        self._c = zstandard.ZstdCompressor(level=level).compressobj()

    def _encode(self, data: bytes | bytearray | memoryview) -> None:
        chunk = self._c.compress(bytes(data))
        if chunk:
            self._out.write(chunk)

    def _finish(self) -> None:
        self._out.write(self._c.flush())


def compressor(out: BinaryIO, algo: Algorithm, level: int = 6) -> BinaryIO:
    """A writer that compresses into ``out``; ``close()`` flushes without closing ``out``.

    The output bytes depend only on the input, ``algo`` and ``level`` (no timestamps, no names,
    no thread-count dependence), so the blob digest of a layer is stable.
    """
    if algo == "gzip":
        if not 0 <= level <= 9:
            raise InvalidArgument(f"invalid gzip level {level}: must be 0-9")
        return cast(BinaryIO, _GzipWriter(out, level))
    if algo == "zstd":
        if not 1 <= level <= 22:
            raise InvalidArgument(f"invalid zstd level {level}: must be 1-22")
        return cast(BinaryIO, _ZstdWriter(out, level))
    if algo == "none":
        return cast(BinaryIO, _Writer(out))
    raise InvalidArgument(f"unsupported compression {algo!r}: use gzip, zstd or none")
