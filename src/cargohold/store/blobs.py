"""Content-addressable blob store: ``<root>/blobs/sha256/<hex>``, verified while writing."""

from __future__ import annotations

import builtins
import os
import time
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from cargohold.errors import InvalidArgument, NotFound
from cargohold.oci.digest import hex_of, validate
from cargohold.store.locking import SWEEP_INTERVAL, Staging, clean_stale


class BlobWriter:
    """Streams one blob into ``tmp/``; :meth:`commit` verifies it and publishes it.

    On a digest or size mismatch, an exception, or a missing commit nothing is left behind.
    """

    def __init__(self, store: BlobStore, expected: str | None, size: int | None) -> None:
        self._store = store
        self._expected = validate(expected) if expected is not None else None
        self._size = size
        import hashlib

        self._hash = hashlib.sha256()
        self._written = 0
        self._stage = Staging(store.tmp_dir, "blob", directory=False)
        self._committed: str | None = None

    @property
    def written(self) -> int:
        return self._written

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._committed is not None:
            raise InvalidArgument("blob writer already committed")
        view = memoryview(data)
        n_total = len(view)
        if self._size is not None and self._written + n_total > self._size:
            self._fail(f"size mismatch: more than the expected {self._size} bytes")
        self._hash.update(view)
        while view:
            n = os.write(self._stage.fd, view)
            view = view[n:]
        self._written += n_total
        return n_total

    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()

    def commit(self) -> str:
        """Verify size and digest, publish the blob and return its digest."""
        if self._committed is not None:
            return self._committed
        digest = self.digest()
        if self._size is not None and self._written != self._size:
            self._fail(f"size mismatch: expected {self._size} bytes, got {self._written}")
        if self._expected is not None and digest != self._expected:
            self._fail(f"digest mismatch: expected {self._expected}, got {digest}")
        dest = self._store.path(digest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.fchmod(self._stage.fd, 0o644)
        self._stage.publish(dest)  # same content either way, so a concurrent winner is fine
        self._stage.close()
        self._committed = digest
        return digest

    def _fail(self, message: str) -> None:
        self.abort()
        raise InvalidArgument(message)

    def abort(self) -> None:
        self._stage.close()

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.abort()  # no-op after a commit


class BlobStore:
    """Blobs keyed by their sha256 digest under ``<root>/blobs/sha256``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.dir = root / "blobs" / "sha256"
        self.tmp_dir = root / "tmp"
        self._swept = -SWEEP_INTERVAL  # time.monotonic() of the last sweep of tmp/

    def path(self, digest: str) -> Path:
        return self.dir / hex_of(digest)

    def has(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def writer(self, expected: str | None = None, size: int | None = None) -> BlobWriter:
        now = time.monotonic()
        if now - self._swept >= SWEEP_INTERVAL:
            clean_stale(self.tmp_dir)  # what killed writers left behind
            self._swept = now
        return BlobWriter(self, expected, size)

    def put(self, data: bytes) -> str:
        import hashlib

        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if self.has(digest):
            return digest
        with self.writer(digest, len(data)) as w:
            w.write(data)
            return w.commit()

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob not found: {digest}") from None

    def read(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def size(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"blob not found: {digest}") from None

    def delete(self, digest: str) -> None:
        try:
            self.path(digest).unlink()
        except FileNotFoundError:
            raise NotFound(f"blob not found: {digest}") from None

    def list(self) -> builtins.list[str]:
        try:
            names = os.listdir(self.dir)
        except FileNotFoundError:
            return []
        return sorted("sha256:" + n for n in names if len(n) == 64)
