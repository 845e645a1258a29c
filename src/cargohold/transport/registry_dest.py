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

from cargohold.errors import InvalidArgument
from cargohold.oci import image as oci_image
from cargohold.oci.reference import Reference, parse_reference
from cargohold.store.compression import Algorithm
from cargohold.transport.base import ImageSource, LayerRef, SourceImage
from cargohold.transport.registry.cache import BlobEntry, DigestCache
from cargohold.transport.registry.client import RegistryClient
from cargohold.transport.registry.events import MessageSink, discard, short, update

Feed = Callable[[bytes | memoryview], object]
BLOCK = 8 << 20  # input bytes per gzip member / zstd frame: part of the digest, keep fixed


GZIP_LEVELS = range(0, 10)  # 1-3: ISA-L (igzip); 0 and 4-9: zlib-ng
ZSTD_LEVELS = range(1, 23)


def check_level(algo: str, level: int) -> None:
    allowed = GZIP_LEVELS if algo == "gzip" else ZSTD_LEVELS
    if level not in allowed:
        raise InvalidArgument(f"invalid {algo} compression level {level}: must be "
                              f"{allowed.start}-{allowed.stop - 1}")


def compress_block(algo: Algorithm, level: int, block: bytes | bytearray) -> bytes:
    """One self-contained gzip member or zstd frame (no timestamps, no names).

    gzip levels 1-3 use ISA-L's igzip (measured here about 4x zlib-ng's level 1 speed at
    sizes between zlib-ng's levels 1 and 4, see ARCHITECTURE.md), the others zlib-ng; each
    level has one implementation, so its bytes (and digest) never depend on anything else.
    """
    if algo == "gzip":
        if 1 <= level <= 3:
            from isal import isal_zlib

            return bytes(isal_zlib.compress(block, level, 31))
        from zlib_ng import zlib_ng

        return bytes(zlib_ng.compress(block, level, 31))
    import zstandard

    return bytes(zstandard.ZstdCompressor(level=level).compress(block))


class _Stopped(Exception):
    pass


def compressed_chunks(produce: Callable[[Feed], None], algo: Algorithm, level: int,
                      on_read: Callable[[int], None], threads: int = 0) -> Iterator[bytes]:
    """The compressed bytes of what ``produce`` feeds, made on all cores while they are sent.

    The input is cut in fixed ``BLOCK``s, each compressed on its own into a gzip member (or a
    zstd frame) by a thread pool (zlib-ng and zstd release the GIL); members are yielded in
    order.  Concatenated members are one valid gzip (zstd) stream, and the bytes depend only
    on the input, the algorithm and the level, never on the number of threads.
    """
    import os
    from concurrent.futures import Future

    workers = threads or max(1, min(8, os.cpu_count() or 1))
    pool = ThreadPoolExecutor(workers, thread_name_prefix="compress")
    q: queue.Queue[Future[bytes] | BaseException | None] = queue.Queue(workers * 2)
    stop = threading.Event()

    def put(item: Future[bytes] | BaseException | None) -> None:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise _Stopped()

    def run() -> None:
        block = bytearray(BLOCK)  # filled in place and handed over whole: one copy per byte
        fill = done = 0

        def feed(chunk: bytes | memoryview) -> None:
            nonlocal block, fill, done
            view = memoryview(chunk).cast("B")
            done += len(view)
            while view:
                n = min(BLOCK - fill, len(view))
                block[fill:fill + n] = view[:n]
                fill += n
                view = view[n:]
                if fill == BLOCK:
                    put(pool.submit(compress_block, algo, level, block))
                    block, fill = bytearray(BLOCK), 0
            on_read(done)

        try:
            produce(feed)
            if fill or not done:
                put(pool.submit(compress_block, algo, level, bytes(block[:fill])))
            put(None)
        except _Stopped:
            pass
        except BaseException as e:  # handed to the consumer
            with contextlib.suppress(_Stopped):
                put(e)

    reader = threading.Thread(target=run, name="layer-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = q.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item.result()
    finally:
        stop.set()
        reader.join()
        pool.shutdown(wait=True, cancel_futures=True)


class RegistryDestination:
    def __init__(self, client: RegistryClient, ref: Reference, cache: DigestCache,
                 compression: Algorithm = "gzip", level: int = 6,
                 progress: MessageSink = discard, parallel: int = 3) -> None:
        if compression not in ("gzip", "zstd"):
            raise InvalidArgument(f"unsupported compression {compression!r} for push")
        check_level(compression, level)
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
        return f"{self.algo}:{self.level}:{BLOCK >> 20}m"

    def put(self, image: SourceImage, source: ImageSource) -> str:
        write_layer = getattr(source, "write_layer", None)
        layer_size = getattr(source, "layer_size", None)
        if write_layer is None or layer_size is None:
            raise InvalidArgument("this source cannot provide layers for push")
        unique = list({ly.diff_id: ly for ly in image.layers}.values())
        for layer in reversed(unique):
            self.progress(update(short(layer.diff_id), "Preparing"))
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
        """Blobs that may stand for the layer: the ones a registry served us (the image's own)
        and the ones we made with exactly this (algorithm, level, block size), so a push's
        digests depend on its setting only, never on what earlier pushes used."""
        return [e for e in self.cache.entries(diff_id)
                if oci_image.layer_compression(e.media_type) == self.algo
                and (not e.compression or e.compression == self.want)]

    def _push_layer(self, layer: LayerRef, write_layer: Callable[[LayerRef, Feed], None],
                    total: int) -> BlobEntry:
        sid = short(layer.diff_id)
        repo = self.ref.path
        entries = sorted(self._usable(layer.diff_id),
                         key=lambda e: (self._repo_name not in e.repos, e.compression != self.want))
        for e in entries:  # already in this repository?
            if self.client.blob_exists(repo, e.digest):
                self.progress(update(sid, "Layer already exists"))
                return self._record(layer, e)
        for e in entries:  # in another repository of this registry: mount it
            for other in e.repos:
                src = parse_reference(other)
                if src.domain != self.ref.domain or src.path == repo:
                    continue
                if self.client.mount_blob(repo, e.digest, src.path):
                    self.progress(update(sid, f"Mounted from {src.name_familiar}"))
                    return self._record(layer, e)
        def report(n: int) -> None:
            self.progress(update(sid, "Pushing", n, total))

        chunks = compressed_chunks(lambda feed: write_layer(layer, feed), self.algo, self.level,
                                   report)
        digest, size = self.client.upload_stream(repo, chunks, f"layer {layer.diff_id}")
        self.progress(update(sid, "Pushed"))
        entry = BlobEntry(digest, size, oci_image.layer_media_type(self.algo, True), self.want, ())
        return self._record(layer, entry)

    def _record(self, layer: LayerRef, e: BlobEntry) -> BlobEntry:
        with self._lock:
            self.cache.record(layer.diff_id, e.digest, e.size, e.media_type, e.compression,
                              self._repo_name)
        return e

    def close(self) -> None:
        pass
