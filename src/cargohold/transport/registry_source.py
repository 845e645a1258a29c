"""A registry as an ImageSource: what ``pull`` copies into the local store.

``images()`` resolves the reference (tag or digest; an index picks the platform), fetches and
checks the config, then downloads every missing layer blob in parallel into unnamed temporary
files, each verified against its digest and size while it streams.  ``open_blob`` hands a
layer to the destination only once *every* download of the image has succeeded, so a network
failure registers nothing.  Mirrors are tried in order before the registry itself.
"""

from __future__ import annotations

import io
import json
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

from cargohold.errors import CargoholdError, InvalidArgument
from cargohold.oci import image as oci_image
from cargohold.oci.digest import chain_id, is_digest
from cargohold.oci.reference import Reference
from cargohold.transport.base import LayerRef, SourceImage
from cargohold.transport.registry.client import RegistryClient
from cargohold.transport.registry.events import Event, ProgressFn, no_progress, short

_LAYER_TYPES = frozenset((oci_image.OCI_LAYER, oci_image.OCI_LAYER_GZIP, oci_image.OCI_LAYER_ZSTD,
                          oci_image.OCI_LAYER_ND_GZIP, oci_image.DOCKER_LAYER_GZIP,
                          oci_image.DOCKER_FOREIGN_LAYER_GZIP,
                          "application/vnd.docker.image.rootfs.diff.tar"))


class _Cancelled(Exception):
    pass


PresentFn = Callable[[str, str], bool]  # (chain id, diff_id) -> the layer is stored locally


def _nothing_present(chain: str, diff_id: str) -> bool:
    return False


