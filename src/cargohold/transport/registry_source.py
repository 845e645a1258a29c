"""A registry as an ImageSource: what ``pull`` copies into the local store.

``images()`` resolves the reference (tag or digest; an index picks the platform), fetches and
checks the config, then starts downloading every missing layer blob in parallel.  Nothing is
spooled to disk: ``open_blob`` returns the blob as it arrives (a bounded in-memory pipe), so
the destination decompresses and applies it while it downloads; the stream ends only after
the blob matched its digest and size, else it raises the download's error.  The destination
stages layers and publishes them only when all succeeded (``transport/local.py``), so a
failure registers nothing.  Mirrors are tried in order before the registry itself.
"""

from __future__ import annotations

import io
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from cargohold.errors import CargoholdError, InvalidArgument
from cargohold.oci import image as oci_image
from cargohold.oci.digest import chain_id
from cargohold.oci.reference import Reference
from cargohold.transport.base import LayerRef, SourceImage
from cargohold.transport.registry.client import RegistryClient
from cargohold.transport.registry.events import MessageSink, discard, short, update

_LAYER_TYPES = frozenset((oci_image.OCI_LAYER, oci_image.OCI_LAYER_GZIP, oci_image.OCI_LAYER_ZSTD,
                          oci_image.OCI_LAYER_ND_GZIP, oci_image.DOCKER_LAYER_GZIP,
                          oci_image.DOCKER_FOREIGN_LAYER_GZIP,
                          "application/vnd.docker.image.rootfs.diff.tar"))


class _Cancelled(Exception):
    pass


PresentFn = Callable[[str, str], bool]  # (chain id, diff_id) -> the layer is stored locally


def _nothing_present(chain: str, diff_id: str) -> bool:
    return False


