"""The attach socket: framing shared by the monitor (server) and the CLI (client).

Every message is a frame ``type:u8 length:u32be payload``.

- monitor -> client: STDOUT, STDERR (output bytes), EXIT (JSON ``{"ExitCode": n, "Error": ""}``,
  sent when the container's process ends; the monitor then closes the connection; with
  ``"Kind"`` (an errors class name) when the container could not be launched at all).
- client -> monitor: STDIN (bytes for the container), RESIZE (``rows:u16 cols:u16``), CLOSE_STDIN
  (the client's stdin hit EOF), SIGNAL (signal number as ASCII digits, for --sig-proxy).

The socket lives at ``<runroot>/containers/<id>/attach.sock``; the client connects through
``/proc/self/fd/<dirfd>/attach.sock`` so long run directories never hit the 108-byte limit of
unix socket paths.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import selectors
import signal
import socket
import struct
import sys
import termios
import tty
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import BinaryIO

import msgspec

STDIN, STDOUT, STDERR, EXIT, RESIZE, CLOSE_STDIN, SIGNAL = 0, 1, 2, 3, 4, 5, 6
_HEADER = struct.Struct(">BI")
SOCKET_NAME = "attach.sock"
DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q
PROXIED_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


def frame(kind: int, payload: bytes = b"") -> bytes:
    return _HEADER.pack(kind, len(payload)) + payload


class FrameReader:
    """Incremental decoder: feed bytes, get complete frames."""

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, data: bytes) -> Iterator[tuple[int, bytes]]:
        self._buf += data
        while len(self._buf) >= _HEADER.size:
            kind, size = _HEADER.unpack_from(self._buf)
            if len(self._buf) < _HEADER.size + size:
                return
            payload = self._buf[_HEADER.size : _HEADER.size + size]
            self._buf = self._buf[_HEADER.size + size :]
            yield kind, payload


def parse_detach_keys(spec: str) -> bytes:
    """Docker's --detach-keys: comma-separated ``ctrl-<x>`` or single characters."""
    out = bytearray()
    for part in spec.split(","):
        part = part.strip()
        if part.startswith("ctrl-") and len(part) == 6:
            ch = part[5].lower()
            codes = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}
            out.append(ord(ch) - ord("a") + 1 if ch.isalpha() else codes.get(ch, -1))
        elif len(part) == 1:
            out.append(ord(part))
        else:
            from cargohold.errors import InvalidArgument

            raise InvalidArgument(f"Invalid detach keys ({spec}) provided")
    return bytes(out)


def connect(run_dir: Path) -> socket.socket:
    """Connect to the attach socket of the container whose run directory is ``run_dir``."""
    dirfd = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(f"/proc/self/fd/{dirfd}/{SOCKET_NAME}")
        except OSError:
            sock.close()
            raise
        return sock
    finally:
        os.close(dirfd)


class AttachResult(msgspec.Struct, frozen=True):
    exit_code: int | None  # None: detached, or the monitor went away without an exit frame
    detached: bool = False
    error: str = ""
    kind: str = ""  # set: the container was never launched (an errors class name)


