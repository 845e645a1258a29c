"""Image records: one small index (``images/index.json``) plus the config blobs.

Listing images reads one file: each record carries what ``images`` shows (tags, digests,
the config's ``created`` and the image size).  Every mutation holds the ``images`` flock and
rewrites the index atomically, so readers never see half a record.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from msgspec.structs import asdict, replace

from cargohold.errors import InvalidArgument, NotFound
from cargohold.store.blobs import BlobStore
from cargohold.store.layers import now_rfc3339
from cargohold.store.locking import store_lock
from cargohold.util.atomic import read_json, write_json

_HEX_PREFIX = re.compile(r"^[a-f0-9]{1,64}\Z")


class ImageRecord(msgspec.Struct, frozen=True):
    id: str  # "sha256:<config digest hex>"
    top_layer: str | None  # chain_id of the last layer
    repo_tags: tuple[str, ...]
    repo_digests: tuple[str, ...]
    manifest_digest: str | None
    created: str  # when it was stored locally
    config_created: str = ""  # the config's "created"
    size: int = 0  # bytes of layer content, as given to add()
    schema: int = 0  # CONFIG_SCHEMA_VERSION the config was checked against (0: never)


Index = dict[str, ImageRecord]


class ImageStore:
    def __init__(self, root: Path, blobs: BlobStore) -> None:
        self.root = root
        self.blobs = blobs
        self.dir = root / "images"
        self.index_path = self.dir / "index.json"
        self._lock = store_lock(root, "images")

    # index ----------------------------------------------------------------------------------

    def _load(self) -> Index:
        try:
            raw = read_json(self.index_path)
        except FileNotFoundError:
            return {}
        return {key: _record_from(value) for key, value in raw.get("images", {}).items()}

    def _save(self, index: Index) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        data = {"images": {key: asdict(rec) for key, rec in index.items()}}
        write_json(self.index_path, data)

    def _mutate(self, change: Callable[[Index], ImageRecord]) -> ImageRecord:
        with self._lock:
            index = self._load()
            result = change(index)
            self._save(index)
            return result

    # API ---------------------------------------------------------------------------------

    def add(
        self,
        config_bytes: bytes,
        top_layer: str | None,
        manifest_digest: str | None = None,
        size: int = 0,
    ) -> ImageRecord:
        """Store an image (idempotent per id); returns its record.  The config is checked
        against its schema (``oci/schema.py``) first: nothing is stored for a bad one."""
        from cargohold.oci.image import CONFIG_SCHEMA_VERSION as SCHEMA
        from cargohold.oci.schema import check_image_config

        created = check_image_config(config_bytes).created
        image_id = self.blobs.put(config_bytes)

        def change(index: Index) -> ImageRecord:
            existing = index.get(image_id)
            if existing is not None:
                if manifest_digest and not existing.manifest_digest:
                    existing = replace(existing, manifest_digest=manifest_digest)
                if existing.schema < SCHEMA:
                    existing = replace(existing, schema=SCHEMA)
                index[image_id] = existing
                return existing
            record = ImageRecord(
                id=image_id,
                top_layer=top_layer,
                repo_tags=(),
                repo_digests=(),
                manifest_digest=manifest_digest,
                created=now_rfc3339(),
                config_created=created or "",
                size=size,
                schema=SCHEMA,
            )
            index[image_id] = record
            return record

        return self._mutate(change)

    def get(self, image_id: str) -> ImageRecord:
        record = self._load().get(image_id)
        if record is None:
            raise NotFound(f"No such image: {image_id}")
        return record

    def list(self) -> builtins.list[ImageRecord]:
        return sorted(self._load().values(), key=lambda r: r.created, reverse=True)

    def config(self, image_id: str) -> dict[str, Any]:
        self.get(image_id)
        value = json.loads(self.blobs.read(image_id))
        if not isinstance(value, dict):
            raise InvalidArgument(f"invalid image config for {image_id}")
        return value

    def tag(self, image_id: str, ref: str) -> None:
        """Point ``ref`` at the image, moving it away from any other image."""

        def change(index: Index) -> ImageRecord:
            _require(index, image_id)
            for key, rec in index.items():
                if ref in rec.repo_tags and key != image_id:
                    index[key] = replace(rec, repo_tags=_without(rec.repo_tags, ref))
            rec = index[image_id]
            if ref not in rec.repo_tags:
                index[image_id] = replace(rec, repo_tags=(*rec.repo_tags, ref))
            return index[image_id]

        self._mutate(change)

    def untag(self, ref: str) -> ImageRecord:
        """Remove ``ref`` (a tag or a repo digest); returns the image's updated record."""

        def change(index: Index) -> ImageRecord:
            for key, rec in index.items():
                if ref in rec.repo_tags or ref in rec.repo_digests:
                    new = replace(
                        rec,
                        repo_tags=_without(rec.repo_tags, ref),
                        repo_digests=_without(rec.repo_digests, ref),
                    )
                    index[key] = new
                    return new
            raise NotFound(f"No such image: {ref}")

        return self._mutate(change)

    def by_tag(self, ref: str) -> ImageRecord | None:
        for rec in self._load().values():
            if ref in rec.repo_tags:
                return rec
        return None

    def add_repo_digest(self, image_id: str, ref: str) -> None:
        def change(index: Index) -> ImageRecord:
            _require(index, image_id)
            for key, rec in index.items():
                if ref in rec.repo_digests and key != image_id:
                    index[key] = replace(rec, repo_digests=_without(rec.repo_digests, ref))
            rec = index[image_id]
            if ref not in rec.repo_digests:
                index[image_id] = replace(rec, repo_digests=(*rec.repo_digests, ref))
            return index[image_id]

        self._mutate(change)

    def resolve(self, name_or_id: str) -> ImageRecord:
        """A tag, a repo digest, ``sha256:<hex>``, a full id or a unique id prefix."""
        index = self._load()
        for rec in index.values():
            if name_or_id in rec.repo_tags or name_or_id in rec.repo_digests:
                return rec
        hex_part = name_or_id.removeprefix("sha256:")
        if _HEX_PREFIX.match(hex_part):
            found = [rec for key, rec in index.items() if key[7:].startswith(hex_part)]
            if len(found) == 1:
                return found[0]
        raise NotFound(f"No such image: {name_or_id}")

    def delete(self, image_id: str) -> None:
        def change(index: Index) -> ImageRecord:
            return index.pop(_require(index, image_id).id)

        self._mutate(change)
        with contextlib.suppress(NotFound, InvalidArgument):
            self.blobs.delete(image_id)


def _require(index: Index, image_id: str) -> ImageRecord:
    rec = index.get(image_id)
    if rec is None:
        raise NotFound(f"No such image: {image_id}")
    return rec


def _without(values: tuple[str, ...], ref: str) -> tuple[str, ...]:
    return tuple(v for v in values if v != ref)


def _record_from(value: dict[str, Any]) -> ImageRecord:
    return ImageRecord(
        id=value["id"],
        top_layer=value.get("top_layer"),
        repo_tags=tuple(value.get("repo_tags", ())),
        repo_digests=tuple(value.get("repo_digests", ())),
        manifest_digest=value.get("manifest_digest"),
        created=value.get("created", ""),
        config_created=value.get("config_created", ""),
        size=int(value.get("size", 0)),
        schema=int(value.get("schema", 0)),
    )
