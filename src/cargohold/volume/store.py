"""Named and anonymous volumes of the ``local`` driver: ``<root>/volumes/<name>/_data``.

Each volume directory holds ``_data`` (what containers mount) and ``volume.json`` (metadata,
the copy-up flag and the containers that reference it).  Every mutation holds the store's flock
(``<root>/volumes/.lock``) and rewrites ``volume.json`` atomically, so concurrent CLI calls
never see half a volume: a volume exists exactly when its ``volume.json`` does.

``prune`` follows Docker 20.10 (the reference version): it removes *every* unused local
volume, named or anonymous.  Docker API >= 1.42 (23.0) only prunes anonymous volumes unless
``--all``; pass ``anonymous_only=True`` for that behaviour.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
from msgspec.structs import replace

from cargohold.errors import Conflict, InvalidArgument, NotFound
from cargohold.util import fdtree
from cargohold.util.atomic import read_json, write_json
from cargohold.util.fsflags import spread_subdirectories
from cargohold.util.ids import random_id
from cargohold.util.lockfile import FileLock
from cargohold.util.securejoin import open_beneath, open_root, opened
from cargohold.util.text import go_quote, has_control_or_space

DRIVER = "local"
_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]+\Z")
_LOCAL_OPTS = frozenset({"type", "device", "o", "size"})
_META = "volume.json"


class Volume(msgspec.Struct, frozen=True):
    name: str
    mountpoint: str
    created_at: str
    labels: tuple[tuple[str, str], ...] = ()
    options: tuple[tuple[str, str], ...] = ()
    anonymous: bool = False
    populated: bool = False
    refs: tuple[str, ...] = ()
    driver: str = DRIVER
    scope: str = "local"

    @property
    def in_use(self) -> bool:
        return bool(self.refs)

    def inspect(self) -> dict[str, Any]:
        """Docker's ``volume inspect`` object (anonymous volumes show null Labels/Options)."""
        return {
            "CreatedAt": self.created_at,
            "Driver": self.driver,
            "Labels": dict(self.labels) if self.labels or not self.anonymous else None,
            "Mountpoint": self.mountpoint,
            "Name": self.name,
            "Options": dict(self.options) if self.options or not self.anonymous else None,
            "Scope": self.scope,
        }

    def _to_json(self) -> dict[str, Any]:
        doc = self.inspect()
        doc["Labels"] = dict(self.labels)
        doc["Options"] = dict(self.options)
        doc["Anonymous"] = self.anonymous
        doc["Populated"] = self.populated
        doc["Refs"] = list(self.refs)
        return doc

    @classmethod
    def _from_json(cls, doc: Mapping[str, Any]) -> Volume:
        return cls(
            name=str(doc["Name"]),
            mountpoint=str(doc["Mountpoint"]),
            created_at=str(doc["CreatedAt"]),
            labels=tuple(sorted((doc.get("Labels") or {}).items())),
            options=tuple(sorted((doc.get("Options") or {}).items())),
            anonymous=bool(doc.get("Anonymous", False)),
            populated=bool(doc.get("Populated", False)),
            refs=tuple(doc.get("Refs") or ()),
            driver=str(doc.get("Driver", DRIVER)),
            scope=str(doc.get("Scope", "local")),
        )


class PruneReport(msgspec.Struct, frozen=True):
    deleted: tuple[str, ...] = ()
    space_reclaimed: int = 0


