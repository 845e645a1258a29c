"""One copy loop for every transport (containers/image's copy.Image, in small)."""

from __future__ import annotations

import msgspec

from cargohold.transport.base import ImageDestination, ImageSource


class Copied(msgspec.Struct, frozen=True):
    image_id: str
    names: tuple[str, ...]


def copy_images(source: ImageSource, destination: ImageDestination) -> list[Copied]:
    """Copy every image ``source`` lists into ``destination``."""
    copied = []
    for image in source.images():
        image_id = destination.put(image, source)
        copied.append(Copied(image_id, image.names))
    return copied
