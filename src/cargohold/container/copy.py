"""``cp`` between a container's file system and the host (or a tar stream), Docker's rules.

The caller mounts the container and passes its merged directory as ``rootfs`` plus the
container's volumes and binds as :class:`MountPoint` s (they live outside the merged dir).
Container paths are resolved as the container would see them: symlinks are evaluated inside
the container (absolute targets restart at its ``/``), ``..`` stops at ``/`` and a path that
reaches a mount point continues in the mount's source.  Every byte written into the container
goes through :mod:`cargohold.util.securejoin` descriptors (``O_NOFOLLOW`` on every entry,
intermediate symlinks resolved in-root), so hostile symlinks, ``..`` chains or a link swapped
in mid-copy can never put anything outside the container root or the mount it is in; every
byte read from a container is read through :mod:`cargohold.util.fdtree` descriptors, so no
swapped-in link can make a copy read host files.

Limits: symlinks are resolved across mounts by path (not by descriptor) when *locating* the
copy's top path; entries below that are written relative to the mount the top path is in, so
a copy into ``/`` whose tree crosses a mount point writes into the mount only for entries
whose names lead there lexically.  Extended attributes are not copied.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat
import tarfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import suppress
from pathlib import Path
from typing import IO, Literal

import msgspec

from cargohold.errors import CargoholdError, Forbidden, Internal, InvalidArgument, NotFound
from cargohold.util import fdtree
from cargohold.util.securejoin import MAX_SYMLINKS, open_root, resolve_parent

Owner = Literal["preserve", "root", "caller"]
Opener = Callable[[], IO[bytes]]
_ENTRY = tuple[str, tarfile.TarInfo, Opener | None]  # (relative name, header, data opener)


class MountPoint(msgspec.Struct, frozen=True):
    """A mount inside the container: where it appears and the host directory behind it."""

    destination: str
    source: str
    readonly: bool = False


def _clean(path: str) -> str:
    return posixpath.normpath("/" + path).replace("//", "/")


def _split(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


class _Loc(msgspec.Struct, frozen=True):
    root: str  # host directory standing for a root (the rootfs or a mount source)
    rel: str  # path below ``root`` (may contain in-root symlinks in the middle only)
    ctr: str  # cleaned container path
    readonly: bool
    in_mount: bool = False


class ContainerFS:
    """The container's view: the rootfs with mounts laid over it."""

    def __init__(
        self,
        rootfs: str | Path,
        mounts: Sequence[MountPoint | tuple[str, str]] = (),
        *,
        name: str = "",
        readonly_rootfs: bool = False,
    ) -> None:
        self.rootfs = os.fspath(rootfs)
        self.name = name
        self.readonly_rootfs = readonly_rootfs
        points = [m if isinstance(m, MountPoint) else MountPoint(m[0], m[1]) for m in mounts]
        self.mounts = {_clean(m.destination): m for m in points}

    def _map(self, ctr: str) -> _Loc:
        """Lexical mapping of a clean container path to the root it lives in."""
        best = ""
        for dest in self.mounts:
            if (ctr == dest or ctr.startswith(dest + "/")) and len(dest) > len(best):
                best = dest
        if not best:
            return _Loc(self.rootfs, ctr.lstrip("/"), ctr, self.readonly_rootfs)
        mount = self.mounts[best]
        rest = ctr[len(best) :].lstrip("/")
        if not rest and not os.path.isdir(mount.source):  # a bind-mounted file
            return _Loc(os.path.dirname(mount.source), os.path.basename(mount.source), ctr,
                        mount.readonly, True)  # fmt: skip
        return _Loc(mount.source, rest, ctr, mount.readonly, True)

    def locate(self, path: str, follow_final: bool) -> _Loc:
        """Resolve ``path`` the way the container sees it (symlinks in scope)."""
        resolved: list[str] = []
        pending = _split(path)
        pending.reverse()
        links = 0
        while pending:
            name = pending.pop()
            if name == "..":
                if resolved:
                    resolved.pop()
                continue
            if not pending and not follow_final:
                resolved.append(name)
                break
            loc = self._map("/" + "/".join([*resolved, name]))
            host = os.path.join(loc.root, loc.rel)
            try:
                st = os.lstat(host)
            except OSError:
                resolved.append(name)
                continue
            if not stat.S_ISLNK(st.st_mode):
                resolved.append(name)
                continue
            links += 1
            if links > MAX_SYMLINKS:
                raise InvalidArgument(f"too many levels of symbolic links: {path}")
            target = os.readlink(host)
            if target.startswith("/"):
                resolved = []
            more = _split(target)
            more.reverse()
            pending.extend(more)
        return self._map("/" + "/".join(resolved))

    def not_found(self, path: str) -> NotFound:
        return NotFound(f"Could not find the file {path} in container {self.name}")