class VolumeFilters(msgspec.Struct, frozen=True):
    """``volume ls`` / ``prune`` filters, already validated."""

    dangling: bool | None = None
    names: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    drivers: tuple[str, ...] = ()
    extra: tuple[str, ...] = msgspec.field(default=())
    not_labels: tuple[str, ...] = ()  # label! (prune): not volumes carrying all of these

    @classmethod
    def parse(cls, raw: Mapping[str, Sequence[str]] | Iterable[str]) -> VolumeFilters:
        """From ``{"dangling": ["true"]}`` or CLI words (``dangling=true``, ``label=a=b``)."""
        pairs: list[tuple[str, str]] = []
        if isinstance(raw, Mapping):
            pairs = [(k, v) for k, values in raw.items() for v in values]
        else:
            for word in raw:
                key, eq, value = word.partition("=")
                if not eq:
                    raise InvalidArgument(f"bad format of filter (expected name=value): {word}")
                pairs.append((key.strip().lower(), value))
        dangling: bool | None = None
        names: list[str] = []
        labels: list[str] = []
        drivers: list[str] = []
        not_labels: list[str] = []
        for key, value in pairs:
            if key == "dangling":
                if value.lower() not in ("true", "false", "1", "0"):
                    raise InvalidArgument(f"Invalid filter 'dangling={value}'")
                dangling = value.lower() in ("true", "1")
            elif key == "name":
                names.append(value)
            elif key == "label":
                labels.append(value)
            elif key == "label!":
                not_labels.append(value)
            elif key == "driver":
                drivers.append(value)
            else:
                raise InvalidArgument(f"Invalid filter '{key}'")
        return cls(dangling, tuple(names), tuple(labels), tuple(drivers),
                   not_labels=tuple(not_labels))

    def match(self, vol: Volume) -> bool:
        if self.dangling is not None and self.dangling == vol.in_use:
            return False
        if self.names and not any(n in vol.name for n in self.names):
            return False
        if self.drivers and vol.driver not in self.drivers:
            return False
        labels = dict(vol.labels)

        def has(want: str) -> bool:
            key, eq, value = want.partition("=")
            return key in labels and (not eq or labels[key] == value)

        if not all(has(want) for want in self.labels):
            return False
        return not self.not_labels or not all(has(want) for want in self.not_labels)


def _now() -> str:
    stamp = datetime.now().astimezone().isoformat(timespec="seconds")
    return stamp.replace("+00:00", "Z")


MAX_NAME = 255  # one directory entry (NAME_MAX): volumes/<name>/


def validate_name(name: str) -> None:
    """moby's local-driver rule (at least two characters of ``[a-zA-Z0-9_.-]``); a name that
    cannot be one directory entry is refused here rather than by the file system."""
    shown = go_quote(name) if has_control_or_space(name) else name
    if len(name) == 1:
        raise InvalidArgument(f"create {shown}: volume name is too short, names should be at "
                              "least two alphanumeric characters")  # fmt: skip
    if len(name.encode()) > MAX_NAME:
        raise InvalidArgument(f"create {shown}: volume name is too long (maximum {MAX_NAME} "
                              "bytes)")  # fmt: skip
    if not _NAME_RE.match(name):
        raise InvalidArgument(
            f"create {shown}: {go_quote(name)} includes invalid characters for a local volume "
            'name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host '
            "directory, use absolute path"
        )


