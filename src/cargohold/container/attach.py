"""The attach socket: framing shared by the monitor (server) and its clients, and the client
side as a session over explicit streams (:class:`AttachSession`).

Every message is a frame ``type:u8 length:u32be payload``.

- monitor -> client: STDOUT, STDERR (output bytes), EXIT (JSON ``{"ExitCode": n, "Error": ""}``,
  sent when the container's process ends; the monitor then closes the connection; with
  ``"Kind"`` (an errors class name) when the container could not be launched at all).
- client -> monitor: STDIN (bytes for the container), RESIZE (``rows:u16 cols:u16``), CLOSE_STDIN
  (the client's stdin hit EOF), SIGNAL (signal number as ASCII digits).

STDOUT and STDERR are the stream numbers of Docker's multiplexed (stdcopy) framing, so an API
server can frame a session's output as it comes.  Nothing here touches a terminal, a signal
handler or the process's own stdio: the CLI (``cli/terminal.py``) does that around a session.

The socket lives at ``<runroot>/containers/<id>/attach.sock``; the client connects through
``/proc/self/fd/<dirfd>/attach.sock`` so long run directories never hit the 108-byte limit of
unix socket paths.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import socket
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType

STDIN, STDOUT, STDERR, EXIT, RESIZE, CLOSE_STDIN, SIGNAL = 0, 1, 2, 3, 4, 5, 6
_HEADER = struct.Struct(">BI")
SOCKET_NAME = "attach.sock"
DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q


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
    """Docker's --detach-keys: comma-separated ``ctrl-<x>`` or single characters ("":
    ctrl-p ctrl-q)."""
    if not spec:
        return DEFAULT_DETACH_KEYS
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


class EscapeMatcher:
    """Finds the detach sequence in typed input; holds back a partial match."""

    def __init__(self, keys: bytes) -> None:
        self.keys = keys
        self.held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """(the bytes to pass on, whether the whole sequence was seen)."""
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


def resize_frame(rows: int, cols: int) -> bytes:
    return frame(RESIZE, struct.pack(">HH", rows, cols))


Output = tuple[int, bytes]  # (STDOUT or STDERR, bytes)


class AttachSession:
    """One client of a container's attach socket, over explicit streams.

    Output: :meth:`receive` does one read of the socket and returns the ``(STDOUT|STDERR,
    bytes)`` frames it completed (a TTY's bytes come as STDOUT); iterating reads until the
    end; :meth:`fileno` serves a selector.  Input: :meth:`write` (with a TTY the detach keys
    are spotted there and end the session) and :meth:`close_stdin` (half-close); both do
    nothing when stdin is not attached.  :meth:`resize` sets the TTY's size; :meth:`wait`
    returns the exit code (None when detached) or raises the error the container could not be
    launched with (CommandNotFound: 127, ...).
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        tty: bool,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
        detach_keys: bytes = DEFAULT_DETACH_KEYS,
        lost: Callable[[], int | None] = lambda: None,
        container_id: str = "",
    ) -> None:
        self.container_id = container_id
        self._sock = sock
        self._reader = FrameReader()
        self._escape = EscapeMatcher(detach_keys if tty else b"")
        self._wanted = {k for k, on in ((STDOUT, stdout), (STDERR, stderr)) if on}
        self._lost = lost
        self.tty, self.stdin = tty, stdin
        self.done = False
        self.detached = False
        self.exit_code: int | None = None
        self.error = ""
        self.kind = ""  # set: the container was never launched (an errors class name)
        self._connected = True

    # ---- output ---------------------------------------------------------------------------
    def fileno(self) -> int:
        return self._sock.fileno()

    def receive(self) -> list[Output]:
        """One read of the socket (blocks until data comes): the output frames it completed;
        ``[]`` with :attr:`done` set at the end."""
        if self.done:
            return []
        try:
            data = self._sock.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.done, self._connected = True, False
            if not self.detached:
                self.error = self.error or "connection to the container monitor closed"
            return []
        out: list[Output] = []
        for kind, payload in self._reader.feed(data):
            if kind in self._wanted:
                out.append((kind, payload))
            elif kind == EXIT:
                info = json.loads(payload or b"{}")
                self.exit_code = int(info.get("ExitCode", 0))
                self.error, self.kind = info.get("Error", ""), info.get("Kind", "")
                self.done = True
                break
        return out

    def __iter__(self) -> Iterator[Output]:
        while not self.done:
            yield from self.receive()

    # ---- input ----------------------------------------------------------------------------
    def write(self, data: bytes) -> bool:
        """Send ``data`` to the container's stdin; True when the detach keys ended the
        session (what came before them is sent)."""
        if not self.stdin or self.done:
            return self.detached
        data, detached = self._escape.feed(data)
        if data:
            self._send(frame(STDIN, data))
        if detached:
            self.detached = self.done = True
        return detached

    def close_stdin(self) -> None:
        """The input ended (the container's stdin closes if the container has StdinOnce)."""
        if self.stdin and not self.done:
            self._send(frame(CLOSE_STDIN))

    def resize(self, height: int, width: int) -> None:
        if not self.done:
            self._send(resize_frame(height, width))

    def _send(self, data: bytes) -> None:
        with contextlib.suppress(OSError):  # the container is gone: receive() tells
            self._sock.sendall(data)

    # ---- end ------------------------------------------------------------------------------
    def wait(self) -> int | None:
        """Read (and drop) the rest of the output; the exit code, None when detached."""
        for _ in self:
            pass
        if self.detached:
            return None
        if self.kind:
            from cargohold import errors

            cls = getattr(errors, self.kind, None)
            if not (isinstance(cls, type) and issubclass(cls, errors.CargoholdError)):
                cls = errors.Internal
            raise cls(self.error)
        if self.exit_code is None:
            self.exit_code = self._lost()
        return self.exit_code

    def close(self) -> None:
        self.done = True
        self._sock.close()

    def __enter__(self) -> AttachSession:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


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
