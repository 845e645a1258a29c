"""Build progress in BuildKit's styles.

Plain mode (``#N [stage k/m] INSTRUCTION``) prints one line per event, RUN output prefixed
with the vertex number and the seconds since the step started.  TTY mode hands the same
events to ``progress_tty.TtyDisplay``, which redraws BuildKit's ``[+] Building`` block in
place; ``quiet`` prints nothing (``build -q`` prints only the image id).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from cargohold.build.progress_tty import TtyDisplay


class Progress:
    def __init__(
        self,
        out: TextIO,
        mode: str = "plain",
        quiet: bool = False,
        *,
        clock: Callable[[], float] | None = None,
        width: int | None = None,
        height: int | None = None,
        refresh: float | None = None,
    ) -> None:
        """``clock``, ``width``, ``height`` and ``refresh`` (the TTY ticker's period, 0 for
        none; 0.1s on a terminal, none elsewhere) default to the real ones; tests pin them."""
        self.out = out
        self.quiet = quiet
        self.tty = mode == "tty"
        self.vertex = 0
        self.started = 0.0
        self.lock = threading.Lock()
        self.partial = b""
        self.clock = clock
        self.display: TtyDisplay | None = None
        if self.tty and not quiet:
            from cargohold.build.progress_tty import TtyDisplay

            self.display = TtyDisplay(
                out, self.lock, clock or time.monotonic, width, height, refresh
            )

    def _now(self) -> float:
        return self.clock() if self.clock is not None else time.monotonic()

    def _write(self, text: str) -> None:
        if self.quiet:
            return
        with self.lock:
            self.out.write(text)
            self.out.flush()

    def plan(self, total: int) -> None:
        """The build will run ``total`` steps (ONBUILD triggers aside): the TTY header's
        ``(done/total)``; nothing in plain mode."""
        if self.display is not None:
            self.display.plan(total)

    def start(self, name: str) -> int:
        self.vertex += 1
        self.started = self._now()
        self.partial = b""
        if self.display is not None:
            self.display.start(name)
        else:
            self._write(f"#{self.vertex} {name}\n")
        return self.vertex

    def note(self, text: str, key: str | None = None) -> None:
        """A line under the current step.  In TTY mode a note with a ``key`` replaces the
        step's earlier note with the same key (so a pulled layer keeps one line) and is
        dropped when no step runs; plain mode prints every note."""
        if self.display is not None:
            self.display.note(text, key)
        else:
            self._write(f"#{self.vertex} {text}\n")

    def output(self, data: bytes) -> None:
        """Container output: complete lines get the ``#N 0.123`` prefix."""
        data = self.partial + data
        *lines, self.partial = data.split(b"\n")
        for line in lines:
            self._line(line)

    def _line(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace").rstrip("\r")
        if self.display is not None:
            self.display.line(text)
        else:
            self._write(f"#{self.vertex} {self._now() - self.started:.3f} {text}\n")

    def flush_output(self) -> None:
        if self.partial:
            self._line(self.partial)
            self.partial = b""

    def cached(self) -> None:
        if self.display is not None:
            self.display.cached()
        else:
            self._write(f"#{self.vertex} CACHED\n\n")

    def done(self) -> None:
        self.flush_output()
        if self.display is not None:
            self.display.done()
        else:
            self._write(f"#{self.vertex} DONE {self._now() - self.started:.1f}s\n\n")

    def error(self, message: str) -> None:
        """The current step failed with ``message`` (which the caller also raises: the TTY
        block shows the step as ERROR and its last output, the CLI prints the message)."""
        self.flush_output()
        if self.display is not None:
            self.display.error()
        else:
            self._write(f"#{self.vertex} ERROR: {message}\n")

    def warn(self, message: str) -> None:
        if self.display is not None:
            self.display.warn(message)
        else:
            self._write(f"WARNING: {message}\n")

    def finish(self) -> None:
        """The build has ended, whatever way (its caller calls this in a ``finally``, before
        any error is printed): the TTY block's final frame unless the export's end or an
        error drew it, the step still running then marked ERROR, the ticker stopped and
        joined, the cursor after the block; idempotent; nothing in plain mode."""
        if self.display is not None:
            self.display.finish()
