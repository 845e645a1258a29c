"""The shared event log: one Docker event per line in ``<runroot>/events/``; this module
writes it, :mod:`cargohold.util.eventlog_read` reads and follows it.

Every mutation (by a CLI process, a container's monitor, later the API server) appends one
line; ``cargohold events`` and ``GET /events`` read and follow the file.  There is no daemon
to hold events in memory, so the file is the truth, as podman's events file is.

Writing (:func:`emit`): one ``open(O_APPEND)``, a shared ``flock`` on that file, one
``write`` of the whole line, ``close`` (~9 us).  Appends of one ``write`` each never
interleave on Linux, whatever their size, so concurrent writers in many processes and threads
produce whole lines.  A writer killed in the middle of a write can leave a torn line; readers
skip it (``decode_line`` finds the event a later writer appended to the fragment) and a
partial last line is simply not complete yet.

Bounds: when the current segment (``events.jsonl``) reaches :data:`SEGMENT_MAX` bytes the
writer that noticed rotates it to ``events.jsonl.1`` (replacing the older one) under an
exclusive ``flock`` of the full file, after marking it read-only (:data:`ROTATED_MODE`).  A
writer that opened the file before the rename takes its shared lock after the rotator let go,
sees the mark and reopens the path, so nothing is written into a rotated segment once the
rename is visible: a follower that sees the rename drains the old segment once and moves on.
At most ``2 * SEGMENT_MAX`` bytes are kept (8,000-15,000 events; Docker replays at most 256).

This module defines no classes but :class:`EventLog` and builds the line as a dict (Go's
field order, sorted attributes): a command that writes an event pays ~0.2 ms to import it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import stat
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

EVENTS_DIR = "events"
CURRENT = "events.jsonl"
PREVIOUS = "events.jsonl.1"
SEGMENT_MAX = 2 << 20  # bytes per segment; two segments are kept
LINE_MAX = 64 << 10  # a longer event (huge labels) is written without its labels
ROTATED_MODE = 0o400  # the mark of a segment that was rotated away
FILE_MODE = 0o600


def event_object(
    kind: str, action: str, actor_id: str, attributes: Mapping[str, str], now_ns: int = 0
) -> dict[str, Any]:
    """Docker's ``events.Message`` as JSON data, in its field order, stamped now; the
    deprecated ``status``/``id``/``from`` only on container and image events, as moby."""
    t = now_ns or time.time_ns()
    out: dict[str, Any] = {}
    if kind in ("container", "image"):
        out["status"] = action
        if actor_id:
            out["id"] = actor_id
        if kind == "container" and attributes.get("image"):
            out["from"] = attributes["image"]
    out["Type"] = kind
    out["Action"] = action
    attrs = {k: str(v) for k, v in sorted(attributes.items())}
    out["Actor"] = {"ID": actor_id, "Attributes": attrs}
    out["scope"] = "local"
    out["time"] = t // 1_000_000_000
    out["timeNano"] = t
    return out


def encode_line(obj: dict[str, Any], keep: frozenset[str] = frozenset()) -> bytes:
    """The log line of ``obj``; past :data:`LINE_MAX` only the attributes in ``keep`` stay."""
    line = msgspec.json.encode(obj) + b"\n"
    if len(line) <= LINE_MAX:
        return line
    actor = obj["Actor"]
    attrs = {k: v[:1024] for k, v in actor["Attributes"].items() if k in keep}
    small = {**obj, "Actor": {"ID": actor["ID"], "Attributes": attrs}}
    return msgspec.json.encode(small) + b"\n"


class EventLog:
    """The event log of one run root."""

    def __init__(self, runroot: Path) -> None:
        self.dir = runroot / EVENTS_DIR
        self.path = self.dir / CURRENT
        self.previous = self.dir / PREVIOUS

    def append_line(self, line: bytes) -> None:
        """Append one encoded event (see the module for why no exclusive lock is needed)."""
        for _ in range(3):
            fd = self._open_current()
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                st = os.fstat(fd)
                written = -1  # renamed away meanwhile (or its rotator died): reopen
                if stat.S_IMODE(st.st_mode) != ROTATED_MODE:
                    written = os.write(fd, line)
                    if written < len(line):  # ENOSPC halfway: end the torn line
                        with contextlib.suppress(OSError):
                            os.write(fd, b"\n")
            finally:
                os.close(fd)
            if written < 0:
                self._rotate(st)
            elif st.st_size + written >= SEGMENT_MAX:
                self._rotate(None)
                return
            else:
                return

    def _open_current(self) -> int:
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            return os.open(self.path, flags, FILE_MODE)
        except FileNotFoundError:
            self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            return os.open(self.path, flags, FILE_MODE)

    def _rotate(self, marked: os.stat_result | None) -> None:
        """Move a full current segment (or one a rotator marked and died on) to PREVIOUS."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
        except FileNotFoundError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            st = os.fstat(fd)
            if marked is not None and (st.st_ino, st.st_dev) != (marked.st_ino, marked.st_dev):
                return  # the marked one is gone already
            try:
                at_path = os.stat(self.path)
            except FileNotFoundError:
                return
            if (at_path.st_ino, at_path.st_dev) != (st.st_ino, st.st_dev):
                return  # someone else rotated it
            if stat.S_IMODE(st.st_mode) != ROTATED_MODE and st.st_size < SEGMENT_MAX:
                return
            os.fchmod(fd, ROTATED_MODE)
            os.replace(self.path, self.previous)
        finally:
            os.close(fd)


def emit(
    runroot: Path,
    kind: str,
    action: str,
    actor_id: str,
    attributes: Mapping[str, str],
    keep: frozenset[str] = frozenset(),
) -> None:
    """Append one event; never fails the mutation it reports (an unwritable log is
    skipped)."""
    with contextlib.suppress(OSError):
        line = encode_line(event_object(kind, action, actor_id, attributes), keep)
        EventLog(runroot).append_line(line)
