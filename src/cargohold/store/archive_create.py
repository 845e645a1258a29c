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
from typing import BinaryIO

from cargohold.errors import InvalidArgument, NotImplementedFeature
from cargohold.store.archive_apply import (
    BLOCK,
    OPAQUE_MARKER,
    OVERLAY_OPAQUE_XATTR,
    WHITEOUT_PREFIX,
)
from cargohold.util import fdtree
from cargohold.util.fdtree import Node, read_xattrs

__all__ = [
    "TarWriter",
    "exported_xattrs",
    "is_whiteout_device",
    "read_xattrs",
    "write_layer_from_diff",
    "write_layer_from_dir",
    "write_layer_from_upper",
]

_CHUNK = 1 << 20
# Never exported: overlay's bookkeeping and host-specific labels.
_SKIPPED_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.", "security.selinux")
# overlay features we mount without; an upper dir that has them cannot be exported alone.
_UNSUPPORTED_OVERLAY_XATTRS = ("trusted.overlay.redirect", "trusted.overlay.metacopy")


def exported_xattrs(xattrs: dict[str, bytes]) -> dict[str, bytes]:
    return {k: v for k, v in xattrs.items() if not k.startswith(_SKIPPED_XATTR_PREFIXES)}


def is_whiteout_device(st: os.stat_result) -> bool:
    """overlayfs marks a deleted name with a 0/0 character device."""
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


class TarWriter:
    """Writes normalised tar entries to ``out``.

    Entries are :class:`~cargohold.util.fdtree.Node` s of a descriptor walk: metadata and
    content are read relative to the entry's directory descriptor, a regular file only through
    a descriptor checked to be a regular file, so a tree changing under the walk (a running
    container) cannot make it read anything outside the tree.
    """

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

    def add(self, node: Node, xattrs: dict[str, bytes] | None = None) -> None:
        """Emit one entry (``xattrs``: already read, else read here)."""
        st = node.st
        mode = st.st_mode
        if stat.S_ISREG(mode):
            self._regular(node, xattrs)
            return
        if xattrs is None:
            xattrs = fdtree.xattrs_at(node.parent, node.name, node.fd)
        info = _info(node.rel, st, xattrs)
        if self._hardlink(info, st):
            return
        if stat.S_ISDIR(mode):
            info.type = tarfile.DIRTYPE
        elif stat.S_ISLNK(mode):
            target = fdtree.readlink_at(node.parent, node.name)
            if target is None:
                return  # replaced since it was listed
            info.type, info.linkname = tarfile.SYMTYPE, target
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            info.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
            info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
        elif stat.S_ISFIFO(mode):
            info.type = tarfile.FIFOTYPE
        else:
            return  # sockets cannot be archived (Docker skips them too)
        self.header(info)

    def _regular(self, node: Node, xattrs: dict[str, bytes] | None) -> None:
        opened = fdtree.open_regular(node.parent, node.name)
        if opened is None:  # replaced since it was listed: archive what is there now
            now = fdtree.lstat_at(node.parent, node.name)
            if now is not None and not stat.S_ISREG(now.st_mode) and not stat.S_ISDIR(now.st_mode):
                self.add(Node(node.parent, node.name, node.rel, now, -1))
            return
        fd, st = opened
        try:
            info = _info(node.rel, st, read_xattrs(fd) if xattrs is None else xattrs)
            if self._hardlink(info, st):
                return
            info.size = st.st_size
            self.header(info)
            self.content(fd, st.st_size)
        finally:
            os.close(fd)

    def _hardlink(self, info: tarfile.TarInfo, st: os.stat_result) -> bool:
        """Emit a link to the first archived name of this inode; False if this is the first."""
        if stat.S_ISDIR(st.st_mode) or st.st_nlink <= 1:
            return False
        key = (st.st_dev, st.st_ino)
        first = self.links.get(key)
        if first is None:
            self.links[key] = info.name
            return False
        info.type, info.linkname = tarfile.LNKTYPE, first
        self.header(info)
        return True

    def content(self, fd: int, size: int) -> None:
        """Exactly ``size`` bytes of ``fd`` (zero-filled if it shrank meanwhile), padded."""
        left = size
        while left:
            chunk = os.read(fd, min(_CHUNK, left))
            if not chunk:
                self.out.write(bytes(left))
                break
            self.out.write(chunk)
            left -= len(chunk)
        if size % BLOCK:
            self.out.write(bytes(BLOCK - size % BLOCK))