class RegistrySource:
    """One reference of one registry, tried through ``clients`` (mirrors first)."""

    def __init__(self, clients: list[RegistryClient], ref: Reference, tmp_dir: Path,
                 platform: oci_image.Platform | None = None, present: PresentFn | None = None,
                 progress: MessageSink = discard, parallel: int = 3) -> None:
        if not clients:
            raise InvalidArgument("no registry endpoint")
        self.clients = clients
        self.client = clients[-1]
        self.ref = ref
        self.tmp_dir = tmp_dir
        self.platform = platform
        self.present = present or _nothing_present
        self.progress = progress
        self.parallel = max(1, parallel)
        self.repo_digest: str | None = None  # digest the reference resolved to (index or manifest)
        self.concurrent_blobs = self.parallel  # open_blob may be read from this many threads
        self._pool: ThreadPoolExecutor | None = None
        self._pipes: dict[str, list[_Pipe]] = {}
        self._cancel = threading.Event()
        # layers whose blob was downloaded, matched its digest and size, and was read to its
        # end by the destination (which checks the content against the diff_id): the only
        # blob <-> diff_id pairs a pull may vouch for (the manifest's claim for a layer that
        # was already present is never checked)
        self.verified_layers: list[LayerRef] = []

    # ---- resolving -----------------------------------------------------------------------
    @property
    def display(self) -> str:
        return self.ref.familiar() if self.ref.domain == "docker.io" else str(self.ref)

    def _manifest(self) -> tuple[RegistryClient, bytes, str, str]:
        reference = self.ref.digest or self.ref.tag or "latest"
        name = self.ref.name_familiar
        error: CargoholdError | None = None
        for client in self.clients:
            try:
                data, media, digest = client.get_manifest(self.ref.path, reference,
                                                          self.display, name)
                return client, data, media, digest
            except CargoholdError as e:
                if not client.endpoint.mirror:
                    raise
                error = e
        raise error or InvalidArgument("no registry endpoint")

    def images(self) -> list[SourceImage]:
        client, data, media, digest = self._manifest()
        self.client = client
        self.repo_digest = digest
        if media in oci_image.INDEX_TYPES:
            p = self.platform
            chosen = (oci_image.select_platform(oci_image.parse_index(data), p.os,
                                                p.architecture, p.variant)
                      if p else oci_image.select_platform(oci_image.parse_index(data)))
            data, media, digest = client.get_manifest(self.ref.path, chosen.digest,
                                                      self.display, self.ref.name_familiar)
        manifest = oci_image.parse_manifest(data)
        config = client.get_blob_bytes(self.ref.path, manifest.config.digest,
                                       manifest.config.size)
        diff_ids = _diff_ids(config)
        if len(diff_ids) != len(manifest.layers):
            raise InvalidArgument(f"{self.display}: the manifest has {len(manifest.layers)} "
                                  f"layers but the config lists {len(diff_ids)} diff_ids")
        layers = []
        for desc, diff_id in zip(manifest.layers, diff_ids, strict=True):
            if desc.media_type not in _LAYER_TYPES:
                raise InvalidArgument(f"{self.display}: layer {desc.digest} has the unsupported "
                                      f"media type {desc.media_type}")
            layers.append(LayerRef(desc.digest, diff_id, desc.media_type, desc.size))
        names = (str(self.ref),) if self.ref.tag else ()
        image = SourceImage(config, manifest.config.digest, tuple(layers), names, digest)
        self._start(image)
        return [image]

    # ---- downloads -----------------------------------------------------------------------
    def missing(self, image: SourceImage) -> list[LayerRef]:
        out, parent = [], None
        for layer in image.layers:
            parent = chain_id(parent, layer.diff_id)
            if not self.present(parent, layer.diff_id):
                out.append(layer)
        return out

    def _start(self, image: SourceImage) -> None:
        todo = self.missing(image)
        wanted = {ly.digest for ly in todo}
        for layer in image.layers:
            if layer.digest not in wanted:
                self.progress(update(short(layer.digest), "Already exists"))
        if not todo:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.parallel, thread_name_prefix="pull")
        for layer in todo:  # one download per occurrence: each pipe is read once
            sid = short(layer.digest)
            if layer.digest not in self._pipes:
                self.progress(update(sid, "Pulling fs layer"))
            pipe = _Pipe(sid, layer.size or 0, self.progress)
            self._pipes.setdefault(layer.digest, []).append(pipe)
            self._pool.submit(self._download, layer, pipe)

    def _download(self, layer: LayerRef, pipe: _Pipe) -> None:
        total = layer.size or 0

        def report(n: int) -> None:
            self.progress(update(pipe.sid, "Downloading", n, total))

        try:
            if self._cancel.is_set():
                raise _Cancelled()
            self.client.fetch_blob(self.ref.path, layer.digest, layer.size, pipe, report)
        except BaseException as e:  # handed to the reader
            pipe.finish(e)
            return
        self.progress(update(pipe.sid, "Verifying Checksum"))
        self.progress(update(pipe.sid, "Download complete"))
        pipe.finish(None)

    def open_blob(self, layer: LayerRef) -> BinaryIO:
        """The blob as it downloads: reads block for data; the end of the stream comes only
        once the whole blob matched its digest and size, else the download's error is raised."""
        pipes = self._pipes.get(layer.digest)
        if not pipes:  # gone locally since images() looked (an rmi in between)
            raise InvalidArgument(f"blob {layer.digest} was not downloaded: the local layer "
                                  "disappeared during the pull; pull again")
        return _PipeReader(pipes.pop(0),  # type: ignore[return-value]
                           lambda: self.verified_layers.append(layer))

    def close(self) -> None:
        self._cancel.set()
        for pipes in self._pipes.values():
            for pipe in pipes:
                pipe.cancel()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        for pipes in self._pipes.values():
            for pipe in pipes:
                pipe.finish(_Cancelled())  # a download cancelled before it started
        self._pipes.clear()


