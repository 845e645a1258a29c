"""Parse ``-v``, ``--mount``, ``--tmpfs`` and ``--volumes-from`` into frozen :class:`MountSpec`.

Semantics and wording follow Docker (moby ``volume/mounts`` linux parser, docker/cli
``opts/mount.go``).  Pure functions: nothing here touches the disk, except that callers
decide what to do with ``MountSpec.create_source`` (``-v`` creates a missing host path,
``--mount type=bind`` refuses it: see :func:`check_bind_source`).

Beyond Docker: targets at or below ``/proc`` and ``/sys`` are refused up front (runc would
refuse most of them later, with a less helpful message).
"""

from __future__ import annotations

import csv
import os
import posixpath
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

import msgspec
from msgspec.structs import replace

from cargohold.errors import InvalidArgument

MountType = Literal["bind", "volume", "tmpfs"]

RW_MODES = frozenset({"rw", "ro"})
LABEL_MODES = frozenset({"z", "Z"})
PROPAGATION_MODES = frozenset({"private", "rprivate", "slave", "rslave", "shared", "rshared"})
COPY_MODES = frozenset({"nocopy"})
CONSISTENCY_MODES = frozenset({"consistent", "cached", "delegated"})
DEFAULT_PROPAGATION = "rprivate"
FORBIDDEN_TARGETS = ("/proc", "/sys")

# Mount flags and tmpfs data options the kernel (and Docker's ParseTmpfsOptions) accept.
_TMPFS_FLAGS = frozenset(
    {
        "ro", "rw", "suid", "nosuid", "dev", "nodev", "exec", "noexec", "sync", "async",
        "dirsync", "mand", "nomand", "atime", "noatime", "diratime", "nodiratime",
        "relatime", "norelatime", "strictatime", "nostrictatime", "private", "rprivate",
        "shared", "rshared", "slave", "rslave", "unbindable", "runbindable",
    }
)  # fmt: skip
_TMPFS_DATA = frozenset({"size", "mode", "uid", "gid", "nr_inodes", "nr_blocks", "mpol"})


class MountSpec(msgspec.Struct, frozen=True):
    """One mount requested for a container.

    ``source`` is the host path for ``bind``, the volume name for ``volume`` ("" = anonymous,
    the engine picks a 64-hex name) and "" for ``tmpfs``.  ``target`` is clean and absolute.
    ``options`` keeps the extra words: the ``-v`` label mode (z/Z), tmpfs options, volume
    driver options as ``key=value``.  ``mode`` is the raw ``-v`` mode string Docker shows in
    ``inspect`` (``--mount`` leaves it empty).
    """

    type: MountType
    source: str
    target: str
    readonly: bool = False
    propagation: str = ""
    options: tuple[str, ...] = ()
    nocopy: bool = False
    tmpfs_size: int = 0
    tmpfs_mode: int = 0
    mode: str = ""
    create_source: bool = False
    labels: tuple[tuple[str, str], ...] = msgspec.field(default=())

    @property
    def anonymous(self) -> bool:
        return self.type == "volume" and not self.source


class VolumesFrom(msgspec.Struct, frozen=True):
    """``--volumes-from container[:ro|rw]``; ``mode`` "" inherits each mount's own RW."""

    container: str
    mode: str = ""

    @property
    def readonly(self) -> bool | None:
        """True/False when forced by the spec, None to keep the source container's mode."""
        if not self.mode:
            return None
        return "ro" in self.mode.split(",")


# -- helpers --------------------------------------------------------------------------------------


def _invalid_spec(raw: str) -> str:
    return f"invalid volume specification: '{raw}'"


def _mount_config(kind: str, detail: str) -> str:
    return f'invalid mount config for type "{kind}": {detail}'


def clean_path(path: str) -> str:
    """Lexically clean an absolute container path the way Go's ``path.Clean`` does."""
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts:
                parts.pop()
            continue
        parts.append(part)
    return "/" + "/".join(parts)