def _info(rel: str, st: os.stat_result, xattrs: dict[str, bytes]) -> tarfile.TarInfo:
    info = tarfile.TarInfo(rel)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mtime = st.st_mtime_ns // 1_000_000_000
    info.pax_headers = {
        "SCHILY.xattr." + name: value.decode("utf-8", "surrogateescape")
        for name, value in exported_xattrs(xattrs).items()
    }
    return info


def _open_top(root: os.PathLike[str] | str) -> int:
    path = os.fspath(root)
    try:
        return fdtree.open_dir(path)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise InvalidArgument(f"not a directory: {path}") from None
        raise


def write_layer_from_dir(root: os.PathLike[str] | str, out: BinaryIO) -> None:
    """The whole tree under ``root`` as a layer tar (no whiteout translation, no root entry)."""
    writer = TarWriter(out)
    top = _open_top(root)
    try:
        for node in fdtree.walk(top):
            writer.add(node)
    finally:
        os.close(top)
    writer.finish()


def write_layer_from_upper(upper: os.PathLike[str] | str, out: BinaryIO) -> None:
    """A layer tar of an overlay upper dir, translating overlay whiteouts to OCI ones.

    0/0 character devices become ``.wh.NAME`` and ``trusted.overlay.opaque=y`` directories
    get a ``DIR/.wh..wh..opq`` entry.  Lower layers are never read.  Upper dirs made with
    ``redirect_dir`` or ``metacopy`` (which we never mount with) are refused.
    """
    writer = TarWriter(out)
    top = _open_top(upper)
    try:
        for node in fdtree.walk(top):
            if is_whiteout_device(node.st):
                parent, _, base = node.rel.rpartition("/")
                writer.marker(_join(parent, WHITEOUT_PREFIX + base))
                continue
            xattrs = fdtree.xattrs_at(node.parent, node.name, node.fd)
            for attr in _UNSUPPORTED_OVERLAY_XATTRS:
                if attr in xattrs:
                    raise NotImplementedFeature(
                        f"overlay upper entry {node.rel!r} has {attr}: "
                        "redirect_dir/metacopy are unsupported"
                    )
            writer.add(node, xattrs)
            if node.fd >= 0 and xattrs.get(OVERLAY_OPAQUE_XATTR) == b"y":
                writer.marker(_join(node.rel, OPAQUE_MARKER))
    finally:
        os.close(top)
    writer.finish()


def _join(parent: str, name: str) -> str:
    return f"{parent}/{name}" if parent else name


def _same(lower: Node, upper: Node) -> bool:
    """Naive-diff equality: type, mode, owner, mtime (ns), size, link target, rdev, xattrs."""
    lst, ust = lower.st, upper.st
    if (lst.st_mode, lst.st_uid, lst.st_gid) != (ust.st_mode, ust.st_uid, ust.st_gid):
        return False
    if lst.st_mtime_ns != ust.st_mtime_ns:
        return False
    mode = ust.st_mode
    if stat.S_ISREG(mode) and lst.st_size != ust.st_size:
        return False
    if (stat.S_ISCHR(mode) or stat.S_ISBLK(mode)) and lst.st_rdev != ust.st_rdev:
        return False
    if stat.S_ISLNK(mode) and fdtree.readlink_at(lower.parent, lower.name) != fdtree.readlink_at(
        upper.parent, upper.name
    ):
        return False
    return exported_xattrs(fdtree.xattrs_at(lower.parent, lower.name, lower.fd)) == (
        exported_xattrs(fdtree.xattrs_at(upper.parent, upper.name, upper.fd))
    )