# -- sources -----------------------------------------------------------------------------------


def _header(name: str, st: os.stat_result, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name or ".")
    info.type = kind
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mtime = int(st.st_mtime)
    info.linkname = linkname
    if kind == tarfile.REGTYPE:
        info.size = st.st_size
    if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    return info


def _entry(node: fdtree.Node, rel: str) -> _ENTRY | None:
    """The copy entry of one walked node, named ``rel``; None for what a tar cannot hold or
    what changed since it was listed."""
    st, mode = node.st, node.st.st_mode
    if stat.S_ISREG(mode):
        parent, name = node.parent, node.name

        def opener() -> IO[bytes]:
            opened = fdtree.open_regular(parent, name)
            if opened is None:
                raise FileNotFoundError(errno.ENOENT, "changed during the copy", rel)
            return os.fdopen(opened[0], "rb")

        return rel, _header(rel, st, tarfile.REGTYPE), opener
    if stat.S_ISLNK(mode):
        target = fdtree.readlink_at(node.parent, node.name)
        return None if target is None else (rel, _header(rel, st, tarfile.SYMTYPE, target), None)
    if stat.S_ISFIFO(mode):
        return rel, _header(rel, st, tarfile.FIFOTYPE), None
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        kind = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
        return rel, _header(rel, st, kind), None
    if stat.S_ISDIR(mode):
        return rel, _header(rel, st, tarfile.DIRTYPE), None
    return None


def _walk(dir_fd: int, name: str, rel: str, ctr: str, fs: ContainerFS | None) -> Iterator[_ENTRY]:
    """Entries for ``name`` in ``dir_fd`` and below, read by descriptors (``util/fdtree``:
    never through a symlink, also one swapped in mid-copy); crosses into the container's
    mounts when an entry below is a mount point."""
    top = fdtree.node_at(dir_fd, name, rel, os.stat(name, dir_fd=dir_fd, follow_symlinks=False))
    if top is None:
        return
    try:
        entry = _entry(top, rel)
        if entry is not None:
            yield entry
        if top.fd < 0:
            return
        base = ctr.rstrip("/")
        mounts = fs.mounts if fs is not None else {}
        # node.rel is relative to the top: below it, the container path and the entry's name
        for node in fdtree.walk(top.fd, enter=lambda n: f"{base}/{n.rel}" not in mounts):
            child_rel, child_ctr = fdtree.join(rel, node.rel), f"{base}/{node.rel}"
            if fs is not None and child_ctr in mounts:
                yield from _walk_mount(fs, child_ctr, child_rel)
                continue
            entry = _entry(node, child_rel)
            if entry is not None:
                yield entry
    finally:
        if top.fd >= 0:
            os.close(top.fd)


def _walk_mount(fs: ContainerFS, ctr: str, rel: str) -> Iterator[_ENTRY]:
    loc = fs._map(ctr)
    root_fd = open_root(loc.root)
    try:
        if loc.rel:
            yield from _walk(root_fd, loc.rel, rel, ctr, fs)
        else:
            yield from _walk(root_fd, ".", rel, ctr, fs)
    finally:
        os.close(root_fd)


def _walk_loc(fs: ContainerFS, loc: _Loc, display: str) -> Iterator[_ENTRY]:
    root_fd = open_root(loc.root)
    try:
        try:
            parent, name = resolve_parent(root_fd, loc.rel)
        except OSError:
            raise fs.not_found(display) from None
        try:
            try:
                os.stat(name or ".", dir_fd=parent, follow_symlinks=False)
            except OSError:
                raise fs.not_found(display) from None
            yield from _walk(parent, name or ".", "", loc.ctr, fs)
        finally:
            os.close(parent)
    finally:
        os.close(root_fd)


