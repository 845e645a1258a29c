"""Read a tree that someone may be changing (a running container's) without ever leaving it.

A walk by path names can be led out of the tree: between listing ``a`` and listing ``a/b``,
a process in the container replaces the directory ``a`` with a symlink to ``/``, and the walk
goes on in the host's root.  Here every entry is reached from its parent directory's
descriptor by one name (``dir_fd=``, ``O_NOFOLLOW``), a directory is listed through the
descriptor it was opened as, and a regular file is opened ``O_PATH`` first, checked to be a
regular file and only then reopened for reading, so a FIFO or device node swapped in is never
opened (opening one can block forever or act on a host device).  An entry that changed
between its listing and its opening is taken as what it is at the opening (or skipped if it
is gone): the result is what the tree held, never anything outside it.

This is what ``cp`` (``container/copy.py``), ``export``, ``commit`` and ``diff``
(``store/archive_create.py``, the storage drivers) read container trees with.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
_CHANGED = (errno.ENOTDIR, errno.ELOOP)  # what a swapped-in non-directory makes open fail with


class Node:
    """One entry of a walk.  ``parent`` (and ``fd``) are valid only while it is visited."""

    __slots__ = ("fd", "name", "parent", "rel", "st")

    def __init__(self, parent: int, name: str, rel: str, st: os.stat_result, fd: int) -> None:
        self.parent = parent  # descriptor of the directory holding the entry
        self.name = name
        self.rel = rel  # path below the walk's top, "/"-separated
        self.st = st  # lstat; for a directory the fstat of ``fd``
        self.fd = fd  # directories: an O_RDONLY descriptor on it; else -1


def open_dir(path: str | os.PathLike[str]) -> int:
    """A descriptor on the top directory of a walk (a path the store chose, so followed)."""
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)


def listing(dir_fd: int) -> list[tuple[str, os.stat_result]]:
    """(name, lstat) of the entries of ``dir_fd``, sorted by name; vanished ones left out."""
    out: list[tuple[str, os.stat_result]] = []
    with os.scandir(dir_fd) as it:
        for entry in it:
            try:
                out.append((entry.name, entry.stat(follow_symlinks=False)))
            except FileNotFoundError:
                continue
    out.sort(key=lambda item: item[0])
    return out


def lstat_at(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def open_subdir(dir_fd: int, name: str) -> int:
    """``name`` in ``dir_fd`` opened as a directory, or -1 if it is (no longer) one."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return -1
    except OSError as exc:
        if exc.errno in _CHANGED:
            return -1
        if exc.errno == errno.EMFILE and _raise_fd_limit():
            return open_subdir(dir_fd, name)
        raise


def _raise_fd_limit() -> bool:
    """A walk holds one descriptor per level: lift the soft limit to the hard one (as Go
    programs such as runc and dockerd do at start) the first time a deep tree needs it."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == hard:
        return False
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return False
    return True


def node_at(dir_fd: int, name: str, rel: str, st: os.stat_result) -> Node | None:
    """The node for a listed entry; a directory is opened (see the module) here."""
    if not stat.S_ISDIR(st.st_mode):
        return Node(dir_fd, name, rel, st, -1)
    fd = open_subdir(dir_fd, name)
    if fd >= 0:
        return Node(dir_fd, name, rel, os.fstat(fd), fd)
    now = lstat_at(dir_fd, name)  # replaced since the listing: take what is there now
    if now is None or stat.S_ISDIR(now.st_mode):
        return None  # gone, or a directory again: skipped rather than chased
    return Node(dir_fd, name, rel, now, -1)


def join(rel: str, name: str) -> str:
    return f"{rel}/{name}" if rel else name


def walk(
    top_fd: int, rel: str = "", enter: Callable[[Node], bool] | None = None
) -> Iterator[Node]:
    """Every entry below ``top_fd``, depth first, each directory's children sorted by name.

    A directory's node comes before its children, which follow unless ``enter(node)`` says
    False.  Iterative (no recursion limit on depth); descriptors close as the walk leaves
    their directory, also when the consumer stops early.
    """
    stack: list[tuple[Iterator[tuple[str, os.stat_result]], int, str]] = [
        (iter(listing(top_fd)), top_fd, rel)
    ]
    try:
        while stack:
            entries, dir_fd, dir_rel = stack[-1]
            for name, st in entries:
                node = node_at(dir_fd, name, join(dir_rel, name), st)
                if node is None:
                    continue
                if node.fd < 0:
                    yield node
                    continue
                if enter is not None and not enter(node):
                    try:
                        yield node
                    finally:
                        os.close(node.fd)
                    continue
                stack.append((iter(listing(node.fd)), node.fd, node.rel))
                yield node
                break
            else:
                stack.pop()
                if dir_fd != top_fd:
                    os.close(dir_fd)
    finally:
        for _, fd, _ in stack:
            if fd != top_fd:
                os.close(fd)


def open_regular(dir_fd: int, name: str) -> tuple[int, os.stat_result] | None:
    """A read descriptor and fstat of the regular file ``name`` in ``dir_fd``; None if it is
    gone or no longer a regular file (nothing else is ever opened for reading)."""
    try:
        pfd = os.open(name, _PATH_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(pfd)
        if not stat.S_ISREG(st.st_mode):
            return None
        return os.open(f"/proc/self/fd/{pfd}", os.O_RDONLY | os.O_CLOEXEC), st
    finally:
        os.close(pfd)


def readlink_at(dir_fd: int, name: str) -> str | None:
    """The target of the symlink ``name``; None if it is gone or no longer a symlink."""
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except (FileNotFoundError, OSError) as exc:
        if isinstance(exc, FileNotFoundError) or exc.errno == errno.EINVAL:
            return None
        raise


def read_xattrs(target: str | int) -> dict[str, bytes]:
    """All xattrs of an open descriptor, or of a path whose final symlink is not followed."""
    try:
        names = os.listxattr(target) if isinstance(target, int) else os.listxattr(
            target, follow_symlinks=False
        )
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EPERM, errno.ENOENT):
            return {}
        raise
    out: dict[str, bytes] = {}
    for name in sorted(names):
        try:
            if isinstance(target, int):
                out[name] = os.getxattr(target, name)
            else:
                out[name] = os.getxattr(target, name, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EPERM):
                raise
    return out


def xattrs_at(dir_fd: int, name: str, fd: int = -1) -> dict[str, bytes]:
    """The xattrs of entry ``name`` of ``dir_fd``: through ``fd`` when it is open, else through
    the directory's descriptor (``/proc/self/fd/N/name``: no path walk that could be led out)."""
    if fd >= 0:
        return read_xattrs(fd)
    return read_xattrs(f"/proc/self/fd/{dir_fd}/{name}")