class RegistrySource:
    """One reference of one registry, tried through ``clients`` (mirrors first)."""

    def __init__(self, clients: list[RegistryClient], ref: Reference, tmp_dir: Path,
                 platform: oci_image.Platform | None = None, present: PresentFn | None = None,
                 progress: ProgressFn = no_progress, parallel: int = 3) -> None:
        if not clients:
            raise InvalidArgument("no registry endpoint")
        self.clients = clients
        self.client = clients[-1]
        self.ref = ref
        self.tmp_dir = tmp_dir
        self.platform = platform
        self.present = present or _nothing_present
        self.progress = progress
        self.parallel = max(1, parallel)
        self.repo_digest: str | None = None  # digest the reference resolved to (index or manifest)
        self._pool: ThreadPoolExecutor | None = None
        self._downloads: dict[str, Future[BinaryIO]] = {}
        self._cancel = threading.Event()
        self._checked = False
        self.pulled_layers: tuple[LayerRef, ...] = ()

    # ---- resolving -----------------------------------------------------------------------
    @property
    def display(self) -> str:
        return self.ref.familiar() if self.ref.domain == "docker.io" else str(self.ref)

    def _manifest(self) -> tuple[RegistryClient, bytes, str, str]:
        reference = self.ref.digest or self.ref.tag or "latest"
        name = self.ref.name_familiar
        error: CargoholdError | None = None
        for client in self.clients:
            try:
                data, media, digest = client.get_manifest(self.ref.path, reference,
                                                          self.display, name)
                return client, data, media, digest
            except CargoholdError as e:
                if not client.endpoint.mirror:
                    raise
                error = e
        raise error or InvalidArgument("no registry endpoint")

    def images(self) -> list[SourceImage]:
        client, data, media, digest = self._manifest()
        self.client = client
        self.repo_digest = digest
        if media in oci_image.INDEX_TYPES:
            p = self.platform
            chosen = (oci_image.select_platform(oci_image.parse_index(data), p.os,
                                                p.architecture, p.variant)
                      if p else oci_image.select_platform(oci_image.parse_index(data)))
            data, media, digest = client.get_manifest(self.ref.path, chosen.digest,
                                                      self.display, self.ref.name_familiar)
        manifest = oci_image.parse_manifest(data)
        config = client.get_blob_bytes(self.ref.path, manifest.config.digest,
                                       manifest.config.size)
        diff_ids = _diff_ids(config)
        if len(diff_ids) != len(manifest.layers):
            raise InvalidArgument(f"{self.display}: the manifest has {len(manifest.layers)} "
                                  f"layers but the config lists {len(diff_ids)} diff_ids")
        layers = []
        for desc, diff_id in zip(manifest.layers, diff_ids, strict=True):
            if desc.media_type not in _LAYER_TYPES:
                raise InvalidArgument(f"{self.display}: layer {desc.digest} has the unsupported "
                                      f"media type {desc.media_type}")
            layers.append(LayerRef(desc.digest, diff_id, desc.media_type, desc.size))
        names = (str(self.ref),) if self.ref.tag else ()
        self.pulled_layers = tuple(layers)
        image = SourceImage(config, manifest.config.digest, tuple(layers), names, digest)
        self._start(image)
        return [image]

    # ---- downloads -----------------------------------------------------------------------
    def missing(self, image: SourceImage) -> list[LayerRef]:
        out, parent = [], None
        for layer in image.layers:
            parent = chain_id(parent, layer.diff_id)
            if not self.present(parent, layer.diff_id):
                out.append(layer)
        return out

    def _start(self, image: SourceImage) -> None:
        todo = self.missing(image)
        wanted = {ly.digest for ly in todo}
        for layer in image.layers:
            if layer.digest not in wanted:
                self.progress(Event(short(layer.digest), "Already exists"))
        if not todo:
            return
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.parallel, thread_name_prefix="pull")
        for layer in todo:
            if layer.digest in self._downloads:
                continue
            self.progress(Event(short(layer.digest), "Pulling fs layer"))
            self._downloads[layer.digest] = self._pool.submit(self._download, layer)

    def _download(self, layer: LayerRef) -> BinaryIO:
        sid = short(layer.digest)
        total = layer.size or 0

        def report(n: int) -> None:
            if self._cancel.is_set():
                raise _Cancelled()
            self.progress(Event(sid, "Downloading", n, total))

        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        f = tempfile.TemporaryFile(dir=self.tmp_dir)  # noqa: SIM115 - unnamed, returned
        try:
            self.client.fetch_blob(self.ref.path, layer.digest, layer.size, f, report)  # type: ignore[arg-type]
        except BaseException:
            f.close()
            raise
        self.progress(Event(sid, "Verifying Checksum"))
        self.progress(Event(sid, "Download complete"))
        f.seek(0)
        return f  # type: ignore[return-value]

    def wait(self) -> None:
        """Block until every download is done; on the first failure cancel the rest."""
        if self._checked:
            return
        first: BaseException | None = None
        for future in self._downloads.values():
            try:
                future.result()
            except BaseException as e:  # re-raised below
                if first is None:
                    first = e
                    self._cancel.set()
        if first is not None:
            self.close()
            if isinstance(first, _Cancelled):
                raise InvalidArgument("pull cancelled")
            raise first
        self._checked = True

    def open_blob(self, layer: LayerRef) -> BinaryIO:
        self.wait()
        future = self._downloads.get(layer.digest)
        if future is None:  # gone locally since images() looked (an rmi in between)
            raise InvalidArgument(f"blob {layer.digest} was not downloaded: the local layer "
                                  "disappeared during the pull; pull again")
        f = future.result()
        f.seek(0)
        return _Extracting(f, short(layer.digest), layer.size or 0, self.progress)  # type: ignore[return-value]

    def close(self) -> None:
        self._cancel.set()
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        for future in self._downloads.values():
            if future.done() and not future.cancelled() and future.exception() is None:
                future.result().close()
        self._downloads.clear()


class _Extracting(io.RawIOBase):
    """The downloaded blob as the destination reads it, reporting extraction progress."""

    def __init__(self, f: BinaryIO, sid: str, total: int, progress: ProgressFn) -> None:
        super().__init__()
        self.f, self.sid, self.total, self.progress = f, sid, total, progress
        self.count = 0
        self.step = max(1 << 20, total // 50)
        self.next = 0
        self.eof = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        n = self.f.readinto(b)  # type: ignore[attr-defined]
        if n:
            self.count += n
            if self.count >= self.next:
                self.next = self.count + self.step
                self.progress(Event(self.sid, "Extracting", self.count, self.total))
        elif n == 0:
            self.eof = True
        return int(n or 0)

    def close(self) -> None:
        if not self.closed and self.count:  # a failure raises past this line
            self.progress(Event(self.sid, "Pull complete"))
        super().close()


def _diff_ids(config: bytes) -> list[str]:
    try:
        diff_ids = json.loads(config)["rootfs"]["diff_ids"] or []
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument("invalid image config: no rootfs.diff_ids") from None
    for d in diff_ids:
        if not isinstance(d, str) or not is_digest(d):
            raise InvalidArgument(f"invalid image config: bad diff_id {d!r}")
    return list(diff_ids)
