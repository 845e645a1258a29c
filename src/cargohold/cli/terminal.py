"""The CLI's terminal around an engine session (``run``, ``start -a``, ``attach``, ``exec``).

The engine's attach and exec sessions work over explicit streams and never touch this
process's stdio, terminal or signal handlers; here the CLI puts its terminal in raw mode, keeps
the container's TTY size in step with its own (SIGWINCH -> ``session.resize``), forwards the
signals it receives (``--sig-proxy``: SIGINT, SIGTERM, ... -> ``kill``), and pumps its stdin
into the session and the session's output to its stdout/stderr, as docker/cli's hijack code
does over a socket.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import struct
from collections.abc import Callable, Iterator
from types import FrameType
from typing import BinaryIO, Protocol

PROXIED_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)
STDOUT, STDERR = 1, 2  # the session's stream numbers (Docker's stdcopy ones)


class Session(Protocol):
    """What the engine's AttachSession and ExecSession both offer."""

    done: bool
    detached: bool

    def fileno(self) -> int: ...
    def receive(self) -> list[tuple[int, bytes]]: ...
    def write(self, data: bytes) -> bool: ...
    def close_stdin(self) -> None: ...
    def resize(self, height: int, width: int) -> None: ...


def window_size(fd: int | None) -> tuple[int, int] | None:
    """(rows, columns) of the terminal on ``fd``; None when it is not one."""
    if fd is None:
        return None
    import fcntl
    import termios

    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return None
    return rows, cols


@contextlib.contextmanager
def raw_terminal(fd: int | None) -> Iterator[None]:
    """The terminal on ``fd`` in raw mode for the block (nothing when it is not one)."""
    if fd is None or not os.isatty(fd):
        yield
        return
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def signal_handlers(
    handlers: dict[int, Callable[[int, FrameType | None], None]],
) -> Iterator[None]:
    saved = {sig: signal.signal(sig, fn) for sig, fn in handlers.items()}
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def ignoring_interrupts() -> Iterator[None]:
    """While runc waits for an exec without a TTY, Ctrl-C belongs to the process (the
    terminal sends it to runc too, which forwards it); Docker's exec has no sig-proxy."""
    with signal_handlers({s: lambda *_: None for s in (signal.SIGINT, signal.SIGQUIT)}):
        yield


def pump(
    session: Session,
    *,
    stdin: int | None,
    stdout: BinaryIO,
    stderr: BinaryIO,
    raw: bool = False,
    size_from: int | None = None,
    forward: Callable[[int], object] | None = None,
) -> bool:
    """Copy ``stdin`` into the session and its output to ``stdout``/``stderr`` until it
    ends; True when the user detached.  ``raw``: the terminal on ``stdin`` is in raw mode
    meanwhile; ``size_from``: the terminal whose size is sent now and on every SIGWINCH;
    ``forward`` gets every proxied signal this process receives."""
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    pending: list[int] = []

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        pending.append(signum)
        with contextlib.suppress(OSError):
            os.write(wake_w, b"\0")

    handlers: dict[int, Callable[[int, FrameType | None], None]] = {}
    if forward is not None:
        handlers.update({int(s): on_signal for s in PROXIED_SIGNALS})
    size = window_size(size_from)
    if size is not None:
        handlers[int(signal.SIGWINCH)] = on_signal
        session.resize(*size)
    try:
        with signal_handlers(handlers), raw_terminal(stdin if raw else None):
            return _loop(session, stdin, stdout, stderr, wake_r, pending, size_from, forward)
    finally:
        os.close(wake_r)
        os.close(wake_w)


def _loop(
    session: Session,
    stdin: int | None,
    stdout: BinaryIO,
    stderr: BinaryIO,
    wake_r: int,
    pending: list[int],
    size_from: int | None,
    forward: Callable[[int], object] | None,
) -> bool:
    watch = [session.fileno(), wake_r] + ([stdin] if stdin is not None else [])
    while not session.done:
        try:
            ready, _, _ = select.select(watch, [], [])
        except InterruptedError:
            ready = [wake_r]
        if wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 512)
            while pending:
                signum = pending.pop(0)
                if signum == signal.SIGWINCH:
                    size = window_size(size_from)
                    if size:
                        session.resize(*size)
                elif forward is not None:
                    forward(signum)
        if stdin is not None and stdin in ready:
            data = os.read(stdin, 65536)
            if not data:
                watch.remove(stdin)
                stdin = None
                session.close_stdin()
            elif session.write(data):
                return True
        if watch[0] in ready:
            for kind, payload in session.receive():
                out = stderr if kind == STDERR else stdout
                out.write(payload)
                out.flush()
    return session.detached
