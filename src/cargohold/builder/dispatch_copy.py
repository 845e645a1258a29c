"""COPY and ADD helpers: destinations, --chmod/--chown parsing, archive detection, URL
downloads.  The layer itself is generated as a tar by ``layer_tar`` (no working container).

Destination rules (the seed's four, Docker's): a trailing slash means a directory; missing
destinations are created; a directory source copies its contents; several sources need a
directory destination ending in ``/``; ADD extracts local tar/gzip/bzip2/xz archives and
downloads URLs without extracting them.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import time
from pathlib import Path
from typing import Any

import msgspec

from cargohold.builder.context import BuildContext, ContextError, Source
from cargohold.builder.instructions import AddInstruction, CopyInstruction
from cargohold.errors import CargoholdError, InvalidArgument
from cargohold.util.atomic import write_bytes

MULTI_SOURCE = (
    "When using {kw} with more than one source file, the destination must be a directory "
    "and end with a /"
)


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


def parse_chmod(text: str) -> int | None:
    if not text:
        return None
    try:
        value = int(text, 8)
    except ValueError:
        raise InvalidArgument(f"invalid chmod parameter: {text!r}") from None
    if not 0 <= value <= 0o7777:
        raise InvalidArgument(f"invalid chmod parameter: {text!r}")
    return value


def destination(dest: str, workdir: str) -> tuple[str, bool]:
    """(absolute destination, is it explicitly a directory)."""
    explicit_dir = dest.endswith("/") or dest in (".", "..") or dest.endswith(("/.", "/.."))
    if not dest.startswith("/"):
        dest = posixpath.join(workdir or "/", dest)
    clean = posixpath.normpath(dest)
    if clean.startswith("//"):
        clean = "/" + clean.lstrip("/")
    return clean, explicit_dir


# -- ADD: archives and URLs ------------------------------------------------------------------


def is_archive(path: str) -> bool:
    """A local file ADD extracts: a tar, possibly gzip/bzip2/xz/zstd compressed."""
    from cargohold.store.compression import open_decompressed

    try:
        with open(path, "rb") as f:
            plain = open_decompressed(f)
            block = plain.read(512)
    except (OSError, InvalidArgument, EOFError):
        return False
    if len(block) < 512:
        return False
    if block[257:262] == b"ustar":
        return True
    try:
        stored = int(block[148:156].split(b"\0", 1)[0].strip() or b"-1", 8)
    except ValueError:
        return False
    return stored == sum(block[:148]) + 256 + sum(block[156:])


class Download(msgspec.Struct, frozen=True):
    """A URL body in the download cache."""

    url: str
    path: Path  # cached body
    digest: str  # sha256:<hex>
    mtime_ns: int
    filename: str


def _cached_meta(meta_path: Path, body_path: Path) -> dict[str, str]:
    """What the download cache knows of a URL ({} when nothing usable is cached)."""
    try:
        meta = json.loads(meta_path.read_bytes())
    except (OSError, ValueError):
        return {}
    if not isinstance(meta, dict) or not isinstance(meta.get("digest"), str):
        return {}
    if not body_path.exists():
        return {}
    return {k: v for k, v in meta.items() if isinstance(v, str)}


def fetch_url(url: str, cache_dir: Path, checksum: str = "") -> Download:
    """Download ``url`` (revalidated with ETag / Last-Modified against the cached copy)."""
    import email.utils

    from cargohold.transport import http

    name = hashlib.sha256(url.encode()).hexdigest()
    meta_path, body_path = cache_dir / f"{name}.json", cache_dir / f"{name}.data"
    cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    meta = _cached_meta(meta_path, body_path)
    headers = {}
    if meta:  # revalidate the cached copy
        if meta.get("etag"):
            headers["If-None-Match"] = meta["etag"]
        if meta.get("last_modified"):
            headers["If-Modified-Since"] = meta["last_modified"]
    try:
        resp = http.get(url, headers, timeout=60)
    except CargoholdError as exc:
        raise InvalidArgument(f"failed to load cache key: {exc}") from None
    try:
        if resp.status == 304 and not headers:  # nothing was asked to be revalidated
            raise InvalidArgument(
                f'failed to load cache key: Get "{url}": unexpected response status 304 '
                "(Not Modified) to a request that had no cached copy to revalidate"
            )
        if resp.status != 304 and not 200 <= resp.status < 300:
            raise InvalidArgument(
                f'failed to load cache key: Get "{url}": invalid response status {resp.status}'
            )
        if resp.status != 304:
            h = hashlib.sha256()
            tmp = body_path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as out:
                for chunk in resp.stream(1 << 20):
                    h.update(chunk)
                    out.write(chunk)
            os.replace(tmp, body_path)
            meta = {
                "etag": resp.headers.get("ETag", ""),
                "last_modified": resp.headers.get("Last-Modified", ""),
                "digest": "sha256:" + h.hexdigest(),
            }
            write_bytes(meta_path, json.dumps(meta).encode(), 0o600, fsync=False)
    finally:
        http.release(resp)
    if checksum and checksum != meta["digest"]:
        raise InvalidArgument(
            f"digest mismatch {meta['digest']}: {checksum}"
        )
    mtime_ns = 0
    if meta.get("last_modified"):
        try:
            when = email.utils.parsedate_to_datetime(meta["last_modified"])
            mtime_ns = int(when.timestamp()) * 1_000_000_000
        except (TypeError, ValueError):
            mtime_ns = 0
    filename = posixpath.basename(url.split("?", 1)[0].split("#", 1)[0].rstrip("/")) or "index.html"
    return Download(url, body_path, str(meta["digest"]), mtime_ns, filename)


def context_sources(ctx: BuildContext, inst: CopyInstruction | AddInstruction) -> list[Source]:
    out: list[Source] = []
    for pattern in inst.sources:
        if is_url(pattern):
            continue
        out.extend(ctx.sources(pattern, inst.keyword))
    return out


# -- the layer's entries -----------------------------------------------------------------------


def emit_copy(tar: Any, view: Any, inst: CopyInstruction | AddInstruction, ctx: BuildContext,
              sources: list[Source], downloads: list[Download], dest: str, explicit_dir: bool,
              epoch: int | None) -> None:
    """Write the entries of a COPY/ADD into ``tar`` (a ``layer_tar`` writer) against the
    parent image ``view``; ``ctx`` is the context or the ``--from`` rootfs."""
    from cargohold.builder.dockerignore import IgnoreMatcher
    from cargohold.builder.layer_tar import Rules, resolve_chown
    from cargohold.store.archive import open_decompressed

    from_ = inst.from_ if isinstance(inst, CopyInstruction) else ""
    uid = gid = None
    if inst.chown:
        uid, gid = resolve_chown(inst.chown, view)
    chowned_dirs = (0o755, uid or 0, gid or 0)
    rules = Rules(uid, gid, parse_chmod(inst.chmod), keep_owner=bool(from_), epoch=epoch)
    excludes = IgnoreMatcher(list(inst.excludes)) if inst.excludes else None
    parents = isinstance(inst, CopyInstruction) and inst.parents
    dest_is_dir = explicit_dir or view.resolve(dest).is_dir
    for source in sources:
        # a file's missing parents are made owned by --chown, a directory's by root (the
        # classic builder's MkdirAllAndChownNew vs CopyWithTar)
        tar.new_dirs = (0o755, 0, 0) if source.is_dir else chowned_dirs
        if isinstance(inst, AddInstruction) and not source.is_dir and is_archive(source.path):
            tar.new_dirs = (0o755, 0, 0)  # an archive is unpacked as root, --chown or not
            target = _dir_target(view, dest)
            tar.ensure_dir(target)
            with open(source.path, "rb") as f:
                tar.archive(open_decompressed(f), target, rules)
            continue
        if parents:
            logical = posixpath.join(dest, source.name)
        elif source.is_dir:
            logical = dest
        elif dest_is_dir:
            logical = posixpath.join(dest, posixpath.basename(source.name or "."))
        else:
            logical = dest
        if source.is_dir:
            entries = ctx.walk(source)
            if excludes is not None:
                entries = (e for e in entries if not e.rel or not excludes.matches(e.rel))
            tar.tree(entries, _dir_target(view, logical), rules)
            continue
        node = view.resolve(logical)
        if node.is_dir:  # the file goes into an existing directory of that name
            name = posixpath.join(node.rel, posixpath.basename(source.name or "."))
            tar.ensure_dir(node.rel)
        else:
            name = _file_target(tar, view, logical)
        tar.entry(name, source.path, source.st, rules)
    tar.new_dirs = chowned_dirs
    for inline in inst.contents:
        data = inline.data.encode()
        target = posixpath.join(dest, inline.name) if explicit_dir else dest
        tar.data(_file_target(tar, view, target), data, len(data), 0o644, int(time.time()),
                 rules)
    for d in downloads:
        target = posixpath.join(dest, d.filename) if explicit_dir else dest
        size = os.stat(d.path).st_size
        tar.data(_file_target(tar, view, target), str(d.path), size, 0o600,
                 d.mtime_ns // 1_000_000_000, rules)


def _file_target(tar: Any, view: Any, target: str) -> str:
    node = view.resolve(target)
    if node.is_dir:
        return str(node.rel)  # an existing directory (or a link to one): into it
    parent = view.resolve(posixpath.dirname(target))
    if parent.st is not None and not parent.is_dir:
        raise ContextError(f"cannot copy to {target}: not a directory")
    tar.ensure_dir(parent.rel)
    base = posixpath.basename(target)
    return f"{parent.rel}/{base}" if parent.rel else base


def _dir_target(view: Any, target: str) -> str:
    node = view.resolve(target)
    if node.st is not None and not node.is_dir:
        raise ContextError(f"cannot copy to non-directory: {target}")
    return str(node.rel)
