"""Deterministic layer tars: from an overlay upper dir, a whole tree, or a vfs diff.

Same content gives the same bytes, so the same diff_id: entries in depth-first order with each
directory's children sorted by name, PAX format, empty uname/gname, whole-second mtimes, no
atime/ctime, xattrs as sorted ``SCHILY.xattr.*`` records, hard links detected by (dev, ino) in
walk order, and the archive ends with exactly two zero blocks (no record padding).
"""

from __future__ import annotations

import errno
import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from typing import BinaryIO

from cargohold.errors import InvalidArgument, NotImplementedFeature
from cargohold.store.archive_apply import (
    BLOCK,
    OPAQUE_MARKER,
    OVERLAY_OPAQUE_XATTR,
    WHITEOUT_PREFIX,
)

_CHUNK = 1 << 20
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
# Never exported: overlay's bookkeeping and host-specific labels.
_SKIPPED_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.", "security.selinux")
# overlay features we mount without; an upper dir that has them cannot be exported alone.
_UNSUPPORTED_OVERLAY_XATTRS = ("trusted.overlay.redirect", "trusted.overlay.metacopy")

Entry = tuple[str, str, os.stat_result]  # (absolute path, archive name, lstat)


def read_xattrs(path: str) -> dict[str, bytes]:
    """All xattrs of ``path`` (not following symlinks), including overlay's own."""
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EPERM):
            return {}
        raise
    out: dict[str, bytes] = {}
    for name in sorted(names):
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EPERM):
                raise
    return out


def exported_xattrs(xattrs: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in xattrs.items() if not k.startswith(_SKIPPED_XATTR_PREFIXES)}


