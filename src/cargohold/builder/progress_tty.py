"""Build progress as BuildKit's TTY display: the ``[+] Building`` block, redrawn in place::

    [+] Building 3.2s (5/12)
     => [internal] load build definition from Dockerfile                         0.0s
     => => transferring dockerfile: 120B done
     => CACHED [2/5] COPY . /src                                                 0.0s
     => [3/5] RUN make                                                           1.3s
     => => # cc -c main.c

Every step event and, on a terminal, a daemon ticker (~10 Hz, for the timers) redraw the
whole block: the cursor goes up as many lines as the last frame drew (ESC[nA), each line is
rewritten and cleared to its end (ESC[K), then the rest of the screen is cleared (ESC[J), so
the cursor always rests on the line after the block.  Rows stay one column short of the
terminal width (no auto-wrap) and a live block is cut to the terminal height (the cursor
cannot climb past the top of the screen).  The final frame (the export done, an error, or
``finish``) drops the output tails and stops the ticker; after an error the failing step's
last output follows between ``------`` lines, as BuildKit prints it.  The build's caller
calls ``finish`` once the build has ended, whatever way: a build that failed without a step
reporting it (a failed pull, an interrupt) gets its final frame there, the step it was in
marked ERROR, and the cursor rests after the block for the caller's ``ERROR:`` line.
"""

from __future__ import annotations

import os
import re
import threading
import time
import unicodedata
from collections import deque
from collections.abc import Callable
from typing import TextIO

import msgspec

TAIL = 6  # output lines shown under a running step
ERROR_TAIL = 10  # output lines kept for the error block
EXPORT = "exporting to image"  # the executor's last step: its end is the build's
REFRESH = 0.1  # seconds between the ticker's redraws
OUTPUT_GAP = 0.05  # seconds between redraws caused by output alone (the ticker does the rest)