def valid_mode(mode: str) -> bool:
    """Docker's ``linuxValidMountMode``: known words, at most one of each family."""
    if mode == "":
        return True
    counts = [0, 0, 0, 0, 0]
    for word in mode.split(","):
        for i, family in enumerate(
            (RW_MODES, LABEL_MODES, PROPAGATION_MODES, COPY_MODES, CONSISTENCY_MODES)
        ):
            if word in family:
                counts[i] += 1
                break
        else:
            return False
    return all(c <= 1 for c in counts)


def _words(mode: str) -> list[str]:
    return [w for w in mode.split(",") if w]


def validate_target(target: str, kind: str) -> str:
    """Absolute, not ``/``, not at or below /proc or /sys. Returns the cleaned path."""
    if not target:
        raise InvalidArgument(_mount_config(kind, "field Target must not be empty"))
    if clean_path(target) == "/" and target.startswith("/"):
        raise InvalidArgument(
            _mount_config(kind, "invalid specification: destination can't be '/'")
        )
    if not target.startswith("/"):
        raise InvalidArgument(
            _mount_config(kind, f"invalid mount path: '{target}' mount path must be absolute")
        )
    clean = clean_path(target)
    for forbidden in FORBIDDEN_TARGETS:
        if clean == forbidden or clean.startswith(forbidden + "/"):
            raise InvalidArgument(
                _mount_config(
                    kind,
                    f"invalid mount path: '{clean}' is inside {forbidden}, "
                    f"which cannot be mounted over",
                )
            )
    return clean


# -- -v / --volume --------------------------------------------------------------------------------


def parse_volume(raw: str) -> MountSpec:
    """Parse one ``-v`` value: ``/host:/ctr[:mode]``, ``name:/ctr[:mode]`` or ``/ctr``."""
    parts = raw.split(":", 3)
    if parts[0] == "":
        raise InvalidArgument(_invalid_spec(raw))
    mode = ""
    if len(parts) == 1:
        source, target = "", parts[0]
    elif len(parts) == 2:
        if valid_mode(parts[1]):
            raise InvalidArgument(_invalid_spec(raw))  # "/foo:rw": a mode needs a source
        source, target = parts
    elif len(parts) == 3:
        source, target, mode = parts
    else:
        raise InvalidArgument(_invalid_spec(raw))
    if not valid_mode(mode):
        raise InvalidArgument(f"invalid mode: {mode}")
    kind: MountType = "bind" if source.startswith("/") else "volume"
    words = _words(mode)
    propagation = next((w for w in words if w in PROPAGATION_MODES), "")
    nocopy = "nocopy" in words
    try:
        if kind == "bind" and nocopy:
            raise InvalidArgument(_mount_config(kind, "field VolumeOptions must not be specified"))
        if kind == "volume" and propagation:
            raise InvalidArgument(_mount_config(kind, "field BindOptions must not be specified"))
        target = validate_target(target, kind)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{_invalid_spec(raw)}: {exc.message}") from None
    if kind == "bind":
        source = clean_path(source)
        propagation = propagation or DEFAULT_PROPAGATION
    return MountSpec(
        type=kind,
        source=source,
        target=target,
        readonly="ro" in words,
        propagation=propagation,
        options=tuple(w for w in words if w in LABEL_MODES),
        nocopy=nocopy,
        mode=mode,
        create_source=kind == "bind",
    )


def image_volume(target: str) -> MountSpec:
    """An anonymous volume for a ``VOLUME`` entry of the image config.

    Docker takes an image's entry as it is, only cleaned, and a Dockerfile can make relative
    ones (the shell form of ``VOLUME /data ["/logs"]`` stores ``[/logs]``): the target stays
    relative (``inspect`` shows it so) and is mounted below the root, where runc puts a
    relative destination (``/[/logs]``, see :func:`in_root`)."""
    if target.startswith("/"):
        return MountSpec(type="volume", source="", target=validate_target(target, "volume"))
    clean = posixpath.normpath(target)  # Go's filepath.Clean of a relative path
    validate_target(in_root(clean), "volume")  # not /, /proc or /sys once below the root
    return MountSpec(type="volume", source="", target=clean)


def in_root(target: str) -> str:
    """The absolute container path of a mount target (an image volume may be relative)."""
    return target if target.startswith("/") else clean_path("/" + target)


# -- --mount --------------------------------------------------------------------------------------

