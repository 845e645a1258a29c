"""Requests of the image calls, shaped as the Engine API receives them, and their checks.

Field names are Docker's (query parameters of ``POST /images/create``, ``/images/{name}/push``,
``/build``, ``/images/load``, ``GET /images/get``; ``X-Registry-Auth`` as ``AuthConfig``), so
an API handler builds a request with ``msgspec.convert(params, PullRequest)`` and the CLI
maps its flags onto the same fields.  The engine checks every request (``check_*``) with the
words ``cargohold``'s commands always used; fields marked "cargohold" have no Docker key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from cargohold.errors import InvalidArgument, NotImplementedFeature

if TYPE_CHECKING:
    from cargohold.builder.executor import BuildOptions
    from cargohold.transport.registry.auth import Credentials

PROGRESS_MODES = ("auto", "plain", "tty", "quiet")
BUILD_NETWORKS = ("default", "bridge", "host", "none")


class AuthConfig(msgspec.Struct, frozen=True, omit_defaults=True):
    """Docker's ``AuthConfig`` (the ``X-Registry-Auth`` header, base64url JSON): credentials
    for this one call instead of the ones ``login`` stored."""

    username: str = ""
    password: str = ""
    auth: str = ""  # base64 of "username:password"
    email: str = ""
    server_address: str = msgspec.field(default="", name="serveraddress")
    identity_token: str = msgspec.field(default="", name="identitytoken")
    registry_token: str = msgspec.field(default="", name="registrytoken")

    def credentials(self) -> Credentials:
        import base64
        import binascii

        from cargohold.transport.registry.auth import Credentials

        if self.identity_token or self.registry_token:
            raise NotImplementedFeature("registry authentication with identity or registry "
                                        "tokens is not supported: use a username and password")
        username, password = self.username, self.password
        if self.auth and not (username and password):
            try:
                raw = base64.b64decode(self.auth, validate=True).decode()
            except (binascii.Error, UnicodeDecodeError):
                raise InvalidArgument("invalid registry auth: auth is not base64") from None
            username, sep, password = raw.partition(":")
            if not sep:
                raise InvalidArgument("invalid registry auth: auth is not username:password")
        if not username or not password:
            raise InvalidArgument("invalid registry auth: username and password required")
        return Credentials(username, password)


class PullRequest(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /images/create?fromImage=&tag=&platform=`` (+ ``X-Registry-Auth``).  Docker's
    daemon reads an empty ``tag`` with a name-only ``fromImage`` as every tag: an API handler
    sets ``all_tags`` then (the CLI's ``pull NAME`` means NAME:latest)."""

    from_image: str = msgspec.field(name="fromImage")  # a reference, as the user wrote it
    tag: str = ""  # a tag or digest for from_image (Docker's separate query parameter)
    platform: str = ""  # os[/arch[/variant]] of a multi-platform image
    all_tags: bool = msgspec.field(default=False, name="allTags")  # cargohold: pull -a
    tls_verify: bool | None = msgspec.field(default=None, name="tlsVerify")  # cargohold
    auth: AuthConfig | None = None