_ESCAPE = re.compile(r"\x1b(\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(\x07|\x1b\\)?|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def clean(text: str) -> str:
    """A line of output as a terminal leaves it: what follows its last CR, without escape
    sequences or other control characters, tabs expanded."""
    text = text.rstrip("\r").rsplit("\r", 1)[-1]
    return _CONTROL.sub("", _ESCAPE.sub("", text).expandtabs(8))


def _isatty(out: TextIO) -> bool:
    try:
        return out.isatty()
    except (AttributeError, OSError, ValueError):
        return False


def _char_cols(ch: str) -> int:
    if unicodedata.combining(ch):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in "WF" else 1


def columns(text: str) -> int:
    """Terminal columns ``text`` takes (wide East Asian characters count two)."""
    return len(text) if text.isascii() else sum(_char_cols(ch) for ch in text)


def cut(text: str, cols: int) -> str:
    """``text`` in at most ``cols`` columns, ending in "..." when it had to be cut."""
    if columns(text) <= cols:
        return text
    dots = min(3, cols)
    room, used, keep = cols - dots, 0, []
    for ch in text:
        used += _char_cols(ch)
        if used > room:
            break
        keep.append(ch)
    return "".join(keep) + "." * dots


def row(left: str, right: str, width: int) -> str:
    """``left`` then ``right`` flush right, in ``width - 1`` columns (the last column stays
    empty so that the terminal never wraps); ``left`` alone when there is no room for both."""
    cols = max(width - 1, 1)
    room = cols - len(right) - 1
    if not right or room < 12:
        return cut(left, cols)
    left = cut(left, room)
    return left + " " * (room - columns(left) + 1) + right


def stamp(seconds: float) -> str:
    """BuildKit's log timestamp: three decimals under 10s, two under 100s, else one."""
    return f"{seconds:.{3 if seconds < 10 else 2 if seconds < 100 else 1}f}"


class Step(msgspec.Struct):
    name: str
    started: float
    ended: float | None = None
    mark: str = ""  # "CACHED " or "ERROR "
    notes: list[str] = msgspec.field(default_factory=list)
    keys: dict[str, int] = msgspec.field(default_factory=dict)  # a keyed note's index in notes
    tail: deque[str] = msgspec.field(default_factory=lambda: deque(maxlen=TAIL))
    log: deque[str] = msgspec.field(default_factory=lambda: deque(maxlen=ERROR_TAIL))


class TtyDisplay:
    """The block's state and its frames.  Every write happens under ``lock``."""

    def __init__(
        self,
        out: TextIO,
        lock: threading.Lock,
        clock: Callable[[], float] = time.monotonic,
        width: int | None = None,
        height: int | None = None,
        refresh: float | None = None,
    ) -> None:
        self.out = out
        self.lock = lock
        self.clock = clock
        self.width = width  # None: the terminal's (80 when unknown)
        self.height = height  # None: the terminal's (no limit when unknown)
        if refresh is None:  # timers tick on a terminal; a log gets a frame per event
            refresh = REFRESH if _isatty(out) else 0.0
        self.refresh = refresh  # ticker period; 0: no ticker
        self.steps: list[Step] = []
        self.planned = 0
        self.t0: float | None = None
        self.t1: float | None = None  # when the build finished
        self.drawn = 0  # lines of the last frame, the cursor on the line after them
        self.last = 0.0  # when the last frame was drawn
        self.finished = False
        self.stop = threading.Event()
        self.thread: threading.Thread | None = None

    # -- events (from the build thread) ------------------------------------------------------

    def plan(self, total: int) -> None:
        with self.lock:
            self.planned = total
            if self.steps and not self.finished:
                self._frame()

    def start(self, name: str) -> None:
        with self.lock:
            if self.finished:
                return
            now = self.clock()
            if self.t0 is None:
                self.t0 = now
            self._end(now, "")  # a step left running ends where the next one begins
            self.steps.append(Step(clean(name), now))
            self._frame()
            if self.refresh > 0 and self.thread is None:
                self.thread = threading.Thread(
                    target=self._tick_loop, name="build-progress", daemon=True
                )
                self.thread.start()

    def note(self, text: str, key: str | None = None) -> None:
        """A line under the running step (one of its own when none runs).  A note with a
        ``key`` replaces the step's earlier note with that key (a pulled layer's progress),
        redrawn at most every OUTPUT_GAP like output (the ticker does the rest), and is
        dropped when no step runs."""
        with self.lock:
            step = self._running()
            if step is None:
                if key is None:
                    self._above(text)
                return
            text = clean(text)
            at = None if key is None else step.keys.get(key)
            if at is not None:
                step.notes[at] = text
                if self.clock() - self.last >= OUTPUT_GAP:
                    self._frame()
                return
            if key is not None:
                step.keys[key] = len(step.notes)
            step.notes.append(text)
            self._frame()

    def line(self, text: str) -> None:
        with self.lock:
            step = self._running()
            if step is None:
                return
            now = self.clock()
            text = clean(text)
            step.tail.append(text)
            step.log.append(f"{stamp(now - step.started)} {text}")
            if now - self.last >= OUTPUT_GAP:
                self._frame()

    def cached(self) -> None:
        self._close("CACHED ")

    def done(self) -> None:
        self._close("")

    def error(self) -> None:
        self._close("ERROR ")

    def warn(self, message: str) -> None:
        with self.lock:
            self._above(f"WARNING: {message}")

    def finish(self) -> None:
        """The build has ended: the final frame (and error block) unless the export's end or
        an error drew it, then the ticker is stopped and joined; idempotent.  A step still
        running failed without reporting it: it ends marked ERROR."""
        with self.lock:
            self._finish()
        self._join()

    # -- ticker ------------------------------------------------------------------------------

    def tick(self) -> bool:
        """One timer redraw; False once the block is final (or the terminal has gone)."""
        with self.lock:
            if self.finished:
                return False
            try:
                self._frame()
            except (OSError, ValueError):  # the terminal went away
                self.finished = True
                return False
            return True

    def _tick_loop(self) -> None:
        while not self.stop.wait(self.refresh) and self.tick():
            pass

    def _join(self) -> None:
        thread = self.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=1.0)

    # -- state and frames (lock held) ----------------------------------------------------------

    def _running(self) -> Step | None:
        if self.finished or not self.steps or self.steps[-1].ended is not None:
            return None
        return self.steps[-1]

    def _end(self, now: float, mark: str) -> Step | None:
        step = self._running()
        if step is not None:
            step.ended, step.mark = now, mark
        return step

    def _close(self, mark: str) -> None:
        with self.lock:
            step = self._end(self.clock(), mark)
            if mark == "ERROR " or (step is not None and step.name == EXPORT):
                self._finish()
            elif step is not None:
                self._frame()
        if self.finished:
            self._join()

    def _finish(self) -> None:
        if self.finished:
            return
        now = self.clock()
        # the export's end and an error have ended their step: one still running when the
        # build ends (``finish``) failed without a word, its log shown only if it has one
        unreported = self._end(now, "ERROR ")
        self.t1 = now
        self.finished = True
        self.stop.set()
        if not self.steps:
            return
        self._frame(final=True)
        for step in self.steps:
            if step.mark == "ERROR " and (step is not unreported or step.log):
                logs = "".join(f"{line}\n" for line in step.log)
                self._write(f"------\n > {step.name}:\n{logs}------\n")

    def _above(self, text: str) -> None:
        """A line of its own before the block (after it once the block is final)."""
        if self.finished or not self.drawn:
            self._write(clean(text) + "\n")
            return
        self._write(f"\x1b[{self.drawn}A\r{clean(text)}\x1b[K\n")
        self.drawn = 0
        self._frame()

    def _size(self) -> tuple[int, int]:
        width, height = self.width, self.height
        if width is None or height is None:
            try:
                size = os.get_terminal_size(self.out.fileno())
                cols, lines = size.columns, size.lines
            except (AttributeError, OSError, ValueError):
                cols = lines = 0
            width = cols if width is None else width
            height = lines if height is None else height
        return width or 80, height

    def render(self, final: bool = False) -> list[str]:
        """The lines of one frame."""
        width, height = self._size()
        now = self.t1 if final and self.t1 is not None else self.clock()
        done = sum(1 for s in self.steps if s.ended is not None)
        known = max(self.planned, len(self.steps))
        elapsed = 0.0 if self.t0 is None else max(now - self.t0, 0.0)
        header = f"[+] Building {elapsed:.1f}s ({done}/{known})"
        if final and done == known and all(s.mark != "ERROR " for s in self.steps):
            header += " FINISHED"
        rows: list[str] = []
        live_at = None  # where the running step's rows begin
        for step in self.steps:
            if step.ended is None:
                live_at = len(rows)
            secs = (now if step.ended is None else step.ended) - step.started
            secs = 0.0 if secs < 0.05 else secs  # BuildKit rounds blips down to nothing
            rows.append(row(f" => {step.mark}{step.name}", f"{secs:.1f}s", width))
            rows += [row(f" => => {note}", "", width) for note in step.notes]
            if step.ended is None and not final:
                rows += [row(f" => => # {text}", "", width) for text in step.tail]
        if not final and height:
            # header + rows + the cursor's line must fit (cursor-up stops at the top row): the
            # oldest rows go first, then the running step's oldest output lines
            limit = max(height - 3, 0)
            if len(rows) > limit:
                live_at = len(rows) if live_at is None else live_at
                head, live = rows[:live_at], rows[live_at:]
                if len(live) > limit:
                    live = live[:1] + live[len(live) - limit + 1 :] if limit else []
                room = limit - len(live)
                rows = (head[len(head) - room :] if room else []) + live
        return [cut(header, max(width - 1, 1)), *rows]

    def _frame(self, final: bool = False) -> None:
        lines = self.render(final)
        up = f"\x1b[{self.drawn}A\r" if self.drawn else ""
        self._write(up + "".join(f"{line}\x1b[K\n" for line in lines) + "\x1b[J")
        self.drawn = len(lines)
        self.last = self.clock()

    def _write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()
