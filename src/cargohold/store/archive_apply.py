"""Safe extraction of layer tars (``apply_layer``).

Every entry is created with fd-relative system calls: each directory on the way is opened with
``O_DIRECTORY | O_NOFOLLOW`` relative to its parent, starting at the layer root, so no entry can
create, change or delete anything outside the root, whatever symlinks the archive (or the content
already under the root) holds.  ``tarfile`` only parses headers; it never touches the file system.

Names are cleaned as moby does (``filepath.Clean`` then joined under the root): ``./a`` and
``/a`` both mean ``a``; a name that still starts with ``..`` after cleaning is rejected.
Header fields no system call can take are refused first (``archive_checks``).  Sparse members
are written with their holes left as holes (seek over them, ``ftruncate`` to the real size).

Nothing here recurses: directories are reached from the deepest cached ancestor in a loop and
trees are removed with an explicit stack, so the depth of a tree costs no Python frames.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
import tarfile
from collections.abc import Iterator
from typing import BinaryIO, Literal

from cargohold.errors import Forbidden, Internal, InvalidArgument
from cargohold.store.archive_checks import (
    check_header,
    check_path,
    check_xattr,
    shown,
    sparse_regions,
)
from cargohold.store.archive_reader import BLOCK as BLOCK  # re-exported
from cargohold.store.archive_reader import (
    PARSE_ERRORS,
    TarSource,
    malformed,
    next_entry,
    open_tar,
    read_header,
)
from cargohold.store.tarsplit import SplitRecorder
from cargohold.util.rmtree import DirPath, remove_tree_at

WhiteoutMode = Literal["overlay", "delete"]

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
_XATTR_PAX = "SCHILY.xattr."
# xattrs an archive must never set: they steer overlayfs itself.
_FORBIDDEN_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_MAX_CACHED_DIRS = 256
_IGNORED_XATTR_ERRNOS = (errno.ENOTSUP, errno.EPERM)
# What a system call says when the archive's data does not fit (a name, an xattr, a size).
_INPUT_ERRNOS = (errno.ENAMETOOLONG, errno.EINVAL, errno.E2BIG, errno.ERANGE, errno.EFBIG,
                 errno.EOVERFLOW)


class UnsafeArchive(InvalidArgument):
    """An archive entry tried to reach outside the layer root."""


def _unsafe(name: str, why: str) -> UnsafeArchive:
    return UnsafeArchive(f"unsafe tar entry {shown(name)}: {why}")


def clean_name(name: str) -> str:
    """The root-relative path of a tar entry name ("" is the root itself).

    Follows moby: the name is cleaned lexically and taken relative to the root, so ``/etc``
    means ``etc``; anything that still climbs out (``../x``, ``a/../../x``) is rejected.
    """
    if "\x00" in name:
        raise _unsafe(name, "NUL byte in name")
    path = posixpath.normpath(name).lstrip("/")
    if path in ("", "."):
        return ""
    if path == ".." or path.startswith("../"):
        raise _unsafe(name, "path escapes the layer root")
    return path


def xattrs_of(info: tarfile.TarInfo) -> dict[str, bytes]:
    """The xattrs a tar header carries (PAX ``SCHILY.xattr.*``), minus overlay's own."""
    out: dict[str, bytes] = {}
    for key, value in info.pax_headers.items():
        if not key.startswith(_XATTR_PAX):
            continue
        attr = key[len(_XATTR_PAX) :]
        if attr and not attr.startswith(_FORBIDDEN_XATTR_PREFIXES):
            check_xattr(info, attr)
            out[attr] = value.encode("utf-8", "surrogateescape")
    return out