def _tar_entries(stream: IO[bytes]) -> Iterator[_ENTRY]:
    """Entries of a tar stream; names are cleaned and may not climb out of the destination."""
    with tarfile.open(fileobj=stream, mode="r|*") as tf:
        for member in tf:
            rel = posixpath.normpath("/" + member.name).lstrip("/")
            if ".." in member.name.split("/"):
                raise InvalidArgument(f"{member.name!r} is outside of the destination")
            if member.islnk():
                member.linkname = posixpath.normpath("/" + member.linkname).lstrip("/")
            data = member

            def opener(m: tarfile.TarInfo = data) -> IO[bytes]:
                fobj = tf.extractfile(m)
                assert fobj is not None
                return fobj

            yield rel, member, opener if member.isreg() else None


# -- sinks -------------------------------------------------------------------------------------


def _write_tar(entries: Iterator[_ENTRY], arcroot: str, out: IO[bytes]) -> None:
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for rel, info, opener in entries:
            info.name = posixpath.join(arcroot, rel) if rel else arcroot
            info.uname = info.gname = ""
            if opener is None:
                tf.addfile(info)
            else:
                with opener() as data:
                    tf.addfile(info, data)


class _Extractor(msgspec.Struct):
    """Writes entries below ``base`` inside the root ``root_fd``; the top entry becomes
    ``top`` ("" = merge the top directory's contents into ``base``)."""

    root_fd: int
    base: str
    top: str
    owner: Owner

    def path_of(self, rel: str) -> str:
        parts = [p for p in (self.base, self.top, rel) if p]
        return "/".join(parts)

    def run(self, entries: Iterator[_ENTRY]) -> None:
        dirs: list[tuple[str, tarfile.TarInfo]] = []
        for rel, info, opener in entries:
            if not rel and not self.top:
                continue  # contents-only copy: the destination directory stays as it is
            path = self.path_of(rel)
            self.put(path, info, opener)
            if info.isdir():
                dirs.append((path, info))
        for path, info in reversed(dirs):  # modes and times after the contents are in
            parent, name = resolve_parent(self.root_fd, path)
            try:
                self.meta(parent, name, info)
            finally:
                os.close(parent)

    def put(self, path: str, info: tarfile.TarInfo, opener: Opener | None) -> None:
        parent, name = resolve_parent(self.root_fd, path)
        try:
            if not name:
                raise InvalidArgument(f"invalid destination path: {path!r}")
            self.clear(parent, name, info)
            if info.isdir():
                if not _exists_dir(parent, name):
                    os.mkdir(name, 0o700, dir_fd=parent)
                return
            if info.isreg() and opener is not None:
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
                fd = os.open(name, flags, 0o600, dir_fd=parent)
                with os.fdopen(fd, "wb") as out, opener() as data:
                    while chunk := data.read(1 << 20):
                        out.write(chunk)
            elif info.issym():
                os.symlink(info.linkname, name, dir_fd=parent)
            elif info.islnk():
                self.hardlink(parent, name, info.linkname)
            elif info.isfifo():
                os.mkfifo(name, 0o600, dir_fd=parent)
            elif info.ischr() or info.isblk():
                kind = stat.S_IFCHR if info.ischr() else stat.S_IFBLK
                dev = os.makedev(info.devmajor, info.devminor)
                os.mknod(name, kind | 0o600, dev, dir_fd=parent)
            else:
                return
            self.meta(parent, name, info)
        finally:
            os.close(parent)

    def clear(self, parent: int, name: str, info: tarfile.TarInfo) -> None:
        try:
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
        except FileNotFoundError:
            return
        if stat.S_ISDIR(st.st_mode):
            if not info.isdir():
                raise InvalidArgument(f"cannot overwrite directory {name!r} with non-directory")
            return
        os.unlink(name, dir_fd=parent)

    def hardlink(self, parent: int, name: str, target: str) -> None:
        src_parent, src_name = resolve_parent(self.root_fd, self.path_of(target))
        try:
            os.link(src_name, name, src_dir_fd=src_parent, dst_dir_fd=parent,
                    follow_symlinks=False)  # fmt: skip
        finally:
            os.close(src_parent)

    def meta(self, parent: int, name: str, info: tarfile.TarInfo) -> None:
        if self.owner != "caller":
            uid, gid = (info.uid, info.gid) if self.owner == "preserve" else (0, 0)
            with suppress(PermissionError):  # unprivileged caller: the files stay ours
                os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)
        if not info.issym():
            os.chmod(name, info.mode & 0o7777, dir_fd=parent)
        mtime = int(info.mtime)
        os.utime(name, (mtime, mtime), dir_fd=parent, follow_symlinks=False)


