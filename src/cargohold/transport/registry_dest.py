"""A registry repository as an ImageDestination: what ``push`` copies local images into.

Each layer is pushed at most once per registry: a blob the cache (``registry/cache.py``) knows
for the layer's diff_id is checked with HEAD (``Layer already exists``), or mounted from
another repository of the same registry (``Mounted from x``); otherwise the uncompressed tar
is compressed while it streams into a chunked upload, and the digest learnt on the way is
cached.  Compression is deterministic for a given (algorithm, level), so the same layer
always gets the same digest.  Layers go up in parallel; the config and then the manifest last.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import BinaryIO, cast

from cargohold.errors import InvalidArgument
from cargohold.oci import image as oci_image
from cargohold.oci.reference import Reference, parse_reference
from cargohold.store.compression import Algorithm, compressor
from cargohold.transport.base import ImageSource, LayerRef, SourceImage
from cargohold.transport.registry.cache import BlobEntry, DigestCache
from cargohold.transport.registry.client import RegistryClient
from cargohold.transport.registry.events import Event, ProgressFn, no_progress, short

Feed = Callable[[bytes | memoryview], object]


class _Stopped(Exception):
    pass


def compressed_chunks(produce: Callable[[Feed], None], algo: Algorithm, level: int,
                      on_read: Callable[[int], None]) -> Iterator[bytes]:
    """The compressed bytes of what ``produce`` feeds, made in a thread while they are sent.

    ``produce(feed)`` pushes the uncompressed tar (``LocalSource.write_layer``); a bounded
    queue hands compressed pieces to the consumer, so compression overlaps the upload.
    """
    q: queue.Queue[bytes | BaseException | None] = queue.Queue(16)
    stop = threading.Event()

    def put(item: bytes | BaseException | None) -> None:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped()

    class Sink:
        def write(self, data: bytes | bytearray | memoryview) -> int:
            put(bytes(data))
            return len(data)

        def flush(self) -> None:
            pass

    def run() -> None:
        done = 0
        try:
            writer = compressor(cast(BinaryIO, Sink()), algo, level)

            def feed(chunk: bytes | memoryview) -> None:
                nonlocal done
                writer.write(chunk)
                done += len(chunk)
                on_read(done)

            produce(feed)
            writer.close()
            put(None)
        except _Stopped:
            pass
        except BaseException as e:  # handed to the consumer
            with contextlib.suppress(_Stopped):
                put(e)

    worker = threading.Thread(target=run, name="compress", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


class RegistryDestination:
    def __init__(self, client: RegistryClient, ref: Reference, cache: DigestCache,
                 compression: Algorithm = "gzip", level: int = 6,
                 progress: ProgressFn = no_progress, parallel: int = 3) -> None:
        if compression not in ("gzip", "zstd"):
            raise InvalidArgument(f"unsupported compression {compression!r} for push")
        self.client = client
        self.ref = ref
        self.cache = cache
        self.algo: Algorithm = compression
        self.level = level
        self.progress = progress
        self.parallel = max(1, parallel)
        self.oci = compression == "zstd"
        self.pushed: list[tuple[str, str, int]] = []  # (tag, manifest digest, manifest size)
        self._repo_name = f"{ref.domain}/{ref.path}"
        self._lock = threading.Lock()

    @property
    def want(self) -> str:
        return f"{self.algo}:{self.level}"

    def put(self, image: SourceImage, source: ImageSource) -> str:
        write_layer = getattr(source, "write_layer", None)
        layer_size = getattr(source, "layer_size", None)
        if write_layer is None or layer_size is None:
            raise InvalidArgument("this source cannot provide layers for push")
        unique = list({ly.diff_id: ly for ly in image.layers}.values())
        for layer in reversed(unique):
            self.progress(Event(short(layer.diff_id), "Preparing"))
        with ThreadPoolExecutor(self.parallel, thread_name_prefix="push") as pool:
            futures = {ly.diff_id: pool.submit(self._push_layer, ly, write_layer, layer_size(ly))
                       for ly in reversed(unique)}
            done = {d: f.result() for d, f in futures.items()}
        repo = self.ref.path
        if not self.client.blob_exists(repo, image.config_digest):
            self.client.put_blob(repo, image.config, image.config_digest)
        manifest = oci_image.build_manifest(
            image.config_digest, len(image.config),
            [(done[ly.diff_id].digest, done[ly.diff_id].size,
              oci_image.layer_media_type(self.algo, self.oci)) for ly in image.layers],
            oci=self.oci)
        data = oci_image.encode_json(manifest)
        tag = self.ref.tag or "latest"
        digest = self.client.put_manifest(repo, tag, data, manifest["mediaType"])
        self.pushed.append((tag, digest, len(data)))
        return image.config_digest

    def _usable(self, diff_id: str) -> list[BlobEntry]:
        return [e for e in self.cache.entries(diff_id)
                if oci_image.layer_compression(e.media_type) == self.algo
                and (not e.compression or e.compression == self.want
                     or e.compression.startswith(self.algo + ":"))]

    def _push_layer(self, layer: LayerRef, write_layer: Callable[[LayerRef, Feed], None],
                    total: int) -> BlobEntry:
        sid = short(layer.diff_id)
        repo = self.ref.path
        entries = sorted(self._usable(layer.diff_id),
                         key=lambda e: (self._repo_name not in e.repos, e.compression != self.want))
        for e in entries:  # already in this repository?
            if self.client.blob_exists(repo, e.digest):
                self.progress(Event(sid, "Layer already exists"))
                return self._record(layer, e)
        for e in entries:  # in another repository of this registry: mount it
            for other in e.repos:
                src = parse_reference(other)
                if src.domain != self.ref.domain or src.path == repo:
                    continue
                if self.client.mount_blob(repo, e.digest, src.path):
                    self.progress(Event(sid, f"Mounted from {src.name_familiar}"))
                    return self._record(layer, e)
        def report(n: int) -> None:
            self.progress(Event(sid, "Pushing", n, total))

        chunks = compressed_chunks(lambda feed: write_layer(layer, feed), self.algo, self.level,
                                   report)
        digest, size = self.client.upload_stream(repo, chunks, f"layer {layer.diff_id}")
        self.progress(Event(sid, "Pushed"))
        entry = BlobEntry(digest, size, oci_image.layer_media_type(self.algo, True), self.want, ())
        return self._record(layer, entry)

    def _record(self, layer: LayerRef, e: BlobEntry) -> BlobEntry:
        with self._lock:
            self.cache.record(layer.diff_id, e.digest, e.size, e.media_type, e.compression,
                              self._repo_name)
        return e

    def close(self) -> None:
        pass
