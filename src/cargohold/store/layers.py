"""Unpacked layers (``layers/<chainhex>/``) and container rw layers (``containers-rw/<id>/``).

Writes are staged in ``tmp/`` and published with one rename under the ``layers`` flock, so
a reader sees a complete layer or none, identical layers are stored once, and a process
killed mid-import leaves only a stale staging entry that the next mutation removes.
"""

from __future__ import annotations

import _thread
import builtins
import os
import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import msgspec
from msgspec.structs import asdict

from cargohold.errors import Conflict, Internal, InvalidArgument, NotFound
from cargohold.oci.digest import hex_of, validate
from cargohold.store.drivers.base import Layout, StorageDriver
from cargohold.store.locking import SWEEP_INTERVAL, Staging, clean_stale, store_lock
from cargohold.util.atomic import read_json, write_json
from cargohold.util.fsflags import spread_subdirectories

if TYPE_CHECKING:
    from cargohold.store.layer_entries import Entry

TARSPLIT = "tarsplit"
_HEX64 = re.compile(r"^[a-f0-9]{64}$")
_RW_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


class Layer(msgspec.Struct, frozen=True):
    chain_id: str
    diff_id: str
    parent: str | None  # the parent's chain_id
    size: int  # bytes of content this layer adds
    created: str


def chain_id_of(parent: str | None, diff_id: str) -> str:
    """OCI ChainID: the diff_id for a base layer, else sha256("<parent chain> <diff_id>")."""
    if parent is None:
        return validate(diff_id)
    import hashlib

    return "sha256:" + hashlib.sha256(f"{parent} {diff_id}".encode()).hexdigest()


def now_rfc3339() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class StagedLayer(msgspec.Struct):
    """A layer applied into ``tmp/`` (flock held) and not yet published."""

    diff_id: str
    size: int
    base: str | None  # the parent whose content the staging copy holds (vfs), else None
    stage: Staging

    def discard(self) -> None:
        self.stage.close()


class HashingReader:
    """A read-only stream wrapper that hashes every byte passing through it."""

    def __init__(self, stream: BinaryIO, hashing: bool = True) -> None:
        self._stream = stream
        import hashlib

        self._hash = hashlib.sha256()
        self._hashing = hashing  # False: only counts (someone else hashes the stream)
        self.count = 0

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        if self._hashing:
            self._hash.update(data)
        self.count += len(data)
        return data

    def readinto(self, buf: bytearray | memoryview) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def drain(self) -> None:
        """Read to the end (a tar's trailing padding is part of its digest)."""
        while self.read(1 << 20):
            pass

    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()


