"""docker-archive / oci-archive tarballs: what `save` writes and `load` reads.

Written archives carry both layouts in one tar, as Docker 25 does, so `docker load` (which
reads manifest.json) and `podman load` / skopeo (either) accept them::

    blobs/sha256/<hex>     configs, OCI manifests and uncompressed layer tars
    manifest.json          [{"Config": "blobs/sha256/..", "RepoTags": [..], "Layers": [..]}]
    index.json, oci-layout the OCI image layout
    repositories           legacy name -> tag -> top layer map

Read archives may be Docker's (old `<id>/layer.tar` or new `blobs/` paths), Podman's
docker-archive, or an OCI archive (index.json only, layers possibly compressed).
"""

from __future__ import annotations

import json
from typing import Any, BinaryIO

from cargohold.errors import InvalidArgument
from cargohold.oci import image as oci_image
from cargohold.oci.digest import hex_of, is_digest, sha256_digest
from cargohold.oci.reference import parse_reference
from cargohold.transport.base import ImageSource, LayerRef, SourceImage
from cargohold.transport.tarstream import ArchiveIndex, TarWriter
from cargohold.transport.verify import VerifyingReader

LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"


class DockerArchiveSource:
    """Images in a seekable docker-archive or oci-archive tar file."""

    def __init__(self, f: BinaryIO) -> None:
        self.index = ArchiveIndex(f)

    def images(self) -> list[SourceImage]:
        if self.index.has("manifest.json"):
            return self._docker_images()
        if self.index.has("index.json"):
            return self._oci_images()
        raise InvalidArgument(
            "open manifest.json: no such file or directory (not a docker-archive or OCI archive)"
        )

    def _docker_images(self) -> list[SourceImage]:
        from cargohold.oci.schema import ArchiveEntrySchema, decode

        entries = decode(self.index.read("manifest.json"), list[ArchiveEntrySchema],
                         "manifest.json")
        images = []
        for entry in entries:
            if not entry.Config:
                raise InvalidArgument("invalid archive manifest: missing Config")
            config = self.index.read(entry.Config)
            diff_ids = _diff_ids(config)
            paths = entry.Layers or []
            if len(paths) != len(diff_ids):
                raise InvalidArgument(
                    f"invalid manifest.json: {len(paths)} layers but the config lists "
                    f"{len(diff_ids)} diff_ids"
                )
            layers = tuple(
                LayerRef(digest=d, diff_id=d, media_type=LAYER_TAR, location=p)
                for p, d in zip(paths, diff_ids, strict=True)
            )
            names = tuple(_normalize_name(t) for t in entry.RepoTags or [])
            images.append(
                SourceImage(config, sha256_digest(config), layers, tuple(n for n in names if n))
            )
        return images

    def _oci_images(self) -> list[SourceImage]:
        index = oci_image.parse_index(self.index.read("index.json"), "index.json")
        images = []
        for desc in index.manifests:
            images.extend(self._oci_manifest(desc, _oci_names(dict(desc.annotations)), 0))
        return images

    def _oci_manifest(self, desc: oci_image.Descriptor, names: tuple[str, ...],
                      depth: int) -> list[SourceImage]:
        raw = self._blob_bytes(desc.digest)
        media = oci_image.sniff_media_type(raw)
        if media in oci_image.INDEX_TYPES or desc.media_type in oci_image.INDEX_TYPES:
            if depth > 2:
                raise InvalidArgument("OCI archive: image indexes nested too deeply")
            chosen = oci_image.select_platform(oci_image.parse_index(raw))
            return self._oci_manifest(chosen, names, depth + 1)
        manifest = oci_image.parse_manifest(raw)
        config = self._blob_bytes(manifest.config.digest)
        diff_ids = _diff_ids(config)
        if len(diff_ids) != len(manifest.layers):
            raise InvalidArgument("OCI archive: layer count does not match the config")
        layers = tuple(
            LayerRef(digest=ld.digest, diff_id=d, media_type=ld.media_type, size=ld.size)
            for ld, d in zip(manifest.layers, diff_ids, strict=True)
        )
        return [SourceImage(config, manifest.config.digest, layers, names, desc.digest)]

    def _blob_bytes(self, digest: str) -> bytes:
        if not is_digest(digest):
            raise InvalidArgument(f"OCI archive: unsupported digest {digest!r}")
        data = self.index.read(f"blobs/sha256/{hex_of(digest)}")
        if sha256_digest(data) != digest:
            raise InvalidArgument(f"OCI archive: blob {digest} does not match its digest")
        return data

    def open_blob(self, layer: LayerRef) -> BinaryIO:
        if layer.location:
            return self.index.open(layer.location)
        path = f"blobs/sha256/{hex_of(layer.digest)}"
        what = f"blob {layer.digest}"
        reader = VerifyingReader(self.index.open(path), layer.digest, layer.size, what)
        return reader  # type: ignore[return-value]

    def close(self) -> None:
        pass


