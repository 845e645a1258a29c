"""Build progress in BuildKit's styles: the rendering of a build's events for the CLI.

A :class:`Progress` is the sink of one build (``build/events.py``): plain mode (``#N [stage
k/m] INSTRUCTION``) prints one line per event, RUN output prefixed with the vertex number and
the seconds since the step started.  TTY mode hands the same events to
``progress_tty.TtyDisplay``, which redraws BuildKit's ``[+] Building`` block in place;
``quiet`` prints nothing (``build -q`` prints only the image id).  The pulls of ``FROM``
(Docker's JSON messages) become notes of the running step on a terminal, elsewhere they go
to ``pulls`` (the CLI's own pull lines).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO

from cargohold.builder import events as E
from cargohold.transport.registry.events import JSONMessage, MessageSink

if TYPE_CHECKING:
    from cargohold.builder.progress_tty import TtyDisplay


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
        pulls: MessageSink | None = None,
    ) -> None:
        """``clock``, ``width``, ``height`` and ``refresh`` (the TTY ticker's period, 0 for
        none; 0.1s on a terminal, none elsewhere) default to the real ones; tests pin them.
        ``pulls``: where the pull messages of ``FROM`` go outside TTY mode (else dropped)."""
        self.out = out
        self.pulls = pulls
        self.quiet = quiet
        self.tty = mode == "tty"
        self.vertex = 0
        self.started = 0.0
        self.lock = threading.Lock()
        self.partial = b""
        self.clock = clock
        self.display: TtyDisplay | None = None
        self._pull_notes: MessageSink | None = None
        if self.tty and not quiet:
            from cargohold.builder.progress_tty import TtyDisplay

            self.display = TtyDisplay(
                out, self.lock, clock or time.monotonic, width, height, refresh
            )

    def __call__(self, event: E.BuildEvent | JSONMessage) -> None:
        """One event of the build (from its thread, RUN output from a reader thread)."""
        if isinstance(event, JSONMessage):
            self._message(event)
            return
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    def _message(self, message: JSONMessage) -> None:
        """A pull's message (from the pull's threads too); the build's result and error
        are the caller's to show."""
        if message.aux is not None or message.error_detail is not None:
            return
        if self.display is not None:
            if self._pull_notes is None:
                self._pull_notes = pull_notes(self)
            self._pull_notes(message)
        elif self.pulls is not None:
            self.pulls(message)

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


_HANDLERS: dict[type, Callable[[Progress, Any], object]] = {
    E.Planned: lambda p, e: p.plan(e.steps),
    E.StepStarted: lambda p, e: p.start(e.name),
    E.StepNote: lambda p, e: p.note(e.text, e.key),
    E.StepOutput: lambda p, e: p.output(e.data),
    E.StepCached: lambda p, e: p.cached(),
    E.StepDone: lambda p, e: p.done(),
    E.StepFailed: lambda p, e: p.error(e.message),
    E.BuildWarning: lambda p, e: p.warn(e.message),
    E.ImageWritten: lambda p, e: p.note(f"writing image {e.id} done"),
    E.ImageTagged: lambda p, e: p.note(f"naming to {e.name} done"),
}


def _size(n: int) -> str:
    """Bytes in decimal units, three significant digits: ``512kB``, ``3.2MB``."""
    value, unit = float(n), "B"
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 999.5 or unit == "TB":
            break
        value /= 1000
    return f"{n}B" if unit == "B" else f"{value:.3g}{unit}"


def _pull_line(message: JSONMessage) -> str | None:
    """The note for a pull's line of text (None: nothing to add to the FROM step's row)."""
    text = message.status
    if message.id and text.startswith("Pulling from "):
        path, ref = text.removeprefix("Pulling from "), message.id
        if path.startswith("library/") and path.count("/") == 1:
            path = path.removeprefix("library/")
        return f"pulling {path}{'@' if ':' in ref else ':'}{ref}"
    if text.startswith("Unable to find image "):
        return None
    return f"{message.id}: {text}" if message.id else text  # Digest: ..., Status: ...


def pull_notes(progress: Progress) -> MessageSink:
    """Pull messages (from the pull's threads too) as notes of the running step, BuildKit's
    way: ``pulling busybox:latest``, then one line per layer that its later messages replace
    (``sha256:0123456789ab 1.2MB / 2.2MB``, ``... done``, ``extracting sha256:0123456789ab
    done``), then the digest and status lines."""
    totals: dict[str, int] = {}

    def report(message: JSONMessage) -> None:
        if message.progress_detail is None:
            text = _pull_line(message)
            if text is not None:
                progress.note(text, key=f"line {text}")
            return
        status, layer, current = message.status, f"sha256:{message.id}", message.current
        if message.total > 0:
            totals[message.id] = message.total
        total = totals.get(message.id, 0)
        sizes = _size(current) + (f" / {_size(total)}" if total else "")
        if status in ("Already exists", "Verifying Checksum"):
            return  # nothing to fetch; nothing new
        if status == "Downloading" and current > 0:
            text = f"{layer} {sizes}"
        elif status == "Download complete":
            text = f"{layer} {_size(total)} / {_size(total)} done" if total else f"{layer} done"
        elif status == "Extracting" and current > 0:
            text = f"extracting {layer} {sizes}"
        elif status == "Pull complete":
            text = f"extracting {layer} done"
        elif status == "Pulling fs layer":
            text = f"{layer} waiting"
        else:
            text = f"{layer} {status.lower()}"
        progress.note(text, key=f"layer {message.id}")

    return report
