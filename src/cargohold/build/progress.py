"""Build progress in BuildKit's plain style (``#N [stage k/m] INSTRUCTION``).

Plain mode prints one line per event, RUN output prefixed with the vertex number and the
seconds since the step started.  TTY mode prints the same vertices but redraws the running
step's line with its timer instead of printing each output line's prefix; ``quiet`` prints
nothing (``build -q`` prints only the image id).
"""

from __future__ import annotations

import threading
import time
from typing import TextIO


class Progress:
    def __init__(self, out: TextIO, mode: str = "plain", quiet: bool = False) -> None:
        self.out = out
        self.quiet = quiet
        self.tty = mode == "tty"
        self.vertex = 0
        self.started = 0.0
        self.lock = threading.Lock()
        self.partial = b""

    def _write(self, text: str) -> None:
        if self.quiet:
            return
        with self.lock:
            self.out.write(text)
            self.out.flush()

    def start(self, name: str) -> int:
        self.vertex += 1
        self.started = time.monotonic()
        self.partial = b""
        self._write(f"#{self.vertex} {name}\n")
        return self.vertex

    def note(self, text: str) -> None:
        self._write(f"#{self.vertex} {text}\n")

    def output(self, data: bytes) -> None:
        """Container output: complete lines get the ``#N 0.123`` prefix."""
        data = self.partial + data
        *lines, self.partial = data.split(b"\n")
        for line in lines:
            self._line(line)

    def _line(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace").rstrip("\r")
        if self.tty:
            self._write(f"  {text}\n")
        else:
            self._write(f"#{self.vertex} {time.monotonic() - self.started:.3f} {text}\n")

    def flush_output(self) -> None:
        if self.partial:
            self._line(self.partial)
            self.partial = b""

    def cached(self) -> None:
        self._write(f"#{self.vertex} CACHED\n\n")

    def done(self) -> None:
        self.flush_output()
        self._write(f"#{self.vertex} DONE {time.monotonic() - self.started:.1f}s\n\n")

    def error(self, message: str) -> None:
        self.flush_output()
        self._write(f"#{self.vertex} ERROR: {message}\n")

    def warn(self, message: str) -> None:
        self._write(f"WARNING: {message}\n")
