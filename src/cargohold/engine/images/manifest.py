"""``manifest inspect``: what a registry serves for a name, read without pulling anything.

One GET of the manifest (the Distribution client sends every manifest and index type in
Accept).  A manifest list / OCI index is reported through its entries (as Docker's CLI
rebuilds it from their descriptors); ``verbose`` also fetches each entry's manifest, and
for a single manifest its config, to report the platform as Docker's ``--verbose`` does.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import msgspec

from cargohold.errors import CargoholdError, InvalidArgument, NotFound
from cargohold.oci import image as oci_image

if TYPE_CHECKING:
    from cargohold.oci.reference import Reference
    from cargohold.transport.registry.client import RegistryClient

# Docker's PlatformSpec fields, in its order
_PLATFORM_KEYS = ("architecture", "os", "os.version", "os.features", "variant", "features")


class ManifestEntry(msgspec.Struct, frozen=True):
    ref: str  # "docker.io/library/busybox:latest" (entries of a list: "...@sha256:...")
    media_type: str
    digest: str
    size: int
    platform: dict[str, Any] | None = None
    raw: bytes = b""  # the manifest as served (for a list's entries: with ``verbose`` only)


class ManifestReport(msgspec.Struct, frozen=True):
    ref: str
    is_list: bool
    entries: tuple[ManifestEntry, ...]  # the manifest itself, or the list's entries


def _platform(source: dict[str, Any]) -> dict[str, Any]:
    """Docker's PlatformSpec of an index entry or an image config (empty fields left out)."""
    out = {"architecture": str(source.get("architecture", "")), "os": str(source.get("os", ""))}
    out.update({k: source[k] for k in _PLATFORM_KEYS[2:] if source.get(k)})
    return out


def inspect_manifest(client: RegistryClient, ref: Reference, verbose: bool) -> ManifestReport:
    name = str(ref)
    display = ref.familiar() if ref.domain == "docker.io" else name
    reference = ref.digest or ref.tag or "latest"
    try:
        raw, media, digest = client.get_manifest(ref.path, reference, display, ref.name_familiar)
    except NotFound:
        raise NotFound(f"no such manifest: {name}") from None
    if media in oci_image.INDEX_TYPES:
        oci_image.parse_index(raw)  # validated
        entries = []
        for item in json.loads(raw).get("manifests") or []:
            entries.append(_list_entry(client, ref, item, display, verbose))
        return ManifestReport(name, True, tuple(entries))
    if media not in oci_image.MANIFEST_TYPES:
        raise InvalidArgument(f"{name} is not a manifest")
    platform = None
    if verbose:
        manifest = oci_image.parse_manifest(raw)
        config = client.get_blob_bytes(ref.path, manifest.config.digest, manifest.config.size)
        try:
            platform = _platform(json.loads(config))
        except (ValueError, AttributeError):
            raise InvalidArgument(f"{name}: the image config is not JSON") from None
    entry = ManifestEntry(name, media, digest, len(raw), platform, raw)
    return ManifestReport(name, False, (entry,))


def _list_entry(client: RegistryClient, ref: Reference, item: dict[str, Any], display: str,
                verbose: bool) -> ManifestEntry:
    digest = str(item.get("digest", ""))
    child = f"{ref}@{digest}" if not ref.digest else f"{ref.repository}@{digest}"
    platform = _platform(item.get("platform") or {})
    if not verbose:
        return ManifestEntry(child, str(item.get("mediaType", "")), digest,
                             int(item.get("size") or 0), platform)
    try:
        raw, media, got = client.get_manifest(ref.path, digest, display, ref.name_familiar)
    except CargoholdError as e:
        raise type(e)(f"{child}: {e.message}") from None
    return ManifestEntry(child, media, got, len(raw), platform, raw)
