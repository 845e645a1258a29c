"""Which compressed blobs a layer (diff_id) is known as, and in which repositories.

Filled by pulls (the registry's blob for each layer the pull downloaded and verified) and
pushes (the blob we compressed), so a second push checks existence or mounts instead of
compressing again, and a pushed image that came from the same registry is mounted from its
source repository (Docker's v2 metadata).  Only pairs someone checked are recorded: a blob
whose content was matched against the diff_id, or one we made from the layer.  Pulled entries
written before that rule (no ``verified`` mark) may name blobs a manifest merely claimed for a
layer that was already present; they are ignored.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from cargohold.util.atomic import write_bytes
from cargohold.util.lockfile import FileLock

MAX_REPOS = 16


class BlobEntry(msgspec.Struct, frozen=True):
    digest: str
    size: int
    media_type: str
    compression: str  # "gzip:6" | "zstd:3" for blobs we made; "" for pulled ones
    repos: tuple[str, ...]  # "registry/repo" names known to hold the blob


class DigestCache:
    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, list[dict[str, object]]]:
        try:
            with open(self.path, "rb") as f:
                data = json.load(f)
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def entries(self, diff_id: str) -> list[BlobEntry]:
        out = []
        for e in self._load().get(diff_id) or []:
            if not isinstance(e, dict) or not (e.get("compression") or e.get("verified")):
                continue
            try:
                out.append(BlobEntry(str(e["digest"]), int(e["size"]),  # type: ignore[call-overload]
                                     str(e["media_type"]), str(e.get("compression", "")),
                                     tuple(str(r) for r in e.get("repos") or ())))  # type: ignore[attr-defined]
            except (KeyError, TypeError, ValueError):
                continue
        return out

    def record(self, diff_id: str, digest: str, size: int, media_type: str, compression: str,
               repo: str | None) -> None:
        """Remember that ``digest`` holds the layer ``diff_id``: only for a blob whose content
        was checked against the diff_id (downloaded and applied) or that we made from it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(self.path.with_name(self.path.name + ".lock")):
            data = self._load()
            entries = data.setdefault(diff_id, [])
            entry = next((e for e in entries if e.get("digest") == digest), None)
            if entry is None:
                entry = {"digest": digest, "size": size, "media_type": media_type,
                         "compression": compression, "repos": []}
                entries.append(entry)
            if compression and not entry.get("compression"):
                entry["compression"] = compression
            entry["verified"] = True
            repos = [r for r in entry.get("repos") or [] if r != repo]  # type: ignore[attr-defined]
            if repo:
                repos.insert(0, repo)
            entry["repos"] = repos[:MAX_REPOS]
            write_bytes(self.path, json.dumps(data, sort_keys=True).encode(), fsync=False)