def _exists_dir(parent: int, name: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(name, dir_fd=parent, follow_symlinks=False).st_mode)
    except FileNotFoundError:
        return False


# -- destination rules (Docker's CopyInfoDestinationPath) --------------------------------------


def _plan(
    kind: str | None, trailing: bool, src_is_dir: bool, contents: bool, base: str, dest: str
) -> tuple[bool, str]:
    """``(into, top)``: ``into`` writes below the destination itself (else below its parent);
    ``top`` names the copy's top entry there ("" merges a directory's contents)."""
    if kind == "dir":
        return True, "" if src_is_dir and (contents or not base) else base
    if kind is not None:
        if src_is_dir:
            raise InvalidArgument(f"cannot copy a directory to a file: {dest}")
        return False, posixpath.basename(dest.rstrip("/"))
    if trailing and not src_is_dir:
        raise NotFound(f"destination directory {dest} does not exist")
    return False, posixpath.basename(dest.rstrip("/"))


def _kind(st: os.stat_result | None) -> str | None:
    if st is None:
        return None
    return "dir" if stat.S_ISDIR(st.st_mode) else "file"


def _stat_loc(loc: _Loc) -> os.stat_result | None:
    try:
        root_fd = open_root(loc.root)
    except OSError:
        return None
    try:
        parent, name = resolve_parent(root_fd, loc.rel)
    except OSError:
        return None
    finally:
        os.close(root_fd)
    try:
        return os.stat(name or ".", dir_fd=parent, follow_symlinks=False)
    except OSError:
        return None
    finally:
        os.close(parent)


def _source_name(path: str) -> tuple[str, bool]:
    """The name the copy gets (basename of what the user typed) and whether only the
    contents of a directory are meant (``SRC/.``)."""
    contents = path.endswith("/.") or path == "."
    trimmed = path[:-2] if path.endswith("/.") else path
    return posixpath.basename(trimmed.rstrip("/")), contents


def _os_error(exc: OSError) -> CargoholdError:
    """A file-system failure during a copy, as an error category with the OS's words."""
    where = f"{exc.filename}: " if exc.filename else ""
    text = f"{where}{exc.strerror or exc}"
    if exc.errno == errno.ENOENT:
        return NotFound(text)
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return Forbidden(text)
    if exc.errno in (errno.ENOTDIR, errno.ELOOP, errno.EISDIR, errno.EEXIST):
        return InvalidArgument(text)
    return Internal(text)


def _given(stream: IO[bytes] | None) -> IO[bytes]:
    """The tar stream of ``cp -``: its caller's (the CLI's stdout or stdin); never this
    process's own descriptors behind the caller's back."""
    if stream is None:
        raise InvalidArgument('cp "-": no tar stream given')
    return stream


def copy_out(
    rootfs: str | Path,
    src_path: str,
    dest: str | Path,
    *,
    mounts: Sequence[MountPoint | tuple[str, str]] = (),
    container: str = "",
    follow_link: bool = False,
    stream: IO[bytes] | None = None,
) -> None:
    """``cp CONTAINER:SRC_PATH DEST``; ``dest`` "-" writes a tar stream (``stream`` or stdout).

    Files written on the host belong to the caller (Docker: "created with the UID:GID of the
    user which invoked the cp command"); modes and times are kept.
    """
    try:
        _copy_out(rootfs, src_path, dest, mounts, container, follow_link, stream)
    except OSError as exc:
        raise _os_error(exc) from exc


def _copy_out(
    rootfs: str | Path,
    src_path: str,
    dest: str | Path,
    mounts: Sequence[MountPoint | tuple[str, str]],
    container: str,
    follow_link: bool,
    stream: IO[bytes] | None,
) -> None:
    fs = ContainerFS(rootfs, mounts, name=container)
    base, contents = _source_name(src_path)
    trailing = src_path.endswith("/")
    loc = fs.locate(src_path, follow_final=follow_link or contents or trailing)
    st = _stat_loc(loc)
    if st is None:
        raise fs.not_found(src_path)
    src_is_dir = stat.S_ISDIR(st.st_mode)
    if (contents or trailing) and not src_is_dir:
        raise InvalidArgument(f"{src_path}: not a directory")
    entries = _walk_loc(fs, loc, src_path)
    if os.fspath(dest) == "-":
        arcroot = "." if contents or not base else base
        _write_tar(entries, arcroot, _given(stream))
        return
    dest_s = os.fspath(dest)
    dest_abs = os.path.abspath(dest_s)
    try:
        dest_st: os.stat_result | None = os.stat(dest_abs)
    except FileNotFoundError:
        dest_st = None
    into, top = _plan(_kind(dest_st), dest_s.endswith(("/", "/.")), src_is_dir, contents,
                      base, dest_abs)  # fmt: skip
    root = dest_abs if into else os.path.dirname(dest_abs)
    if not os.path.isdir(root):
        raise NotFound(f"lstat {root}: no such file or directory")
    root_fd = open_root(root)
    try:
        _Extractor(root_fd, "", top, "caller").run(entries)
    finally:
        os.close(root_fd)