class LayerStore:
    def __init__(self, root: Path, driver: StorageDriver) -> None:
        self.root = root
        self.driver = driver
        self.layout = Layout(root)
        self._lock = store_lock(root, "layers")
        self._swept = -SWEEP_INTERVAL  # time.monotonic() of the last _prepare
        # view path -> its staging entries (vfs hands out a layer's own dir: one path, many);
        # threads of one process share it, hence its lock
        self._ro: dict[Path, builtins.list[Staging]] = {}
        self._ro_lock = _thread.allocate_lock()

    # helpers ---------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Create the directories and drop what killed processes left in ``tmp/`` (once per
        command; a long-lived service again every SWEEP_INTERVAL)."""
        now = time.monotonic()
        if now - self._swept < SWEEP_INTERVAL:
            return
        for path in (self.layout.layers, self.layout.rw_root, self.layout.tmp):
            path.mkdir(parents=True, exist_ok=True)
            spread_subdirectories(path)
        clean_stale(self.layout.tmp)
        self._swept = now

    def _meta(self, chain_hex: str) -> Path:
        return self.layout.layer_dir(chain_hex) / "layer.json"

    def _lowers(self, top: str | None) -> list[str]:
        """Chain hexes of ``top`` and its ancestors, top first."""
        return lowers_of(self.chain(top)) if top else []

    def _rw_dir(self, rw_id: str) -> Path:
        if not _RW_ID.match(rw_id):
            raise InvalidArgument(f"invalid rw layer id: {rw_id!r}")
        return self.layout.rw(rw_id)

    def _rw_parent(self, rw_id: str) -> str | None:
        try:
            meta = read_json(self._rw_dir(rw_id) / "rw.json")
        except FileNotFoundError:
            raise NotFound(f"no such rw layer: {rw_id}") from None
        parent = meta.get("parent")
        return parent if isinstance(parent, str) else None

    # layers -----------------------------------------------------------------------------

    def register(self, stream: BinaryIO, parent: str | None) -> Layer:
        """Apply an uncompressed layer tar on top of ``parent``; identical layers are shared."""
        staged = self.stage(stream, parent)
        try:
            return self.publish(staged, parent)[0]
        finally:
            staged.discard()

    @property
    def stages_without_parent(self) -> bool:
        """True when a layer's ``diff/`` does not depend on its parent's content (overlay
        whiteouts: each layer holds only its own changes), so layers of one image can be
        staged in any order, in parallel, and be given their parent at :meth:`publish`."""
        return self.driver.whiteouts == "overlay"

    def stage(self, stream: BinaryIO, parent: str | None,
              digest: Callable[[], str] | None = None) -> StagedLayer:
        """Apply a layer tar into a locked staging entry without publishing it.

        ``parent`` must be registered unless :attr:`stages_without_parent`, when it is ignored
        here and only matters to :meth:`publish`.  ``digest``, when given, returns the sha256
        of everything ``stream`` yielded (computed by whoever produces the stream, e.g. a
        decoding thread) once it was read to its end; else the stream is hashed here.  The
        caller publishes the result or discards it (``discard`` is idempotent and a no-op
        after publishing).
        """
        from cargohold.store import archive
        from cargohold.store.tarsplit import SplitRecorder

        self._prepare()
        base = None if self.stages_without_parent or parent is None else parent
        base_hex = hex_of(self.get(base).chain_id) if base is not None else None
        reader = HashingReader(stream, hashing=digest is None)
        stage = Staging(self.layout.tmp, "layer")
        try:
            diff = stage.path / "diff"
            self.driver.init_layer(diff, base_hex)
            recorder = SplitRecorder()
            size = archive.apply_layer(
                reader,  # type: ignore[arg-type]
                diff,
                whiteouts=self.driver.whiteouts,
                recorder=recorder,
            )
            reader.drain()
            (stage.path / TARSPLIT).write_bytes(recorder.serialize())
        except BaseException:
            stage.close()
            raise
        return StagedLayer(digest() if digest else reader.digest(), size, base, stage)

    def publish(self, staged: StagedLayer, parent: str | None) -> tuple[Layer, bool]:
        """Publish a staged layer on top of ``parent``: (the layer, whether it is new).

        An identical layer already registered is returned instead (``False``); the staging
        copy is then dropped by ``discard``.
        """
        if not self.stages_without_parent and staged.base != parent:
            raise Internal(f"layer {staged.diff_id} was staged on {staged.base}, not {parent}")
        layer = Layer(chain_id_of(parent, staged.diff_id), staged.diff_id, parent, staged.size,
                      now_rfc3339())
        chain_hex = hex_of(layer.chain_id)
        with self._lock:
            if self.exists(layer.chain_id):
                return self.get(layer.chain_id), False
            if parent is not None and not self.exists(parent):
                raise NotFound(f"parent layer was removed: {parent}")
            write_json(staged.stage.path / "layer.json", asdict(layer), fsync=False)
            staged.stage.publish(self.layout.layer_dir(chain_hex))
            self.driver.layer_created(chain_hex)
        return layer, True

    def get(self, chain_id: str) -> Layer:
        try:
            meta = read_json(self._meta(hex_of(chain_id)))
        except (FileNotFoundError, InvalidArgument):
            raise NotFound(f"no such layer: {chain_id}") from None
        return _layer_from(meta)

    def exists(self, chain_id: str) -> bool:
        try:
            return self._meta(hex_of(chain_id)).is_file()
        except InvalidArgument:
            return False

    def list(self) -> builtins.list[Layer]:
        try:
            names = os.listdir(self.layout.layers)
        except FileNotFoundError:
            return []
        layers = []
        for name in sorted(names):
            if _HEX64.match(name):
                try:
                    layers.append(_layer_from(read_json(self._meta(name))))
                except FileNotFoundError:
                    continue
        return layers

    def chain(self, chain_id: str) -> builtins.list[Layer]:
        """The layer and its ancestors, base first."""
        out: builtins.list[Layer] = []
        current: str | None = chain_id
        while current is not None:
            layer = self.get(current)
            out.append(layer)
            current = layer.parent
        out.reverse()
        return out

    def delete(self, chain_id: str) -> None:
        self._prepare()
        chain_hex = hex_of(chain_id)
        with self._lock:
            if not self.exists(chain_id):
                raise NotFound(f"no such layer: {chain_id}")
            users = self._users(chain_id)
            if users:
                raise Conflict(f"layer {chain_id} is in use by {', '.join(users[:3])}")
            with Staging(self.layout.tmp, "del") as stage:
                os.rename(self.layout.layer_dir(chain_hex), stage.path / "layer")
                self.driver.layer_removed(chain_hex)

    def _users(self, chain_id: str) -> builtins.list[str]:
        users = [f"layer {c.chain_id}" for c in self.list() if c.parent == chain_id]
        for rw_id in self.list_rw():
            try:
                if self._rw_parent(rw_id) == chain_id:
                    users.append(f"container {rw_id}")
            except NotFound:
                continue
        return users

    def diff_stream(self, chain_id: str, out: BinaryIO) -> None:
        """The layer's tar: its original bytes when a tar-split was recorded (so the digest is
        the layer's diff_id), else a fresh tar of its content."""
        layer = self.get(chain_id)
        if self._split_path(chain_id).exists():
            self.write_tar(chain_id, out.write)
            return
        parent_hex = hex_of(layer.parent) if layer.parent else None
        self.driver.layer_diff(hex_of(chain_id), parent_hex, out)

    def _split_path(self, chain_id: str) -> Path:
        return self.layout.layer_dir(hex_of(chain_id)) / TARSPLIT

    def tar_size(self, chain_id: str) -> int | None:
        """Size of the layer's original tar, when it can be reproduced (tar-split)."""
        from cargohold.store.tarsplit import TarSplit

        try:
            return int(TarSplit.load(self._split_path(chain_id)).size)
        except FileNotFoundError:
            return None

    def write_tar(self, chain_id: str, sink: Callable[[bytes | memoryview], object]) -> None:
        """Reproduce the layer's original tar into ``sink``, checked against its diff_id."""
        from cargohold.store.tarsplit import TarSplit

        layer = self.get(chain_id)
        try:
            split = TarSplit.load(self._split_path(chain_id))
        except FileNotFoundError:
            raise NotFound(f"layer {chain_id} has no tar-split record") from None
        digest = split.write(self.layout.diff(hex_of(chain_id)), sink)
        if digest != layer.diff_id:
            raise Internal(
                f"layer {layer.diff_id} could not be reproduced: its content changed on disk "
                f"(got {digest})"
            )

    def entries(self, chain_id: str) -> builtins.list[Entry]:
        """The entries of the layer's tar (path, type, size; whiteouts decoded), read from
        its tar-split record without reading file content (store/layer_entries.py)."""
        from cargohold.store import layer_entries
        from cargohold.store.tarsplit import TarSplit

        self.get(chain_id)
        try:
            split = TarSplit.load(self._split_path(chain_id))
        except FileNotFoundError:
            return layer_entries.diff_entries(lambda out: self.diff_stream(chain_id, out))
        return layer_entries.split_entries(split)

    def diff_path(self, chain_id: str) -> Path:
        """The layer's ``diff/`` directory (driver specific content; read only)."""
        self.get(chain_id)
        return self.layout.diff(hex_of(chain_id))

    # read-only views ----------------------------------------------------------------------

    def mount_ro(self, chain_id: str | None) -> Path:
        """A read-only view of the merged content of ``chain_id`` (None: empty)."""
        self._prepare()
        lowers = self._lowers(chain_id)
        stage = Staging(self.layout.tmp, "ro")
        try:
            target = stage.path / "merged"
            target.mkdir()
            path = self.driver.mount_ro(lowers, target)
        except BaseException:
            stage.close()
            raise
        with self._ro_lock:
            self._ro.setdefault(path, []).append(stage)
        return path

    def mount_scratch(self, chain_id: str | None) -> Path:
        """A writable view of ``chain_id`` whose writes are thrown away by :meth:`unmount_ro`:
        the stored layers are never written (overlay: a fresh upper dir; vfs: a copy)."""
        self._prepare()
        lowers = self._lowers(chain_id)
        stage = Staging(self.layout.tmp, "scratch")
        try:
            path = self.driver.mount_scratch(lowers, stage.path)
        except BaseException:
            stage.close()
            raise
        with self._ro_lock:
            self._ro.setdefault(path, []).append(stage)
        return path

    def unmount_ro(self, path: Path) -> None:
        """Undo :meth:`mount_ro` or :meth:`mount_scratch` (the scratch content goes too)."""
        with self._ro_lock:
            stages = self._ro.get(path)
            if not stages:
                return
            stage = stages.pop()
            if not stages:
                del self._ro[path]
        target = stage.path / "merged"
        self.driver.unmount_ro(target)
        if os.path.ismount(target):
            raise Internal(f"could not unmount {target}")
        stage.close()

    # rw layers -----------------------------------------------------------------------------

    def create_rw(self, rw_id: str, parent: str | None) -> None:
        self._prepare()
        rw_dir = self._rw_dir(rw_id)
        lowers = self._lowers(parent)
        with Staging(self.layout.tmp, "rw") as stage:
            self.driver.create_rw(stage.path, lowers)
            meta = {"id": rw_id, "parent": parent, "created": now_rfc3339()}
            write_json(stage.path / "rw.json", meta, fsync=False)
            with self._lock:
                if rw_dir.exists():
                    raise Conflict(f"rw layer already exists: {rw_id}")
                if parent is not None and not self.exists(parent):
                    raise NotFound(f"no such layer: {parent}")
                stage.publish(rw_dir)

    def list_rw(self) -> builtins.list[str]:
        try:
            return sorted(n for n in os.listdir(self.layout.rw_root) if _RW_ID.match(n))
        except FileNotFoundError:
            return []

    def rw_parent(self, rw_id: str) -> str | None:
        return self._rw_parent(rw_id)

    def mount_rw(self, rw_id: str, volatile: bool = False) -> Path:
        """Mount (idempotent); ``volatile`` for layers discarded after use (see the driver)."""
        lowers = self._lowers(self._rw_parent(rw_id))
        with self._lock:
            return self.driver.mount_rw(self._rw_dir(rw_id), lowers, volatile)

    def unmount_rw(self, rw_id: str) -> None:
        rw_dir = self._rw_dir(rw_id)
        if not rw_dir.exists():
            return
        with self._lock:
            self.driver.unmount_rw(rw_dir)

    def rw_diff(self, rw_id: str, out: BinaryIO) -> None:
        lowers = self._lowers(self._rw_parent(rw_id))
        self.driver.rw_diff(self._rw_dir(rw_id), lowers, out)

    def rw_changes(self, rw_id: str) -> builtins.list[tuple[str, str]]:
        lowers = self._lowers(self._rw_parent(rw_id))
        return self.driver.rw_changes(self._rw_dir(rw_id), lowers)

    def rw_unchanged(self, rw_id: str) -> bool:
        lowers = self._lowers(self._rw_parent(rw_id))
        return self.driver.rw_unchanged(self._rw_dir(rw_id), lowers)

    def rw_prune_dirs(self, rw_id: str, dirs: dict[str, tuple[int, int, int, int]]) -> None:
        """See :meth:`StorageDriver.rw_prune_dirs` (the rw layer must be unmounted)."""
        self.driver.rw_prune_dirs(self._rw_dir(rw_id), dirs)

    def rw_size(self, rw_id: str) -> int:
        lowers = self._lowers(self._rw_parent(rw_id))
        return self.driver.rw_size(self._rw_dir(rw_id), lowers)

    def remove_rw(self, rw_id: str) -> None:
        self._prepare()
        rw_dir = self._rw_dir(rw_id)
        with self._lock:
            if not rw_dir.exists():
                return
            self.driver.unmount_rw(rw_dir)
            if os.path.ismount(rw_dir / "merged"):
                raise Internal(f"could not unmount {rw_dir / 'merged'}")
            with Staging(self.layout.tmp, "del") as stage:
                os.rename(rw_dir, stage.path / "rw")


def _layer_from(meta: dict[str, Any]) -> Layer:
    return Layer(
        chain_id=meta["chain_id"],
        diff_id=meta["diff_id"],
        parent=meta.get("parent"),
        size=int(meta.get("size", 0)),
        created=meta.get("created", ""),
    )


def lowers_of(layers: Sequence[Layer]) -> list[str]:
    """Chain hexes of ``layers`` (base first) in mount order (top first)."""
    return [hex_of(layer.chain_id) for layer in reversed(layers)]
