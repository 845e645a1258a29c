"""Image configs and manifests as plain data (dicts in, dicts out), Docker-compatible.

JSON encoding (``encode_json``) is compact, UTF-8, and keeps dict insertion order.  The
builders here construct dicts in one fixed order (the OCI image-spec struct order, Docker's
``container.Config`` order for the inner config), so identical input always gives identical
bytes and therefore an identical digest.  Map-typed fields (Labels, ExposedPorts, Volumes)
are written with sorted keys, as Go's encoder writes maps.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from cargohold.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from cargohold.oci.schema import DescriptorSchema, ShapeSchema

# ------------------------------------------------------------------------ media types

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_ND_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER_GZIP = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

# Bumped when oci/schema.py checks image configs more strictly: an image record keeps the
# version its config was checked against, and ``create`` checks older ones again.
CONFIG_SCHEMA_VERSION = 1

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
SCHEMA1_TYPES = (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED)

_COMPRESSION = {
    OCI_LAYER: "none",
    OCI_LAYER_GZIP: "gzip",
    OCI_LAYER_ZSTD: "zstd",
    OCI_LAYER_ND_GZIP: "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "none",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
    DOCKER_LAYER_GZIP: "gzip",
    DOCKER_FOREIGN_LAYER_GZIP: "gzip",
    "application/vnd.docker.image.rootfs.diff.tar": "none",
}


def layer_compression(media_type: str) -> str | None:
    """"gzip", "zstd" or "none" for a layer media type; None when it is not a layer type."""
    return _COMPRESSION.get(media_type)


def layer_media_type(compression: str, oci: bool) -> str:
    """The layer media type to write for ``compression`` (gzip | zstd | none)."""
    if oci:
        return {"gzip": OCI_LAYER_GZIP, "zstd": OCI_LAYER_ZSTD, "none": OCI_LAYER}[compression]
    if compression == "gzip":
        return DOCKER_LAYER_GZIP
    if compression == "none":
        return "application/vnd.docker.image.rootfs.diff.tar"
    raise InvalidArgument(f"compression {compression} needs the OCI manifest format")


# ------------------------------------------------------------------------ encoding, time


def encode_json(obj: Any) -> bytes:
    """Canonical bytes for configs and manifests: compact, UTF-8, insertion order kept."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def rfc3339_nano(ns: int | None = None) -> str:
    """Go's ``time.RFC3339Nano`` in UTC (trailing zeros of the fraction trimmed)."""
    import time

    if ns is None:
        ns = time.time_ns()
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    return base + (f".{frac:09d}".rstrip("0") if frac else "") + "Z"


GO_ZERO_TIME = "0001-01-01T00:00:00Z"

# ------------------------------------------------------------------------ platform

_GOARCH = {
    "x86_64": ("amd64", None),
    "amd64": ("amd64", None),
    "aarch64": ("arm64", None),
    "arm64": ("arm64", None),
    "armv7l": ("arm", "v7"),
    "armv6l": ("arm", "v6"),
    "i386": ("386", None),
    "i686": ("386", None),
    "ppc64le": ("ppc64le", None),
    "s390x": ("s390x", None),
    "riscv64": ("riscv64", None),
}


class Platform(msgspec.Struct, frozen=True):
    """An OS/architecture/variant triple with Go names."""

    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        return "/".join(x for x in (self.os, self.architecture, self.variant) if x)


def host_platform() -> Platform:
    """This machine's platform with Go's names (x86_64 -> amd64, aarch64 -> arm64)."""
    import platform

    machine = platform.machine().lower()
    arch, variant = _GOARCH.get(machine, (machine, None))
    return Platform("linux", arch, variant)


# ------------------------------------------------------------------------ image config

# Docker's container.Config field order; the ones Docker always prints (no omitempty)
_CONTAINER_CONFIG_FIELDS = (
    "Hostname", "Domainname", "User", "AttachStdin", "AttachStdout", "AttachStderr",
    "ExposedPorts", "Tty", "OpenStdin", "StdinOnce", "Env", "Cmd", "Healthcheck",
    "ArgsEscaped", "Image", "Volumes", "WorkingDir", "Entrypoint", "NetworkDisabled",
    "MacAddress", "OnBuild", "Labels", "StopSignal", "StopTimeout", "Shell",
)
_OMITEMPTY = {"ExposedPorts", "Healthcheck", "ArgsEscaped", "NetworkDisabled", "MacAddress",
              "StopSignal", "StopTimeout", "Shell"}
