"""``rm -rf`` of trees of any depth, relative to directory descriptors, following no symlink.

``shutil.rmtree`` (and ``os.walk``) recurse once per directory level in Python 3.11, so a tree
deeper than the recursion limit (a layer with a path 3,000 directories deep, or one a
container made with ``mkdir -p`` in a loop) could not be removed.  Here the walk is a stack of
open directories: no recursion, no path longer than one name, and an entry replaced by a
symlink while we work is unlinked, never followed.  Without root, directories that lack
``rwx`` for their owner are given it first (as the layer store's own content can be 0500).
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


def remove_tree_at(dir_fd: int, name: str) -> None:
    """Remove ``name`` from directory ``dir_fd``: a non-directory, or a directory and all of
    its content; a missing ``name`` is fine."""
    fd = _open_dir(dir_fd, name)
    if fd is None:
        return
    stack: list[tuple[int, str, int, list[str]]] = [(dir_fd, name, fd, _subdirs_last(fd))]
    try:
        while stack:
            parent, dname, dfd, names = stack[-1]
            while names:
                child = names.pop()
                cfd = _open_dir(dfd, child)
                if cfd is not None:
                    stack.append((dfd, child, cfd, _subdirs_last(cfd)))
                    break
            else:
                stack.pop()
                os.close(dfd)
                with contextlib.suppress(FileNotFoundError):
                    os.rmdir(dname, dir_fd=parent)
    finally:
        for _, _, dfd, _ in stack:
            os.close(dfd)


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