class _Applier:
    """Applies entries one by one under an open root directory fd."""

    def __init__(
        self, root_fd: int, whiteouts: WhiteoutMode, recorder: SplitRecorder | None = None
    ) -> None:
        self.whiteouts = whiteouts
        self.recorder = recorder
        self.dirs: dict[str, int] = {"": root_fd}
        self.seen: set[str] = set()  # every path this archive created or merged
        self.dir_meta: dict[str, tuple[int, int]] = {}  # path -> (mode, mtime ns), set last
        self.privileged = os.geteuid() == 0
        self.written = 0

    # -- directories -------------------------------------------------------------------------

    def dir_fd(self, rel: str, entry: str, create: bool) -> int | None:
        """An fd of directory ``rel`` reached without following any symlink (None: missing).

        The walk starts at the deepest cached ancestor; directories on the way are cached
        while the cache has room, else closed once the next one is open.
        """
        fd = self.dirs.get(rel)
        if fd is not None:
            return fd
        end = len(rel)
        while end > 0:
            end = rel.rfind("/", 0, end)
            if end > 0 and (fd := self.dirs.get(rel[:end])) is not None:
                break
        if end <= 0:
            end, fd = -1, self.dirs[""]
        assert fd is not None
        spare: int | None = None  # an open, uncached directory we are standing in
        try:
            while end < len(rel):
                stop = rel.find("/", end + 1)
                stop = len(rel) if stop < 0 else stop
                here = rel[:stop]
                child = self._open_dir(fd, rel[end + 1 : stop], here, entry, create)
                if child is None:
                    return None
                if spare is not None:
                    os.close(spare)
                    spare = None
                if stop == len(rel) or len(self.dirs) < _MAX_CACHED_DIRS:
                    self.dirs[here] = child
                else:
                    spare = child
                fd, end = child, stop
            return fd
        finally:
            if spare is not None:
                os.close(spare)

    def _open_dir(self, pfd: int, base: str, rel: str, entry: str, create: bool) -> int | None:
        try:
            fd = os.open(base, _DIR_FLAGS, dir_fd=pfd)
        except FileNotFoundError:
            if not create:
                return None
            os.mkdir(base, 0o755, dir_fd=pfd)
            fd = os.open(base, _DIR_FLAGS, dir_fd=pfd)
            os.chmod(fd, 0o755)
            self.seen.add(rel)
        except OSError as exc:
            if exc.errno not in (errno.ENOTDIR, errno.ELOOP):
                raise
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode):
                raise _unsafe(entry, f"path component {shown(rel)} is a symbolic link") from None
            raise InvalidArgument(
                f"tar entry {shown(entry)}: {shown(rel)} is not a directory") from None
        return fd

    def trim_cache(self) -> None:
        """Once the cache is full, close its older half: the newest directories (where the
        archive is working: a deep chain's parent, the dirs being finished) stay."""
        if len(self.dirs) <= _MAX_CACHED_DIRS:
            return
        excess = len(self.dirs) - _MAX_CACHED_DIRS // 2
        for key in [k for k in self.dirs if k][:excess]:
            os.close(self.dirs.pop(key))

    def close(self) -> None:
        self.dirs.pop("", None)
        for fd in self.dirs.values():
            os.close(fd)
        self.dirs.clear()

    def forget(self, rel: str) -> None:
        """Drop cached fds of ``rel`` and everything below it (it is being removed)."""
        prefix = rel + "/"
        for key in [k for k in self.dirs if k == rel or k.startswith(prefix)]:
            os.close(self.dirs.pop(key))

    def remove(self, pfd: int, base: str, rel: str) -> bool:
        """Remove ``base`` (any type, recursively) from directory ``pfd``; False if absent."""
        try:
            st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if self.recorder is not None:
            self.recorder.before_remove(rel)
        if stat.S_ISDIR(st.st_mode):
            self.forget(rel)
            remove_tree_at(pfd, base)
        else:
            os.unlink(base, dir_fd=pfd)
        return True

    # -- metadata ----------------------------------------------------------------------------

    def set_xattrs(self, target: int | str, info: tarfile.TarInfo) -> None:
        for attr, value in xattrs_of(info).items():
            try:
                if isinstance(target, int):
                    os.setxattr(target, attr, value)
                else:
                    os.setxattr(target, attr, value, follow_symlinks=False)
            except OSError as exc:
                # Like moby: file systems without xattrs, or no privilege, are not fatal.
                if exc.errno not in _IGNORED_XATTR_ERRNOS:
                    raise

    def meta_fd(self, fd: int, info: tarfile.TarInfo) -> None:
        if self.privileged:
            os.fchown(fd, info.uid, info.gid)
        self.set_xattrs(fd, info)
        os.fchmod(fd, info.mode & 0o7777)  # after chown: chown clears setuid/setgid
        ns = mtime_ns(info)
        os.utime(fd, ns=(ns, ns))

    def meta_at(self, pfd: int, base: str, info: tarfile.TarInfo, chmod: bool) -> None:
        """Metadata of a node that must not be opened (symlink, device, fifo)."""
        if self.privileged:
            os.chown(base, info.uid, info.gid, dir_fd=pfd, follow_symlinks=False)
        if chmod:  # we just created it, so it is not a symlink
            os.chmod(base, info.mode & 0o7777, dir_fd=pfd)
        if xattrs_of(info):
            self.set_xattrs(f"/proc/self/fd/{pfd}/{base}", info)
        ns = mtime_ns(info)
        os.utime(base, ns=(ns, ns), dir_fd=pfd, follow_symlinks=False)

    # -- entries -----------------------------------------------------------------------------

    def apply(self, info: tarfile.TarInfo, src: TarSource, tar: tarfile.TarFile) -> None:
        rel = clean_name(info.name)
        check_path(info, "name", rel)
        check_header(info)
        parent, _, base = rel.rpartition("/")
        if base.startswith(WHITEOUT_PREFIX):
            self.whiteout(info, parent, base)
            return
        if rel == "":
            if not info.isdir():
                raise _unsafe(info.name, "cannot replace the layer root")
            self.directory(info, self.dirs[""], rel)
            return
        pfd = self.dir_fd(parent, info.name, create=True)
        assert pfd is not None
        self.seen.add(rel)
        if info.isreg():
            self.regular(info, pfd, base, rel, (src, tar))
        elif info.isdir():
            self.directory(info, pfd, rel)
        elif info.issym():
            self.symlink(info, pfd, base, rel)
        elif info.islnk():
            self.hardlink(info, pfd, base, rel)
        elif info.ischr() or info.isblk() or info.isfifo():
            self.node(info, pfd, base, rel)
        else:
            kind = info.type.decode(errors="replace")
            raise InvalidArgument(f"tar entry {info.name!r}: unsupported entry type {kind!r}")

    def regular(
        self,
        info: tarfile.TarInfo,
        pfd: int,
        base: str,
        rel: str,
        reader: tuple[TarSource, tarfile.TarFile],
    ) -> None:
        src = reader[0]
        try:
            fd = os.open(base, _FILE_FLAGS, 0o600, dir_fd=pfd)
        except FileExistsError:
            self.remove(pfd, base, rel)
            fd = os.open(base, _FILE_FLAGS, 0o600, dir_fd=pfd)
        try:
            if info.sparse is not None:
                self.sparse(info, fd, rel, reader)
            elif info.size:
                if src.pos != info.offset_data:
                    src.seek(info.offset_data)
                src.copy_to(fd, info.size, info.name, rel)
            self.meta_fd(fd, info)
        finally:
            os.close(fd)
        self.written += info.size

    def sparse(self, info: tarfile.TarInfo, fd: int, rel: str,
               reader: tuple[TarSource, tarfile.TarFile]) -> None:
        """A sparse member: its data regions written where they belong, the holes left as
        holes (never written), the file cut to its real size."""
        src, tar = reader
        stored = tar.offset - info.offset_data  # type: ignore[attr-defined]
        regions = sparse_regions(info, stored)
        if src.pos != info.offset_data:
            src.seek(info.offset_data)
        src.copy_sparse(fd, regions, info.name, rel)
        os.ftruncate(fd, info.size)

    def directory(self, info: tarfile.TarInfo, pfd: int, rel: str) -> None:
        if rel:
            base = rel.rpartition("/")[2]
            try:
                os.mkdir(base, 0o700, dir_fd=pfd)
            except FileExistsError:
                st = os.stat(base, dir_fd=pfd, follow_symlinks=False)
                if not stat.S_ISDIR(st.st_mode):  # a dir over a dir merges; else replace
                    self.remove(pfd, base, rel)
                    os.mkdir(base, 0o700, dir_fd=pfd)
        fd = self.dir_fd(rel, info.name, create=False)
        assert fd is not None
        if self.privileged:
            os.fchown(fd, info.uid, info.gid)
        self.set_xattrs(fd, info)
        # Mode and mtime last: children change the mtime, and a read-only mode would stop an
        # unprivileged apply from creating them.
        self.dir_meta.pop(rel, None)
        self.dir_meta[rel] = (info.mode & 0o7777, mtime_ns(info))

    def symlink(self, info: tarfile.TarInfo, pfd: int, base: str, rel: str) -> None:
        if not info.linkname:
            raise InvalidArgument(f"tar entry {info.name!r}: symbolic link without a target")
        try:
            os.symlink(info.linkname, base, dir_fd=pfd)
        except FileExistsError:
            self.remove(pfd, base, rel)
            os.symlink(info.linkname, base, dir_fd=pfd)
        self.meta_at(pfd, base, info, chmod=False)

    def hardlink(self, info: tarfile.TarInfo, pfd: int, base: str, rel: str) -> None:
        target = clean_name(info.linkname)
        if target == rel:
            return
        if target == "":
            raise _unsafe(info.name, "hard link to the layer root")
        tparent, _, tbase = target.rpartition("/")
        tfd = self.dir_fd(tparent, info.name, create=False)
        if tfd is None:
            raise InvalidArgument(
                f"tar entry {info.name!r}: link target {info.linkname!r} not found"
            )
        # follow_symlinks=False: a link to a symlink links the symlink itself, never its target.
        for attempt in (1, 2):
            try:
                os.link(tbase, base, src_dir_fd=tfd, dst_dir_fd=pfd, follow_symlinks=False)
                return
            except FileExistsError:
                if attempt == 2:
                    raise
                self.remove(pfd, base, rel)
            except FileNotFoundError:
                raise InvalidArgument(
                    f"tar entry {info.name!r}: link target {info.linkname!r} not found"
                ) from None
            except PermissionError:
                raise InvalidArgument(
                    f"tar entry {info.name!r}: cannot hard link to {info.linkname!r}"
                ) from None

    def node(self, info: tarfile.TarInfo, pfd: int, base: str, rel: str) -> None:
        if info.isfifo():
            kind, dev = stat.S_IFIFO, 0
        else:
            kind = stat.S_IFCHR if info.ischr() else stat.S_IFBLK
            dev = os.makedev(info.devmajor, info.devminor)
        self.mknod(pfd, base, rel, kind | 0o600, dev, info.name)
        self.meta_at(pfd, base, info, chmod=True)

    def mknod(self, pfd: int, base: str, rel: str, mode: int, dev: int, entry: str) -> None:
        for attempt in (1, 2):
            try:
                os.mknod(base, mode, dev, dir_fd=pfd)
                return
            except FileExistsError:
                if attempt == 2:
                    raise
                self.remove(pfd, base, rel)
            except PermissionError:
                raise Forbidden(f"tar entry {entry!r}: creating a device node needs root") from None

    # -- whiteouts ---------------------------------------------------------------------------

    def whiteout(self, info: tarfile.TarInfo, parent: str, base: str) -> None:
        if base == OPAQUE_MARKER:
            self.opaque(info, parent)
            return
        victim = base[len(WHITEOUT_PREFIX) :]
        if victim in ("", ".", "..") or victim.startswith(WHITEOUT_PREFIX):
            raise _unsafe(info.name, "whiteout escapes its directory")
        rel = f"{parent}/{victim}" if parent else victim
        if self.whiteouts == "overlay":
            pfd = self.dir_fd(parent, info.name, create=True)
            assert pfd is not None
            self.mknod(pfd, victim, rel, stat.S_IFCHR | 0o600, 0, info.name)
            if self.privileged:
                os.chown(victim, info.uid, info.gid, dir_fd=pfd, follow_symlinks=False)
            self.seen.add(rel)
            return
        pfd = self.dir_fd(parent, info.name, create=False)
        if pfd is not None:
            self.remove(pfd, victim, rel)
        self.seen.discard(rel)

    def opaque(self, info: tarfile.TarInfo, parent: str) -> None:
        if self.whiteouts == "overlay":
            fd = self.dir_fd(parent, info.name, create=True)
            assert fd is not None
            try:
                os.setxattr(fd, OVERLAY_OPAQUE_XATTR, b"y")
            except PermissionError:
                raise Forbidden("marking an overlay directory opaque needs root") from None
            return
        fd = self.dir_fd(parent, info.name, create=False)
        if fd is not None:
            self.prune(fd, parent)

    def prune(self, fd: int, rel: str) -> None:
        """Delete what under ``rel`` did not come from this archive (an opaque dir in vfs)."""
        path = DirPath(fd)
        try:
            pending = [self._prune_dir(fd, rel)]  # per level: kept subdirectories to visit
            while pending:
                if not pending[-1]:
                    pending.pop()
                    if path.names:
                        path.pop()
                    continue
                name = pending[-1].pop()
                try:
                    child = os.open(name, _DIR_FLAGS, dir_fd=path.fd())
                except OSError as exc:
                    if exc.errno in (errno.ENOTDIR, errno.ELOOP, errno.ENOENT):
                        continue  # not a directory (any more)
                    raise
                path.push(name, child)
                pending.append(self._prune_dir(child, "/".join([rel, *path.names]).lstrip("/")))
        finally:
            path.close()

    def _prune_dir(self, fd: int, rel: str) -> list[str]:
        """Remove the entries of directory ``rel`` this archive did not make; return the
        subdirectories it did (to be pruned in turn)."""
        keep = []
        for name in os.listdir(fd):
            path = f"{rel}/{name}" if rel else name
            if path not in self.seen:
                self.remove(fd, name, path)
            elif stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                keep.append(name)
        return keep

    # -- end ---------------------------------------------------------------------------------

    def finish_dirs(self) -> None:
        for rel, (mode, ns) in self.dir_meta.items():
            try:
                fd = self.dir_fd(rel, rel, create=False)
            except InvalidArgument:
                continue  # replaced by a non-directory later in the archive
            if fd is not None:
                os.chmod(fd, mode)
                os.utime(fd, ns=(ns, ns))
            self.trim_cache()


