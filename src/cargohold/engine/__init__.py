"""The engine: the only surface the CLI (and later the API) calls.

``Engine`` wires stores and services from explicit Settings; each is built on first use, so a
command pays only for what it touches (``cargohold images`` never loads the runtime).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from msgspec.structs import replace

from cargohold.config import Settings
from cargohold.errors import NotFound
from cargohold.util.lazy import cached_property
from cargohold.util.statedirs import secure_state_dirs

if TYPE_CHECKING:
    from cargohold.container.model import ContainerRecord
    from cargohold.container.records import ContainerStore
    from cargohold.engine.builds import BuildService
    from cargohold.engine.containers.ops import ContainerOps
    from cargohold.engine.containers.service import ContainerService
    from cargohold.engine.images.registry import RegistryService
    from cargohold.engine.images.service import ImageService
    from cargohold.engine.networks import NetworkService
    from cargohold.engine.reports import DiskUsage
    from cargohold.engine.system.events import EventsRequest, EventStream
    from cargohold.engine.system.service import SystemService
    from cargohold.engine.volumes import VolumeService
    from cargohold.network.store import NetworkStore
    from cargohold.runtime.base import OCIRuntime
    from cargohold.runtime.choice import RuntimeInfo
    from cargohold.store.blobs import BlobStore
    from cargohold.store.drivers.base import StorageDriver
    from cargohold.store.images import ImageStore
    from cargohold.store.layers import LayerStore
    from cargohold.transport.local import LocalStores
    from cargohold.volume.store import VolumeStore


class Engine:
    """``runtime`` and ``driver`` replace the ones the settings name (the fake runtime and the
    vfs driver drive the whole container lifecycle in unit tests); both are otherwise built
    on first use."""

    def __init__(self, settings: Settings, *, runtime: OCIRuntime | None = None,
                 driver: StorageDriver | None = None) -> None:
        if not (settings.root.is_absolute() and settings.runroot.is_absolute()):
            # threads share one working directory, and an overlay mount changes it for a
            # moment (store/drivers/overlay.py): no store path may depend on it
            settings = replace(
                settings, root=settings.root.absolute(), runroot=settings.runroot.absolute()
            )
        self.settings = settings
        # one stat per root when right; creates or repairs them otherwise (util/statedirs.py)
        secure_state_dirs(settings.root, settings.runroot)
        if runtime is not None:
            self.__dict__["runtime"] = runtime
        if driver is not None:
            self.__dict__["driver"] = driver

    @cached_property
    def blobs(self) -> BlobStore:
        from cargohold.store.blobs import BlobStore

        return BlobStore(self.settings.root)

    @cached_property
    def driver(self) -> StorageDriver:
        from cargohold.store.drivers import select_driver

        return select_driver(self.settings.root, self.settings.storage_driver)

    @cached_property
    def layers(self) -> LayerStore:
        from cargohold.store.layers import LayerStore

        return LayerStore(self.settings.root, self.driver)

    @cached_property
    def image_store(self) -> ImageStore:
        from cargohold.store.images import ImageStore

        return ImageStore(self.settings.root, self.blobs)

    @cached_property
    def stores(self) -> LocalStores:
        from cargohold.transport.local import LocalStores

        return LocalStores(self.blobs, self.layers, self.image_store)

    @cached_property
    def container_store(self) -> ContainerStore:
        from cargohold.container.records import ContainerStore

        return ContainerStore(self.settings.root, self.settings.runroot)

    @cached_property
    def runtime(self) -> OCIRuntime:
        """The default runtime (builds, and containers created with it)."""
        from cargohold.runtime.runc import Runc

        return Runc.from_settings(self.settings)

    def runtime_for(self, record: ContainerRecord) -> OCIRuntime:
        """The runtime ``record`` was created with (HostConfig.Runtime), whatever this
        command's default is: a container is always driven by the same binary."""
        name = record.host_config.runtime or "runc"
        if name == (self.settings.runtime or "runc"):
            return self.runtime
        others: dict[str, OCIRuntime] = self.__dict__.setdefault("_other_runtimes", {})
        if name not in others:
            from cargohold.runtime.runc import Runc

            # setdefault: threads racing here all get the first one stored
            others.setdefault(name, Runc.from_settings(self.settings, name))
        return others[name]

    def runtime_info(self) -> RuntimeInfo:
        """The default runtime's name, path and version (runs ``<runtime> --version``)."""
        from cargohold.runtime.choice import describe

        return describe(self.settings.runtime, self.settings.runtimes)

    @cached_property
    def volume_store(self) -> VolumeStore:
        from cargohold.volume.store import VolumeStore

        return VolumeStore(self.settings.root, self.settings.runroot)

    @cached_property
    def network_store(self) -> NetworkStore:
        from cargohold.network.store import NetworkStore

        return NetworkStore.from_settings(self.settings)

    # ---- services (one per area; add yours here) -------------------------------------------
    @cached_property
    def images(self) -> ImageService:
        from cargohold.engine.images.service import ImageService

        return ImageService(self)

    @cached_property
    def builds(self) -> BuildService:
        from cargohold.engine.builds import BuildService

        return BuildService(self)

    @cached_property
    def registry(self) -> RegistryService:
        from cargohold.engine.images.registry import RegistryService

        return RegistryService(self)

    @cached_property
    def containers(self) -> ContainerService:
        from cargohold.engine.containers.service import ContainerService

        return ContainerService(self)

    @cached_property
    def container_ops(self) -> ContainerOps:
        from cargohold.engine.containers.ops import ContainerOps

        return ContainerOps(self)

    @cached_property
    def volumes(self) -> VolumeService:
        from cargohold.engine.volumes import VolumeService

        return VolumeService(self)

    @cached_property
    def networks(self) -> NetworkService:
        from cargohold.engine.networks import NetworkService

        return NetworkService(self)

    @cached_property
    def system(self) -> SystemService:
        from cargohold.engine.system.service import SystemService

        return SystemService(self)

    def events(self, request: EventsRequest, follow: bool = True) -> EventStream:
        """``events`` / ``GET /events``: the shared event log, filtered, replayed for
        ``since``/``until`` and followed (engine/system_events.py)."""
        from cargohold.engine.system.events import open_events

        return open_events(self.settings.runroot, request, follow)

    def containers_using_image(self, image_id: str) -> list[tuple[str, bool]]:
        """(container id, running) for every container created from ``image_id``."""
        if not self.container_store.base.is_dir():
            return []
        return self.containers.using_image(image_id)

    def inspect_object(self, name: str, kind: str | None = None) -> dict[str, Any]:
        """``docker inspect``: the first object of any (or the given) type named ``name``."""
        if kind in (None, "container"):
            try:
                return self.containers.inspect(name)
            except NotFound:
                pass
        if kind in (None, "image"):
            try:
                return self.images.inspect(name)
            except NotFound:
                pass
        if kind in (None, "network"):
            try:
                return self.networks.inspect(name)
            except NotFound:
                pass
        if kind in (None, "volume"):
            try:
                return self.volumes.inspect(name)
            except NotFound:
                pass
        raise NotFound(f"No such object: {name}")

    def disk_usage(self) -> list[DiskUsage]:
        """Rows of ``system df``; kinds without a store yet report zero."""
        return [
            self.images.disk_usage(),
            self.containers.disk_usage(),
            self.volumes.disk_usage(),
            self.builds.disk_usage(),
        ]
