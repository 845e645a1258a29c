"""Schemas of what enters the image store: image configs, manifests, indexes, and the
``manifest.json`` of docker-archives, checked with msgspec's typed decoding.

Every image config, manifest and index is decoded here once when it enters the store (load,
pull, import, build, commit); reading a stored config afterwards stays a plain ``json.loads``.
The types follow the OCI image-spec and Docker's ``container.Config`` / ``HealthConfig``; as
Go's decoder does, a field that is ``null`` counts as absent and unknown fields are ignored,
but a value of the wrong type is refused with a message naming the field::

    invalid image config: config.Env[0]: expected string, got integer
"""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

import msgspec

from cargohold.errors import InvalidArgument

T = TypeVar("T")

_DIGEST_PATTERN = r"^sha256:[a-f0-9]{64}\Z"
_TIME_PATTERN = (
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])[Tt]([01]\d|2[0-3]):[0-5]\d:[0-5]\d"
    r"(\.\d{1,9})?([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)\Z"
)

_PORT_PATTERN = (  # an ExposedPorts key: 0-65535, optionally /tcp, /udp or /sctp
    r"^([0-9]{1,4}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])"
    r"(/([tT][cC][pP]|[uU][dD][pP]|[sS][cC][tT][pP]))?\Z"
)

Digest = Annotated[str, msgspec.Meta(pattern=_DIGEST_PATTERN)]
Time = Annotated[str, msgspec.Meta(pattern=_TIME_PATTERN)]
Port = Annotated[str, msgspec.Meta(pattern=_PORT_PATTERN)]
Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
Duration = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]  # ns; a negative one would spin
Size = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
Strings = list[str] | None
StringMap = dict[str, str] | None
EmptyStructs = dict[str, dict[str, Any] | None] | None  # Go's map[string]struct{}

# ------------------------------------------------------------------------ image config


class HealthSchema(msgspec.Struct):
    """Docker's HealthConfig; durations are int64 nanoseconds."""

    Test: Strings = None
    Interval: Duration | None = None
    Timeout: Duration | None = None
    StartPeriod: Duration | None = None
    StartInterval: Duration | None = None
    Retries: Duration | None = None


class ContainerConfigSchema(msgspec.Struct):
    """The image's ``config`` (OCI ImageConfig) and Docker's ``container_config``."""

    Hostname: str | None = None
    Domainname: str | None = None
    User: str | None = None
    AttachStdin: bool | None = None
    AttachStdout: bool | None = None
    AttachStderr: bool | None = None
    ExposedPorts: dict[Port, dict[str, Any] | None] | None = None
    Tty: bool | None = None
    OpenStdin: bool | None = None
    StdinOnce: bool | None = None
    Env: Strings = None
    Cmd: Strings = None
    Healthcheck: HealthSchema | None = None
    ArgsEscaped: bool | None = None
    Image: str | None = None
    Volumes: EmptyStructs = None
    WorkingDir: str | None = None
    Entrypoint: Strings = None
    NetworkDisabled: bool | None = None
    MacAddress: str | None = None
    OnBuild: Strings = None
    Labels: StringMap = None
    StopSignal: str | None = None
    StopTimeout: Int64 | None = None
    Shell: Strings = None


class RootFSSchema(msgspec.Struct):
    type: str
    diff_ids: list[Digest] | None = None


class HistorySchema(msgspec.Struct):
    created: Time | None = None
    created_by: str | None = None
    author: str | None = None
    comment: str | None = None
    empty_layer: bool | None = None


class ImageConfigSchema(msgspec.Struct):
    """An image config (OCI image-spec ``config.json`` plus Docker's extension fields)."""

    rootfs: RootFSSchema
    created: Time | None = None
    author: str | None = None
    architecture: str | None = None
    os: str | None = None
    os_version: str | None = msgspec.field(default=None, name="os.version")
    os_features: Strings = msgspec.field(default=None, name="os.features")
    variant: str | None = None
    config: ContainerConfigSchema | None = None
    container_config: ContainerConfigSchema | None = None
    history: list[HistorySchema] | None = None
    comment: str | None = None
    container: str | None = None
    docker_version: str | None = None
    parent: str | None = None

    @property
    def diff_ids(self) -> list[str]:
        return list(self.rootfs.diff_ids or ())


