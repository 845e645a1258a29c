"""The local store as an image source (save, push) and destination (load, pull, import).

Layers from any origin keep their exact bytes: the layer store records a tar-split of every
registered tar and reproduces it on demand, so the config's diff_ids always match what we
hand out, without a second stored copy of each layer.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from cargohold.errors import InvalidArgument, NotFound
from cargohold.oci.digest import chain_id
from cargohold.store.archive import open_decompressed
from cargohold.store.blobs import BlobStore
from cargohold.store.images import ImageRecord, ImageStore
from cargohold.store.layers import Layer, LayerStore
from cargohold.transport.base import ImageSource, LayerRef, SourceImage

LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


@dataclass
class LocalStores:
    blobs: BlobStore
    layers: LayerStore
    images: ImageStore


def register_layer(stores: LocalStores, raw: BinaryIO, parent: str | None,
                   expected_diff_id: str | None = None) -> Layer:
    """Unpack one (possibly compressed) layer tar on top of ``parent``.

    The layer store records a tar-split, so the original tar can be reproduced for save and
    push.  Nothing new is registered when the content does not match ``expected_diff_id``.
    """
    existed = expected_diff_id is not None and stores.layers.exists(
        chain_id(parent, expected_diff_id)
    )
    layer = stores.layers.register(open_decompressed(raw), parent)
    if expected_diff_id is not None and layer.diff_id != expected_diff_id:
        if not existed:
            _forget(stores, layer)
        raise InvalidArgument(
            f"layer content does not match its diff_id: got {layer.diff_id}, "
            f"expected {expected_diff_id}"
        )
    return layer


def _forget(stores: LocalStores, layer: Layer) -> None:
    with contextlib.suppress(NotFound):
        stores.layers.delete(layer.chain_id)


class LocalDestination:
    def __init__(self, stores: LocalStores) -> None:
        self.stores = stores

    def put(self, image: SourceImage, source: ImageSource) -> str:
        parent: str | None = None
        for ref in image.layers:
            chain = chain_id(parent, ref.diff_id)
            if self.stores.layers.exists(chain):  # tar-split layers keep no diff_id blob
                parent = chain
                continue
            with source.open_blob(ref) as raw:
                layer = register_layer(self.stores, raw, parent, ref.diff_id)
            parent = layer.chain_id
        size = sum(ly.size for ly in self.stores.layers.chain(parent)) if parent else 0
        record = self.stores.images.add(image.config, parent, image.manifest_digest, size=size)
        for name in image.names:
            self.stores.images.tag(record.id, name)
        return record.id

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
