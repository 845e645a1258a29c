"""Stream wrappers that check blobs while they flow (no temporary copies)."""

from __future__ import annotations

import hashlib
import io
from typing import BinaryIO, Protocol

from cargohold.errors import InvalidArgument


class Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...


class VerifyingReader(io.RawIOBase):
    """Reads ``inner`` and raises at EOF if the bytes do not match ``digest`` (and ``size``)."""

    def __init__(self, inner: BinaryIO, digest: str, size: int | None, what: str) -> None:
        self.inner = inner
        self.expected = digest
        self.size = size
        self.what = what
        self.hasher = hashlib.sha256()
        self.count = 0
        self.done = False

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self.inner.read(n)
        if data:
            self.hasher.update(data)
            self.count += len(data)
            if self.size is not None and self.count > self.size:
                raise InvalidArgument(f"{self.what}: size exceeds the expected {self.size} bytes")
        elif not self.done and n != 0:
            self.done = True
            self._check()
        return data

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def _check(self) -> None:
        if self.size is not None and self.count != self.size:
            raise InvalidArgument(
                f"{self.what}: size mismatch: got {self.count} bytes, expected {self.size}"
            )
        got = "sha256:" + self.hasher.hexdigest()
        if got != self.expected:
            raise InvalidArgument(
                f"{self.what}: digest mismatch: got {got}, expected {self.expected}"
            )


class TeeReader(io.RawIOBase):
    """Reads ``inner`` and copies every byte read into ``sink``."""

    def __init__(self, inner: BinaryIO, sink: Sink) -> None:
        self.inner = inner
        self.sink = sink

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self.inner.read(n)
        if data:
            self.sink.write(data)
        return data

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def drain(self, chunk: int = 1 << 20) -> None:
        """Read to EOF (tar readers stop before the end-of-archive padding)."""
        while self.read(chunk):
            pass
