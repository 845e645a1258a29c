"""Store-wide locks, staging areas under ``tmp/`` and crash clean-up.

Every in-progress write lives in ``<root>/tmp/<kind>-<random>`` and holds an flock on that
entry while it is alive.  A process killed mid-write drops its flock with its file
descriptors, so :func:`clean_stale` can tell abandoned entries (lock free) from live ones
(lock held) and remove only the former.  Finished work is published with one ``rename``.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

from cargohold.util.ids import random_hex
from cargohold.util.lockfile import FileLock
from cargohold.util.rmtree import remove_path

_MNT_DETACH = 2
# A store object sweeps tmp/ on its first mutation (one per CLI command); a long-lived
# service's objects sweep again after this many seconds (CLI processes die beside it).
SWEEP_INTERVAL = 60.0
_HIDDEN_GRACE = 600.0
_OCTAL_RE = re.compile(r"\\([0-7]{3})")


def store_lock(root: Path, name: str) -> FileLock:
    """The flock guarding one store area (``<root>/locks/<name>.lock``)."""
    return FileLock(root / "locks" / f"{name}.lock")


_LIVE: dict[int, Staging] = {}  # fd -> its open entry, in this process


def _after_fork_in_child() -> None:
    """A child forked while entries are open (a monitor forked by one thread of a service
    while another stages a layer) must not keep their flocks alive: it closes its copies."""
    for fd, stage in list(_LIVE.items()):
        stage._fd = -1  # close() in the child is a no-op: its fd number may be reused
        with contextlib.suppress(OSError):
            os.close(fd)
    _LIVE.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


class Staging:
    """A locked scratch entry (file or directory) under ``<root>/tmp``."""

    def __init__(self, tmp_dir: Path, kind: str, directory: bool = True) -> None:
        tmp_dir.mkdir(parents=True, exist_ok=True)
        name = f"{kind}-{random_hex(8)}"
        # Created under a dot-name, locked, then renamed: clean_stale never sees an
        # entry between its creation and its flock.
        hidden = tmp_dir / f".{name}"
        if directory:
            hidden.mkdir(mode=0o700)
            self._fd = os.open(hidden, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        else:
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
            self._fd = os.open(hidden, flags, 0o644)
        _LIVE[self._fd] = self
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self.path = tmp_dir / name
        os.rename(hidden, self.path)
        self.published = False

    @property
    def fd(self) -> int:
        return self._fd

    def publish(self, dest: Path) -> None:
        """Rename the staged entry to ``dest`` (the caller holds the store lock)."""
        os.rename(self.path, dest)
        self.published = True

    def close(self) -> None:
        """Drop the staged entry unless it was published, then release the flock."""
        if self._fd < 0:
            return
        try:
            if not self.published:
                remove_path(self.path)
        finally:
            _LIVE.pop(self._fd, None)
            # unlocked first: a process forked meanwhile shares the descriptor
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Staging:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def clean_stale(tmp_dir: Path) -> int:
    """Remove entries of ``tmp_dir`` whose owner died; return how many were removed."""
    removed = 0
    try:
        names = os.listdir(tmp_dir)
    except FileNotFoundError:
        return 0
    now = time.time()
    for name in names:
        path = tmp_dir / name
        if name.startswith(".") and not _older_than(path, now, _HIDDEN_GRACE):
            continue  # may be a Staging between creation and rename
        if _remove_if_abandoned(path):
            removed += 1
    return removed


def _older_than(path: Path, now: float, seconds: float) -> bool:
    try:
        return now - os.lstat(path).st_mtime > seconds
    except OSError:
        return False


def _remove_if_abandoned(path: Path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(path)  # a symlink or special file nobody can hold a lock on
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False  # its writer is alive
        detach_mounts_under(path)
        if _has_mounts_under(path):
            return False  # never delete through a mount we could not detach
        remove_path(path)
        return True
    finally:
        os.close(fd)


def _mount_points() -> list[str]:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    points = []
    for line in lines:
        fields = line.split()
        if len(fields) > 4:
            points.append(_OCTAL_RE.sub(lambda m: chr(int(m.group(1), 8)), fields[4]))
    return points


def _under(path: Path) -> list[str]:
    prefix = str(path.resolve())
    return [p for p in _mount_points() if p == prefix or p.startswith(prefix + "/")]


def _has_mounts_under(path: Path) -> bool:
    return bool(_under(path))


def detach_mounts_under(path: Path) -> None:
    """Lazily unmount every mount at or below ``path`` (deepest first)."""
    points = _under(path)
    if not points:
        return
    for point in sorted(points, key=len, reverse=True):
        umount(point, detach=True)


_libc: ctypes.CDLL | None = None


def libc() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        # CDLL(None): the libc this process already has (find_library would run ldconfig)
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def umount(target: str | Path, detach: bool = False) -> None:
    """umount2(2); a target that is not mounted (EINVAL) or gone (ENOENT) is fine."""
    flags = _MNT_DETACH if detach else 0
    if libc().umount2(os.fsencode(str(target)), flags) != 0:
        err = ctypes.get_errno()
        if err in (errno.EINVAL, errno.ENOENT):
            return
        raise OSError(err, f"umount {target}: {os.strerror(err)}")


@contextlib.contextmanager
def staged(tmp_dir: Path, kind: str, directory: bool = True) -> Iterator[Staging]:
    stage = Staging(tmp_dir, kind, directory)
    try:
        yield stage
    finally:
        stage.close()
