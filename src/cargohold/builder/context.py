"""The build context: a directory read in place, with .dockerignore and in-root symlinks.

Local builds never tar the context: sources are looked up and hashed where they are.  A
:class:`StatCache` keyed by ``(path, size, mtime_ns, ino)`` keeps file digests between builds so
an unchanged file is never read twice; the digests themselves never contain mtimes, so the
cache *keys* stay content-based.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import msgspec

from cargohold.builder.dockerignore import IgnoreMatcher
from cargohold.errors import InvalidArgument, NotFound
from cargohold.util.securejoin import secure_join

_WILDCARD = set("*?[")


class ContextError(InvalidArgument):
    """A source that is missing, excluded, or outside the context (located by the caller)."""


class Entry(msgspec.Struct, frozen=True):
    """One file system object under a source: ``rel`` is relative to the source itself."""

    rel: str  # "" for the source itself
    path: str  # absolute path on the host
    st: os.stat_result
    # a directory .dockerignore excludes, walked for the exceptions below it: Docker's client
    # leaves it out of the context, its daemon makes it (0755, root) for what is sent below
    implicit: bool = False


class Source(msgspec.Struct, frozen=True):
    """A matched COPY/ADD source: its context path and the resolved host path."""

    name: str  # context-relative path as matched (clean, no leading slash)
    path: str  # host path after in-root symlink resolution
    st: os.stat_result

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.st.st_mode)


class StatCache:
    """File digests remembered by (path, size, mtime_ns, ino); saved only when it changed."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._data: dict[str, list[int | str]] | None = None
        self._fresh: dict[str, list[int | str]] = {}  # computed here, not yet saved

    def _read(self) -> dict[str, list[int | str]]:
        if self.path is not None:
            try:
                raw = json.loads(self.path.read_bytes())
                if isinstance(raw, dict):
                    return raw
            except (OSError, ValueError):
                pass
        return {}

    def _load(self) -> dict[str, list[int | str]]:
        if self._data is None:
            self._data = self._read()
        return self._data

    def digest(self, path: str, st: os.stat_result) -> str:
        data = self._load()
        hit = data.get(path)
        if (
            hit is not None
            and hit[0] == st.st_size
            and hit[1] == st.st_mtime_ns
            and hit[2] == st.st_ino
        ):
            return str(hit[3])
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            with os.fdopen(fd, "rb", closefd=False) as f:
                value = hashlib.file_digest(f, "sha256").hexdigest()
        finally:
            os.close(fd)
        data[path] = self._fresh[path] = [st.st_size, st.st_mtime_ns, st.st_ino, value]
        return value

    def save(self) -> None:
        """Add this build's digests to the file; builds saving at once (threads or
        processes) keep each other's (the file is read again under its lock)."""
        if not self._fresh or self.path is None:
            return
        from cargohold.util.atomic import write_bytes
        from cargohold.util.lockfile import FileLock

        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with FileLock(self.path.with_name(self.path.name + ".lock")):
            merged = self._read()
            merged.update(self._fresh)
            data = json.dumps(merged, separators=(",", ":")).encode()
            write_bytes(self.path, data, 0o600, fsync=False)  # root-only, as all of buildcache/
        self._fresh = {}


def _has_wildcard(text: str) -> bool:
    return any(c in _WILDCARD for c in text)


def confine(rel: str) -> str:
    """Clean a context path; refuse one that climbs out of the context."""
    parts: list[str] = []
    for part in rel.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise ContextError(f"forbidden path outside the build context: {rel}")
            parts.pop()
            continue
        parts.append(part)
    return "/".join(parts)


