"""Advisory file locks that exclude threads as well as processes.

An flock(2) lock belongs to an open file description: two opens of one file exclude each
other even inside one process, but threads sharing one descriptor (one FileLock object used
by every thread of a server) all pass.  So each path has one in-process entry: a
readers-writer lock over the threads of this process, re-entrant for the thread holding it,
and the first holder in the process takes the flock (shared or exclusive, as the in-process
holders are) on one descriptor that the last holder closes.  Two FileLock objects on one
path share the entry; a path is keyed as spelled (``os.path.abspath``, no symlink resolved).

After ``fork`` the child starts with no entries (its inherited descriptors are closed without
unlocking, so the parent keeps what it holds): a lock the parent holds blocks the child as it
blocks any other process.
"""

from __future__ import annotations

import _thread
import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType


class _Condition:
    """threading.Condition's wait/notify_all over ``_thread`` locks: ``threading`` costs
    ~1 ms to import and most commands never start a thread."""

    __slots__ = ("_mutex", "_waiters")

    def __init__(self) -> None:
        self._mutex = _thread.allocate_lock()
        self._waiters: list[_thread.LockType] = []

    def __enter__(self) -> None:
        self._mutex.acquire()

    def __exit__(self, *exc: object) -> None:
        self._mutex.release()

    def wait(self) -> None:
        waiter = _thread.allocate_lock()
        waiter.acquire()
        self._waiters.append(waiter)
        self._mutex.release()
        try:
            waiter.acquire()  # until notify_all releases it
        finally:
            self._mutex.acquire()
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    def notify_all(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.release()


class _Entry:
    """The in-process state of one lock path (guarded by ``cond``)."""

    __slots__ = ("cond", "depth", "fd", "locking", "owner", "readers", "users", "writers")

    def __init__(self) -> None:
        self.cond = _Condition()
        self.owner: int | None = None  # thread holding it exclusively
        self.depth = 0  # the owner's re-entries (shared requests of the owner included)
        self.readers: dict[int, int] = {}  # thread -> re-entries, for shared holders
        self.fd: int | None = None  # the flock held for all in-process holders
        self.locking = False  # a holder is taking the flock (outside ``cond``)
        self.writers = 0  # threads waiting to hold it exclusively (new readers let them first)
        self.users = 0  # threads holding or waiting (guarded by _GUARD)

    def enter(self, me: int, shared: bool, blocking: bool) -> bool | None:
        """Join the in-process holders: True (the flock is already held), None (the caller
        is the first holder and must take the flock) or False (busy and not blocking)."""
        with self.cond:
            while True:
                if self.owner == me:
                    self.depth += 1
                    return True
                if me in self.readers:
                    if not shared:
                        raise RuntimeError("a shared lock cannot be upgraded to exclusive")
                    self.readers[me] += 1
                    return True
                free = self.owner is None and not self.locking
                if free and (not self.readers if not shared else not self.writers):
                    if shared:
                        self.readers[me] = 1
                    else:
                        self.owner, self.depth = me, 1
                    if self.fd is not None:
                        return True
                    self.locking = True
                    return None
                if not blocking:
                    return False
                if shared:
                    self.cond.wait()
                    continue
                self.writers += 1
                try:
                    self.cond.wait()
                finally:
                    self.writers -= 1

    def took_flock(self, me: int, fd: int | None) -> None:
        """The first holder's flock result (``None``: not taken, leave again)."""
        with self.cond:
            self.locking = False
            if fd is not None:
                self.fd = fd
            elif self.owner == me:
                self.owner, self.depth = None, 0
            else:
                self.readers.pop(me, None)
            self.cond.notify_all()

    def leave(self, me: int) -> bool:
        """Drop one hold of thread ``me``; False when it held none."""
        with self.cond:
            if self.owner == me:
                self.depth -= 1
                if self.depth:
                    return True
                self.owner = None
            elif me in self.readers:
                self.readers[me] -= 1
                if self.readers[me]:
                    return True
                del self.readers[me]
                if self.readers:
                    return True
            elif self.owner is not None or self.readers:
                raise RuntimeError("release of a lock held by another thread")
            else:
                return False
            fd, self.fd = self.fd, None
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
            self.cond.notify_all()
            return True


_GUARD = _thread.allocate_lock()
_ENTRIES: dict[str, _Entry] = {}


def _after_fork_in_child() -> None:
    global _GUARD, _ENTRIES
    old, _ENTRIES, _GUARD = _ENTRIES, {}, _thread.allocate_lock()
    for entry in old.values():
        if entry.fd is not None:  # the parent's lock: closing our copy leaves it held
            os.close(entry.fd)
            entry.fd = None


os.register_at_fork(after_in_child=_after_fork_in_child)


def _flock(path: Path, shared: bool, blocking: bool) -> int | None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    flags = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    if not blocking:
        flags |= fcntl.LOCK_NB
    try:
        fcntl.flock(fd, flags)
    except BaseException:
        os.close(fd)
        raise
    return fd


class FileLock:
    """An exclusive (or shared) lock on ``path`` against other threads and processes;
    re-entrant for the thread that holds it (through any FileLock object on the path)."""

    def __init__(self, path: Path, shared: bool = False) -> None:
        self.path = path
        self.shared = shared
        self._key = os.path.abspath(path)

    def _entry(self) -> _Entry:
        with _GUARD:
            entry = _ENTRIES.get(self._key)
            if entry is None:
                entry = _ENTRIES[self._key] = _Entry()
            entry.users += 1
            return entry

    def _unuse(self, entry: _Entry) -> None:
        with _GUARD:
            entry.users -= 1
            if entry.users <= 0 and _ENTRIES.get(self._key) is entry:
                del _ENTRIES[self._key]

    def acquire(self, blocking: bool = True) -> bool:
        me = _thread.get_ident()
        entry = self._entry()
        try:
            joined = entry.enter(me, self.shared, blocking)
        except BaseException:
            self._unuse(entry)
            raise
        if joined is None:  # first holder in this process: take the flock
            fd: int | None = None
            try:
                fd = _flock(self.path, self.shared, blocking)
            except BlockingIOError:
                pass
            finally:
                entry.took_flock(me, fd)
                if fd is None:
                    self._unuse(entry)
            return fd is not None
        if not joined:
            self._unuse(entry)
        return joined

    def release(self) -> None:
        """Drop one hold of the calling thread (a no-op when the lock is not held)."""
        with _GUARD:
            entry = _ENTRIES.get(self._key)
        if entry is not None and entry.leave(_thread.get_ident()):
            self._unuse(entry)

    def __enter__(self) -> FileLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def held(path: Path) -> bool:
    """True while any thread of any process (this one included) holds a lock on ``path``;
    a missing lock file is not held.  Takes nothing: a probe on a descriptor of its own."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's own flock, if it got one
    return False
