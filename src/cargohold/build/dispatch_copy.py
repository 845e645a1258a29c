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
from pathlib import Path

import msgspec

from cargohold.build.context import BuildContext, Source
from cargohold.build.instructions import AddInstruction, CopyInstruction
from cargohold.errors import InvalidArgument

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


MAX_ID = 2**32 - 2  # uid_t/gid_t; (uid_t)-1 means "leave unchanged" to chown(2)


def is_number(text: str) -> bool:
    return text.isascii() and text.isdigit()


def lookup_id(name: str, entries: list, kind: str) -> int:  # type: ignore[type-arg]
    """A --chown user or group: a number, or a name from the image's passwd/group file."""
    if is_number(name):
        value = int(name)
    else:
        found = [e for e in entries if e.name == name]
        if not found:
            raise InvalidArgument(f"unable to convert {kind} {name} to a number: no such {kind}")
        value = int(found[0].uid if kind == "user" else found[0].gid)
    if not 0 <= value <= MAX_ID:
        raise InvalidArgument(f'unable to convert {kind} {name} to a number: strconv.ParseUint: '
                              f'parsing "{value}": value out of range')  # fmt: skip
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

    import urllib3

    name = hashlib.sha256(url.encode()).hexdigest()
    meta_path, body_path = cache_dir / f"{name}.json", cache_dir / f"{name}.data"
    cache_dir.mkdir(parents=True, exist_ok=True)
    meta = _cached_meta(meta_path, body_path)
    headers = {}
    if meta:  # revalidate the cached copy
        if meta.get("etag"):
            headers["If-None-Match"] = meta["etag"]
        if meta.get("last_modified"):
            headers["If-Modified-Since"] = meta["last_modified"]
    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=30, read=60),
                               retries=urllib3.Retry(3, redirect=5))
    try:
        resp = http.request("GET", url, headers=headers, preload_content=False)
    except urllib3.exceptions.HTTPError as exc:
        raise InvalidArgument(f'failed to load cache key: Get "{url}": {exc}') from None
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
            with open(tmp, "wb") as out:
                for chunk in resp.stream(1 << 20):
                    h.update(chunk)
                    out.write(chunk)
            os.replace(tmp, body_path)
            meta = {
                "etag": resp.headers.get("ETag", ""),
                "last_modified": resp.headers.get("Last-Modified", ""),
                "digest": "sha256:" + h.hexdigest(),
            }
            meta_path.write_text(json.dumps(meta))
    finally:
        resp.release_conn()
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