def write_archive(fd: int, images: list[SourceImage], source: ImageSource) -> None:
    """Write ``images`` (blobs read from ``source``) as one docker-archive + OCI layout tar."""
    tw = TarWriter(fd)
    tw.add_dir("blobs")
    tw.add_dir("blobs/sha256")
    written: set[str] = set()
    docker_manifest: list[dict[str, Any]] = []
    index_entries: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    for img in images:
        _add_blob_bytes(tw, written, img.config_digest, img.config)
        layer_paths = []
        for layer in img.layers:
            _add_layer(tw, written, layer, source)
            layer_paths.append(f"blobs/sha256/{hex_of(layer.diff_id)}")
        manifest = oci_image.build_manifest(
            img.config_digest,
            len(img.config),
            [(ly.diff_id, _layer_size(ly, source), LAYER_TAR) for ly in img.layers],
            oci=True,
        )
        mbytes = oci_image.encode_json(manifest)
        mdigest = sha256_digest(mbytes)
        _add_blob_bytes(tw, written, mdigest, mbytes)
        familiar = [parse_reference(n).familiar() for n in img.names]
        docker_manifest.append(
            {
                "Config": f"blobs/sha256/{hex_of(img.config_digest)}",
                "RepoTags": familiar or None,
                "Layers": layer_paths,
            }
        )
        index_entries += _index_entries(img, mdigest, len(mbytes))
        top = hex_of(img.layers[-1].diff_id) if img.layers else ""
        for n in img.names:
            ref = parse_reference(n)
            if ref.tag and top:
                repositories.setdefault(ref.name_familiar, {})[ref.tag] = top
    index = {"schemaVersion": 2, "mediaType": oci_image.OCI_INDEX, "manifests": index_entries}
    tw.add_bytes("index.json", oci_image.encode_json(index))
    tw.add_bytes("manifest.json", json.dumps(docker_manifest, separators=(",", ":")).encode())
    tw.add_bytes("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    if repositories:
        tw.add_bytes("repositories", json.dumps(repositories, separators=(",", ":")).encode())
    tw.close()


def _index_entries(img: SourceImage, mdigest: str, msize: int) -> list[dict[str, Any]]:
    base = {"mediaType": oci_image.OCI_MANIFEST, "digest": mdigest, "size": msize}
    if not img.names:
        return [base]
    entries = []
    for n in img.names:
        ref = parse_reference(n)
        annotations = {"io.containerd.image.name": n}
        if ref.tag:
            annotations["org.opencontainers.image.ref.name"] = ref.tag
        entries.append({**base, "annotations": annotations})
    return entries


def _add_blob_bytes(tw: TarWriter, written: set[str], digest: str, data: bytes) -> None:
    if digest not in written:
        tw.add_bytes(f"blobs/sha256/{hex_of(digest)}", data)
        written.add(digest)


def _add_layer(tw: TarWriter, written: set[str], layer: LayerRef, source: ImageSource) -> None:
    if layer.diff_id in written:
        return
    size_of = getattr(source, "layer_size", None)
    writer = getattr(source, "write_layer", None)
    if size_of is None or writer is None:
        raise InvalidArgument("this source cannot provide uncompressed layers for save")
    size = size_of(layer)
    tw.add_stream(f"blobs/sha256/{hex_of(layer.diff_id)}", size, lambda sink: writer(layer, sink))
    written.add(layer.diff_id)


def _layer_size(layer: LayerRef, source: ImageSource) -> int:
    size_of = getattr(source, "layer_size", None)
    return int(size_of(layer)) if size_of is not None else layer.size or 0


def _oci_names(annotations: dict[str, str]) -> tuple[str, ...]:
    for key in ("io.containerd.image.name", "org.opencontainers.image.ref.name"):
        name = _normalize_name(annotations.get(key, ""))
        if name:
            return (name,)
    return ()


def _normalize_name(name: str) -> str:
    """A fully qualified tag for ``name``, or "" when it is not a usable image name."""
    if not name:
        return ""
    try:
        ref = parse_reference(name)
    except InvalidArgument:
        return ""
    if ref.digest and not ref.tag:
        return ""
    return str(ref.with_default_tag())


def _diff_ids(config: bytes) -> list[str]:
    from cargohold.oci.schema import check_image_config

    return check_image_config(config).diff_ids
