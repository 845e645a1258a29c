"""Modes of the state directories: no non-root host user can reach what a container wrote.

A container's files are root's files on the host: a setuid-root binary a container wrote into
a volume, or a device node an image carried into one, is usable by anyone who can reach its
host path.  So, as Docker does since CVE-2021-41091 (its root is 0710 root:root, its exec root
0700), the store root (``--root``) is 0710 and the run root (``--runroot``: runc state,
bundles, attach sockets) 0700, owned by root when cargohold runs as root; the top-level
directories that hold container files (layers, rw layers and their mounts, container
records, volumes, staging, the build cache) are created 0700 below it.

:func:`secure_state_dirs` runs whenever an :class:`~cargohold.engine.Engine` is made.  When the
modes are right (or stricter) it costs one ``stat`` of each root; a missing root is created
with its private directories; a root with a looser mode or another owner (a store made by an
older version) is repaired together with its top-level directories, once.  Nothing below
them is walked.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Sequence
from pathlib import Path

ROOT_MODE = 0o710
RUNROOT_MODE = 0o700
PRIVATE_MODE = 0o700
# Top-level directories of the store that hold container files or build inputs.
PRIVATE_DIRS = ("layers", "containers-rw", "containers", "volumes", "tmp", "buildcache")

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC


def secure_state_dirs(root: Path, runroot: Path) -> None:
    """Create or repair ``root`` and ``runroot`` with their private modes (see the module)."""
    _secure(root, ROOT_MODE, PRIVATE_DIRS)
    _secure(runroot, RUNROOT_MODE, ())


def _secure(path: Path, mode: int, children: Sequence[str]) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        _create(path, mode, children)
        return
    except OSError:
        return  # not ours to look at: the command reports what it cannot reach
    if _mode_ok(stat.S_IMODE(st.st_mode), mode) and _owner_ok(st):
        return
    with contextlib.suppress(OSError):  # e.g. another user's store, or not a directory:
        _repair(path, mode, children)  # the command itself reports what it cannot use


def _mode_ok(perm: int, mode: int) -> bool:
    """``mode`` or stricter (an administrator's 0700 root stays), the owner's rwx kept."""
    return perm & ~mode == 0 and perm & 0o700 == 0o700


def _owner_ok(st: os.stat_result) -> bool:
    """Running as root, the directory must be root's (group too: 0710 lets the group in)."""
    return os.geteuid() != 0 or (st.st_uid, st.st_gid) == (0, os.getegid())


def _create(path: Path, mode: int, children: Sequence[str]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileExistsError):  # a concurrent command made it
            os.mkdir(path, mode)
        _repair(path, mode, children)
    except OSError:
        return  # e.g. an unprivileged user and the default root: later steps say so


def _repair(path: Path, mode: int, children: Sequence[str]) -> None:
    fd = os.open(path, _DIR_FLAGS)
    try:
        st = os.fstat(fd)
        if os.geteuid() == 0 and (st.st_uid, st.st_gid) != (0, os.getegid()):
            os.fchown(fd, 0, os.getegid())
        if not _mode_ok(stat.S_IMODE(st.st_mode), mode):
            os.fchmod(fd, mode)
        for name in children:
            _private_child(fd, name)
    finally:
        os.close(fd)


def _private_child(parent_fd: int, name: str) -> None:
    """Make ``name`` a 0700 directory (created if missing; a symlink there is left alone)."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(name, PRIVATE_MODE, dir_fd=parent_fd)
    try:
        fd = os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=parent_fd)
    except OSError:
        return
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != PRIVATE_MODE:
            os.fchmod(fd, PRIVATE_MODE)
    finally:
        os.close(fd)