class BuildContext:
    """A context directory (``root``) with its .dockerignore rules."""

    def __init__(
        self, root: Path, stat_cache: StatCache | None = None, use_ignore: bool = True
    ) -> None:
        self.root = Path(os.path.realpath(root))
        if not self.root.is_dir():
            raise NotFound(f"unable to prepare context: path {str(root)!r} not found")
        ignore_file = self.root / ".dockerignore"
        self.ignore = IgnoreMatcher.from_file(ignore_file) if use_ignore else IgnoreMatcher([])
        self.stats = stat_cache or StatCache(None)

    # -- lookups ------------------------------------------------------------------------

    def read_dockerfile(self, name: str) -> tuple[str, str]:
        """(text, display name) of the Dockerfile; may be ignored, must be inside."""
        rel = confine(name) if not os.path.isabs(name) else None
        path = Path(name) if rel is None else Path(secure_join(self.root, rel))
        try:
            return path.read_text(encoding="utf-8"), Path(name).name
        except FileNotFoundError:
            raise NotFound(
                f"unable to prepare context: unable to evaluate symlinks in Dockerfile path: "
                f"lstat {path}: no such file or directory"
            ) from None

    def _resolve(self, rel: str) -> tuple[str, os.stat_result] | None:
        path = secure_join(self.root, rel) if rel else str(self.root)
        try:
            return path, os.stat(path)
        except FileNotFoundError:
            return None

    def sources(self, pattern: str, keyword: str = "COPY") -> list[Source]:
        """The context objects a COPY/ADD source names (wildcards expanded, ignores applied)."""
        rel = confine(pattern)
        if not _has_wildcard(rel):
            found = self._resolve(rel)
            if found is None or (rel and self.ignore.matches(rel)):
                raise ContextError(
                    f"{keyword} failed: file not found in build context or excluded by "
                    f".dockerignore: stat {rel or '.'}: file does not exist"
                )
            return [Source(rel, found[0], found[1])]
        out = [Source(n, p, st) for n, p, st in self._glob(rel.split("/"), "")]
        if not out:
            raise ContextError(f"{keyword} failed: no source files were specified")
        return out

    def _glob(self, parts: list[str], base: str) -> Iterator[tuple[str, str, os.stat_result]]:
        head, rest = parts[0], parts[1:]
        if _has_wildcard(head):
            found = self._resolve(base)
            if found is None or not stat.S_ISDIR(found[1].st_mode):
                return
            names = sorted(n for n in os.listdir(found[0]) if fnmatch.fnmatchcase(n, head))
        else:
            names = [head]
        for name in names:
            rel = f"{base}/{name}" if base else name
            if self.ignore.matches(rel) and not self.ignore.has_exclusions:
                continue
            if rest:
                yield from self._glob(rest, rel)
                continue
            if self.ignore.matches(rel):
                continue
            found = self._resolve(rel)
            if found is not None:
                yield rel, found[0], found[1]

    # -- walking and hashing -------------------------------------------------------------

    def walk(self, source: Source) -> Iterator[Entry]:
        """The source and (for a directory) everything below it, sorted, ignores applied.

        Symlinks below the source are reported as symlinks, never followed."""
        yield Entry("", source.path, source.st)
        if source.is_dir:
            yield from self._walk_dir(source.path, source.name, "")

    def _walk_dir(self, path: str, ctx_rel: str, rel: str) -> Iterator[Entry]:
        with os.scandir(path) as it:
            items = sorted(it, key=lambda e: e.name)
        for item in items:
            crel = f"{ctx_rel}/{item.name}" if ctx_rel else item.name
            srel = f"{rel}/{item.name}" if rel else item.name
            st = item.stat(follow_symlinks=False)
            is_dir = stat.S_ISDIR(st.st_mode)
            if self.ignore.patterns and self.ignore.matches(crel):
                if is_dir and self.ignore.may_contain_exceptions(crel):
                    yield Entry(srel, item.path, st, implicit=True)
                    yield from self._walk_dir(item.path, crel, srel)
                continue
            yield Entry(srel, item.path, st)
            if is_dir:
                yield from self._walk_dir(item.path, crel, srel)

    def excluded(self) -> Iterator[tuple[str, bool]]:
        """What .dockerignore leaves out, in walk order, for a view that hides it: ``(path,
        False)`` for an excluded entry, ``(dir, True)`` for an excluded directory kept because
        an exception pattern may re-include something below it (its excluded children follow).
        """
        if self.ignore.patterns:
            yield from self._excluded(str(self.root), "")

    def _excluded(self, path: str, rel: str) -> Iterator[tuple[str, bool]]:
        with os.scandir(path) as it:
            items = sorted((e.name, e.is_dir(follow_symlinks=False), e.path) for e in it)
        for name, is_dir, child in items:
            crel = f"{rel}/{name}" if rel else name
            if not self.ignore.matches(crel):
                if is_dir:
                    yield from self._excluded(child, crel)
            elif is_dir and self.ignore.may_contain_exceptions(crel):
                yield crel, True
                yield from self._excluded(child, crel)
            else:
                yield crel, False

    def digest(self, sources: list[Source], with_owner: bool = False) -> str:
        """Content digest of sources: names, types, modes, contents (never mtimes)."""
        h = hashlib.sha256()
        for source in sources:
            h.update(f"S{source.name}\0".encode("utf-8", "surrogateescape"))
            for entry in self.walk(source):
                h.update(entry_line(entry, self.stats, with_owner))
        return h.hexdigest()

    def close(self) -> None:
        self.stats.save()


def entry_line(entry: Entry, stats: StatCache, with_owner: bool) -> bytes:
    st = entry.st
    mode = st.st_mode
    if stat.S_ISREG(mode):
        body = stats.digest(entry.path, st)
    elif stat.S_ISLNK(mode):
        body = os.readlink(entry.path)
    else:
        body = ""
    owner = f"{st.st_uid}:{st.st_gid}" if with_owner else ""
    return f"{entry.rel}\0{mode:o}\0{owner}\0{body}\n".encode("utf-8", "surrogateescape")


def extract_context(stream: BinaryIO, dest: Path) -> str | None:
    """Unpack a (possibly compressed) context tarball into ``dest``.

    Returns None, or the text when the stream is a plain Dockerfile (``build - < Dockerfile``).
    """
    from cargohold.store.archive import apply_layer, open_decompressed

    plain = open_decompressed(stream)
    probe = plain.read(512)
    if len(probe) < 512 or not _is_tar_header(probe):
        rest = probe + plain.read()
        return rest.decode("utf-8", "surrogateescape")
    dest.mkdir(parents=True, exist_ok=True)
    apply_layer(_Prefixed(probe, plain), dest, whiteouts="delete")  # type: ignore[arg-type]
    return None


def _is_tar_header(block: bytes) -> bool:
    if block[257:262] == b"ustar":
        return True
    try:
        stored = int(block[148:156].split(b"\0", 1)[0].strip() or b"-1", 8)
    except ValueError:
        return False
    return stored == sum(block[:148]) + 256 + sum(block[156:])


class _Prefixed:
    """A stream with some already-read bytes put back in front."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self.head = head
        self.rest = rest

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n < 0:
                out, self.head = self.head + self.rest.read(), b""
                return out
            out, self.head = self.head[:n], self.head[n:]
            if len(out) < n:
                out += self.rest.read(n - len(out))
            return out
        return self.rest.read(n)

    def readinto(self, buf: bytearray | memoryview) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)
