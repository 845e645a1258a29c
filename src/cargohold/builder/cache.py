"""Build state between steps and the content-keyed step cache (``<root>/buildcache/``).

Every step's result is an :class:`ImageState`: the image config built so far, its top layer,
and a *chained key*: ``sha256(parent key, canonical expanded instruction, content digests,
used build args)``.  The base key of a stage is its FROM image's id (``scratch`` for none), so
a changed instruction, file or argument changes that step's key and every key after it.

A cache entry is one small JSON file named by the key holding the whole resulting state, so a
hit needs one file read and one ``exists`` check of the layer -- nothing is mounted.

Entries are trusted as read, so ``buildcache/`` is root-only (directories 0700, files 0600;
:func:`buildcache_dir` fixes an older store's mode) and no RUN step can reach any of it: cache
mounts bind one hashed directory below ``mounts/`` (``build/run_mounts.py``), never a parent.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import stat
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import msgspec

from cargohold.util.atomic import write_bytes

DIR_MODE = 0o700
FILE_MODE = 0o600


def buildcache_dir(root: Path) -> Path:
    """``<root>/buildcache``, created root-only; an older store's 0755 directory is fixed (one
    chmod: everything of the build cache is below it)."""
    path = root / "buildcache"
    try:
        os.mkdir(path, DIR_MODE)
    except FileNotFoundError:
        root.mkdir(parents=True, exist_ok=True)
        os.mkdir(path, DIR_MODE)
    except FileExistsError:
        pass
    st = os.lstat(path)
    if stat.S_IMODE(st.st_mode) != DIR_MODE and stat.S_ISDIR(st.st_mode):
        os.chmod(path, DIR_MODE, follow_symlinks=False)
    return path


def private_dir(root: Path, *names: str) -> Path:
    """``<root>/buildcache/<names...>``, each level created 0700."""
    path = buildcache_dir(root)
    for name in names:
        path = path / name
        with contextlib.suppress(FileExistsError):
            os.mkdir(path, DIR_MODE)
    return path


class ImageState(msgspec.Struct):
    """The image being built: full config dict (created, author, config, rootfs, history)."""

    key: str
    top: str | None
    config: dict[str, Any]
    cmd_set: bool = False  # a CMD ran in this stage (a new ENTRYPOINT keeps it)
    layers: list[str] = msgspec.field(default_factory=list)  # layers this build registered

    @property
    def section(self) -> dict[str, Any]:
        section = self.config.setdefault("config", {})
        assert isinstance(section, dict)
        return section

    @property
    def diff_ids(self) -> list[str]:
        rootfs = self.config.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        ids = rootfs.setdefault("diff_ids", [])
        assert isinstance(ids, list)
        return ids

    @property
    def history(self) -> list[dict[str, Any]]:
        hist = self.config.setdefault("history", [])
        assert isinstance(hist, list)
        return hist

    def env(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.section.get("Env") or []:
            key, _, value = str(item).partition("=")
            out[key] = value
        return out

    def fork(self) -> ImageState:
        return ImageState(self.key, self.top, copy.deepcopy(self.config), self.cmd_set)

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "top": self.top, "config": self.config, "cmd_set": self.cmd_set}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> ImageState:
        return cls(str(obj["key"]), obj.get("top"), dict(obj["config"]), bool(obj.get("cmd_set")))


def step_key(parent: str, parts: Iterable[object]) -> str:
    """The chained key of a step: parent key plus canonical JSON of its parts."""
    h = hashlib.sha256(parent.encode())
    h.update(json.dumps(list(parts), sort_keys=True, separators=(",", ":"), default=str).encode())
    return h.hexdigest()


def base_key(image_id: str | None, platform: str = "") -> str:
    return hashlib.sha256(f"base\0{image_id or 'scratch'}\0{platform}".encode()).hexdigest()


class BuildCache:
    """Step results by key under ``<root>/buildcache/steps/<key[:2]>/<key>.json``."""

    def __init__(self, root: Path, layer_exists: Callable[[str], bool]) -> None:
        self.root = root
        self.dir = root / "buildcache" / "steps"
        self.layer_exists = layer_exists

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.json"

    def get(self, key: str) -> ImageState | None:
        try:
            obj = json.loads(self._path(key).read_bytes())
        except (OSError, ValueError):
            return None
        try:
            state = ImageState.from_json(obj)
        except (KeyError, TypeError, ValueError):
            return None
        if state.top is not None and not self.layer_exists(state.top):
            return None
        return state

    def put(self, state: ImageState) -> None:
        path = private_dir(self.root, "steps", state.key[:2]) / f"{state.key}.json"
        data = json.dumps(state.to_json(), separators=(",", ":")).encode()
        write_bytes(path, data, FILE_MODE, fsync=False)

    def entries(self) -> Iterator[tuple[str, Path, str | None]]:
        """(key, file, top layer) of every entry (unreadable entries with top None)."""
        if not self.dir.exists():
            return
        for sub in sorted(os.scandir(self.dir), key=lambda e: e.name):
            if not sub.is_dir():
                continue
            for item in sorted(os.scandir(sub.path), key=lambda e: e.name):
                if not item.name.endswith(".json"):
                    continue
                try:
                    top = json.loads(Path(item.path).read_bytes()).get("top")
                except (OSError, ValueError, AttributeError):
                    top = None
                yield item.name[:-5], Path(item.path), top if isinstance(top, str) else None

    def prune(self) -> int:
        """Remove every entry; returns how many there were."""
        count = 0
        if not self.dir.exists():
            return 0
        for sub in os.scandir(self.dir):
            if sub.is_dir():
                for item in os.scandir(sub.path):
                    os.unlink(item.path)
                    count += 1
        return count
