"""Plain result records the engine hands to the CLI (and later the API) for rendering."""

from __future__ import annotations

import msgspec

# the 12-character id every table shows, re-exported for cli/ and api/
from cargohold.util.ids import short_id as short_id


class ImageSummary(msgspec.Struct, frozen=True):
    id: str  # sha256:<hex>
    repository: str  # familiar repository or "<none>"
    tag: str  # or "<none>"
    digest: str  # or "<none>"
    created: str  # RFC 3339
    size: int
    labels: dict[str, str]
    dangling: bool


class HistoryRow(msgspec.Struct, frozen=True):
    id: str  # image id for the top entry of each layer... "<missing>" otherwise
    created: str
    created_by: str
    size: int
    comment: str


class Removal(msgspec.Struct, frozen=True):
    """One line of `rmi` / `image prune` output: ("Untagged", ref) or ("Deleted", id)."""

    action: str
    subject: str


class DiskUsage(msgspec.Struct, frozen=True):
    """One row of `system df`."""

    kind: str  # "Images", "Containers", "Local Volumes", "Build Cache"
    total: int
    active: int
    size: int
    reclaimable: int
