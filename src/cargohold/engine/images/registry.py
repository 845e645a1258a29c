"""Registry service: pull, push, login, logout, and the auto-pull of run/create/FROM.

Every pull or push is one ``copy_images`` between a registry source/destination
(``transport/registry_*.py``) and the local store.  Each call takes its request
(``engine/image_requests.py``) and a sink for its events: Docker's JSON messages
(``engine/messages.py``), in the order the daemon sends them, ending with the result (pull's
``Status: ...``, push's ``aux``) or the error; the CLI renders them, the API streams them.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import msgspec

from cargohold.engine.messages import reporting_errors
from cargohold.errors import CargoholdError, InvalidArgument, NotFound
from cargohold.oci.image import parse_platform as parse_platform  # re-exported
from cargohold.oci.reference import DEFAULT_DOMAIN, Reference, parse_reference
from cargohold.transport.registry.events import Aux, MessageSink, aux, discard, status
from cargohold.util.lazy import cached_property

if TYPE_CHECKING:
    from cargohold.engine import Engine
    from cargohold.engine.images.manifest import ManifestReport
    from cargohold.engine.images.requests import AuthConfig, PullRequest, PushRequest
    from cargohold.engine.settings_file import FileSettings
    from cargohold.oci.image import Platform
    from cargohold.store.images import ImageRecord
    from cargohold.transport.registry.auth import AuthFile, Credentials
    from cargohold.transport.registry.cache import DigestCache
    from cargohold.transport.registry.client import ClientOptions, RegistryClient
    from cargohold.transport.registry.hosts import Endpoint
    from cargohold.transport.registry_source import RegistrySource

PULL_POLICIES = ("missing", "always", "never", "newer")
# Push compression levels when none is asked for (measured: ARCHITECTURE.md, "Registries").
DEFAULT_LEVELS = {"gzip": 2, "zstd": 3}


class PullResult(msgspec.Struct, frozen=True):
    reference: str  # fully qualified: docker.io/library/centos:7 (or repo@digest)
    familiar: str  # centos:7
    image_id: str
    digest: str
    updated: bool  # False: the tag already named this image ("Image is up to date")
    repository: str = ""  # docker.io/library/centos


class PushResult(msgspec.Struct, frozen=True):
    reference: str
    tag: str
    digest: str
    size: int


def _shown(name: str) -> str:
    """``busybox`` -> ``busybox:latest`` as Docker names a missing image."""
    try:
        return parse_reference(name).with_default_tag().familiar()
    except CargoholdError:
        return name


def _updated(updated: bool) -> str:
    return "Downloaded newer image" if updated else "Image is up to date"


def registry_host(server: str | None) -> str:
    """``docker login SERVER`` -> the registry name (Docker Hub's aliases -> docker.io)."""
    if not server:
        return DEFAULT_DOMAIN
    host = server.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    if host in ("index.docker.io", "registry-1.docker.io", "docker.io"):
        return DEFAULT_DOMAIN
    if not host:
        raise InvalidArgument(f"invalid registry {server!r}")
    return host


class RegistryService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.options: ClientOptions | None = None  # tests shorten timeouts here

    @cached_property
    def file_settings(self) -> FileSettings:
        from cargohold.engine import settings_file

        extra = self.engine.settings.extra
        return settings_file.load(settings_file.config_path(extra.get("config_file")))

    @cached_property
    def auth(self) -> AuthFile:
        from pathlib import Path

        from cargohold.transport.registry.auth import AuthFile, default_auth_file

        extra = self.engine.settings.extra
        explicit = extra.get("auth_file") or os.environ.get("REGISTRY_AUTH_FILE")
        return AuthFile(Path(explicit) if explicit else default_auth_file())

    @cached_property
    def cache(self) -> DigestCache:
        from cargohold.transport.registry.cache import DigestCache

        return DigestCache(self.engine.settings.root / "registry" / "blobinfo.json")

    def _client(self, registry: str, endpoint: Endpoint,
                auth: AuthConfig | None = None) -> RegistryClient:
        """A client for ``endpoint``: with the call's own credentials (``auth``) for the
        registry itself, else the stored ones (a mirror always gets its stored ones)."""
        from cargohold.transport.registry.client import ClientOptions, RegistryClient

        creds: Credentials | None
        if auth is not None and not endpoint.mirror:
            creds = auth.credentials()
        else:
            creds = self.auth.get(registry if not endpoint.mirror else endpoint.host)
        return RegistryClient(registry, endpoint, creds, self.options or ClientOptions())

    # ---- pull ----------------------------------------------------------------------------
    def pull(self, request: PullRequest, events: MessageSink = discard) -> list[PullResult]:
        """``docker pull`` (``POST /images/create?fromImage=``): per image Docker's messages
        (``latest: Pulling from x``, the layers, ``Digest: ...``), then ``Status: ...``."""
        with reporting_errors(events):
            return self._pull(request, events)

    def _pull(self, request: PullRequest, events: MessageSink) -> list[PullResult]:
        plat = parse_platform(request.platform)
        if request.auth is not None:
            request.auth.credentials()  # a bad header fails before any request
        refs = self._pull_refs(request)
        results = [self._pull_one(r, plat, events, request) for r in refs]
        if request.all_tags:
            name = parse_reference(request.from_image.removesuffix(":")).name_familiar
            events(status(f"Status: {_updated(any(r.updated for r in results))} for {name}"))
        else:
            for r in results:
                events(status(f"Status: {_updated(r.updated)} for {r.familiar}"))
        return results

    def _pull_refs(self, request: PullRequest) -> list[Reference]:
        # older clients send "pull -a"'s name with a trailing ":" (moby strips it too)
        ref = parse_reference(request.from_image.removesuffix(":"))
        if request.tag:
            name = parse_reference(ref.repository)
            ref = (parse_reference(f"{ref.repository}@{request.tag}") if ":" in request.tag
                   else name.with_tag(request.tag))
        if not request.all_tags:
            return [ref.with_default_tag()]
        if not ref.is_name_only():
            raise InvalidArgument("tag can't be used with --all-tags/-a")
        return [ref.with_tag(t) for t in sorted(self._tags(ref, request))]

    def _tags(self, ref: Reference, request: PullRequest) -> list[str]:
        endpoint = self.file_settings.registries.endpoint(ref.domain, request.tls_verify)
        client = self._client(ref.domain, endpoint, request.auth)
        try:
            return client.list_tags(ref.path, ref.name_familiar)
        finally:
            client.close()

    def _pull_one(self, ref: Reference, platform: Platform | None, progress: MessageSink,
                  request: PullRequest) -> PullResult:
        from cargohold.transport.copy import copy_images
        from cargohold.transport.local import LocalDestination
        from cargohold.transport.registry_source import RegistrySource

        stores = self.engine.stores
        before = stores.images.by_tag(str(ref)) if ref.tag else None
        progress(status(f"Pulling from {ref.path}", ref.tag or ref.digest or ""))
        endpoints = self.file_settings.registries.endpoints(ref.domain, True, request.tls_verify)
        clients = [self._client(ref.domain, ep, request.auth) for ep in endpoints]

        def present(chain: str, diff_id: str) -> bool:
            return stores.layers.exists(chain)

        source = RegistrySource(clients, ref, self.engine.settings.root / "tmp", platform,
                                present, progress,
                                parallel=(self.options.parallel if self.options else 3))
        try:
            copied = copy_images(source, LocalDestination(stores))
        finally:
            source.close()
            for c in clients:
                c.close()
        image_id = copied[0].image_id
        digest = source.repo_digest or ""
        if digest:
            stores.images.add_repo_digest(image_id, f"{ref.repository}@{digest}")
            progress(status(f"Digest: {digest}"))
        self._remember_blobs(ref, image_id, source)
        updated = before is None or before.id != image_id
        self.engine.images.emit(ref.familiar(), ref.name_familiar, "pull", image_id)
        return PullResult(str(ref), ref.familiar(), image_id, digest, updated, ref.repository)

    def _remember_blobs(self, ref: Reference, image_id: str, source: RegistrySource) -> None:
        """Record the registry's blob for each layer this pull downloaded and verified (a
        later push finds or mounts it).  A layer that was already present is skipped: the
        manifest's blob digest for it was never checked, and a push must not stand on it."""
        for layer in source.verified_layers:
            self.cache.record(layer.diff_id, layer.digest, layer.size or 0, layer.media_type, "",
                              f"{ref.domain}/{ref.path}")

    def ensure(self, name: str, policy: str = "missing",
               events: MessageSink = discard) -> ImageRecord:
        """The image ``run``/``create``/``FROM`` use, pulled per ``--pull`` policy; the pull
        reports to the calling command's own ``events`` (Docker's lines: "Unable to find
        image 'x:latest' locally", the pull, its "Status: ..." line)."""
        if policy not in PULL_POLICIES:
            raise InvalidArgument(f"invalid pull option: '{policy}': must be one of "
                                  '"always", "missing" or "never"')
        images = self.engine.images
        if policy in ("missing", "never"):
            try:
                return images.resolve(name)
            except NotFound:
                shown = _shown(name)
                if policy == "never":
                    raise NotFound(f"No such image: {shown}") from None
                events(status(f"Unable to find image '{shown}' locally"))
        from cargohold.engine.images.requests import PullRequest

        results = self._pull(PullRequest(from_image=name), events)  # its caller reports errors
        return images.resolve(results[0].image_id)

    # ---- push ----------------------------------------------------------------------------
    def push(self, request: PushRequest, events: MessageSink = discard) -> list[PushResult]:
        """``docker push`` (``POST /images/{name}/push``): ``The push refers to ...``, per
        layer ``Preparing``/``Pushing``/``Pushed``/``Layer already exists``/``Mounted from``,
        per tag ``TAG: digest: ... size: N`` and its ``aux`` (Tag, Digest, Size)."""
        with reporting_errors(events):
            return self._push(request, events)

    def _push(self, request: PushRequest, progress: MessageSink) -> list[PushResult]:
        from cargohold.transport.copy import copy_images
        from cargohold.transport.local import LocalSource
        from cargohold.transport.registry_dest import RegistryDestination

        ref = parse_reference(request.name)
        if request.tag:
            ref = parse_reference(ref.repository).with_tag(request.tag)
        if ref.digest:
            raise InvalidArgument("cannot push a digest reference")
        store = self.engine.stores.images
        algo, lvl = self._compression(request)
        if request.auth is not None:
            request.auth.credentials()
        targets = self._push_targets(ref, request.all_tags)
        progress(status(f"The push refers to repository [{ref.repository}]"))
        endpoint = self.file_settings.registries.endpoint(ref.domain, request.tls_verify)
        client = self._client(ref.domain, endpoint, request.auth)
        results = []
        try:
            for record, target in targets:
                dest = RegistryDestination(client, target, self.cache, algo, lvl,  # type: ignore[arg-type]
                                           progress, self.options.parallel if self.options else 3)
                source = LocalSource(self.engine.stores, [(record, (str(target),))])
                copy_images(source, dest)
                tag, digest, size = dest.pushed[-1]
                progress(status(f"{tag}: digest: {digest} size: {size}"))
                progress(aux(Aux(tag=tag, digest=digest, size=size), progress=True))
                store.add_repo_digest(record.id, f"{ref.repository}@{digest}")
                self.engine.images.emit(target.familiar(), target.name_familiar, "push", record.id)
                results.append(PushResult(str(target), tag, digest, size))
        finally:
            client.close()
        return results

    def _compression(self, request: PushRequest) -> tuple[str, int]:
        from cargohold.transport.registry_dest import check_level

        settings = self.engine.settings
        algo = request.compression_format or settings.compression
        if algo not in ("gzip", "zstd"):
            raise InvalidArgument(f"unsupported compression format {algo!r}: use gzip or zstd")
        level = request.compression_level
        lvl = level if level is not None else (settings.compression_level
                                               or DEFAULT_LEVELS[algo])
        check_level(algo, lvl)
        return algo, lvl

    def _push_targets(self, ref: Reference, all_tags: bool) -> list[tuple[ImageRecord, Reference]]:
        store = self.engine.stores.images
        if all_tags:
            out = []
            for record in store.list():
                for t in record.repo_tags:
                    tref = parse_reference(t)
                    if tref.repository == ref.repository:
                        out.append((record, tref))
            if not out:
                raise NotFound(f"An image does not exist locally with the tag: {ref.familiar()}")
            return sorted(out, key=lambda rt: rt[1].tag or "")
        target = ref.with_default_tag()
        found = store.by_tag(str(target))
        if found is None:
            raise NotFound(f"An image does not exist locally with the tag: {ref.familiar()}")
        return [(found, target)]

    # ---- manifest inspect ----------------------------------------------------------------
    def inspect_manifest(self, name: str, insecure: bool = False,
                         verbose: bool = False) -> ManifestReport:
        """What the registry serves for ``name`` (engine/manifest_inspect.py); nothing is
        pulled.  ``insecure``: plain HTTP or unverified TLS, as ``--insecure`` allows."""
        from cargohold.engine.images.manifest import inspect_manifest

        ref = parse_reference(name)
        if not ref.digest:
            ref = ref.with_default_tag()
        endpoint = self.file_settings.registries.endpoint(ref.domain, False if insecure else None)
        client = self._client(ref.domain, endpoint)
        try:
            return inspect_manifest(client, ref, verbose)
        finally:
            client.close()

    # ---- login / logout ------------------------------------------------------------------
    def login(self, server: str | None, username: str, password: str,
              tls_verify: bool | None = None) -> str:
        from cargohold.transport.registry.auth import Credentials
        from cargohold.transport.registry.client import ClientOptions, RegistryClient

        if not username or not password:
            raise InvalidArgument("Username and password required")
        host = registry_host(server)
        endpoint = self.file_settings.registries.endpoint(host, tls_verify)
        creds = Credentials(username, password)
        client = RegistryClient(host, endpoint, creds, self.options or ClientOptions())
        try:
            client.check_login()
        finally:
            client.close()
        self.auth.store(host, creds)
        return "Login Succeeded"

    def logout(self, server: str | None) -> str:
        host = registry_host(server)
        shown = "https://index.docker.io/v1/" if host == DEFAULT_DOMAIN else host
        if not self.auth.remove(host):
            return f"Not logged in to {shown}"
        return f"Removing login credentials for {shown}"