class _Differ:
    """Emits the changes of ``upper`` against ``lower``, with every changed entry's parents."""

    def __init__(self, writer: TarWriter) -> None:
        self.writer = writer
        self.pending: list[Node] = []  # unchanged ancestors not yet written (their fds open)

    def _flush(self) -> None:
        for node in self.pending:
            self.writer.add(node)
        self.pending.clear()

    def emit(self, node: Node) -> None:
        self._flush()
        self.writer.add(node)

    def whiteout(self, parent: str, name: str) -> None:
        self._flush()
        self.writer.marker(_join(parent, WHITEOUT_PREFIX + name))

    def add_tree(self, node: Node) -> None:
        """An entry that is new (or changed type): written with everything below it."""
        self.emit(node)
        if node.fd >= 0:
            for child in fdtree.walk(node.fd, node.rel):
                self.writer.add(child)

    def diff_dir(self, lower_fd: int, upper_fd: int, rel: str) -> None:
        """The changes below ``upper_fd`` against ``lower_fd``, depth first in name order,
        read by descriptors (the upper dir may belong to a running container); an own stack
        of directories instead of recursion, so any depth works."""
        stack = [_DiffFrame(lower_fd, upper_fd, rel, len(self.pending), ())]
        try:
            while stack:
                frame = stack[-1]
                child = self._next_dir(frame)
                if child is None:
                    stack.pop()
                    del self.pending[frame.depth :]
                    frame.close()
                else:
                    stack.append(child)
        finally:
            for frame in stack:
                frame.close()

    def _next_dir(self, frame: _DiffFrame) -> _DiffFrame | None:
        """Handle ``frame``'s next names up to a directory present on both sides (returned,
        to be descended into next) or to the end (None)."""
        for name in frame.names:
            if name not in frame.uppers:
                self.whiteout(frame.rel, name)
                continue
            unode = fdtree.node_at(frame.upper_fd, name, _join(frame.rel, name),
                                   frame.uppers[name])
            if unode is None:
                continue  # changed while we looked: a running container's race
            lst = frame.lowers.get(name)
            if unode.fd < 0 or lst is None or (
                stat.S_IFMT(lst.st_mode) != stat.S_IFMT(unode.st.st_mode)
            ):
                try:
                    self._diff_leaf(frame.lower_fd, lst, unode)
                finally:
                    if unode.fd >= 0:
                        os.close(unode.fd)
                continue
            lfd = -1
            try:
                lfd = fdtree.open_subdir(frame.lower_fd, name)
                lnode = Node(frame.lower_fd, name, unode.rel,
                             os.fstat(lfd) if lfd >= 0 else lst, lfd)
                depth = len(self.pending)
                if lfd >= 0 and _same(lnode, unode):
                    self.pending.append(unode)
                else:
                    self.emit(unode)
                return _DiffFrame(lfd, unode.fd, unode.rel, depth, (unode.fd, lfd))
            except BaseException:
                os.close(unode.fd)
                if lfd >= 0:
                    os.close(lfd)
                raise
        return None

    def _diff_leaf(self, lower_fd: int, lst: os.stat_result | None, unode: Node) -> None:
        """An entry not descended into: new or of another type (written with its tree), or
        changed."""
        if lst is None or stat.S_IFMT(lst.st_mode) != stat.S_IFMT(unode.st.st_mode):
            self.add_tree(unode)
        elif not _same(Node(lower_fd, unode.name, unode.rel, lst, -1), unode):
            self.emit(unode)


class _DiffFrame:
    """One directory pair being compared by ``_Differ.diff_dir``, with the descriptors it
    owns (closed when the walk leaves it)."""

    def __init__(self, lower_fd: int, upper_fd: int, rel: str, depth: int,
                 owned: tuple[int, ...]) -> None:
        self.lower_fd, self.upper_fd, self.rel, self.owned = lower_fd, upper_fd, rel, owned
        self.depth = depth  # len(pending) when entered: restored when left
        try:
            self.uppers = dict(fdtree.listing(upper_fd))
            self.lowers = dict(fdtree.listing(lower_fd)) if lower_fd >= 0 else {}
        except BaseException:
            self.close()
            raise
        self.names = iter(sorted(self.uppers.keys() | self.lowers.keys()))

    def close(self) -> None:
        for fd in self.owned:
            if fd >= 0:
                os.close(fd)


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
    lower_fd = _open_top(lower)
    try:
        upper_fd = _open_top(upper)
        try:
            _Differ(writer).diff_dir(lower_fd, upper_fd, "")
        finally:
            os.close(upper_fd)
    finally:
        os.close(lower_fd)
    writer.finish()
