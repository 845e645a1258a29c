"""The local store as an image source (save, push) and destination (load, pull, import).

Layers from any origin keep their exact bytes: the layer store records a tar-split of every
registered tar and reproduces it on demand, so the config's diff_ids always match what we
hand out, without a second stored copy of each layer.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import BinaryIO

import msgspec

from cargohold.errors import Conflict, InvalidArgument, NotFound
from cargohold.oci.digest import chain_id
from cargohold.store.blobs import BlobStore
from cargohold.store.images import ImageRecord, ImageStore
from cargohold.store.layers import Layer, LayerStore, StagedLayer
from cargohold.transport.base import ImageSource, LayerRef, SourceImage

LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


class LocalStores(msgspec.Struct):
    blobs: BlobStore
    layers: LayerStore
    images: ImageStore


def register_layer(stores: LocalStores, raw: BinaryIO, parent: str | None,
                   expected_diff_id: str | None = None) -> Layer:
    """Unpack one (possibly compressed) layer tar on top of ``parent``.

    The layer store records a tar-split, so the original tar can be reproduced for save and
    push.  Nothing new is registered when the content does not match ``expected_diff_id``.
    """
    staged = stage_layer(stores, raw, parent, expected_diff_id)
    try:
        return stores.layers.publish(staged, parent)[0]
    finally:
        staged.discard()


def stage_layer(stores: LocalStores, raw: BinaryIO, parent: str | None,
                expected_diff_id: str | None = None) -> StagedLayer:
    """Apply a (possibly compressed) layer tar into staging, checked against its diff_id.

    Compressed input is decoded and hashed by a thread of its own while this one applies
    the tar.
    """
    from cargohold.store.compression import open_decompressed_ahead  # zstd, isal: ~3 ms

    stream, ahead = open_decompressed_ahead(raw)
    try:
        staged = stores.layers.stage(stream, parent, ahead.digest if ahead else None)
    finally:
        stream.close()
    if expected_diff_id is not None and staged.diff_id != expected_diff_id:
        staged.discard()
        raise InvalidArgument(
            f"layer content does not match its diff_id: got {staged.diff_id}, "
            f"expected {expected_diff_id}"
        )
    return staged


class _Todo(msgspec.Struct, frozen=True):
    index: int
    ref: LayerRef
    parent: str | None  # chain id of the layer below


class LocalDestination:
    """Registers an image's missing layers and then the image, all or nothing.

    Layers are staged first and published only once every one of them is complete (overlay:
    staged in parallel, up to the source's ``concurrent_blobs``); drivers whose layers hold
    their parent's content (vfs) publish each layer before staging the next.  On any failure
    the layers this copy published are removed again and staging is dropped, so nothing of
    the image stays behind.
    """

    def __init__(self, stores: LocalStores) -> None:
        self.stores = stores

    def put(self, image: SourceImage, source: ImageSource) -> str:
        from cargohold.oci.schema import check_image_config

        check_image_config(image.config)  # before any layer is staged: a bad one leaves nothing
        todo: list[_Todo] = []
        parent: str | None = None
        for i, ref in enumerate(image.layers):
            chain = chain_id(parent, ref.diff_id)
            if not self.stores.layers.exists(chain):  # tar-split layers keep no diff_id blob
                todo.append(_Todo(i, ref, parent))
            parent = chain
        created: list[str] = []
        try:
            if todo:
                self._register(todo, source, created)
            size = sum(ly.size for ly in self.stores.layers.chain(parent)) if parent else 0
            record = self.stores.images.add(image.config, parent, image.manifest_digest,
                                            size=size)
        except BaseException:
            self._rollback(created)
            raise
        for name in image.names:
            self.stores.images.tag(record.id, name)
        return record.id

    def _register(self, todo: list[_Todo], source: ImageSource, created: list[str]) -> None:
        layers = self.stores.layers
        parallel = int(getattr(source, "concurrent_blobs", 1) or 1)
        staged: list[StagedLayer] = []
        try:
            if layers.stages_without_parent and parallel > 1 and len(todo) > 1:
                staged = self._stage_parallel(todo, source, min(parallel, len(todo)))
            else:
                for item in todo:
                    with source.open_blob(item.ref) as raw:
                        one = stage_layer(self.stores, raw, item.parent, item.ref.diff_id)
                    staged.append(one)
                    if not layers.stages_without_parent:  # the next layer copies this one
                        self._publish(one, item.parent, created)
            if layers.stages_without_parent:
                for one, item in zip(staged, todo, strict=True):
                    self._publish(one, item.parent, created)
        finally:
            for one in staged:
                one.discard()

    def _publish(self, staged: StagedLayer, parent: str | None, created: list[str]) -> None:
        layer, new = self.stores.layers.publish(staged, parent)
        if new:
            created.append(layer.chain_id)

    def _stage_parallel(self, todo: list[_Todo], source: ImageSource,
                        workers: int) -> list[StagedLayer]:
        import threading
        from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

        lock = threading.Lock()
        opened: list[BinaryIO] = []
        abort = threading.Event()

        def stage(item: _Todo) -> StagedLayer:
            with lock:
                if abort.is_set():
                    raise InvalidArgument("cancelled")
                raw = source.open_blob(item.ref)  # cheap: the data comes as it is read
                opened.append(raw)
            with raw:
                return stage_layer(self.stores, raw, item.parent, item.ref.diff_id)

        def cancel() -> None:  # readers blocked on their data fail at once
            with lock:
                abort.set()
                for raw in opened:
                    with contextlib.suppress(Exception):
                        raw.close()

        pool = ThreadPoolExecutor(workers, thread_name_prefix="layer")
        futures = [pool.submit(stage, item) for item in todo]
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [f for f in futures if f in done and f.exception() is not None]
            if failed:
                raise failed[0].exception()  # type: ignore[misc]
            return [f.result() for f in futures]
        except BaseException:
            cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            for f in futures:
                if f.done() and not f.cancelled() and f.exception() is None:
                    f.result().discard()
            raise
        finally:
            pool.shutdown(wait=True)

    def _rollback(self, created: list[str]) -> None:
        for chain in reversed(created):
            with contextlib.suppress(NotFound, Conflict):  # another user took it meanwhile
                self.stores.layers.delete(chain)

    def close(self) -> None:
        pass


class LocalSource:
    """Images of the local store, named as the caller asked (for `save`)."""

    def __init__(self, stores: LocalStores, selected: list[tuple[ImageRecord, tuple[str, ...]]]):
        self.stores = stores
        self.selected = selected
        self._chains: dict[str, str] = {}  # diff_id -> chain_id, filled by images()

    def images(self) -> list[SourceImage]:
        out = []
        for record, names in self.selected:
            config = self.stores.blobs.read(record.id)
            diff_ids = json.loads(config).get("rootfs", {}).get("diff_ids") or []
            layers = tuple(
                LayerRef(digest=d, diff_id=d, media_type=LAYER_TAR) for d in diff_ids
            )
            out.append(SourceImage(config, record.id, layers, names, record.manifest_digest))
            if record.top_layer:
                for layer in self.stores.layers.chain(record.top_layer):
                    self._chains[layer.diff_id] = layer.chain_id
        return out

    def _chain_of(self, layer: LayerRef) -> str:
        chain = self._chains.get(layer.diff_id)
        if chain is None:
            raise NotFound(f"layer {layer.diff_id} is not in the local store")
        return chain

    def layer_size(self, layer: LayerRef) -> int:
        size = self.stores.layers.tar_size(self._chain_of(layer))
        if size is None:
            if self.stores.blobs.has(layer.diff_id):
                return self.stores.blobs.size(layer.diff_id)
            raise InvalidArgument(f"layer {layer.diff_id} cannot be reproduced for saving")
        return size

    def write_layer(self, layer: LayerRef, sink: Callable[[bytes | memoryview], object]) -> None:
        """The layer's original uncompressed tar, checked against its diff_id."""
        chain = self._chain_of(layer)
        if self.stores.layers.tar_size(chain) is None and self.stores.blobs.has(layer.diff_id):
            with self.stores.blobs.open(layer.diff_id) as f:
                while chunk := f.read(1 << 20):
                    sink(chunk)
            return
        self.stores.layers.write_tar(chain, sink)

    def open_blob(self, layer: LayerRef) -> BinaryIO:
        import tempfile

        tmp = self.stores.blobs.root / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        spool = tempfile.TemporaryFile(dir=tmp)  # noqa: SIM115 - the caller closes it
        self.write_layer(layer, spool.write)
        spool.seek(0)
        return spool  # type: ignore[return-value]

    def close(self) -> None:
        pass
