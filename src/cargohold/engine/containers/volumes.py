"""A container's mounts: resolved once at create (volumes created and referenced), turned into
OCI mounts at every start (new volumes filled from the image first), released at ``rm``.

Resolved mounts live in the record (``ContainerRecord.mount_points``), so ``--volumes-from``
and ``inspect`` read them without touching the volume store.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from cargohold.container.model import (
    ContainerConfig,
    ContainerRecord,
    HostConfig,
    MountPoint,
    MountRecord,
)
from cargohold.errors import NotFound

if TYPE_CHECKING:
    from cargohold.container.spec import Mount
    from cargohold.engine import Engine
    from cargohold.util.undo import Undo
    from cargohold.volume.mounts import MountFields, MountSpec


# ------------------------------------------------------------------------ requests


def mount_request(raw: str) -> MountPoint:
    """One ``--mount`` flag as the request carries it (Docker's ``mount.Mount``); only its
    syntax is checked here, as docker/cli does: the engine checks the mount itself."""
    from cargohold.container.model import (
        BindOptions,
        DriverConfig,
        TmpfsOptions,
        VolumeOptions,
    )
    from cargohold.volume import mounts as vm

    f = vm.parse_mount_fields(raw)
    volume = None
    if "volume" in f.families:
        opts = dict(o.split("=", 1) for o in f.volume_opts)
        driver = DriverConfig(f.driver, opts) if f.driver or opts else None
        volume = VolumeOptions(f.nocopy, dict(f.labels), driver)
    return MountPoint(
        type=f.type,
        source=f.source,
        target=f.target,
        read_only=f.readonly,
        bind_options=BindOptions(f.propagation) if "bind" in f.families else None,
        volume_options=volume,
        tmpfs_options=(
            TmpfsOptions(f.tmpfs_size, f.tmpfs_mode) if "tmpfs" in f.families else None
        ),
    )


def _fields(m: MountPoint) -> MountFields:
    from cargohold.volume.mounts import MountFields

    f = MountFields(type=m.type.lower(), source=m.source, target=m.target,
                    readonly=m.read_only)  # fmt: skip
    if m.bind_options is not None:
        f.families.add("bind")
        f.propagation = m.bind_options.propagation.lower()
    if m.volume_options is not None:
        v = m.volume_options
        f.families.add("volume")
        f.nocopy, f.labels, f.subpath = v.no_copy, sorted(v.labels.items()), v.subpath
        if v.driver_config is not None:
            f.driver = v.driver_config.name
            f.volume_opts = [f"{k}={val}" for k, val in v.driver_config.options.items()]
    if m.tmpfs_options is not None:
        f.families.add("tmpfs")
        f.tmpfs_size, f.tmpfs_mode = m.tmpfs_options.size_bytes, m.tmpfs_options.mode
    return f


def request_mounts(host: HostConfig) -> tuple[MountSpec, ...]:
    """Binds, Mounts and Tmpfs of a create request checked as the daemon does (in that
    order); VolumesFrom checked too (its containers are read at create)."""
    if not (host.binds or host.mounts or host.tmpfs or host.volumes_from):
        return ()  # nothing to check: volume code stays unimported
    from cargohold.volume import mounts as vm

    specs = [vm.parse_volume(v) for v in host.binds]
    specs += [vm.validate_mount(_fields(m)) for m in host.mounts]
    specs += [vm.parse_tmpfs(f"{t}:{o}" if o else t) for t, o in host.tmpfs.items()]
    for raw in host.volumes_from:
        vm.parse_volumes_from(raw)
    return tuple(specs)


def _inherited(engine: Engine, volumes_from: Sequence[str]) -> list[MountSpec]:
    from cargohold.volume import mounts as vm

    out: list[MountSpec] = []
    for raw in volumes_from:
        spec = vm.parse_volumes_from(raw)
        source = engine.container_store.get(spec.container)
        for mp in source.mount_points:
            if mp.type == "tmpfs":
                continue
            entry = {
                "Type": mp.type,
                "Name": mp.name,
                "Source": mp.source,
                "Destination": mp.destination,
                "RW": mp.rw,
                "Propagation": mp.propagation,
                "Mode": mp.mode,
            }
            out.append(vm.inherit(vm.from_inspect_entry(entry), spec))
    return out


def resolve_mounts(
    engine: Engine,
    cid: str,
    specs: Sequence[MountSpec],
    volumes_from: Sequence[str],
    config: ContainerConfig,
    undo: Undo,
) -> tuple[MountRecord, ...]:
    """Create/reference every volume the container mounts; bind sources of ``-v`` are created
    when missing (as Docker does)."""
    if not specs and not volumes_from and not config.volumes:
        return ()  # nothing to resolve: volume code stays unimported
    from cargohold.volume import mounts as vm

    inherited = _inherited(engine, volumes_from)
    combined = vm.combine(list(specs), inherited, sorted(config.volumes))
    store = engine.volume_store
    out: list[MountRecord] = []
    for spec in combined:
        if spec.type == "bind":
            vm.check_bind_source(spec)
            out.append(
                MountRecord(
                    type="bind",
                    source=spec.source,
                    destination=spec.target,
                    mode=spec.mode,
                    rw=not spec.readonly,
                    propagation=spec.propagation or "rprivate",
                )
            )
        elif spec.type == "volume":
            existed = bool(spec.source) and store.exists(spec.source)
            labels = dict(spec.labels)
            opts = dict(o.split("=", 1) for o in spec.options if "=" in o)
            vol = store.create(spec.source or None, labels=labels or None, options=opts or None)
            if not existed:
                undo.add(functools.partial(store.remove, vol.name, force=True))
            store.add_ref(vol.name, cid)
            undo.add(functools.partial(store.remove_ref, vol.name, cid))
            out.append(
                MountRecord(
                    type="volume",
                    name=vol.name,
                    source=vol.mountpoint,
                    destination=spec.target,
                    driver="local",
                    mode=spec.mode,
                    rw=not spec.readonly,
                    anonymous=vol.anonymous,
                    nocopy=spec.nocopy,
                )
            )
        else:
            out.append(
                MountRecord(
                    type="tmpfs",
                    destination=spec.target,
                    rw=not spec.readonly,
                    options=spec.options,
                    tmpfs_size=spec.tmpfs_size,
                    tmpfs_mode=spec.tmpfs_mode,
                )
            )
    return tuple(out)


def _tmpfs_options(options: Sequence[str]) -> tuple[str, ...]:
    return tuple(
        o for o in options if o not in ("ro", "rw") and o.split("=", 1)[0] not in ("size", "mode")
    )


def oci_mounts(mounts: Sequence[MountRecord]) -> list[Mount]:
    from cargohold.container.spec import Mount

    out: list[Mount] = []
    for m in mounts:
        if m.type == "tmpfs":
            out.append(
                Mount(
                    "tmpfs",
                    m.destination,
                    readonly=not m.rw,
                    tmpfs_size=m.tmpfs_size or None,
                    tmpfs_mode=m.tmpfs_mode or None,
                    options=_tmpfs_options(m.options),
                )
            )
        elif m.type == "volume":
            out.append(Mount("volume", _in_root(m.destination), m.source, readonly=not m.rw))
        else:
            out.append(
                Mount("bind", m.destination, m.source, readonly=not m.rw, propagation=m.propagation)
            )
    return out


def populate(engine: Engine, record: ContainerRecord, rootfs: Path) -> None:
    """Fill each new volume with the image's content at its target (once per volume)."""
    if not any(m.type == "volume" and not m.nocopy for m in record.mount_points):
        return
    store = engine.volume_store
    for m in record.mount_points:
        if m.type != "volume" or m.nocopy:
            continue
        try:
            vol = store.get(m.name)
        except NotFound:
            vol = store.create(m.name)  # removed behind our back: recreate, as Docker does
            store.add_ref(vol.name, record.id)
        if not vol.populated:
            store.populate_from(m.name, _in_root(m.destination), beneath=rootfs)


def _in_root(destination: str) -> str:
    """An image volume's relative destination (``[/logs]``) as runc mounts it: below /."""
    if destination.startswith("/"):
        return destination
    from cargohold.volume.mounts import in_root

    return in_root(destination)


def release(engine: Engine, record: ContainerRecord, remove_anonymous: bool) -> None:
    """Drop the container's volume references; ``rm -v`` / ``--rm`` also removes its
    anonymous volumes (a volume another container still uses stays, as Docker)."""
    volumes = [m for m in record.mount_points if m.type == "volume" and m.name]
    if not volumes:
        return
    anonymous = [m.name for m in volumes if m.anonymous] if remove_anonymous else []
    engine.volume_store.release(record.id, [m.name for m in volumes], anonymous)