def mtime_ns(info: tarfile.TarInfo) -> int:
    return round(float(info.mtime) * 1_000_000_000)


def open_stream(stream: BinaryIO) -> tarfile.TarFile:
    """``tarfile`` over a forward-only ``stream`` (for readers that re-emit entries, as ADD of
    a local archive does); read its entries with :func:`checked_members`."""
    try:
        return tarfile.open(fileobj=stream, mode="r|")
    except tarfile.TarError as exc:
        raise InvalidArgument(f"invalid tar archive: {exc}") from None
    except PARSE_ERRORS as exc:
        raise malformed(exc, 0) from None


def checked_members(tar: tarfile.TarFile) -> Iterator[tarfile.TarInfo]:
    """The members of ``tar`` with their headers checked as ``apply_layer`` checks them:
    malformed headers and values no system call takes are InvalidArgument naming the entry
    and the field (names are not cleaned here, only checked)."""
    while True:
        info = read_header(tar, tar.offset)  # type: ignore[attr-defined]
        if info is None:
            return
        check_path(info, "name", clean_name(info.name))
        check_header(info)
        if info.sparse is not None and info.isreg():
            sparse_regions(info, tar.offset - info.offset_data)  # type: ignore[attr-defined]
        yield info


def apply_layer(
    stream: BinaryIO,
    root: os.PathLike[str] | str,
    *,
    whiteouts: WhiteoutMode,
    recorder: SplitRecorder | None = None,
) -> int:
    """Extract the uncompressed tar ``stream`` into the existing directory ``root``.

    ``whiteouts="overlay"``: ``.wh.NAME`` becomes a 0/0 character device and ``.wh..wh..opq``
    the ``trusted.overlay.opaque=y`` xattr (root is an overlay layer dir).  ``"delete"``:
    ``.wh.NAME`` deletes NAME and ``.wh..wh..opq`` empties its directory of everything this
    archive did not create (root is a full copy of the parent layer, as in vfs).

    Returns the number of content bytes written.  Raises UnsafeArchive for any entry that would
    reach outside ``root`` and InvalidArgument for truncated or malformed input; ``root`` is
    then left half-written and the caller deletes it.  With a ``recorder`` the stream is read
    to its end and recorded as a tar-split (see tarsplit.py).
    """
    if whiteouts not in ("overlay", "delete"):
        raise InvalidArgument(f"unknown whiteout mode {whiteouts!r}")
    root_fd = os.open(os.fspath(root), _DIR_FLAGS)
    applier = _Applier(root_fd, whiteouts, recorder)
    if recorder is not None:
        recorder.root_fd = root_fd
    src = TarSource(stream, recorder)
    try:
        tar = open_tar(src)
        if tar is None:
            src.drain()
            return 0
        while (info := next_entry(tar, src)) is not None:
            applier.trim_cache()
            try:
                applier.apply(info, src, tar)
            except OSError as exc:
                if exc.errno in _INPUT_ERRNOS:
                    raise InvalidArgument(
                        f"invalid tar entry {shown(info.name)}: {exc.strerror}") from exc
                raise Internal(f"applying tar entry {shown(info.name)}: {exc}") from exc
        applier.finish_dirs()
        if recorder is not None:
            src.drain()
        return applier.written
    finally:
        applier.close()
        os.close(root_fd)