_RAM_RE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_RAM_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def parse_size(value: str) -> int:
    """Docker's ``RAMInBytes``: ``64m``, ``1g``, ``512k``, ``1024`` (binary units)."""
    m = _RAM_RE.match(value)
    if not m:
        raise ValueError(value)
    return int(float(m.group(1)) * _RAM_UNITS[(m.group(2) or "").lower()])


def _parse_bool(key: str, value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "t", "true"):
        return True
    if lowered in ("0", "f", "false"):
        return False
    raise InvalidArgument(f"invalid value for {key}: {value}")


class MountFields(msgspec.Struct):
    """The fields of one ``--mount`` (or of one Docker ``mount.Mount``), not yet validated;
    ``families`` names the option groups given (``bind``, ``volume``, ``tmpfs``)."""

    type: str = "volume"
    source: str = ""
    target: str = ""
    readonly: bool = False
    propagation: str = ""
    nocopy: bool = False
    volume_opts: list[str] = msgspec.field(default_factory=list)
    labels: list[tuple[str, str]] = msgspec.field(default_factory=list)
    tmpfs_size: int = 0
    tmpfs_mode: int = 0
    families: set[str] = msgspec.field(default_factory=set)
    driver: str = ""
    subpath: str = ""

    def set(self, key: str, val: str) -> None:
        if key == "type":
            self.type = val.lower()
        elif key in ("source", "src"):
            self.source = os.path.abspath(val) if val == "." or val.startswith("./") else val
        elif key in ("target", "dst", "destination"):
            self.target = val
        elif key in ("readonly", "ro"):
            self.readonly = _parse_bool(key, val)
        elif key == "consistency":
            pass
        elif key == "bind-propagation":
            self.families.add("bind")
            self.propagation = val.lower()
        elif key == "bind-nonrecursive":
            self.families.add("bind")
            _parse_bool(key, val)
        elif key == "volume-nocopy":
            self.families.add("volume")
            self.nocopy = _parse_bool(key, val)
        elif key in ("volume-opt", "volume-label"):
            self.families.add("volume")
            k, _, v = val.partition("=")
            if k and key == "volume-opt":
                self.volume_opts.append(f"{k}={v}")
            elif k:
                self.labels.append((k, v))
        elif key == "volume-driver":
            self.families.add("volume")
            _check_driver(val)
            self.driver = val
        elif key == "tmpfs-size":
            self.families.add("tmpfs")
            try:
                self.tmpfs_size = parse_size(val)
            except ValueError:
                raise InvalidArgument(f"invalid value for {key}: {val}") from None
        elif key == "tmpfs-mode":
            self.families.add("tmpfs")
            try:
                self.tmpfs_mode = int(val, 8)
            except ValueError:
                raise InvalidArgument(f"invalid value for {key}: {val}") from None
        else:
            raise InvalidArgument(f"unexpected key '{key}' in '{key}={val}'")


def _check_driver(name: str) -> None:
    if name not in ("", "local"):
        raise InvalidArgument(f"volume driver {name!r} is not supported (only local)")


def parse_mount(raw: str) -> MountSpec:
    """Parse and validate one ``--mount`` value."""
    return validate_mount(parse_mount_fields(raw))


def parse_mount_fields(raw: str) -> MountFields:
    """The syntax of one ``--mount`` value (CSV of ``key=value``; ``type`` defaults to
    volume), as docker/cli's ``opts/mount.go`` reads it; :func:`validate_mount` checks it."""
    try:
        fields = next(csv.reader([raw]))
    except (csv.Error, StopIteration):
        raise InvalidArgument(f"invalid argument {raw!r} for --mount flag") from None
    b = MountFields()
    for item in fields:
        key, eq, val = item.partition("=")
        if not eq:
            if key in ("readonly", "ro"):
                b.readonly = True
            elif key == "volume-nocopy":
                b.families.add("volume")
                b.nocopy = True
            elif key == "bind-nonrecursive":
                b.families.add("bind")
            else:
                raise InvalidArgument(f"invalid field '{item}' must be a key=value pair")
            continue
        b.set(key, val)
    if not b.type:
        raise InvalidArgument("type is required")
    if not b.target:
        raise InvalidArgument("target is required")
    for family in ("volume", "bind", "tmpfs"):
        if family in b.families and b.type != family:
            raise InvalidArgument(f"cannot mix '{family}-*' options with mount type '{b.type}'")
    return b