class _Pipe:
    """One download handed from its thread to the layer's reader through a bounded buffer.

    The download writes (``write``/``tell``: what ``fetch_blob`` needs) and ends it with
    ``finish``; the reader side is :class:`_PipeReader`.
    """

    LIMIT = 16 << 20  # bytes buffered ahead of the reader

    def __init__(self, sid: str, total: int, progress: MessageSink) -> None:
        self.sid, self.total, self.progress = sid, total, progress
        self.cond = threading.Condition()
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.written = 0
        self.done = False
        self.error: BaseException | None = None
        self.cancelled = False
        self.discarding = False

    # ---- the download's side --------------------------------------------------------------
    def write(self, data: bytes, /) -> int:
        with self.cond:
            while self.buffered >= self.LIMIT and not (self.cancelled or self.discarding):
                self.cond.wait()
            if self.cancelled:
                raise _Cancelled()
            if not self.discarding:
                self.chunks.append(bytes(data))
                self.buffered += len(data)
                self.cond.notify_all()
            self.written += len(data)
        return len(data)

    def tell(self) -> int:
        return self.written

    def finish(self, error: BaseException | None) -> None:
        with self.cond:
            if not self.done:
                self.done, self.error = True, error
            self.cond.notify_all()

    # ---- the reader's side ----------------------------------------------------------------
    def cancel(self) -> None:
        with self.cond:
            self.cancelled = True
            self.cond.notify_all()

    def take(self) -> bytes:
        """The next chunk; b"" at the verified end; raises the download's error."""
        with self.cond:
            while not self.chunks and not self.done:
                if self.cancelled:
                    raise _Cancelled()
                self.cond.wait()
            if self.chunks:
                chunk = self.chunks.popleft()
                self.buffered -= len(chunk)
                self.cond.notify_all()
                return chunk
            if self.error is not None:
                raise self.error
            return b""

    def outcome(self) -> BaseException | None:
        """Let the download run to its end without keeping its bytes; its error, if any."""
        with self.cond:
            self.discarding = True
            self.chunks.clear()
            self.buffered = 0
            self.cond.notify_all()
            while not self.done and not self.cancelled:
                self.cond.wait()
            return self.error if self.done else None


class _PipeReader(io.RawIOBase):
    """The reader's end of a :class:`_Pipe` (reporting extraction progress)."""

    def __init__(self, pipe: _Pipe, at_end: Callable[[], None]) -> None:
        super().__init__()
        self.pipe = pipe
        self.at_end = at_end  # called once the verified end of the blob is read
        self.pending = memoryview(b"")
        self.count = 0
        self.step = max(1 << 20, pipe.total // 50)
        self.next = 0
        self.eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        if not self.pending:
            if self.eof:
                return 0
            try:
                chunk = self.pipe.take()
            except _Cancelled:
                raise InvalidArgument(f"blob {self.pipe.sid}: pull cancelled") from None
            if not chunk:
                self.eof = True
                self.at_end()
                return 0
            self.pending = memoryview(chunk)
        view = memoryview(b).cast("B")
        n = min(len(view), len(self.pending))
        view[:n] = self.pending[:n]
        self.pending = self.pending[n:]
        self.count += n
        if self.count >= self.next and self.pipe.done:
            self.next = self.count + self.step
            self.pipe.progress(update(self.pipe.sid, "Extracting", self.count, self.pipe.total))
        return n

    def close(self) -> None:
        if not self.closed:
            if self.eof:
                self.pipe.progress(update(self.pipe.sid, "Pull complete"))
            else:
                self.pipe.cancel()
        super().close()

    def __exit__(self, kind: object, exc: object, tb: object) -> None:
        """A reader that failed on the content (corrupt data, wrong diff_id) may have been
        fed a wrong blob: wait for the download's verdict and report that instead."""
        if isinstance(exc, InvalidArgument) and not self.eof:
            error = self.pipe.outcome()
            if error is not None and error is not exc and not isinstance(error, _Cancelled):
                self.close()
                raise error from None
        self.close()


def _diff_ids(config: bytes) -> list[str]:
    """The config's diff_ids; the whole config is checked first (before any download)."""
    from cargohold.oci.schema import check_image_config

    return check_image_config(config).diff_ids
