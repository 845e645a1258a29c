"""``exec -t``: the exec'd process gets a pty whose master runc hands us on a console socket.

This process copies the local terminal to the master and the master to stdout, keeps the
window size in step (SIGWINCH) and watches for the detach keys (ctrl-p ctrl-q).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import shutil
import signal
import socket
import tempfile
import termios
import tty
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from cargohold.errors import Internal
from cargohold.runtime.base import OCIRuntime, Stdio

DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q


@contextlib.contextmanager
def _console_socket() -> Iterator[tuple[socket.socket, Path]]:
    """A listening unix socket at a short path (unix socket paths are limited to 108 bytes)."""
    tmpdir = tempfile.mkdtemp(prefix="cargohold-exec-")
    path = Path(tmpdir) / "c.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(path))
        listener.listen(1)
        yield listener, path
    finally:
        listener.close()
        shutil.rmtree(tmpdir, ignore_errors=True)


def _receive_master(listener: socket.socket, give_up: int | None) -> int | None:
    """Accept runc's connection and take the pty master it sends; None if ``give_up`` (a
    pipe that becomes readable when runc has finished) fires first."""
    watch = [listener.fileno()] + ([give_up] if give_up is not None else [])
    while True:
        ready, _, _ = select.select(watch, [], [])
        if listener.fileno() in ready:
            break
        if give_up is not None and give_up in ready:
            return None
    conn, _ = listener.accept()
    with conn:
        _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
    if not fds:
        raise Internal("runtime sent no console file descriptor")
    return fds[0]


def _window_size(fd: int) -> bytes | None:
    try:
        return fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 8)
    except OSError:
        return None


def _copy_size(src: int | None, master: int) -> None:
    if src is None:
        return
    size = _window_size(src)
    if size is not None:
        with contextlib.suppress(OSError):
            fcntl.ioctl(master, termios.TIOCSWINSZ, size)


class _Escape:
    def __init__(self, keys: bytes) -> None:
        self.keys, self.held = keys, b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        out = bytearray()
        for byte in data:
            candidate = self.held + bytes([byte])
            if self.keys and self.keys.startswith(candidate):
                self.held = candidate
                if candidate == self.keys:
                    return bytes(out), True
            else:
                out += candidate
                self.held = b""
        return bytes(out), False


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        view = view[n:]


def exec_tty(
    runtime: OCIRuntime,
    cid: str,
    spec_path: Path,
    stdin: int | None,
    stdout: int,
    detach_keys: str = "",
) -> int:
    """Run the process spec with a pty; returns its exit status (0 when detached).

    runc hands out the pty master only when it detaches, so the process is started detached
    while this process is a child subreaper: it is reparented here once runc exits, and its
    exit status comes from ``waitpid`` (as conmon does for exec).
    """
    from cargohold.container.attach import parse_detach_keys

    keys = parse_detach_keys(detach_keys) if detach_keys else DEFAULT_DETACH_KEYS
    _set_subreaper()
    with _console_socket() as (listener, path):
        pid_file = path.parent / "pid"
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            runtime.exec(cid, spec_path, tty=True, detach=True, console_socket=path,
                         pid_file=pid_file, stdio=Stdio(null, null, null))  # fmt: skip
        finally:
            os.close(null)
        master = _receive_master(listener, None)
        pid = int(pid_file.read_text())
    if master is None:  # pragma: no cover - only with give_up
        return 0
    try:
        if _pump(master, stdin, stdout, keys):
            return 0
    finally:
        os.close(master)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


def _set_subreaper() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        raise Internal(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}")


def _pump(master: int, stdin: int | None, stdout: int, keys: bytes) -> bool:
    """Copy until the pty closes (False) or the user types the detach keys (True)."""
    interactive_tty = stdin is not None and os.isatty(stdin)
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def on_winch(_signum: int, _frame: FrameType | None) -> None:
        with contextlib.suppress(OSError):
            os.write(wake_w, b"w")

    size_src = stdin if interactive_tty else (stdout if os.isatty(stdout) else None)
    _copy_size(size_src, master)
    old = signal.signal(signal.SIGWINCH, on_winch)
    saved = termios.tcgetattr(stdin) if interactive_tty and stdin is not None else None
    try:
        if saved is not None and stdin is not None:
            tty.setraw(stdin)
        escape = _Escape(keys)
        watch = [master, wake_r] + ([stdin] if stdin is not None else [])
        while True:
            try:
                ready, _, _ = select.select(watch, [], [])
            except InterruptedError:
                continue
            if wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 64)
                _copy_size(size_src, master)
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every slave end is closed
                    data = b""
                if not data:
                    return False
                _write_all(stdout, data)
            if stdin is not None and stdin in ready:
                data = os.read(stdin, 65536)
                if not data:
                    watch.remove(stdin)
                    stdin = None
                    with contextlib.suppress(OSError):
                        os.write(master, b"\x04")  # EOF for a canonical-mode reader
                    continue
                data, detach = escape.feed(data) if saved is not None else (data, False)
                if data:
                    _write_all(master, data)
                if detach:
                    return True
    finally:
        if saved is not None and stdin is not None:
            termios.tcsetattr(stdin, termios.TCSADRAIN, saved)
        signal.signal(signal.SIGWINCH, old)
        os.close(wake_r)
        os.close(wake_w)


def exec_tty_detached(runtime: OCIRuntime, cid: str, spec_path: Path) -> None:
    """``exec -dt``: start the process with a pty and leave a small detached process holding
    (and draining) the master, so the process keeps a live terminal as under Docker."""
    with _console_socket() as (listener, path):
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            runtime.exec(cid, spec_path, tty=True, detach=True, console_socket=path,
                         stdio=Stdio(null, null, null))  # fmt: skip
        finally:
            os.close(null)
        master = _receive_master(listener, None)
    if master is None:  # pragma: no cover - only with give_up
        return
    try:
        _hold_master(master)
    finally:
        os.close(master)


def _hold_master(master: int) -> None:
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    try:  # child: detach from the CLI, then a grandchild drains until the pty closes
        os.setsid()
        if os.fork():
            os._exit(0)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        while True:
            try:
                if not os.read(master, 65536):
                    break
            except OSError:
                break
    except BaseException:  # a forked child must never return into the CLI
        pass
    os._exit(0)