class _EscapeMatcher:
    """Finds the detach sequence in typed input; holds back a partial match."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        if not self.keys:
            return data, False
        out = bytearray()
        for byte in data:
            candidate = self.held + bytes([byte])
            if self.keys.startswith(candidate):
                self.held = candidate
                if candidate == self.keys:
                    return bytes(out), True
            else:
                out += candidate
                self.held = b""
        return bytes(out), False


def _window_size(fd: int) -> tuple[int, int] | None:
    try:
        rows, cols, _, _ = struct.unpack("HHHH", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8))
    except OSError:
        return None
    return rows, cols


@contextlib.contextmanager
def _raw_terminal(fd: int | None) -> Iterator[None]:
    if fd is None or not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    tty.setraw(fd)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


@contextlib.contextmanager
def _signal_handlers(
    handlers: dict[int, Callable[[int, FrameType | None], None]],
) -> Iterator[None]:
    saved = {sig: signal.signal(sig, fn) for sig, fn in handlers.items()}
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)


def resize_frame(rows: int, cols: int) -> bytes:
    return frame(RESIZE, struct.pack(">HH", rows, cols))


def attach(
    sock: socket.socket,
    *,
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
    stderr: BinaryIO | None = None,
    tty_mode: bool = False,
    detach_keys: bytes = DEFAULT_DETACH_KEYS,
    sig_proxy: bool = True,
    detach_message: bool = False,
) -> AttachResult:
    """Copy the container's output to ``stdout``/``stderr`` and ``stdin`` to the container
    until it exits (returns its exit code) or the user types the detach keys.  A container
    its monitor could not launch (held for this client) raises that error instead, as
    ``start`` would have (CommandNotFound: 127, CannotExecute: 126, ...).

    With ``tty_mode`` the local terminal is put in raw mode and its size (now and on every
    SIGWINCH) is sent to the container.  With ``sig_proxy`` SIGINT, SIGTERM, ... received by
    this process are forwarded to the container.  ``detach_message`` prints Docker's
    "read escape sequence" on detaching (``docker attach`` does; ``run -it`` does not).
    """
    out = stdout if stdout is not None else sys.stdout.buffer
    err = stderr if stderr is not None else sys.stderr.buffer
    in_fd = stdin.fileno() if stdin is not None else None
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    pending_signals: list[int] = []
    handlers: dict[int, Callable[[int, FrameType | None], None]] = {}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        pending_signals.append(signum)
        with contextlib.suppress(OSError):
            os.write(wake_w, b"\0")

    if sig_proxy:
        handlers.update({int(s): on_signal for s in PROXIED_SIGNALS})
    if tty_mode and in_fd is not None and os.isatty(in_fd):
        handlers[int(signal.SIGWINCH)] = on_signal
        size = _window_size(in_fd)
        if size:
            sock.sendall(resize_frame(*size))
    try:
        with _signal_handlers(handlers), _raw_terminal(in_fd if tty_mode else None):
            result = _pump(
                sock,
                in_fd,
                out,
                err,
                tty_mode,
                detach_keys,
                wake_r,
                pending_signals,
                detach_message,
            )
    finally:
        os.close(wake_r)
        os.close(wake_w)
    if result.kind:
        from cargohold import errors

        cls = getattr(errors, result.kind, None)
        if not (isinstance(cls, type) and issubclass(cls, errors.CargoholdError)):
            cls = errors.Internal
        raise cls(result.error)
    return result


def _pump(
    sock: socket.socket,
    in_fd: int | None,
    out: BinaryIO,
    err: BinaryIO,
    tty_mode: bool,
    detach_keys: bytes,
    wake_r: int,
    pending_signals: list[int],
    detach_message: bool,
) -> AttachResult:
    reader = FrameReader()
    escape = _EscapeMatcher(detach_keys if tty_mode else b"")
    watch = [sock.fileno(), wake_r] + ([in_fd] if in_fd is not None else [])
    while True:
        try:
            ready, _, _ = select.select(watch, [], [])
        except InterruptedError:
            ready = [wake_r]
        if wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(wake_r, 512)
            while pending_signals:
                signum = pending_signals.pop(0)
                if signum == signal.SIGWINCH and in_fd is not None:
                    size = _window_size(in_fd)
                    if size:
                        sock.sendall(resize_frame(*size))
                else:
                    sock.sendall(frame(SIGNAL, str(signum).encode()))
        if in_fd is not None and in_fd in ready:
            data = os.read(in_fd, 65536)
            if not data:
                watch.remove(in_fd)
                in_fd = None
                sock.sendall(frame(CLOSE_STDIN))
            else:
                data, detached = escape.feed(data)
                if data:
                    sock.sendall(frame(STDIN, data))
                if detached:
                    if detach_message:
                        err.write(b"read escape sequence\n")
                        err.flush()
                    return AttachResult(None, detached=True)
        if sock.fileno() in ready:
            data = sock.recv(65536)
            if not data:
                return AttachResult(None, error="connection to the container monitor closed")
            for kind, payload in reader.feed(data):
                if kind == STDOUT:
                    out.write(payload)
                    out.flush()
                elif kind == STDERR:
                    err.write(payload)
                    err.flush()
                elif kind == EXIT:
                    info = json.loads(payload or b"{}")
                    return AttachResult(
                        int(info.get("ExitCode", 0)),
                        error=info.get("Error", ""),
                        kind=info.get("Kind", ""),
                    )


# --------------------------------------------------------------------------- server side


class _Client:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = FrameReader()
        self.out = b""


class AttachServer:
    """Serves attach.sock: broadcasts output, hands input/resize/signals to callbacks."""

    MAX_BUFFERED = 4 << 20

    def __init__(
        self,
        sel: selectors.BaseSelector,
        on_frame: Callable[[int, bytes], None],
        on_connect: Callable[[], None],
    ) -> None:
        self.sel = sel
        self.on_frame = on_frame
        self.on_connect = on_connect
        self.clients: list[_Client] = []
        with contextlib.suppress(FileNotFoundError):
            os.unlink(SOCKET_NAME)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(SOCKET_NAME)  # relative to the run dir (cwd): no path length limit
        os.chmod(SOCKET_NAME, 0o600)
        self.sock.listen(16)
        self.sock.setblocking(False)
        sel.register(self.sock, selectors.EVENT_READ, self._accept)

    def _accept(self, _mask: int) -> None:
        with contextlib.suppress(BlockingIOError):
            conn, _ = self.sock.accept()
            conn.setblocking(False)
            client = _Client(conn)
            self.clients.append(client)
            self.sel.register(conn, selectors.EVENT_READ, lambda m: self._io(client, m))
            self.on_connect()

    def _io(self, client: _Client, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self._flush(client)
        if mask & selectors.EVENT_READ:
            try:
                data = client.sock.recv(65536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                data = b""
            if not data:
                self.drop(client)
                return
            for kind, payload in client.reader.feed(data):
                self.on_frame(kind, payload)

    def _flush(self, client: _Client) -> None:
        try:
            sent = client.sock.send(client.out) if client.out else 0
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self.drop(client)
            return
        client.out = client.out[sent:]
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if client.out else 0)
        self.sel.modify(client.sock, events, lambda m: self._io(client, m))

    def broadcast(self, kind: int, payload: bytes) -> None:
        data = frame(kind, payload)
        for client in list(self.clients):
            client.out += data
            if len(client.out) > self.MAX_BUFFERED:
                self.drop(client)  # a client that stopped reading must not stall the container
            else:
                self._flush(client)

    def drop(self, client: _Client) -> None:
        if client in self.clients:
            self.clients.remove(client)
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(client.sock)
            client.sock.close()

    def finish(self, kind: int, payload: bytes) -> None:
        """Send a last frame to every client (blocking, bounded) and disconnect them."""
        for client in list(self.clients):
            with contextlib.suppress(OSError):
                client.sock.setblocking(True)
                client.sock.settimeout(5)
                client.sock.sendall(client.out + frame(kind, payload))
            self.drop(client)