class PushRequest(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /images/{name}/push?tag=`` (+ ``X-Registry-Auth``); as for pulls, Docker's
    empty ``tag`` is ``all_tags`` for an API handler."""

    name: str
    tag: str = ""
    all_tags: bool = msgspec.field(default=False, name="allTags")  # cargohold: push -a
    compression_format: str = msgspec.field(default="", name="compressionFormat")  # cargohold
    compression_level: int | None = msgspec.field(default=None, name="compressionLevel")
    tls_verify: bool | None = msgspec.field(default=None, name="tlsVerify")  # cargohold
    auth: AuthConfig | None = None


class ImportRequest(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /images/create?fromSrc=&repo=&tag=&message=&changes=&platform=``: the tarball
    is the call's stream, or ``from_src`` is an http(s) URL the engine downloads.
    ``from_src`` also names the source in the image's history ("Imported from ...")."""

    from_src: str = msgspec.field(default="-", name="fromSrc")
    repo: str = ""  # REPOSITORY[:TAG]
    tag: str = ""
    message: str = ""
    changes: tuple[str, ...] = ()
    platform: str = ""


class LoadRequest(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /images/load?quiet=``: the archive is the call's stream."""

    quiet: bool = False


class SaveRequest(msgspec.Struct, frozen=True, kw_only=True):
    """``GET /images/get?names=``: the archive goes to the call's output."""

    names: tuple[str, ...]


class BuildRequest(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /build`` with Docker's query parameters.  The context is the call's stream (a
    tarball) or ``remote``; ``-f -`` is the call's Dockerfile stream.  Accepted and checked
    but not applied by this builder: ``rm``/``forcerm`` (working containers always go),
    ``cachefrom`` (the cache is local), ``extrahosts`` and the resource limits."""

    tags: tuple[str, ...] = msgspec.field(default=(), name="t")
    dockerfile: str = "Dockerfile"
    # a null value (Docker's "--build-arg NAME" unset in the client's environment): not set
    build_args: dict[str, str | None] = msgspec.field(default_factory=dict, name="buildargs")
    labels: dict[str, str] = msgspec.field(default_factory=dict)
    target: str = ""
    network_mode: str = msgspec.field(default="default", name="networkmode")
    no_cache: bool = msgspec.field(default=False, name="nocache")
    pull: bool = False
    quiet: bool = msgspec.field(default=False, name="q")
    remove: bool = msgspec.field(default=True, name="rm")
    force_remove: bool = msgspec.field(default=False, name="forcerm")
    platform: str = ""
    cache_from: tuple[str, ...] = msgspec.field(default=(), name="cachefrom")
    extra_hosts: tuple[str, ...] = msgspec.field(default=(), name="extrahosts")
    shm_size: int = msgspec.field(default=0, name="shmsize")
    memory: int = 0
    memory_swap: int = msgspec.field(default=0, name="memswap")
    cpu_shares: int = msgspec.field(default=0, name="cpushares")
    cpu_period: int = msgspec.field(default=0, name="cpuperiod")
    cpu_quota: int = msgspec.field(default=0, name="cpuquota")
    cpuset_cpus: str = msgspec.field(default="", name="cpusetcpus")
    # the context when it is not the request body: a directory or tarball on this machine,
    # an http(s) URL (a tarball or a Dockerfile) or a git repository (Docker's ``remote``)
    remote: str = ""
    # cargohold: --allow entitlements, --secret id -> file, --progress, SOURCE_DATE_EPOCH
    allow: tuple[str, ...] = ()
    secrets: dict[str, str] = msgspec.field(default_factory=dict)
    progress: str = "auto"
    source_date_epoch: str = msgspec.field(default="", name="sourceDateEpoch")


def check_build(request: BuildRequest) -> BuildOptions:
    """The executor's options for ``request``, or the error that refuses it."""
    from cargohold.builder import entitlements
    from cargohold.builder.executor import BuildOptions

    _check_build_refs(request)
    if not request.dockerfile:
        raise InvalidArgument("invalid argument: the Dockerfile name is empty")
    for flag, pairs in (("--build-arg", request.build_args), ("--label", request.labels)):
        for key, value in pairs.items():
            if not key:
                raise InvalidArgument(f"invalid {flag}: {f'{key}={value}'!r}")
    if request.network_mode not in BUILD_NETWORKS:
        raise InvalidArgument(f'network mode "{request.network_mode}" not supported by '
                              "buildkit")
    if request.progress not in PROGRESS_MODES:
        raise InvalidArgument(f"invalid progress mode {request.progress!r}: use "
                              f"{', '.join(PROGRESS_MODES)}")
    _check_build_platform(request.platform)
    _check_limits(request)
    for secret_id, src in request.secrets.items():
        if not secret_id or not src:
            raise InvalidArgument(f"invalid secret {secret_id!r}: id and src are required")
    return BuildOptions(
        dockerfile=request.dockerfile,
        tags=request.tags,
        build_args={k: v for k, v in request.build_args.items() if v is not None},
        no_cache=request.no_cache,
        pull=request.pull,
        target=request.target or None,
        labels=dict(request.labels),
        network=request.network_mode,
        secrets=dict(request.secrets),
        allow=entitlements.validate(request.allow),
        source_date_epoch=_epoch(request),
    )


def _check_build_refs(request: BuildRequest) -> None:
    from cargohold.oci.reference import parse_reference

    for tag in request.tags:
        if parse_reference(tag).digest:
            raise InvalidArgument(f"invalid reference format: {tag}")
    for name in request.cache_from:
        parse_reference(name)


def _check_build_platform(value: str) -> None:
    """Only this machine's platform is built (a FROM is pulled for it)."""
    if not value:
        return
    from cargohold.oci.image import host_platform, parse_platform

    wanted = parse_platform(value)
    if wanted is None:
        return
    host = host_platform()
    if (wanted.os, wanted.architecture) != (host.os, host.architecture) or (
            wanted.variant and wanted.variant != host.variant):
        shown = "/".join(p for p in (host.os, host.architecture, host.variant) if p)
        raise InvalidArgument(f'platform "{value}" is not supported: this machine builds '
                              f"{shown} only")


def _check_limits(request: BuildRequest) -> None:
    limits = {"shmsize": request.shm_size, "memory": request.memory,
              "cpushares": request.cpu_shares, "cpuperiod": request.cpu_period,
              "cpuquota": request.cpu_quota}
    for name, value in limits.items():
        if value < 0:
            raise InvalidArgument(f"invalid {name} {value}: must not be negative")
    if request.memory_swap < -1:
        raise InvalidArgument(f"invalid memswap {request.memory_swap}: must be -1 (unlimited) "
                              "or not negative")
    if request.extra_hosts:
        from cargohold.network.hosts import check_add_host

        for spec in request.extra_hosts:
            check_add_host(spec)


def _epoch(request: BuildRequest) -> int | None:
    """SOURCE_DATE_EPOCH: the build arg, else the request's (the CLI passes its env's)."""
    raw = request.build_args.get("SOURCE_DATE_EPOCH") or request.source_date_epoch
    if not raw:
        return None
    try:
        return int(raw)
    except ValueError:
        raise InvalidArgument(f"invalid SOURCE_DATE_EPOCH: {raw!r}") from None