def copy_in(
    rootfs: str | Path,
    src: str | Path,
    dest_path: str,
    *,
    mounts: Sequence[MountPoint | tuple[str, str]] = (),
    container: str = "",
    follow_link: bool = False,
    archive: bool = False,
    stream: IO[bytes] | None = None,
    readonly_rootfs: bool = False,
) -> None:
    """``cp SRC CONTAINER:DEST_PATH``; ``src`` "-" reads a tar stream (``stream`` or stdin)
    and extracts it into the existing directory ``dest_path``.

    Without ``archive`` everything is owned by the container's root (0:0); with it the
    source's uid/gid are kept (Docker's ``-a``).
    """
    try:
        _copy_in(rootfs, src, dest_path, mounts, container, follow_link, archive, stream,
                 readonly_rootfs)  # fmt: skip
    except OSError as exc:
        raise _os_error(exc) from exc


def _copy_in(
    rootfs: str | Path,
    src: str | Path,
    dest_path: str,
    mounts: Sequence[MountPoint | tuple[str, str]],
    container: str,
    follow_link: bool,
    archive: bool,
    stream: IO[bytes] | None,
    readonly_rootfs: bool,
) -> None:
    fs = ContainerFS(rootfs, mounts, name=container, readonly_rootfs=readonly_rootfs)
    owner: Owner = "preserve" if archive else "root"
    src_s = os.fspath(src)
    loc = fs.locate(dest_path, follow_final=True)
    dest_st = _stat_loc(loc)
    if src_s == "-":
        if dest_st is None:
            raise fs.not_found(dest_path)
        if not stat.S_ISDIR(dest_st.st_mode):
            raise InvalidArgument(f'destination "{container}:{dest_path}" must be a directory')
        _check_writable(loc)
        entries = _tar_entries(_given(stream))
        _extract_at(loc.root, loc.rel, "", owner, entries)
        return
    base, contents = _source_name(src_s)
    src_abs = os.path.abspath(src_s)
    if follow_link or contents or src_s.endswith("/"):
        src_abs = os.path.realpath(src_abs)
    try:
        src_st = os.lstat(src_abs)
    except FileNotFoundError:
        raise NotFound(f"lstat {src_abs}: no such file or directory") from None
    src_is_dir = stat.S_ISDIR(src_st.st_mode)
    into, top = _plan(_kind(dest_st), dest_path.endswith(("/", "/.")), src_is_dir, contents,
                      base, dest_path)  # fmt: skip
    if into:
        at = loc
    else:
        parent = fs.locate(posixpath.dirname(loc.ctr), follow_final=True)
        parent_st = _stat_loc(parent)
        if parent_st is None or not stat.S_ISDIR(parent_st.st_mode):
            raise fs.not_found(posixpath.dirname(_clean(dest_path)))
        at = parent
    _check_writable(at)
    src_parent = open_root(os.path.dirname(src_abs) or "/")
    try:
        name = os.path.basename(src_abs) or "."
        _extract_at(at.root, at.rel, top, owner, _walk(src_parent, name, "", "/", None))
    finally:
        os.close(src_parent)


def _check_writable(loc: _Loc) -> None:
    if loc.readonly:
        if not loc.in_mount:
            raise Forbidden("container rootfs is marked read-only")
        raise Forbidden("mounted volume is marked read-only")


def _extract_at(root: str, rel: str, top: str, owner: Owner, entries: Iterator[_ENTRY]) -> None:
    root_fd = open_root(root)
    try:
        _Extractor(root_fd, rel, top, owner).run(entries)
    finally:
        os.close(root_fd)
