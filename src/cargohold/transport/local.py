"""The local store as an image source (save, push) and destination (load, pull, import).

Every layer's uncompressed tar is kept as a blob named by its diff_id: `save` then copies it
in the kernel, and layers from any origin (ours or another tool's) keep their exact bytes, so
the config's diff_ids always match what we hand out.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cargohold.errors import InvalidArgument
from cargohold.oci.digest import chain_id
from cargohold.store.archive import open_decompressed
from cargohold.store.blobs import BlobStore
from cargohold.store.images import ImageRecord, ImageStore
from cargohold.store.layers import Layer, LayerStore
from cargohold.transport.base import ImageSource, LayerRef, SourceImage
from cargohold.transport.verify import TeeReader

LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


@dataclass
class LocalStores:
    blobs: BlobStore
    layers: LayerStore
    images: ImageStore


def register_layer(stores: LocalStores, raw: BinaryIO, parent: str | None,
                   expected_diff_id: str | None = None) -> Layer:
    """Unpack one (possibly compressed) layer tar, keeping its uncompressed bytes as a blob.

    Nothing is registered when the content does not match ``expected_diff_id``.
    """
    stream = open_decompressed(raw)
    with stores.blobs.writer(expected=expected_diff_id) as sink:
        tee = TeeReader(stream, sink)
        layer = stores.layers.register(tee, parent)  # type: ignore[arg-type]
        tee.drain()
        if expected_diff_id is not None and layer.diff_id != expected_diff_id:
            _forget(stores, layer, existed=False)
            raise InvalidArgument(
                f"layer content does not match its diff_id: got {layer.diff_id}, "
                f"expected {expected_diff_id}"
            )
        sink.commit()
    return layer


def _forget(stores: LocalStores, layer: Layer, existed: bool) -> None:
    if not existed:
        stores.layers.delete(layer.chain_id)


class LocalDestination:
    def __init__(self, stores: LocalStores) -> None:
        self.stores = stores

    def put(self, image: SourceImage, source: ImageSource) -> str:
        parent: str | None = None
        for ref in image.layers:
            chain = chain_id(parent, ref.diff_id)
            if self.stores.layers.exists(chain) and self.stores.blobs.has(ref.diff_id):
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

    def images(self) -> list[SourceImage]:
        out = []
        for record, names in self.selected:
            config = self.stores.blobs.read(record.id)
            diff_ids = json.loads(config).get("rootfs", {}).get("diff_ids") or []
            layers = tuple(
                LayerRef(digest=d, diff_id=d, media_type=LAYER_TAR) for d in diff_ids
            )
            out.append(SourceImage(config, record.id, layers, names, record.manifest_digest))
        return out

    def layer_path(self, layer: LayerRef) -> Path:
        if not self.stores.blobs.has(layer.diff_id):
            raise InvalidArgument(f"layer {layer.diff_id} has no stored tar; cannot save it")
        return self.stores.blobs.path(layer.diff_id)

    def open_blob(self, layer: LayerRef) -> BinaryIO:
        return self.stores.blobs.open(layer.diff_id)

    def close(self) -> None:
        pass
