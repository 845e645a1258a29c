"""Reading the shared event log (util/eventlog.py): Docker's ``events.Message`` decoded
from each line, and :class:`Follower`, which reads the lines in order across rotations.

Following: inotify on the log's directory (via ctypes, no new dependency), so a waiting
reader costs no CPU and sees a new line within a millisecond; where inotify is unavailable
(no syscall, or the per-user instance limit reached) it polls every :data:`POLL_SECONDS`.
:meth:`Follower.wake` ends a wait from another thread (a server whose client went away).
"""

# No ``from __future__ import annotations``: msgspec then reads the structs' annotations as
# objects instead of compiling strings (~0.3 ms).
import contextlib
import math
import os
import select
import threading
from collections.abc import Iterator
from pathlib import Path

import msgspec

from cargohold.util.eventlog import EventLog

POLL_SECONDS = 0.1  # follow interval when inotify is not available


class EventActor(msgspec.Struct, frozen=True):
    """Docker's ``events.Actor``: the object's id and its attributes (labels among them)."""

    ID: str = ""
    Attributes: dict[str, str] = msgspec.field(default_factory=dict)


class Message(msgspec.Struct, frozen=True, omit_defaults=True):
    """Docker's ``events.Message`` (api/types/events), field for field and in its order.

    The attribute names are Go's, so ``--format '{{.Actor.Attributes.name}}'`` works on it as
    on Docker's; ``msgspec.json.encode`` gives the wire object (``status``/``id``/``from``,
    deprecated but read by compose 1.29, only on container and image events as Docker)."""

    Status: str = msgspec.field(default="", name="status")
    ID: str = msgspec.field(default="", name="id")
    From: str = msgspec.field(default="", name="from")
    Type: str = ""
    Action: str = ""
    Actor: EventActor = msgspec.field(default_factory=EventActor)
    Scope: str = msgspec.field(default="", name="scope")
    Time: int = msgspec.field(default=0, name="time")
    TimeNano: int = msgspec.field(default=0, name="timeNano")


_decoder = msgspec.json.Decoder(Message)


def decode_line(line: bytes) -> Message | None:
    """The event of one line, or None for a blank or broken one.  A line that is a torn
    fragment with a whole event appended to it yields that event."""
    if not line.strip():
        return None
    try:
        return _decoder.decode(line)
    except (msgspec.DecodeError, msgspec.ValidationError):
        pass
    start = line.find(b"{", 1)
    while start > 0:
        with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
            msg = _decoder.decode(line[start:])
            if msg.Type and msg.Action:
                return msg
        start = line.find(b"{", start + 1)
    return None


def _key(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _same(fd: int, path: Path) -> bool:
    """Whether ``path`` still names the file open as ``fd``."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return _key(fd) == (st.st_dev, st.st_ino)


def _open_ro(path: Path) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None


class Follower:
    """Reads the log's lines in order: from the oldest kept event (``replay``) or from the
    end as it is now, and on each :meth:`read` whatever was appended since, across
    rotations (a segment that was filled and rotated between two reads is read from
    ``events.jsonl.1``; only a reader that sleeps through two whole segments loses events).
    Not thread-safe except :meth:`wake`."""

    def __init__(self, log: EventLog, replay: bool) -> None:
        self.log = log
        log.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._watch = _Watch(log.dir)  # before opening: no append can slip between
        self._queue: list[int] = []  # fds still to read; the last one is the current segment
        self._done: tuple[int, int] | None = None  # the last segment read to its end
        self._pending = b""
        self._woken = False
        self._lock = threading.Lock()
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._wake_r, self._wake_w = r, w
        self._pick_up()
        if not replay and self._queue:  # only what comes next: skip to the end of the log
            while len(self._queue) > 1:
                self._drop_first()
            os.lseek(self._queue[0], 0, os.SEEK_END)

    def _pick_up(self) -> bool:
        """Queue the segments to read next: the previous one unless it was read already
        (a segment filled and rotated since the last read), then the current one."""
        for _ in range(5):  # a rotation between the two opens: again
            current = _open_ro(self.log.path)
            previous = _open_ro(self.log.previous)
            if current is None or _same(current, self.log.path):
                break
            for fd in (current, previous):
                if fd is not None:
                    os.close(fd)
        if previous is not None and _key(previous) in (
            self._done, _key(current) if current is not None else None
        ):
            os.close(previous)
            previous = None
        if previous is not None:
            self._queue.append(previous)
        if current is not None:
            self._queue.append(current)
        return bool(self._queue)

    def read(self) -> Iterator[Message]:
        """The events appended since the last call (complete lines only)."""
        while True:
            if self._queue:
                fd = self._queue[0]
                while chunk := os.read(fd, 1 << 16):
                    yield from self._lines(chunk)
                if len(self._queue) > 1:  # a rotated segment is final: on to the next
                    self._drop_first()
                    continue
                if _same(fd, self.log.path):
                    return
                # rotated: what the old segment got before the rename is read above
                while chunk := os.read(fd, 1 << 16):
                    yield from self._lines(chunk)
                self._drop_first()
            if not self._pick_up():
                return

    def _drop_first(self) -> None:
        fd = self._queue.pop(0)
        self._done = _key(fd)
        os.close(fd)
        self._pending = b""  # a torn line at the end of a finished segment

    def _lines(self, chunk: bytes) -> Iterator[Message]:
        data = self._pending + chunk
        *lines, self._pending = data.split(b"\n")
        for line in lines:
            msg = decode_line(line)
            if msg is not None:
                yield msg

    def wait(self, timeout: float | None) -> bool:
        """Block until the log may have changed, ``timeout`` passed, or :meth:`wake`; False
        once woken (the caller stops)."""
        if not self._woken:
            self._watch.wait(timeout, self._wake_r)
        return not self._woken

    def wake(self) -> None:
        """From any thread: end the current and every later :meth:`wait`."""
        with self._lock:
            self._woken = True
            if self._wake_w >= 0:
                with contextlib.suppress(OSError):
                    os.write(self._wake_w, b"x")

    def close(self) -> None:
        """Release the descriptors (once; by the reading thread)."""
        if self._wake_r < 0:
            return
        for fd in self._queue:
            os.close(fd)
        self._queue.clear()
        self._watch.close()
        with self._lock:
            os.close(self._wake_r)
            os.close(self._wake_w)
            self._wake_r = self._wake_w = -1


IN_MODIFY = 0x002
IN_MOVED_TO = 0x080
IN_CREATE = 0x100
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC


class _Watch:
    """inotify on the log's directory (appends, the rename and the new segment), or a
    plain timer where inotify is unavailable (no syscall, or the instance limit reached)."""

    def __init__(self, directory: Path) -> None:
        self.fd = -1
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
            if fd >= 0:
                mask = IN_MODIFY | IN_MOVED_TO | IN_CREATE
                if libc.inotify_add_watch(fd, os.fsencode(directory), mask) >= 0:
                    self.fd = fd
                else:
                    os.close(fd)

    def wait(self, timeout: float | None, wake_fd: int) -> None:
        poller = select.poll()
        poller.register(wake_fd, select.POLLIN)
        if self.fd >= 0:
            poller.register(self.fd, select.POLLIN)
        elif timeout is None or timeout > POLL_SECONDS:
            timeout = POLL_SECONDS
        poller.poll(None if timeout is None else max(0, math.ceil(timeout * 1000)))
        if self.fd >= 0:
            with contextlib.suppress(BlockingIOError):
                while os.read(self.fd, 4096):
                    pass

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
