"""The seam every image transport implements: pull = push = save = load = one copy loop.

A source lists images as (config, layer descriptors, names) and opens blobs; a destination
receives them.  ``transport/copy.py`` moves images from any source to any destination.
"""

from __future__ import annotations

from typing import BinaryIO, Protocol

import msgspec


class LayerRef(msgspec.Struct, frozen=True):
    """One layer as a source holds it."""

    digest: str  # digest of the blob as stored at the source (may be compressed)
    diff_id: str  # digest of the uncompressed tar (from the image config)
    media_type: str
    size: int | None = None
    location: str = ""  # where the source finds it when that is not the digest (archive path)


class SourceImage(msgspec.Struct, frozen=True):
    config: bytes
    config_digest: str
    layers: tuple[LayerRef, ...]
    names: tuple[str, ...]  # fully normalised references ("docker.io/library/centos:7")
    manifest_digest: str | None = None


class ImageSource(Protocol):
    def images(self) -> list[SourceImage]: ...

    def open_blob(self, layer: LayerRef) -> BinaryIO:
        """The blob's raw bytes (verified by the consumer against ``layer``)."""
        ...

    def close(self) -> None: ...


class ImageDestination(Protocol):
    def put(self, image: SourceImage, source: ImageSource) -> str:
        """Store ``image`` (reading its blobs from ``source``) and return its image id."""
        ...

    def close(self) -> None: ...
