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
from cargohold.errors import CargoholdError, InvalidArgument

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


def lookup_id(name: str, entries: list, kind: str) -> int:  # type: ignore[type-arg]
    if name.isdigit():
        return int(name)
    for entry in entries:
        if entry.name == name:
            return int(entry.uid if kind == "user" else entry.gid)
    raise InvalidArgument(f"unable to convert {kind} {name} to a number: no such {kind}")


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


def fetch_url(url: str, cache_dir: Path, checksum: str = "") -> Download:
    """Download ``url`` (revalidated with ETag / Last-Modified against the cached copy)."""
    import email.utils

    from cargohold.transport import http

    name = hashlib.sha256(url.encode()).hexdigest()
    meta_path, body_path = cache_dir / f"{name}.json", cache_dir / f"{name}.data"
    cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        meta = json.loads(meta_path.read_bytes())
    except (OSError, ValueError):
        meta = {}
    headers = {}
    if meta and body_path.exists():
        if meta.get("etag"):
            headers["If-None-Match"] = meta["etag"]
        if meta.get("last_modified"):
            headers["If-Modified-Since"] = meta["last_modified"]
    try:
        resp = http.get(url, headers, timeout=60)
    except CargoholdError as exc:
        raise InvalidArgument(f"failed to load cache key: {exc}") from None
    try:
        if resp.status == 304:
            pass
        elif resp.status >= 400:
            raise InvalidArgument(
                f'failed to load cache key: invalid response status {resp.status}'
            )
        else:
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