# ------------------------------------------------------------------------ manifests, indexes


class PlatformSchema(msgspec.Struct):
    architecture: str = ""
    os: str = ""
    variant: str | None = None
    os_version: str | None = msgspec.field(default=None, name="os.version")
    os_features: Strings = msgspec.field(default=None, name="os.features")


class DescriptorSchema(msgspec.Struct):
    mediaType: str
    digest: Digest
    size: Size
    urls: Strings = None
    annotations: StringMap = None
    platform: PlatformSchema | None = None


class ManifestSchema(msgspec.Struct):
    """An OCI image manifest or a Docker schema 2 manifest."""

    schemaVersion: int
    config: DescriptorSchema
    layers: list[DescriptorSchema]
    mediaType: str | None = None
    annotations: StringMap = None


class IndexSchema(msgspec.Struct):
    """An OCI index or a Docker manifest list."""

    schemaVersion: int
    manifests: list[DescriptorSchema]
    mediaType: str | None = None
    annotations: StringMap = None


class ShapeSchema(msgspec.Struct):
    """Just enough of a manifest-like document to tell what it is."""

    schemaVersion: Any = None
    mediaType: Any = None
    manifests: Any = None
    fsLayers: Any = None


class ArchiveEntrySchema(msgspec.Struct):
    """One item of a docker-archive's ``manifest.json``."""

    Config: str
    RepoTags: Strings = None
    Layers: Strings = None
    Parent: str | None = None


# ------------------------------------------------------------------------ decoding

_PATTERNS = {_DIGEST_PATTERN: "a sha256 digest", _TIME_PATTERN: "an RFC 3339 time",
             _PORT_PATTERN: "a port (80, 80/tcp, 53/udp)"}
_TYPE_NAMES = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}
_WORD = re.compile(r"\b(str|int|float|bool)\b")


def _explain(exc: msgspec.ValidationError) -> str:
    """msgspec's "Expected `array | null`, got `str` - at `$.config.Env`" as
    "config.Env: expected array, got string"."""
    text, _, where = str(exc).partition(" - at `")
    key = where.startswith("key` in `")  # a map key: "... - at `key` in `$.ExposedPorts`"
    path = where.removeprefix("key` in `").rstrip("`").removeprefix("$").removeprefix(".")
    for pattern, meaning in _PATTERNS.items():
        text = text.replace(f"`str` matching regex {pattern!r}", meaning)
    text = text.replace(" | null", "").replace("`", "")
    text = _WORD.sub(lambda m: _TYPE_NAMES[m.group(1)], text)
    text = text.replace("Object missing required field", "missing required field")
    text = ("a key: " if key else "") + text[:1].lower() + text[1:]
    return f"{path}: {text}" if path else text


def decode(data: bytes | str, schema: type[T], what: str) -> T:
    """``data`` decoded as ``schema``; InvalidArgument "invalid <what>: <field>: <problem>"."""
    try:
        return msgspec.json.decode(data, type=schema)
    except msgspec.ValidationError as exc:
        raise InvalidArgument(f"invalid {what}: {_explain(exc)}") from None
    except msgspec.DecodeError as exc:
        raise InvalidArgument(f"invalid {what}: {exc}") from None


def convert(data: object, schema: type[T], what: str) -> T:
    """Already decoded JSON data converted to ``schema``; errors as :func:`decode`."""
    try:
        return msgspec.convert(data, schema)
    except msgspec.ValidationError as exc:
        raise InvalidArgument(f"invalid {what}: {_explain(exc)}") from None


def check_image_config(data: bytes) -> ImageConfigSchema:
    """Validate an image config; as Docker does, refuse a history that claims more layers
    than ``rootfs.diff_ids`` lists."""
    config = decode(data, ImageConfigSchema, "image config")
    if config.rootfs.type != "layers":
        raise InvalidArgument(
            f'invalid image config: rootfs.type: expected "layers", got {config.rootfs.type!r}'
        )
    non_empty = sum(1 for h in config.history or () if not h.empty_layer)
    if non_empty > len(config.diff_ids):
        raise InvalidArgument("invalid image config: too many non-empty layers in History section")
    return config
