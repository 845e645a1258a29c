"""Docker's events for containers, their networks and volumes, and images, appended to the
shared log (util/eventlog.py) by whoever makes the change: the CLI, a monitor, the server.

The attributes are Docker's (moby daemon/events.go): a container's labels, then ``image``
(as the user named it) and ``name``; extra attributes of the action (``exitCode`` of
``die``, ``signal`` of ``kill``) come first and labels may override them, as in moby.  A
network event names the network and its driver type, a volume event its driver; image events
carry the image's labels and ``name``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cargohold.container.model import ContainerRecord
    from cargohold.network.store import Network

_OWN = frozenset({"image", "name", "exitCode", "signal", "oldName", "execID", "comment",
                  "imageID", "imageRef", "height", "width", "container", "type", "driver",
                  "destination", "read/write", "propagation", "reclaimed"})  # fmt: skip


def _emit(runroot: Path, kind: str, action: str, actor: str, attributes: dict[str, str]) -> None:
    from cargohold.util.eventlog import emit  # imported by the first event only

    emit(runroot, kind, action, actor, attributes, _OWN)


def container_event(
    runroot: Path, record: ContainerRecord, action: str, extra: Mapping[str, str] | None = None
) -> None:
    """``container <action>`` for ``record`` (``extra``: the action's own attributes)."""
    attributes = dict(extra or {})
    attributes.update(record.config.labels)
    if record.config.image:
        attributes["image"] = record.config.image
    attributes["name"] = record.name
    _emit(runroot, "container", action, record.id, attributes)


def volume_mounts(runroot: Path, record: ContainerRecord, action: str) -> None:
    """``volume mount`` (at each start) / ``volume unmount`` (at each exit) of every named
    or anonymous volume the container uses, with moby's attributes."""
    for m in record.mount_points:
        if m.type != "volume" or not m.name:
            continue
        attributes = {"driver": m.driver or "local", "container": record.id}
        if action == "mount":
            attributes["destination"] = m.destination
            attributes["read/write"] = "true" if m.rw else "false"
            attributes["propagation"] = m.propagation
        _emit(runroot, "volume", action, m.name, attributes)


def network_event(runroot: Path, net: Network, action: str, container: str = "") -> None:
    """``network <action>`` (create, destroy, connect, disconnect) of ``net``."""
    attributes = {"name": net.name, "type": net.driver}
    if container:
        attributes["container"] = container
    _emit(runroot, "network", action, net.id, attributes)


def prune_event(runroot: Path, kind: str, reclaimed: int) -> None:
    """``<kind> prune`` (an empty actor with the bytes reclaimed), after the removals."""
    _emit(runroot, kind, "prune", "", {"reclaimed": str(reclaimed)})


def image_event(
    runroot: Path, actor: str, name: str, action: str, labels: Mapping[str, str] | None = None
) -> None:
    """``image <action>``: ``actor`` is the image id (the reference for pull and push),
    ``name`` what moby puts in ``name`` (the new tag for ``tag``, the id for most)."""
    attributes = dict(labels or {})
    if name:
        attributes["name"] = name
    _emit(runroot, "image", action, actor, attributes)
