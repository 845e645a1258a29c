"""Layer archives: safe extraction and deterministic creation of tar layers with whiteouts.

The public surface other modules code against; the work is done in ``archive_apply``
(extraction) and ``archive_create`` (tar writing), decompression in ``compression``.
"""

from __future__ import annotations

from cargohold.store.archive_apply import UnsafeArchive, WhiteoutMode, apply_layer, clean_name
from cargohold.store.archive_create import (
    write_layer_from_diff,
    write_layer_from_dir,
    write_layer_from_upper,
)
from cargohold.store.compression import Algorithm, compressor, open_decompressed

__all__ = [
    "Algorithm",
    "UnsafeArchive",
    "WhiteoutMode",
    "apply_layer",
    "clean_name",
    "compressor",
    "open_decompressed",
    "write_layer_from_diff",
    "write_layer_from_dir",
    "write_layer_from_upper",
]
