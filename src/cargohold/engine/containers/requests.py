"""The Docker-shaped requests the engine takes: the bodies of the Engine API's container, exec,
network and volume calls, with Docker's field names.

The CLI builds them from its flags (as docker/cli's ``opts.go`` does); the API decodes them
from JSON with :func:`decode_request`.  Either way the engine checks them itself when it
receives them (Docker's daemon rules and wording), so both clients get the same errors.

Container records share these types (``ContainerConfig``, ``HostConfig``,
``EndpointSettings`` are what a container stores): they are re-exported here for the CLI.
The other bodies live with their services (imported only by the verbs that need them):
``NetworkCreateRequest`` (engine/networks.py), ``VolumeCreateRequest`` (engine/volumes.py),
``UpdateRequest`` (engine/container_update.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec

from cargohold.container.model import (
    BindOptions,
    ContainerConfig,
    DriverConfig,
    EndpointIPAMConfig,
    EndpointSettings,
    HealthcheckConfig,
    HostConfig,
    LogConfig,
    MountPoint,
    NetworkingConfig,
    PortBinding,
    RestartPolicy,
    TmpfsOptions,
    VolumeOptions,
)

T = TypeVar("T")

__all__ = [
    "BindOptions",
    "ContainerConfig",
    "ContainerCreateRequest",
    "DriverConfig",
    "EndpointIPAMConfig",
    "EndpointSettings",
    "ExecCreateRequest",
    "ExecStartRequest",
    "HealthcheckConfig",
    "HostConfig",
    "LogConfig",
    "MountPoint",
    "NetworkConnectRequest",
    "NetworkDisconnectRequest",
    "NetworkingConfig",
    "PortBinding",
    "RestartPolicy",
    "TmpfsOptions",
    "VolumeOptions",
    "decode_request",
]


class ContainerCreateRequest(ContainerConfig, frozen=True):
    """``POST /containers/create``: Docker's Config fields (inline, as Docker's
    ``CreateRequest`` embeds them), ``HostConfig`` and ``NetworkingConfig``.  The query
    parameters (``name``, ``platform``) are arguments of the engine's call.

    Config fields left unset are taken from the image (``Entrypoint`` None: the image's;
    ``[]`` or ``[""]``: none, and then CMD is not inherited either).
    """

    host_config: HostConfig = msgspec.field(default_factory=HostConfig, name="HostConfig")
    networking_config: NetworkingConfig = msgspec.field(
        default_factory=NetworkingConfig, name="NetworkingConfig"
    )

    @property
    def config(self) -> ContainerConfig:
        """The Config part alone (what the container record keeps, before the image's)."""
        return ContainerConfig(**{f: getattr(self, f) for f in ContainerConfig.__struct_fields__})


class ExecCreateRequest(msgspec.Struct, frozen=True):
    """``POST /containers/{id}/exec``."""

    cmd: tuple[str, ...] = msgspec.field(default=(), name="Cmd")
    env: tuple[str, ...] = msgspec.field(default=(), name="Env")
    user: str = msgspec.field(default="", name="User")
    working_dir: str = msgspec.field(default="", name="WorkingDir")
    tty: bool = msgspec.field(default=False, name="Tty")
    attach_stdin: bool = msgspec.field(default=False, name="AttachStdin")
    attach_stdout: bool = msgspec.field(default=False, name="AttachStdout")
    attach_stderr: bool = msgspec.field(default=False, name="AttachStderr")
    privileged: bool = msgspec.field(default=False, name="Privileged")
    detach_keys: str = msgspec.field(default="", name="DetachKeys")
    console_size: tuple[int, int] | None = msgspec.field(default=None, name="ConsoleSize")


class ExecStartRequest(msgspec.Struct, frozen=True):
    """``POST /exec/{id}/start``; ``ConsoleSize`` is [height, width]."""

    detach: bool = msgspec.field(default=False, name="Detach")
    tty: bool = msgspec.field(default=False, name="Tty")
    console_size: tuple[int, int] | None = msgspec.field(default=None, name="ConsoleSize")


class NetworkConnectRequest(msgspec.Struct, frozen=True):
    """``POST /networks/{id}/connect``."""

    container: str = msgspec.field(default="", name="Container")
    endpoint_config: EndpointSettings = msgspec.field(
        default_factory=EndpointSettings, name="EndpointConfig"
    )


class NetworkDisconnectRequest(msgspec.Struct, frozen=True):
    """``POST /networks/{id}/disconnect``."""

    container: str = msgspec.field(default="", name="Container")
    force: bool = msgspec.field(default=False, name="Force")


# ------------------------------------------------------------------------ decoding


def _without_nulls(value: Any) -> Any:
    """Go's decoder leaves a field at its zero value for ``null``: drop null members."""
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def _go_config_shapes(data: dict[str, Any]) -> dict[str, Any]:
    """Docker's Config shapes msgspec does not read as our fields are typed: ExposedPorts and
    Volumes are sets written as ``{"80/tcp": {}}``; Cmd and Entrypoint (``StrSlice``) may
    be a single string."""
    out = dict(data)
    for key in ("ExposedPorts", "Volumes"):
        if isinstance(out.get(key), dict):
            out[key] = list(out[key])
    for key in ("Cmd", "Entrypoint"):
        if isinstance(out.get(key), str):
            out[key] = [out[key]]
    return out


def decode_request(body: bytes | str | Mapping[str, Any], request: type[T]) -> T:
    """A request body decoded as Go's ``encoding/json`` does into Docker's types: ``null``
    counts as absent, unknown fields are ignored, a value of the wrong type is refused naming
    the field (InvalidArgument "invalid JSON: HostConfig.Memory: expected integer, got
    string")."""
    from cargohold.errors import InvalidArgument
    from cargohold.oci.schema import convert

    if isinstance(body, bytes | str):
        if not body.strip():
            raise InvalidArgument("invalid JSON: got EOF while reading request body")
        try:
            data: Any = msgspec.json.decode(body)
        except msgspec.DecodeError as exc:
            raise InvalidArgument(f"invalid JSON: {exc}") from None
    else:
        data = body
    if not isinstance(data, dict):
        raise InvalidArgument("invalid JSON: expected an object")
    data = _without_nulls(data)
    if isinstance(request, type) and issubclass(request, ContainerConfig):
        data = _go_config_shapes(data)
    return convert(data, request, "JSON")
