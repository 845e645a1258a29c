"""Volume service: ``volume create/ls/inspect/rm/prune`` and the Local Volumes row of ``df``.

A volume is in use while the volume store holds references to it (the container lifecycle adds
one per container that mounts it and drops it when the container is removed).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from cargohold.engine.reports import DiskUsage
from cargohold.errors import NotFound

if TYPE_CHECKING:
    from cargohold.engine import Engine
    from cargohold.volume.store import PruneReport, Volume


class VolumeCreateRequest(msgspec.Struct, frozen=True):
    """``POST /volumes/create`` (Name "" makes an anonymous volume)."""

    name: str = msgspec.field(default="", name="Name")
    driver: str = msgspec.field(default="local", name="Driver")
    driver_opts: dict[str, str] = msgspec.field(default_factory=dict, name="DriverOpts")
    labels: dict[str, str] = msgspec.field(default_factory=dict, name="Labels")


def no_such_volume(name: str) -> NotFound:
    """The CLI-side wording Docker prints for a missing volume."""
    return NotFound(f"No such volume: {name}")


class VolumeService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = engine.volume_store

    def create(self, request: VolumeCreateRequest) -> Volume:
        """``POST /volumes/create``: create (or, as Docker, return the existing) volume; no
        name makes an anonymous one."""
        return self.store.create(request.name or None, labels=request.labels or None,
                                 options=request.driver_opts or None,
                                 driver=request.driver)  # fmt: skip

    def ls(self, filters: Sequence[str] = ()) -> list[Volume]:
        from cargohold.volume.store import VolumeFilters

        parsed = VolumeFilters.parse(filters) if filters else None
        return self.store.list(parsed)

    def get(self, name: str) -> Volume:
        try:
            return self.store.get(name)
        except NotFound:
            raise no_such_volume(name) from None

    def inspect(self, name: str) -> dict[str, Any]:
        return self.get(name).inspect()

    def remove(self, name: str, force: bool = False) -> None:
        """Remove one volume: NotFound "No such volume: x" (unless ``force``), Conflict
        "remove x: volume is in use - [ids]" while containers reference it."""
        if not force and not self.store.exists(name):
            raise no_such_volume(name)
        self.store.remove(name, force=force)

    def prune(self, filters: Sequence[str] = (), *, all_volumes: bool = True) -> PruneReport:
        """Remove unused volumes (Docker 20.10: named ones too; ``all_volumes=False`` keeps
        named volumes as Docker >= 23 does without ``--all``)."""
        from cargohold.volume.store import VolumeFilters

        parsed = VolumeFilters.parse(filters) if filters else None
        report = self.store.prune(parsed, anonymous_only=not all_volumes)
        from cargohold.container.events import prune_event

        prune_event(self.engine.settings.runroot, "volume", report.space_reclaimed)
        return report

    def disk_usage(self) -> DiskUsage:
        volumes = self.store.list()
        sizes = {v.name: self.store.size(v.name) for v in volumes}
        active = [v for v in volumes if v.in_use]
        total = sum(sizes.values())
        reclaimable = sum(sizes[v.name] for v in volumes if not v.in_use)
        return DiskUsage("Local Volumes", len(volumes), len(active), total, reclaimable)
