"""Pull/push progress as Docker's CLI shows it (hand-rolled: ``rich`` costs ~70 ms to import).

On a terminal every layer keeps one line, redrawn in place (cursor up, clear, rewrite)::

    7: Pulling from library/centos
    2d473b07cdd5: Downloading [=========>                 ]  25.2MB/76.1MB

Elsewhere each status change is one plain line and byte counts are left out, as ``docker pull``
does when its output is not a terminal.  A printer is the sink of one call: it renders that
call's Docker JSON messages (``engine/messages.py``); ``stream`` messages (load's "Loaded
image: x") are written as they are, a result (``aux``) and the error are not printed (the
command reports the error it raised).
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from cargohold.engine.messages import JSONMessage

_BYTE_STATUSES = frozenset(("Downloading", "Extracting", "Pushing"))
_BAR = 50


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.3g}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1000
    return f"{n}B"


def render(event: JSONMessage) -> str:
    """The text after ``id: `` for one event (with a bar when the total is known)."""
    current, total = event.current, event.total
    if event.status not in _BYTE_STATUSES or current <= 0:
        return event.status
    if total <= 0:
        return f"{event.status}  {_size(current)}"
    filled = min(_BAR, _BAR * current // total)
    bar = "=" * filled + (">" if filled < _BAR else "") + " " * max(0, _BAR - filled - 1)
    return f"{event.status} [{bar}]  {_size(current)}/{_size(total)}"


class ProgressPrinter:
    """A thread-safe sink of one call's messages, writing to ``stream``."""

    def __init__(self, stream: TextIO, tty: bool | None = None, interval: float = 0.1) -> None:
        self.stream = stream
        self.tty = stream.isatty() if tty is None else tty
        self.interval = interval
        self._lock = threading.Lock()
        self._rows: dict[str, int] = {}  # id -> line number
        self._last: dict[str, str] = {}  # id -> last status shown
        self._drawn: dict[str, float] = {}
        self._count = 0

    def __call__(self, event: JSONMessage) -> None:
        if event.aux is not None or event.error_detail is not None:
            return
        with self._lock:
            if event.stream:
                self.stream.write(event.stream)
                self.stream.flush()
                self._count += event.stream.count("\n")
            elif event.progress_detail is None:  # a line of text ("latest: Pulling from x")
                self._line(f"{event.id}: {event.status}" if event.id else event.status)
                self._last.clear()  # a new section: layers are listed again
                self._rows.clear()
            elif self.tty:
                self._tty(event)
            elif event.status != self._last.get(event.id) and not (
                    event.status in _BYTE_STATUSES and event.id in self._last
                    and self._last[event.id] == event.status):
                self._last[event.id] = event.status
                self._line(f"{event.id}: {event.status}")

    def _line(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()
        self._count += 1

    def _tty(self, event: JSONMessage) -> None:
        now = time.monotonic()
        if event.status in _BYTE_STATUSES and self._last.get(event.id) == event.status and (
                now - self._drawn.get(event.id, 0.0) < self.interval):
            return
        self._last[event.id] = event.status
        self._drawn[event.id] = now
        text = f"{event.id}: {render(event)}"
        row = self._rows.get(event.id)
        if row is None:
            self._rows[event.id] = self._count
            self._line(text)
            return
        up = self._count - row
        self.stream.write(f"\x1b[{up}A\r\x1b[2K{text}\r\x1b[{up}B")
        self.stream.flush()
