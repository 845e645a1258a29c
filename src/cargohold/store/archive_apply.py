"""Safe extraction of layer tars (``apply_layer``).

Every entry is created with fd-relative system calls: each directory on the way is opened with
``O_DIRECTORY | O_NOFOLLOW`` relative to its parent, starting at the layer root, so no entry can
create, change or delete anything outside the root, whatever symlinks the archive (or the content
already under the root) holds.  ``tarfile`` only parses headers; it never touches the file system.

Names are cleaned as moby does (``filepath.Clean`` then joined under the root): ``./a`` and
``/a`` both mean ``a``; a name that still starts with ``..`` after cleaning is rejected.
"""

from __future__ import annotations

import errno
import io
import os
import posixpath
import stat
import tarfile
from typing import IO, BinaryIO, Literal, cast

from cargohold.errors import Forbidden, Internal, InvalidArgument
from cargohold.store.compression import buffered
from cargohold.store.tarsplit import SplitRecorder

WhiteoutMode = Literal["overlay", "delete"]

BLOCK = 512
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
_XATTR_PAX = "SCHILY.xattr."
# xattrs an archive must never set: they steer overlayfs itself.
_FORBIDDEN_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_CHUNK = 1 << 20
_MAX_CACHED_DIRS = 256
_MAX_METADATA = 8 << 20
_IGNORED_XATTR_ERRNOS = (errno.ENOTSUP, errno.EPERM)


class UnsafeArchive(InvalidArgument):
    """An archive entry tried to reach outside the layer root."""


def _unsafe(name: str, why: str) -> UnsafeArchive:
    return UnsafeArchive(f"unsafe tar entry {name!r}: {why}")


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
            out[attr] = value.encode("utf-8", "surrogateescape")
    return out


class _Source:
    """Forward-only, position-tracking reader that ``tarfile.TarFile`` can drive in "r" mode.

    TarFile in stream mode ("r|") copies its whole buffer on every small read; in "r" mode it
    only needs ``tell`` and forward ``seek``, which this class provides by skipping.
    """

    def __init__(self, stream: BinaryIO, recorder: SplitRecorder | None = None) -> None:
        reader = stream if isinstance(stream, io.BufferedReader) else buffered(stream)
        self._f = cast(io.BufferedReader, reader)
        self.pos = 0
        self.last_block = b""
        self._buf = bytearray(_CHUNK)
        self.recorder = recorder

    def read(self, n: int = -1) -> bytes:
        # tarfile reads headers, PAX records and GNU long names this way (content goes
        # through copy_to); cap them as Go's archive/tar does, or a header could claim GBs.
        if n < 0 or n > _MAX_METADATA:
            raise InvalidArgument(f"invalid tar archive: metadata entry of {n} bytes")
        data = self._f.read(n)
        self.pos += len(data)
        if self.recorder is not None:
            self.recorder.raw(data)
        if n == BLOCK:
            self.last_block = data
        return data

    def tell(self) -> int:
        return self.pos

    def seek(self, target: int, whence: int = 0) -> int:
        if whence != 0 or target < self.pos:
            raise Internal("layer tar reader cannot seek backwards")
        view = memoryview(self._buf)
        while self.pos < target:
            got = self._f.readinto(view[: min(_CHUNK, target - self.pos)])
            if not got:
                break
            self.pos += got
            if self.recorder is not None:
                self.recorder.raw(view[:got])
        return self.pos

    def drain(self) -> None:
        """Read to the end (padding and trailing blocks after the archive's last entry)."""
        view = memoryview(self._buf)
        while got := self._f.readinto(view):
            self.pos += got
            if self.recorder is not None:
                self.recorder.raw(view[:got])

    def copy_to(self, fd: int, size: int, name: str, rel: str) -> None:
        """Write the next ``size`` bytes of the archive (the content of ``rel``) to ``fd``."""
        if self.recorder is not None:
            self.recorder.file(rel, size)
        view = memoryview(self._buf)
        while size:
            got = self._f.readinto(view[: min(_CHUNK, size)])
            if not got:
                raise InvalidArgument(f"truncated tar archive: content of {name!r} is cut short")
            self.pos += got
            size -= got
            chunk = view[:got]
            while chunk:
                chunk = chunk[os.write(fd, chunk) :]


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
        """An fd of directory ``rel`` reached without following any symlink (None: missing)."""
        fd = self.dirs.get(rel)
        if fd is not None:
            return fd
        parent, _, base = rel.rpartition("/")
        pfd = self.dir_fd(parent, entry, create)
        if pfd is None:
            return None
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
                raise _unsafe(entry, f"path component {rel!r} is a symbolic link") from None
            raise InvalidArgument(f"tar entry {entry!r}: {rel!r} is not a directory") from None
        self.dirs[rel] = fd
        return fd

    def trim_cache(self) -> None:
        if len(self.dirs) > _MAX_CACHED_DIRS:
            root = self.dirs.pop("")
            for fd in self.dirs.values():
                os.close(fd)
            self.dirs = {"": root}

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

    def apply(self, info: tarfile.TarInfo, src: _Source, tar: tarfile.TarFile) -> None:
        rel = clean_name(info.name)
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
        reader: tuple[_Source, tarfile.TarFile],
    ) -> None:
        src, tar = reader
        try:
            fd = os.open(base, _FILE_FLAGS, 0o600, dir_fd=pfd)
        except FileExistsError:
            self.remove(pfd, base, rel)
            fd = os.open(base, _FILE_FLAGS, 0o600, dir_fd=pfd)
        try:
            if info.issparse():
                extracted = tar.extractfile(info)
                assert extracted is not None
                copy_stream(extracted, fd)
            elif info.size:
                if src.pos != info.offset_data:
                    src.seek(info.offset_data)
                src.copy_to(fd, info.size, info.name, rel)
            self.meta_fd(fd, info)
        finally:
            os.close(fd)
        self.written += info.size

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
        for name in os.listdir(fd):
            path = f"{rel}/{name}" if rel else name
            if path not in self.seen:
                self.remove(fd, name, path)
                continue
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                child = self.dir_fd(path, path, create=False)
                if child is not None:
                    self.prune(child, path)

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