_OPTION_FIELDS = {"bind": "BindOptions", "volume": "VolumeOptions", "tmpfs": "TmpfsOptions"}


def validate_mount(b: MountFields) -> MountSpec:
    """What the daemon checks of a mount (moby's ``validateMountConfig``)."""
    if b.type not in ("bind", "volume", "tmpfs"):
        raise InvalidArgument(_mount_config(b.type, "mount type unknown"))
    kind: MountType = b.type  # type: ignore[assignment]
    for family, field_name in _OPTION_FIELDS.items():
        if family in b.families and family != kind:
            raise InvalidArgument(_mount_config(kind, f"field {field_name} must not be specified"))
    _check_driver(b.driver)
    if b.subpath:
        raise InvalidArgument(_mount_config(kind, "volume subpaths are not supported"))
    target = validate_target(b.target, kind)
    if kind == "bind":
        if not b.source:
            raise InvalidArgument(_mount_config(kind, "field Source must not be empty"))
        if b.propagation and b.propagation not in PROPAGATION_MODES:
            raise InvalidArgument(_mount_config(kind, f"invalid propagation mode: {b.propagation}"))
        if not b.source.startswith("/"):
            raise InvalidArgument(
                _mount_config(kind, f"invalid mount path: '{b.source}' mount path must be absolute")
            )
        return MountSpec(
            type=kind,
            source=clean_path(b.source),
            target=target,
            readonly=b.readonly,
            propagation=b.propagation or DEFAULT_PROPAGATION,
        )
    if kind == "volume":
        if b.readonly and not b.source:
            raise InvalidArgument(
                _mount_config(kind, "must not set ReadOnly mode when using anonymous volumes")
            )
        return MountSpec(
            type=kind,
            source=b.source,
            target=target,
            readonly=b.readonly,
            options=tuple(b.volume_opts),
            nocopy=b.nocopy,
            labels=tuple(b.labels),
        )
    if b.source:
        raise InvalidArgument(_mount_config(kind, "field Source must not be specified"))
    return MountSpec(
        type=kind,
        source="",
        target=target,
        readonly=b.readonly,
        tmpfs_size=b.tmpfs_size,
        tmpfs_mode=b.tmpfs_mode,
    )


# -- --tmpfs, --volumes-from ----------------------------------------------------------------------


def parse_tmpfs(raw: str) -> MountSpec:
    """``--tmpfs /path[:opt,opt=value,...]`` (size=, mode= and the usual mount flags)."""
    target, _, opts = raw.partition(":")
    target = validate_target(target, "tmpfs")
    words = _words(opts)
    size = 0
    mode = 0
    readonly = False
    for word in words:
        key, eq, val = word.partition("=")
        if eq:
            if key not in _TMPFS_DATA:
                raise InvalidArgument(f"invalid tmpfs option {word!r}")
            try:
                if key == "size":
                    size = parse_size(val)
                elif key == "mode":
                    mode = int(val, 8)
            except ValueError:
                raise InvalidArgument(f"invalid tmpfs option {word!r}") from None
        elif word not in _TMPFS_FLAGS:
            raise InvalidArgument(f"invalid tmpfs option {word!r}")
        elif word in ("ro", "rw"):
            readonly = word == "ro"
    return MountSpec(
        type="tmpfs",
        source="",
        target=target,
        readonly=readonly,
        options=tuple(words),
        tmpfs_size=size,
        tmpfs_mode=mode,
    )


def parse_volumes_from(raw: str) -> VolumesFrom:
    """``--volumes-from container[:mode]``; only rw/ro and label modes are accepted."""
    if not raw:
        raise InvalidArgument("volumes-from specification cannot be an empty string")
    container, _, mode = raw.partition(":")
    if not mode:
        return VolumesFrom(container, "")
    words = _words(mode)
    if (
        not valid_mode(mode)
        or any(w in PROPAGATION_MODES or w in COPY_MODES for w in words)
        or not container
    ):
        raise InvalidArgument(f"invalid mode: {mode}")
    return VolumesFrom(container, mode)