class VolumeStore:
    """The volumes below ``<root>/volumes``; ``root`` is cargohold's state root."""

    def __init__(self, root: Path, runroot: Path | None = None) -> None:
        self.dir = Path(root) / "volumes"
        self._lock = FileLock(self.dir / ".lock")
        self.runroot = runroot  # where create/destroy are logged (util/eventlog.py)

    def _event(self, name: str, action: str, driver: str = DRIVER) -> None:
        if self.runroot is not None:
            from cargohold.util.eventlog import emit

            emit(self.runroot, "volume", action, name, {"driver": driver})

    # -- lookups -----------------------------------------------------------------------------------

    def _path(self, name: str) -> Path:
        if not _NAME_RE.match(name):  # never let a name leave the directory
            raise NotFound(f"get {name}: no such volume")
        return self.dir / name

    def _load(self, name: str) -> Volume:
        try:
            return Volume._from_json(read_json(self._path(name) / _META))
        except FileNotFoundError:
            raise NotFound(f"get {name}: no such volume") from None

    def _save(self, vol: Volume) -> None:
        write_json(self._path(vol.name) / _META, vol._to_json())

    def exists(self, name: str) -> bool:
        return _NAME_RE.match(name) is not None and (self.dir / name / _META).is_file()

    def get(self, name: str) -> Volume:
        """The volume called ``name``; NotFound "get x: no such volume" otherwise."""
        return self._load(name)

    def list(self, filters: VolumeFilters | None = None) -> list[Volume]:
        if not self.dir.is_dir():
            return []
        result = []
        for entry in sorted(os.listdir(self.dir)):
            if entry.startswith(".") or not _NAME_RE.match(entry):
                continue
            try:
                vol = self._load(entry)
            except (NotFound, ValueError, KeyError):
                continue  # half-created (no volume.json yet) or foreign directory
            if filters is None or filters.match(vol):
                result.append(vol)
        return result

    def inspect(self, name: str) -> dict[str, Any]:
        return self._load(name).inspect()

    # -- create / remove ---------------------------------------------------------------------------

    def create(
        self,
        name: str | None = None,
        *,
        labels: Mapping[str, str] | None = None,
        options: Mapping[str, str] | None = None,
        driver: str = DRIVER,
    ) -> Volume:
        """Create a volume; ``name`` None makes an anonymous one with a 64-hex name.

        As with Docker, creating a name that already exists returns the existing volume.
        """
        if driver != DRIVER:
            raise NotFound(f"create {name or ''}: error looking up volume plugin {driver}: "
                           "plugin not found")  # fmt: skip
        for key in options or {}:
            if key not in _LOCAL_OPTS:
                raise InvalidArgument(f'create {name or ""}: invalid option key: "{key}"')
        anonymous = name is None
        vol_name = random_id() if name is None else name
        validate_name(vol_name)
        with self._lock:
            if self.exists(vol_name):
                self._event(vol_name, "create")  # as moby, also when it exists already
                return self._load(vol_name)
            spread_subdirectories(self.dir)
            path = self._path(vol_name)
            data = path / "_data"
            data.mkdir(parents=True, exist_ok=True)
            os.chmod(path, 0o701)
            vol = Volume(
                name=vol_name,
                mountpoint=str(data),
                created_at=_now(),
                labels=tuple(sorted((labels or {}).items())),
                options=tuple(sorted((options or {}).items())),
                anonymous=anonymous,
            )
            self._save(vol)  # the volume exists from here on
            self._event(vol_name, "create")
            return vol

    def remove(self, name: str, force: bool = False) -> None:
        """Remove a volume. In use: Conflict "remove x: volume is in use - [ids]", even with
        ``force`` (as Docker); ``force`` only silences a missing volume."""
        with self._lock:
            try:
                vol = self._load(name)
            except NotFound:
                if force:
                    return
                raise
            if vol.refs:
                raise Conflict(f"remove {name}: volume is in use - [{', '.join(vol.refs)}]")
            self._delete(vol)
        self._event(name, "destroy", vol.driver)

    def _delete(self, vol: Volume) -> None:
        path = self._path(vol.name)
        (path / _META).unlink()  # gone for readers first, then the data
        shutil.rmtree(path, ignore_errors=True)

    def prune(
        self, filters: VolumeFilters | None = None, *, anonymous_only: bool = False
    ) -> PruneReport:
        """Remove unused volumes matching ``filters`` (Docker 20.10: named ones too)."""
        deleted: list[str] = []
        reclaimed = 0
        with self._lock:
            for vol in self.list(filters):
                if vol.refs or (anonymous_only and not vol.anonymous):
                    continue
                reclaimed += _disk_usage(Path(vol.mountpoint))
                self._delete(vol)
                deleted.append(vol.name)
        return PruneReport(tuple(deleted), reclaimed)

    # -- references --------------------------------------------------------------------------------

    def add_ref(self, name: str, container_id: str) -> Volume:
        with self._lock:
            vol = self._load(name)
            if container_id not in vol.refs:
                vol = replace(vol, refs=(*vol.refs, container_id))
                self._save(vol)
            return vol

    def remove_ref(self, name: str, container_id: str) -> None:
        with self._lock:
            try:
                vol = self._load(name)
            except NotFound:
                return
            if container_id in vol.refs:
                self._save(replace(vol, refs=tuple(r for r in vol.refs if r != container_id)))

    def release(self, container_id: str, names: Iterable[str], remove: Iterable[str] = ()) -> None:
        """Drop ``container_id``'s references to ``names``, then remove the volumes of
        ``remove`` no other container uses (``rm -v``, ``--rm``: its anonymous volumes)."""
        for name in names:
            self.remove_ref(name, container_id)
        for name in remove:
            with suppress(Conflict):
                self.remove(name, force=True)

    def size(self, name: str) -> int:
        return _disk_usage(Path(self._load(name).mountpoint))

    # -- copy-up -----------------------------------------------------------------------------------

    def populate_from(
        self,
        name: str,
        source_dir: str | Path,
        nocopy: bool = False,
        *,
        beneath: str | Path | None = None,
    ) -> bool:
        """Fill a new volume with ``source_dir`` (the image's content at the mount target).

        Only once per volume and only into an empty ``_data``; ``nocopy`` just marks it.
        Ownership, modes, timestamps, xattrs and symlinks (as links) are kept; the source is
        walked with ``O_NOFOLLOW`` so no symlink in it is ever followed.  A missing source
        (the image has nothing there) is fine.  Returns True when content was copied.

        With ``beneath`` (the container's rootfs) ``source_dir`` is the container path
        (e.g. ``/var/lib/mysql``) and is resolved inside that root, symlinks included.
        """
        with self._lock:
            vol = self._load(name)
            if vol.populated:
                return False
            data = Path(vol.mountpoint)
            copied = False
            if not nocopy and not any(data.iterdir()):
                copied = _copy_dir_into(source_dir, data, beneath)
            self._save(replace(vol, populated=True))
            return copied