def is_whiteout_device(st: os.stat_result) -> bool:
    """overlayfs marks a deleted name with a 0/0 character device."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _children(path: str, rel: str) -> list[Entry]:
    with os.scandir(path) as it:
        entries = sorted(it, key=lambda e: e.name)
    prefix = f"{rel}/" if rel else ""
    return [(e.path, prefix + e.name, e.stat(follow_symlinks=False)) for e in entries]


class TarWriter:
    """Writes normalised tar entries to ``out``."""

    def __init__(self, out: BinaryIO) -> None:
        self.out = out
        self.links: dict[tuple[int, int], str] = {}

    def finish(self) -> None:
        self.out.write(bytes(2 * BLOCK))

    def header(self, info: tarfile.TarInfo) -> None:
        self.out.write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))

    def marker(self, name: str) -> None:
        """An empty regular entry (whiteout or opaque marker), fully normalised."""
        info = tarfile.TarInfo(name)
        info.mode = 0o600
        self.header(info)

    def add(self, path: str, rel: str, st: os.stat_result, xattrs: dict[str, bytes]) -> None:
        """Emit one entry; regular file content is streamed from ``path``."""
        info = tarfile.TarInfo(rel)
        info.mode = stat.S_IMODE(st.st_mode)
        info.uid, info.gid = st.st_uid, st.st_gid
        info.mtime = st.st_mtime_ns // 1_000_000_000
        info.pax_headers = {
            "SCHILY.xattr." + name: value.decode("utf-8", "surrogateescape")
            for name, value in exported_xattrs(xattrs).items()
        }
        mode = st.st_mode
        if not stat.S_ISDIR(mode) and st.st_nlink > 1:
            key = (st.st_dev, st.st_ino)
            first = self.links.get(key)
            if first is not None:
                info.type, info.linkname = tarfile.LNKTYPE, first
                self.header(info)
                return
            self.links[key] = rel
        if stat.S_ISREG(mode):
            info.size = st.st_size
            self.header(info)
            self.content(path, st.st_size)
            return
        if stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(mode):
            info.type, info.linkname = tarfile.SYMTYPE, os.readlink(path)
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        else:
            return  # sockets cannot be archived (Docker skips them too)
        self.header(info)

    def content(self, path: str, size: int) -> None:
        """Exactly ``size`` bytes of ``path`` (zero-filled if it shrank meanwhile), padded."""
        fd = os.open(path, _READ_FLAGS)
        try:
            left = size
            while left:
                chunk = os.read(fd, min(_CHUNK, left))
                if not chunk:
                    self.out.write(bytes(left))
                    break
                self.out.write(chunk)
                left -= len(chunk)
        finally:
            os.close(fd)
        if size % BLOCK:
            self.out.write(bytes(BLOCK - size % BLOCK))


def walk(top: str, rel: str, visit: Callable[[str, str, os.stat_result], bool]) -> None:
    """Depth-first, sorted walk below ``top``; ``visit`` returns True to descend into a dir."""
    stack: list[Iterator[Entry]] = [iter(_children(top, rel))]
    while stack:
        for path, name, st in stack[-1]:
            if visit(path, name, st):
                stack.append(iter(_children(path, name)))
                break
        else:
            stack.pop()


def _check_root(root: os.PathLike[str] | str) -> str:
    path = os.fspath(root)
    if not os.path.isdir(path):
        raise InvalidArgument(f"not a directory: {path}")
    return path


def write_layer_from_dir(root: os.PathLike[str] | str, out: BinaryIO) -> None:
    """The whole tree under ``root`` as a layer tar (no whiteout translation, no root entry)."""
    writer = TarWriter(out)

    def visit(path: str, rel: str, st: os.stat_result) -> bool:
        writer.add(path, rel, st, read_xattrs(path))
        return stat.S_ISDIR(st.st_mode)

    walk(_check_root(root), "", visit)
    writer.finish()


def write_layer_from_upper(upper: os.PathLike[str] | str, out: BinaryIO) -> None:
    """A layer tar of an overlay upper dir, translating overlay whiteouts to OCI ones.

    0/0 character devices become ``.wh.NAME`` and ``trusted.overlay.opaque=y`` directories
    get a ``DIR/.wh..wh..opq`` entry.  Lower layers are never read.  Upper dirs made with
    ``redirect_dir`` or ``metacopy`` (which we never mount with) are refused.
    """
    writer = TarWriter(out)

    def visit(path: str, rel: str, st: os.stat_result) -> bool:
        if is_whiteout_device(st):
            parent, _, base = rel.rpartition("/")
            writer.marker(_join(parent, WHITEOUT_PREFIX + base))
            return False
        xattrs = read_xattrs(path)
        for attr in _UNSUPPORTED_OVERLAY_XATTRS:
            if attr in xattrs:
                raise NotImplementedFeature(
                    f"overlay upper entry {rel!r} has {attr}: redirect_dir/metacopy are unsupported"
                )
        writer.add(path, rel, st, xattrs)
        if not stat.S_ISDIR(st.st_mode):
            return False
        if xattrs.get(OVERLAY_OPAQUE_XATTR) == b"y":
            writer.marker(_join(rel, OPAQUE_MARKER))
        return True

    walk(_check_root(upper), "", visit)
    writer.finish()


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def _same(lpath: str, lst: os.stat_result, upath: str, ust: os.stat_result) -> bool:
    """Naive-diff equality: type, mode, owner, mtime (ns), size, link target, rdev, xattrs."""
    if (lst.st_mode, lst.st_uid, lst.st_gid) != (ust.st_mode, ust.st_uid, ust.st_gid):
        return False
    if lst.st_mtime_ns != ust.st_mtime_ns:
        return False
    mode = ust.st_mode
    if stat.S_ISREG(mode) and lst.st_size != ust.st_size:
        return False
    if (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)) and lst.st_rdev != ust.st_rdev:
        return False
    if stat.S_ISLNK(mode) and os.readlink(lpath) != os.readlink(upath):
        return False
    return exported_xattrs(read_xattrs(lpath)) == exported_xattrs(read_xattrs(upath))


class _Differ:
    """Emits the changes of ``upper`` against ``lower``, with every changed entry's parents."""

    def __init__(self, writer: TarWriter) -> None:
        self.writer = writer
        self.pending: list[Entry] = []  # unchanged ancestors not yet written

    def emit(self, path: str, rel: str, st: os.stat_result) -> None:
        for entry in self.pending:
            self.writer.add(*entry, read_xattrs(entry[0]))
        self.pending.clear()
        self.writer.add(path, rel, st, read_xattrs(path))

    def whiteout(self, parent: str, name: str) -> None:
        for entry in self.pending:
            self.writer.add(*entry, read_xattrs(entry[0]))
        self.pending.clear()
        self.writer.marker(_join(parent, WHITEOUT_PREFIX + name))

    def add_tree(self, path: str, rel: str, st: os.stat_result) -> None:
        """An entry that is new (or changed type): written with everything below it."""
        self.emit(path, rel, st)
        if stat.S_ISDIR(st.st_mode):

            def visit(p: str, r: str, s: os.stat_result) -> bool:
                self.writer.add(p, r, s, read_xattrs(p))
                return stat.S_ISDIR(s.st_mode)

            walk(path, rel, visit)

    def diff_dir(self, lower: str, upper: str, rel: str) -> None:
        """The changes below ``upper`` against ``lower``, depth first in name order; an own
        stack of directories instead of recursion, so any depth works."""
        stack = [_DiffFrame(lower, upper, rel, len(self.pending))]
        while stack:
            frame = stack[-1]
            child = self.diff_entries(frame)
            if child is None:
                stack.pop()
                del self.pending[frame.depth :]
            else:
                stack.append(child)

    def diff_entries(self, frame: _DiffFrame) -> _DiffFrame | None:
        """Handle ``frame``'s next names up to a directory on both sides (returned, to be
        descended into next) or to the end (None)."""
        for name in frame.names:
            if name not in frame.uppers:
                self.whiteout(frame.rel, name)
                continue
            upath, urel, ust = frame.uppers[name]
            if name not in frame.lowers:
                self.add_tree(upath, urel, ust)
                continue
            lpath, lst = frame.lowers[name]
            if stat.S_IFMT(lst.st_mode) != stat.S_IFMT(ust.st_mode):
                self.add_tree(upath, urel, ust)
            elif stat.S_ISDIR(ust.st_mode):
                depth = len(self.pending)
                if _same(lpath, lst, upath, ust):
                    self.pending.append((upath, urel, ust))
                else:
                    self.emit(upath, urel, ust)
                return _DiffFrame(lpath, upath, urel, depth)
            elif not _same(lpath, lst, upath, ust):
                self.emit(upath, urel, ust)
        return None


class _DiffFrame:
    """One directory pair being compared by ``_Differ.diff_dir``."""

    def __init__(self, lower: str, upper: str, rel: str, depth: int) -> None:
        self.rel = rel
        self.depth = depth  # len(pending) when entered: restored when left
        self.uppers = {os.path.basename(p): (p, r, st) for p, r, st in _children(upper, rel)}
        self.lowers = {os.path.basename(p): (p, st) for p, _, st in _children(lower, rel)}
        self.names = iter(sorted(self.uppers.keys() | self.lowers.keys()))


def write_layer_from_diff(
    lower: os.PathLike[str] | str, upper: os.PathLike[str] | str, out: BinaryIO
) -> None:
    """vfs: a layer tar of what ``upper`` (a full copy of ``lower``, then changed) changed.

    Added and changed entries are written with all their parent directories (so applying the
    layer on overlay keeps the parents' modes); deleted names become ``.wh.NAME``.  Entries
    compare by metadata (type, mode, owner, mtime in ns, size, link target, device, xattrs),
    as containers/storage's naive diff does; a copy that preserves mtimes keeps them equal.
    """
    writer = TarWriter(out)
    differ = _Differ(writer)
    differ.diff_dir(_check_root(lower), _check_root(upper), "")
    writer.finish()
