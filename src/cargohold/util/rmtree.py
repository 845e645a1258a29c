"""``rm -rf`` of trees of any depth, relative to directory descriptors, following no symlink.

``shutil.rmtree`` (and ``os.walk``) recurse once per directory level in Python 3.11, so a tree
deeper than the recursion limit (a layer with a path 2,000 directories deep, or one a
container made with ``mkdir d && cd d`` in a loop) could not be removed.  Here the walk keeps
its own stack (:class:`DirPath`): no recursion, no path longer than one name, at most
``DirPath.WINDOW`` descriptors open whatever the depth (a soft limit of 1,024 is common), and
an entry replaced by a symlink while we work is unlinked, never followed.  Without root,
directories that lack ``rwx`` for their owner are given it first (layer content can be 0500).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PATH_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NOT_A_DIR = (errno.ENOTDIR, errno.ELOOP)  # ELOOP: a symlink, opened with O_NOFOLLOW


def remove_path(path: str | os.PathLike[str]) -> None:
    """Remove the file or tree at ``path``; a missing path is fine."""
    path = os.fspath(path)
    parent, name = os.path.split(os.path.normpath(path))
    pfd = os.open(parent or ".", _DIR_FLAGS)
    try:
        remove_tree_at(pfd, name)
    finally:
        os.close(pfd)


class DirPath:
    """The directories from ``base`` down to where a depth-first walk stands, by name.

    Only the deepest ``WINDOW`` keep their descriptor open; one closed to save descriptors
    is opened again by name (``O_NOFOLLOW`` at every step) when the walk climbs back to it.
    """

    WINDOW = 64

    def __init__(self, base: int) -> None:
        self.base = base  # not ours: never closed here
        self.names: list[str] = []
        self._fds: list[int] = []  # -1: closed for now

    def push(self, name: str, fd: int) -> None:
        """Step into ``name`` (``fd``, now ours) below the current directory."""
        self.names.append(name)
        self._fds.append(fd)
        low = len(self._fds) - 1 - self.WINDOW
        if low >= 0 and self._fds[low] >= 0:
            os.close(self._fds[low])
            self._fds[low] = -1

    def pop(self) -> str:
        """Step back to the parent; returns the name of the directory left."""
        fd = self._fds.pop()
        if fd >= 0:
            os.close(fd)
        return self.names.pop()

    def fd(self) -> int:
        """The descriptor of the current directory (``base`` at the top)."""
        top = len(self._fds)
        if top == 0:
            return self.base
        if self._fds[-1] < 0:
            first = top - 1
            while first > 0 and self._fds[first - 1] < 0:
                first -= 1
            for i in range(first, top):
                parent = self._fds[i - 1] if i > 0 else self.base
                self._fds[i] = os.open(self.names[i], _DIR_FLAGS, dir_fd=parent)
                if first <= i - 1 < top - self.WINDOW:
                    os.close(self._fds[i - 1])
                    self._fds[i - 1] = -1
        return self._fds[-1]

    def close(self) -> None:
        while self._fds:
            self.pop()


def remove_tree_at(dir_fd: int, name: str) -> None:
    """Remove ``name`` from directory ``dir_fd``: a non-directory, or a directory and all of
    its content; a missing ``name`` is fine."""
    fd = _open_dir(dir_fd, name)
    if fd is None:
        return
    path = DirPath(dir_fd)
    try:
        path.push(name, fd)
        pending = [_subdirs_last(fd)]  # per level: subdirectories still to remove
        while pending:
            if pending[-1]:
                child = _open_dir(path.fd(), pending[-1][-1])
                name = pending[-1].pop()
                if child is not None:
                    path.push(name, child)
                    pending.append(_subdirs_last(child))
                continue
            pending.pop()
            done = path.pop()
            with contextlib.suppress(FileNotFoundError):
                os.rmdir(done, dir_fd=path.fd())
    finally:
        path.close()


def _open_dir(dir_fd: int, name: str) -> int | None:
    """Open directory ``name`` for removal; unlink it instead when it is not a directory
    (None), and None when it is gone."""
    for attempt in (1, 2):
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except PermissionError:
            if attempt == 2 or os.geteuid() == 0:
                raise
            _grant_owner(dir_fd, name)
            continue
        except OSError as exc:
            if exc.errno not in _NOT_A_DIR:
                raise
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name, dir_fd=dir_fd)
            return None
        if os.geteuid() != 0 and stat.S_IMODE(os.fstat(fd).st_mode) & 0o700 != 0o700:
            os.fchmod(fd, 0o700)  # to list it and unlink its entries
        return fd
    return None  # not reached


def _grant_owner(dir_fd: int, name: str) -> None:
    """chmod 0700 the directory ``name`` itself (an O_PATH fd: never through a symlink)."""
    fd = os.open(name, _PATH_FLAGS, dir_fd=dir_fd)
    try:
        os.chmod(f"/proc/self/fd/{fd}", 0o700)
    finally:
        os.close(fd)


def _subdirs_last(fd: int) -> list[str]:
    """The entries of ``fd``: non-directories are unlinked at once, directories returned."""
    dirs = []
    with os.scandir(fd) as it:
        entries = [(e.name, e.is_dir(follow_symlinks=False)) for e in it]
    for child, is_dir in entries:
        if is_dir:
            dirs.append(child)
            continue
        try:
            os.unlink(child, dir_fd=fd)
        except FileNotFoundError:
            continue
        except IsADirectoryError:  # replaced by a directory meanwhile
            dirs.append(child)
    return dirs
