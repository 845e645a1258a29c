"""COPY and ADD: sources from the context (or a stage/image rootfs, or a URL) written into the
working container with descriptor-relative calls, so nothing lands outside its rootfs.

Destination rules (the seed's four, Docker's): a trailing slash means a directory; missing
destinations are created; a directory source copies its contents; several sources need a
directory destination ending in ``/``; ADD extracts local tar/gzip/bzip2/xz archives and
downloads URLs without extracting them.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import posixpath
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cargohold.build.context import BuildContext, ContextError, Entry, Source
from cargohold.build.instructions import AddInstruction, CopyInstruction
from cargohold.errors import InvalidArgument
from cargohold.util.securejoin import mkdir_beneath, open_beneath

__all__ = ["mkdir_beneath"]

_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
MULTI_SOURCE = (
    "When using {kw} with more than one source file, the destination must be a directory "
    "and end with a /"
)


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


@dataclass(frozen=True)
class Owner:
    """Owner (dataclass)."""

    uid: int | None  # None: keep the source's (COPY --from) / 0 for context files
    gid: int | None
    mode: int | None  # --chmod


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


def resolve_chown(spec: str, rootfs: Path) -> tuple[int, int]:
    """--chown user[:group] resolved in the image's /etc/passwd and /etc/group.

    A user without a group uses the same number for the group, as Docker does."""
    from cargohold.container.users import parse_group, parse_passwd, read_root_file

    user, _, group = spec.partition(":")
    uid = _lookup(user, parse_passwd(read_root_file(rootfs, "/etc/passwd")), "user")
    if not group:
        return uid, uid
    gid = _lookup(group, parse_group(read_root_file(rootfs, "/etc/group")), "group")
    return uid, gid


def _lookup(name: str, entries: list, kind: str) -> int:  # type: ignore[type-arg]
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


# -- writing into the rootfs ----------------------------------------------------------------


class Writer:
    """Writes entries below one destination directory descriptor (O_PATH)."""

    def __init__(self, owner: Owner, keep_owner: bool, epoch: int | None) -> None:
        self.owner = owner
        self.keep_owner = keep_owner
        self.epoch = epoch
        self.dirs: list[tuple[int, str, os.stat_result]] = []

    def _ids(self, st: os.stat_result) -> tuple[int, int]:
        if self.owner.uid is not None:
            return self.owner.uid, self.owner.gid if self.owner.gid is not None else 0
        if self.keep_owner:
            return st.st_uid, st.st_gid
        return 0, 0

    def _mode(self, st: os.stat_result) -> int:
        return self.owner.mode if self.owner.mode is not None else stat.S_IMODE(st.st_mode)

    def _mtime(self, st: os.stat_result) -> int:
        if self.epoch is not None:
            return min(st.st_mtime_ns, self.epoch * 1_000_000_000)
        return st.st_mtime_ns

    def file(self, pfd: int, name: str, src: str, st: os.stat_result) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            out = os.open(name, flags, 0o600, dir_fd=pfd)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.EISDIR, errno.ENOTDIR):
                raise
            _remove(pfd, name)
            out = os.open(name, flags, 0o600, dir_fd=pfd)
        try:
            inp = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                _copy_data(inp, out, st.st_size)
            finally:
                os.close(inp)
            uid, gid = self._ids(st)
            os.fchown(out, uid, gid)
            os.fchmod(out, self._mode(st))
            mtime = self._mtime(st)
            os.utime(out, ns=(mtime, mtime))
        finally:
            os.close(out)

    def data(self, pfd: int, name: str, stream: BinaryIO, mode: int, mtime_ns: int) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        out = os.open(name, flags, 0o600, dir_fd=pfd)
        try:
            while chunk := stream.read(1 << 20):
                os.write(out, chunk)
            uid = self.owner.uid or 0
            os.fchown(out, uid, self.owner.gid if self.owner.gid is not None else uid)
            os.fchmod(out, self.owner.mode if self.owner.mode is not None else mode)
            if self.epoch is not None:
                mtime_ns = min(mtime_ns, self.epoch * 1_000_000_000)
            os.utime(out, ns=(mtime_ns, mtime_ns))
        finally:
            os.close(out)

    def symlink(self, pfd: int, name: str, target: str, st: os.stat_result) -> None:
        try:
            os.symlink(target, name, dir_fd=pfd)
        except FileExistsError:
            _remove(pfd, name)
            os.symlink(target, name, dir_fd=pfd)
        uid, gid = self._ids(st)
        os.chown(name, uid, gid, dir_fd=pfd, follow_symlinks=False)
        mtime = self._mtime(st)
        os.utime(name, ns=(mtime, mtime), dir_fd=pfd, follow_symlinks=False)

    def subdir(self, pfd: int, name: str, st: os.stat_result) -> int:
        with contextlib.suppress(FileExistsError):
            os.mkdir(name, 0o700, dir_fd=pfd)
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                raise
            _remove(pfd, name)
            os.mkdir(name, 0o700, dir_fd=pfd)
            fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
        self.dirs.append((fd, name, st))
        return fd

    def finish_dirs(self) -> None:
        """Owners, modes and mtimes of directories, deepest first (after their content)."""
        for fd, _name, st in reversed(self.dirs):
            uid, gid = self._ids(st)
            path = f"/proc/self/fd/{fd}"
            os.chown(path, uid, gid)
            os.chmod(path, self._mode(st))
            mtime = self._mtime(st)
            os.utime(path, ns=(mtime, mtime))
            os.close(fd)
        self.dirs.clear()


def _remove(pfd: int, name: str) -> None:
    try:
        os.unlink(name, dir_fd=pfd)
    except IsADirectoryError:
        from cargohold.store.archive_apply import remove_tree_at

        remove_tree_at(pfd, name)


def _copy_data(inp: int, out: int, size: int) -> None:
    offset = 0
    while offset < size:
        try:
            sent = os.sendfile(out, inp, offset, min(size - offset, 1 << 30))
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.ENOSYS):
                raise
            _copy_slow(inp, out, offset)
            return
        if sent == 0:
            break
        offset += sent


def _copy_slow(inp: int, out: int, offset: int) -> None:
    os.lseek(inp, offset, os.SEEK_SET)
    while chunk := os.read(inp, 1 << 20):
        os.write(out, chunk)


def _open_dir(root_fd: int, rel: str) -> int:
    return mkdir_beneath(root_fd, rel)


def _is_dir_in_root(root_fd: int, rel: str) -> bool:
    try:
        fd = open_beneath(root_fd, rel, os.O_PATH | os.O_DIRECTORY)
    except OSError:
        return False
    os.close(fd)
    return True


def copy_source(
    root_fd: int,
    entries: Iterable[Entry],
    source: Source,
    target: str,
    writer: Writer,
) -> None:
    """Copy one source to ``target`` (a directory for directory sources, else a file path)."""
    if not source.is_dir:
        parent, name = posixpath.split(target)
        pfd = _open_dir(root_fd, parent)
        try:
            _write_entry(writer, pfd, name, Entry("", source.path, source.st))
        finally:
            os.close(pfd)
        return
    top = _open_dir(root_fd, target)
    fds: dict[str, int] = {"": top}
    try:
        for entry in entries:
            if entry.rel == "":
                continue
            parent, name = posixpath.split(entry.rel)
            found = fds.get(parent)
            if found is None:
                continue  # below an excluded directory
            pfd = found
            if stat.S_ISDIR(entry.st.st_mode):
                fds[entry.rel] = writer.subdir(pfd, name, entry.st)
            else:
                _write_entry(writer, pfd, name, entry)
        writer.finish_dirs()
    finally:
        os.close(top)


def _write_entry(writer: Writer, pfd: int, name: str, entry: Entry) -> None:
    mode = entry.st.st_mode
    if stat.S_ISREG(mode):
        writer.file(pfd, name, entry.path, entry.st)
    elif stat.S_ISLNK(mode):
        writer.symlink(pfd, name, os.readlink(entry.path), entry.st)
    elif stat.S_ISDIR(mode):
        writer.subdir(pfd, name, entry.st)
        writer.finish_dirs()
    # sockets, fifos and devices in a context are skipped as Docker does


def place(
    root_fd: int,
    sources: list[Source],
    dest: str,
    explicit_dir: bool,
    keyword: str,
) -> list[tuple[Source, str]]:
    """Where each source goes: (source, target path in the rootfs)."""
    if len(sources) > 1 and not explicit_dir:
        raise ContextError(MULTI_SOURCE.format(kw=keyword))
    out = []
    for source in sources:
        if source.is_dir:
            out.append((source, dest))
        elif explicit_dir or _is_dir_in_root(root_fd, dest):
            out.append((source, posixpath.join(dest, posixpath.basename(source.name or "."))))
        else:
            out.append((source, dest))
    return out


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


def extract_archive(root_fd: int, path: str, dest: str) -> None:
    from cargohold.store.archive import apply_layer, open_decompressed

    dfd = _open_dir(root_fd, dest)
    try:
        # the directory as resolved in-root; nothing else runs in the rootfs meanwhile
        real = os.readlink(f"/proc/self/fd/{dfd}")
    finally:
        os.close(dfd)
    with open(path, "rb") as f:
        apply_layer(open_decompressed(f), real, whiteouts="delete")


@dataclass(frozen=True)
class Download:
    """A URL body in the download cache."""

    url: str
    path: Path  # cached body
    digest: str  # sha256:<hex>
    mtime_ns: int
    filename: str


def fetch_url(url: str, cache_dir: Path, checksum: str = "") -> Download:
    """Download ``url`` (revalidated with ETag / Last-Modified against the cached copy)."""
    import email.utils

    import urllib3

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
    http = urllib3.PoolManager(timeout=urllib3.Timeout(connect=30, read=60),
                               retries=urllib3.Retry(3, redirect=5))
    try:
        resp = http.request("GET", url, headers=headers, preload_content=False)
    except urllib3.exceptions.HTTPError as exc:
        raise InvalidArgument(f'failed to load cache key: Get "{url}": {exc}') from None
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