def _disk_usage(path: Path) -> int:
    """Bytes allocated below ``path``, walked by descriptors (containers may be changing it)."""
    try:
        top = fdtree.open_dir(path)
    except OSError:
        return 0
    try:
        return sum(node.st.st_blocks * 512 for node in fdtree.walk(top))
    except OSError:
        return 0
    finally:
        os.close(top)


# -- tree copy that never follows links ---------------------------------------------------------


def _copy_dir_into(source: str | Path, dest: Path, beneath: str | Path | None) -> bool:
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
    try:
        if beneath is None:
            src_fd = os.open(source, flags | os.O_NOFOLLOW)
        else:
            with opened(open_root(beneath)) as root_fd:
                src_fd = open_beneath(root_fd, os.fspath(source), flags)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return False  # nothing (or no directory) at that path in the image
        raise
    dst_fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        _copy_children(src_fd, dst_fd)
        _copy_meta(src_fd, dst_fd, os.fstat(src_fd))  # the volume root takes the dir's owner/mode
    finally:
        os.close(src_fd)
        os.close(dst_fd)
    return True


def _copy_children(src_fd: int, dst_fd: int) -> None:
    for entry in os.scandir(src_fd):
        name = entry.name
        st = os.stat(name, dir_fd=src_fd, follow_symlinks=False)
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            os.mkdir(name, 0o700, dir_fd=dst_fd)
            sub_src = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=src_fd)
            sub_dst = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dst_fd)
            try:
                _copy_children(sub_src, sub_dst)
                _copy_meta(sub_src, sub_dst, st)
            finally:
                os.close(sub_src)
                os.close(sub_dst)
            continue
        if stat.S_ISREG(mode):
            fin = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=src_fd)
            try:
                fout = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                               0o600, dir_fd=dst_fd)  # fmt: skip
                try:
                    _copy_data(fin, fout)
                    _copy_meta(fin, fout, st)
                finally:
                    os.close(fout)
            finally:
                os.close(fin)
            continue
        if stat.S_ISLNK(mode):
            os.symlink(os.readlink(name, dir_fd=src_fd), name, dir_fd=dst_fd)
        elif stat.S_ISFIFO(mode):
            os.mkfifo(name, 0o600, dir_fd=dst_fd)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            os.mknod(name, mode, st.st_rdev, dir_fd=dst_fd)
        else:
            continue  # sockets are not copied
        os.chown(name, st.st_uid, st.st_gid, dir_fd=dst_fd, follow_symlinks=False)
        if not stat.S_ISLNK(mode):
            os.chmod(name, stat.S_IMODE(mode), dir_fd=dst_fd)
        os.utime(name, ns=(st.st_atime_ns, st.st_mtime_ns), dir_fd=dst_fd, follow_symlinks=False)


def _copy_data(fin: int, fout: int) -> None:
    while True:
        try:
            n = os.copy_file_range(fin, fout, 1 << 30)
        except OSError:
            n = -1
        if n == 0:
            return
        if n < 0:
            break
    while chunk := os.read(fin, 1 << 20):
        os.write(fout, chunk)


def _copy_meta(src_fd: int, dst_fd: int, st: os.stat_result) -> None:
    """Owner, mode, xattrs and times from an open source to an open destination."""
    # xattrs are best effort, like cp -a (security.* needs privilege; some fs have none)
    with suppress(OSError):
        for attr in os.listxattr(src_fd):
            with suppress(OSError):
                os.setxattr(dst_fd, attr, os.getxattr(src_fd, attr))
    with suppress(PermissionError):  # unprivileged: keep our own ownership
        os.chown(dst_fd, st.st_uid, st.st_gid)
    os.chmod(dst_fd, stat.S_IMODE(st.st_mode))
    os.utime(dst_fd, ns=(st.st_atime_ns, st.st_mtime_ns))