_NULL_WHEN_EMPTY = {"Env", "Cmd", "Volumes", "Entrypoint", "OnBuild", "Labels"}  # nil -> null
_FALSE_FIELDS = {"AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin",
                 "StdinOnce"}
# the image's own config, in OCI image-spec order then Docker's extensions
_IMAGE_CONFIG_FIELDS = (
    "User", "ExposedPorts", "Env", "Entrypoint", "Cmd", "Volumes", "WorkingDir", "Labels",
    "StopSignal", "ArgsEscaped", "Healthcheck", "OnBuild", "Shell", "Image",
)
_MAP_FIELDS = ("ExposedPorts", "Volumes", "Labels")


def _sorted_map(value: Mapping[str, Any]) -> dict[str, Any]:
    return {k: value[k] for k in sorted(value)}


def image_config_section(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """The image's ``config`` object: known fields in a fixed order, empty ones omitted."""
    config = config or {}
    out: dict[str, Any] = {}
    for name in _IMAGE_CONFIG_FIELDS:
        value = config.get(name)
        if value in (None, "", [], {}, False):
            continue
        out[name] = _sorted_map(value) if name in _MAP_FIELDS else value
    return out


def new_config(
    *,
    config: Mapping[str, Any] | None = None,
    diff_ids: Sequence[str] = (),
    history: Sequence[Mapping[str, Any]] = (),
    created: str | None = None,
    author: str = "",
    platform: Platform | None = None,
    comment: str = "",
    container: str = "",
    container_config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A Docker/OCI image config.

    ``config`` holds Docker's field names (Env, Cmd, Entrypoint, WorkingDir, User,
    ExposedPorts, Volumes, Labels, StopSignal, Healthcheck, OnBuild, Shell, ArgsEscaped).
    ``comment`` (``import -m`` / ``commit -m``), ``container`` and ``container_config``
    (``commit``) are Docker's top-level extension fields shown by ``docker inspect``.
    """
    plat = platform or host_platform()
    out: dict[str, Any] = {"created": created or rfc3339_nano()}
    if author:
        out["author"] = author
    out["architecture"] = plat.architecture
    if plat.variant:
        out["variant"] = plat.variant
    out["os"] = plat.os
    out["config"] = image_config_section(config)
    out["rootfs"] = {"type": "layers", "diff_ids": list(diff_ids)}
    out["history"] = [dict(h) for h in history]
    if comment:
        out["comment"] = comment
    if container:
        out["container"] = container
    if container_config is not None:
        out["container_config"] = docker_container_config(container_config)
    return out


def history_entry(
    created_by: str = "",
    *,
    created: str | None = None,
    author: str = "",
    comment: str = "",
    empty_layer: bool = False,
) -> dict[str, Any]:
    """One ``history`` item; empty fields are omitted as Docker does."""
    out: dict[str, Any] = {"created": created or rfc3339_nano()}
    if created_by:
        out["created_by"] = created_by
    if author:
        out["author"] = author
    if comment:
        out["comment"] = comment
    if empty_layer:
        out["empty_layer"] = True
    return out


def docker_container_config(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Docker's ``container.Config`` as ``docker inspect`` prints it (null for nil)."""
    config = config or {}
    out: dict[str, Any] = {}
    for name in _CONTAINER_CONFIG_FIELDS:
        value = config.get(name)
        if name in _OMITEMPTY:
            if value not in (None, "", [], {}, False, 0):
                out[name] = _sorted_map(value) if name in _MAP_FIELDS else value
        elif name in _FALSE_FIELDS:
            out[name] = bool(value)
        elif name in _NULL_WHEN_EMPTY:
            if name in _MAP_FIELDS and isinstance(value, Mapping):
                value = _sorted_map(value)
            out[name] = value
        else:
            out[name] = value if value is not None else ""
    return out


def docker_inspect_image(
    *,
    image_id: str,
    config: Mapping[str, Any],
    size: int,
    repo_tags: Sequence[str] = (),
    repo_digests: Sequence[str] = (),
    parent: str = "",
    graph_driver: str = "overlay2",
    graph_driver_data: Mapping[str, str] | None = None,
    last_tag_time: str | None = None,
) -> dict[str, Any]:
    """``docker image inspect`` output (Docker 20.10 shape) for one image.

    ``config`` is the image's config JSON; ``repo_tags``/``repo_digests`` may be given in any
    reference form and are shown in Docker's familiar form.
    """
    from cargohold.oci.reference import parse_reference

    rootfs = config.get("rootfs") or {}
    out: dict[str, Any] = {
        "Id": image_id,
        "RepoTags": [parse_reference(t).familiar() for t in repo_tags],
        "RepoDigests": [parse_reference(d).familiar() for d in repo_digests],
        "Parent": parent,
        "Comment": config.get("comment", _last_history_comment(config)),
        "Created": config.get("created") or GO_ZERO_TIME,
        "Container": config.get("container", ""),
        "ContainerConfig": docker_container_config(config.get("container_config")),
        "DockerVersion": config.get("docker_version", ""),
        "Author": config.get("author", ""),
        "Config": docker_container_config(config.get("config")),
        "Architecture": config.get("architecture", ""),
    }
    if config.get("variant"):
        out["Variant"] = config["variant"]
    out["Os"] = config.get("os", "")
    if config.get("os.version"):
        out["OsVersion"] = config["os.version"]
    out["Size"] = size
    out["VirtualSize"] = size
    out["GraphDriver"] = {"Data": dict(graph_driver_data) if graph_driver_data else None,
                          "Name": graph_driver}
    out["RootFS"] = {"Type": rootfs.get("type", "layers"),
                     "Layers": list(rootfs.get("diff_ids") or [])}
    out["Metadata"] = {"LastTagTime": last_tag_time or GO_ZERO_TIME}
    return out


def apply_changes(config: Mapping[str, Any], changes: Sequence[str]) -> dict[str, Any]:
    """``commit -c`` / ``import -c``: apply Dockerfile-style lines to a container config.

    See ``cargohold.oci.image_changes`` (CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL,
    ONBUILD, USER, VOLUME, WORKDIR, as Docker allows).
    """
    from cargohold.oci.image_changes import apply_changes as _apply

    return _apply(config, changes)


def _last_history_comment(config: Mapping[str, Any]) -> str:
    """Images without Docker's top-level comment (OCI tools) show their last history one."""
    history = config.get("history") or []
    last = history[-1] if history and isinstance(history[-1], Mapping) else {}
    return str(last.get("comment", ""))


# ------------------------------------------------------------------------ manifests


class Descriptor(msgspec.Struct, frozen=True):
    """An OCI content descriptor."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    urls: tuple[str, ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()


class Manifest(msgspec.Struct, frozen=True):
    """An image manifest (OCI or Docker schema 2)."""

    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: tuple[tuple[str, str], ...] = ()


class Index(msgspec.Struct, frozen=True):
    """An OCI index or Docker manifest list."""

    media_type: str
    manifests: tuple[Descriptor, ...]


def _descriptor_dict(media_type: str, digest: str, size: int, oci: bool) -> dict[str, Any]:
    if oci:  # OCI descriptor order; docker/distribution writes size before digest
        return {"mediaType": media_type, "digest": digest, "size": size}
    return {"mediaType": media_type, "size": size, "digest": digest}


def build_manifest(
    config_digest: str,
    config_size: int,
    layers: Sequence[tuple[str, int, str]],
    oci: bool = True,
) -> dict[str, Any]:
    """An image manifest; ``layers`` are (digest, size, media type) in order."""
    return {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST if oci else DOCKER_MANIFEST,
        "config": _descriptor_dict(OCI_CONFIG if oci else DOCKER_CONFIG, config_digest,
                                   config_size, oci),
        "layers": [_descriptor_dict(mt, d, s, oci) for d, s, mt in layers],
    }


def build_index(manifests: Sequence[tuple[str, int, str, Platform | None]]) -> dict[str, Any]:
    """An OCI index; ``manifests`` are (digest, size, media type, platform)."""
    entries = []
    for digest, size, media_type, plat in manifests:
        entry = _descriptor_dict(media_type, digest, size, True)
        if plat is not None:
            entry["platform"] = {"architecture": plat.architecture, "os": plat.os}
            if plat.variant:
                entry["platform"]["variant"] = plat.variant
        entries.append(entry)
    return {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}


_SCHEMA1_MESSAGE = (
    "Docker Image manifest version 2, schema 1 is not supported: ask the image's author "
    "to push it again in the OCI or Docker schema 2 format"
)


def _shape(data: bytes | str, what: str) -> ShapeSchema:
    from cargohold.oci.schema import ShapeSchema, decode

    return decode(data, ShapeSchema, what)


def _media_type_of(shape: ShapeSchema) -> str:
    mt = shape.mediaType
    if isinstance(mt, str) and mt:
        return mt
    if shape.schemaVersion == 1 or shape.fsLayers is not None:
        return DOCKER_SCHEMA1
    if shape.manifests is not None:
        return OCI_INDEX
    return OCI_MANIFEST


def sniff_media_type(data: bytes | str) -> str:
    """The media type of a manifest or index, from its ``mediaType`` or its shape."""
    return _media_type_of(_shape(data, "manifest"))


def _pairs(annotations: Mapping[str, str] | None) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((annotations or {}).items()))


def _descriptor(d: DescriptorSchema) -> Descriptor:
    plat = None
    if d.platform is not None and d.platform.os:
        p = d.platform
        plat = Platform(p.os, p.architecture, p.variant or None)
    return Descriptor(d.mediaType, d.digest, d.size, plat, tuple(d.urls or ()),
                      _pairs(d.annotations))


def parse_manifest(data: bytes | str) -> Manifest:
    """Parse and validate an image manifest (OCI or Docker schema 2); schema 1 is refused."""
    from cargohold.oci.schema import ManifestSchema, decode

    shape = _shape(data, "manifest")
    mt = _media_type_of(shape)
    if mt in SCHEMA1_TYPES or shape.schemaVersion == 1:
        raise InvalidArgument(_SCHEMA1_MESSAGE)
    if mt in INDEX_TYPES:
        raise InvalidArgument(f"invalid manifest: {mt} is an index, not an image manifest")
    if shape.schemaVersion != 2:
        raise InvalidArgument(f"invalid manifest: unsupported schemaVersion "
                              f"{shape.schemaVersion!r}")
    if mt not in MANIFEST_TYPES:
        raise InvalidArgument(f"invalid manifest: unsupported media type {mt}")
    m = decode(data, ManifestSchema, "manifest")
    return Manifest(
        media_type=mt,
        config=_descriptor(m.config),
        layers=tuple(_descriptor(layer) for layer in m.layers),
        annotations=_pairs(m.annotations),
    )


def parse_index(data: bytes | str, what: str = "index") -> Index:
    """Parse an OCI index or a Docker manifest list (errors say "invalid <what>: ...")."""
    from cargohold.oci.schema import IndexSchema, decode

    shape = _shape(data, what)
    mt = _media_type_of(shape)
    if mt not in INDEX_TYPES:
        raise InvalidArgument(f"invalid {what}: unsupported media type {mt}")
    if shape.schemaVersion != 2:
        raise InvalidArgument(f"invalid {what}: unsupported schemaVersion "
                              f"{shape.schemaVersion!r}")
    index = decode(data, IndexSchema, what)
    return Index(mt, tuple(_descriptor(m) for m in index.manifests))


_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7"}


def select_platform(
    index: Index, os: str = "linux", arch: str | None = None, variant: str | None = None
) -> Descriptor:
    """The manifest for a platform (default: this host), as ``docker pull`` picks it.

    An exact variant match wins; otherwise an entry without a variant, or with the
    architecture's default variant (arm64 -> v8), is taken.
    """
    if arch is None:
        host = host_platform()
        arch, variant = host.architecture, variant or host.variant
    want = variant or _DEFAULT_VARIANT.get(arch)
    fallback: Descriptor | None = None
    for d in index.manifests:
        p = d.platform
        if p is None or p.os != os or p.architecture != arch:
            continue
        have = p.variant or _DEFAULT_VARIANT.get(arch)
        if have == want:
            return d
        if fallback is None and (variant is None or p.variant is None):
            fallback = d
    if fallback is not None:
        return fallback
    name = "/".join(x for x in (os, arch, variant) if x)
    raise NotFound(f"no matching manifest for {name} in the manifest list entries")


def parse_platform(value: str | None) -> Platform | None:
    if not value:
        return None
    parts = value.lower().split("/")
    if len(parts) == 1:  # "arm64" alone: linux/arm64
        parts = ["linux", parts[0]]
    if len(parts) > 3 or not all(parts):
        raise InvalidArgument(f'"{value}": unknown operating system or architecture: '
                              "invalid argument")
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(parts[1], parts[1])
    return Platform(parts[0], arch, parts[2] if len(parts) == 3 else None)