def copy_stream(src: IO[bytes], fd: int) -> None:
    while chunk := src.read(_CHUNK):
        view = memoryview(chunk)
        while view:
            view = view[os.write(fd, view) :]


def remove_tree_at(pfd: int, name: str) -> None:
    """``rm -rf`` of ``name`` in directory ``pfd``, never following symlinks."""
    try:
        fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
    except OSError as exc:
        if exc.errno in (errno.ENOTDIR, errno.ELOOP):
            os.unlink(name, dir_fd=pfd)
            return
        if exc.errno == errno.ENOENT:
            return
        raise
    try:
        for child in os.listdir(fd):
            st = os.stat(child, dir_fd=fd, follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                remove_tree_at(fd, child)
            else:
                os.unlink(child, dir_fd=fd)
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=pfd)


def _next(tar: tarfile.TarFile, src: _Source) -> tarfile.TarInfo | None:
    try:
        info = tar.next()
    except tarfile.TarError as exc:
        raise InvalidArgument(f"invalid tar archive: {exc}") from None
    tar.members.clear()  # type: ignore[attr-defined]  # keep memory flat on huge archives
    if info is None:
        last = src.last_block
        if last and last != bytes(BLOCK):
            what = "truncated header" if len(last) < BLOCK else "invalid header"
            raise InvalidArgument(f"invalid tar archive: {what} at offset {src.pos - len(last)}")
    return info


def _open_tar(src: _Source) -> tarfile.TarFile | None:
    try:
        return tarfile.TarFile(fileobj=cast(IO[bytes], src), mode="r")
    except tarfile.TarError as exc:
        if src.pos == 0:
            return None  # an empty stream is an empty layer, as in Go's archive/tar
        raise InvalidArgument(f"invalid tar archive: {exc}") from None


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
    src = _Source(stream, recorder)
    try:
        tar = _open_tar(src)
        if tar is None:
            src.drain()
            return 0
        while (info := _next(tar, src)) is not None:
            applier.trim_cache()
            try:
                applier.apply(info, src, tar)
            except OSError as exc:
                raise Internal(f"applying tar entry {info.name!r}: {exc}") from exc
        applier.finish_dirs()
        if recorder is not None:
            src.drain()
        return applier.written
    finally:
        applier.close()
        os.close(root_fd)