def inherit(spec: MountSpec, volumes_from: VolumesFrom) -> MountSpec:
    """The copy of a source container's mount that ``--volumes-from`` gives the new one."""
    forced = volumes_from.readonly
    readonly = spec.readonly if forced is None else forced
    if spec.type == "tmpfs":
        raise InvalidArgument("tmpfs mounts are not shared by --volumes-from")
    return replace(
        spec, readonly=readonly, create_source=False, mode=volumes_from.mode or spec.mode
    )


# -- combining ------------------------------------------------------------------------------------


def check_duplicates(specs: Iterable[MountSpec]) -> None:
    """Refuse two mounts on one destination (Docker's "Duplicate mount point: /data")."""
    seen: set[str] = set()
    for spec in specs:
        if spec.target in seen:
            raise InvalidArgument(f"Duplicate mount point: {spec.target}")
        seen.add(spec.target)


def combine(
    user: Sequence[MountSpec],
    inherited: Sequence[MountSpec] = (),
    image_volumes: Iterable[str] = (),
) -> tuple[MountSpec, ...]:
    """The container's final mount list, as Docker's ``registerMountPoints`` builds it.

    ``user`` (``-v``, ``--mount``, ``--tmpfs`` in command-line order) may not repeat a
    destination; ``inherited`` (``--volumes-from``) entries are replaced by a user mount on
    the same destination; the image's ``VOLUME`` paths become anonymous volumes unless
    something is already mounted there.  Sorted so parents are mounted before children.
    """
    check_duplicates(user)
    by_target: dict[str, MountSpec] = {}
    for spec in inherited:
        by_target[spec.target] = spec
    for spec in user:
        by_target[spec.target] = spec
    for target in image_volumes:
        spec = image_volume(target)
        if in_root(spec.target) not in by_target:
            by_target[in_root(spec.target)] = spec
    return tuple(sorted(by_target.values(),
                        key=lambda s: (in_root(s.target).count("/"), in_root(s.target))))


# -- inspect --------------------------------------------------------------------------------------


def inspect_entry(
    spec: MountSpec, *, name: str = "", mountpoint: str = "", driver: str = "local"
) -> dict[str, Any]:
    """Docker's ``Mounts`` entry for ``inspect``.

    For volumes pass the actual volume ``name`` (anonymous volumes have one once created) and
    its ``mountpoint`` (``<root>/volumes/<name>/_data``).
    """
    entry: dict[str, Any] = {"Type": spec.type}
    if spec.type == "volume":
        entry["Name"] = name or spec.source
        entry["Source"] = mountpoint
    elif spec.type == "bind":
        entry["Source"] = spec.source
    else:
        entry["Source"] = ""
    entry["Destination"] = spec.target
    if spec.type == "volume":
        entry["Driver"] = driver
    entry["Mode"] = spec.mode
    entry["RW"] = not spec.readonly
    entry["Propagation"] = spec.propagation if spec.type == "bind" else ""
    return entry


def from_inspect_entry(entry: Mapping[str, Any]) -> MountSpec:
    """Rebuild a spec from a recorded ``Mounts`` entry (for ``--volumes-from``)."""
    kind = entry.get("Type", "volume")
    if kind not in ("bind", "volume", "tmpfs"):
        raise InvalidArgument(f"unknown mount type {kind!r}")
    source = entry.get("Name", "") if kind == "volume" else entry.get("Source", "")
    return MountSpec(
        type=kind,
        source=str(source),
        target=str(entry["Destination"]),
        readonly=not entry.get("RW", True),
        propagation=str(entry.get("Propagation", "")),
        mode=str(entry.get("Mode", "")),
    )


def check_bind_source(spec: MountSpec) -> None:
    """Create a missing ``-v`` bind source (as a directory, like Docker); refuse it for
    ``--mount type=bind`` with Docker's "bind source path does not exist: /x"."""
    if spec.type != "bind" or os.path.lexists(spec.source):
        return
    if not spec.create_source:
        raise InvalidArgument(
            _mount_config("bind", f"bind source path does not exist: {spec.source}")
        )
    os.makedirs(spec.source, mode=0o755, exist_ok=True)
