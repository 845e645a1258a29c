"""``exec`` as Docker's API has it: :func:`create` records an exec instance (Docker's
``POST /containers/{id}/exec``), :func:`start` runs it and returns an :class:`ExecSession`
over explicit streams (``POST /exec/{id}/start``), :func:`inspect` reports it (``GET
/exec/{id}/json``: Running, ExitCode, Pid).  Instances live in the container's run directory
(``execs/<id>.json``), so a later process (the API service, another CLI) sees them.

A session never touches this process's stdio, terminal or signal handlers:

- with a TTY the process gets a pty whose master runc hands over on a console socket; the
  session reads and writes the master (output frames are STDOUT), spots the detach keys in
  what is written, and resizes the pty.  runc hands out the master only when it detaches, so
  the process is started detached while this process is a child subreaper: it is reparented
  here once runc exits, and its exit status comes from ``waitpid`` (as conmon does for exec);
- without one, the caller either hands its own descriptors (``stdio``: the process writes to
  them directly, as ``docker exec`` on a terminal wants), or gets pipes read through the
  session (``STDOUT``/``STDERR`` frames, Docker's stdcopy streams).
"""

from __future__ import annotations

import contextlib
import os
import select
import selectors
import shutil
import socket
import struct
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import msgspec

from cargohold.container.attach import STDERR, STDOUT, EscapeMatcher
from cargohold.errors import CannotExecute, CommandNotFound, ContainerExit, Internal, NotFound
from cargohold.runtime.base import OCIRuntime, Stdio

if TYPE_CHECKING:
    from cargohold.container.records import ContainerStore
    from cargohold.engine.containers.requests import ExecCreateRequest

__all__ = ["ExecInstance", "ExecSession", "Stdio"]

_TIOCSWINSZ = 0x5414
_KEEP_EXITED_NS = 3600 * 10**9  # exited instances are forgotten an hour later


class ExecInstance(msgspec.Struct, frozen=True):
    """One exec: what was asked and how it went."""

    id: str = msgspec.field(name="ID")
    container_id: str = msgspec.field(name="ContainerID")
    config: dict[str, Any] = msgspec.field(default_factory=dict, name="Config")
    running: bool = msgspec.field(default=False, name="Running")
    started: bool = msgspec.field(default=False, name="Started")
    exit_code: int | None = msgspec.field(default=None, name="ExitCode")
    pid: int = msgspec.field(default=0, name="Pid")
    created: int = msgspec.field(default=0, name="Created")

    def to_docker(self) -> dict[str, Any]:
        """``GET /exec/{id}/json``."""
        c = self.config
        cmd = list(c.get("Cmd") or [])
        return {
            "ID": self.id,
            "Running": self.running,
            "ExitCode": self.exit_code,
            "ProcessConfig": {
                "tty": bool(c.get("Tty")),
                "entrypoint": cmd[0] if cmd else "",
                "arguments": cmd[1:],
                "privileged": bool(c.get("Privileged")),
                "user": c.get("User") or "",
            },
            "OpenStdin": bool(c.get("AttachStdin")),
            "OpenStderr": bool(c.get("AttachStderr")),
            "OpenStdout": bool(c.get("AttachStdout")),
            "CanRemove": False,
            "ContainerID": self.container_id,
            "DetachKeys": c.get("DetachKeys") or "",
            "Pid": self.pid,
        }


# ------------------------------------------------------------------------ instances on disk


def _dir(store: ContainerStore, cid: str) -> Path:
    return store.run_dir(cid) / "execs"


def save(store: ContainerStore, inst: ExecInstance) -> None:
    from cargohold.util.atomic import write_json

    directory = _dir(store, inst.container_id)
    directory.mkdir(mode=0o700, exist_ok=True)
    write_json(directory / f"{inst.id}.json", msgspec.to_builtins(inst), fsync=False)


def load(store: ContainerStore, exec_id: str) -> ExecInstance:
    """The instance ``exec_id`` (NotFound "No such exec instance: x")."""
    if len(exec_id) == 64 and all(c in "0123456789abcdef" for c in exec_id):
        for path in store.runbase.glob(f"*/execs/{exec_id}.json"):
            with contextlib.suppress(OSError, ValueError, msgspec.ValidationError):
                return msgspec.json.decode(path.read_bytes(), type=ExecInstance)
    raise NotFound(f"No such exec instance: {exec_id}")


def forget_exited(store: ContainerStore, cid: str, now_ns: int) -> None:
    """Drop instances that ended long ago (Docker forgets them too)."""
    with contextlib.suppress(OSError):
        for path in _dir(store, cid).iterdir():
            with contextlib.suppress(OSError, ValueError, msgspec.ValidationError):
                inst = msgspec.json.decode(path.read_bytes(), type=ExecInstance)
                if not inst.running and now_ns - inst.created > _KEEP_EXITED_NS:
                    path.unlink()


def new_instance(cid: str, request: ExecCreateRequest) -> ExecInstance:
    from cargohold.util.ids import random_id

    return ExecInstance(random_id(), cid, msgspec.to_builtins(request), created=time.time_ns())


def request_of(inst: ExecInstance) -> ExecCreateRequest:
    from cargohold.engine.containers.requests import ExecCreateRequest

    return msgspec.convert(inst.config, ExecCreateRequest)


# ------------------------------------------------------------------------ the session


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


def _receive_master(listener: socket.socket) -> int:
    """Accept runc's connection and take the pty master it sends."""
    listener.settimeout(30)
    conn, _ = listener.accept()
    with conn:
        _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 1)
    if not fds:
        raise Internal("runtime sent no console file descriptor")
    return fds[0]


def _set_subreaper() -> None:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        raise Internal(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except BlockingIOError:
            select.select([], [fd], [])
            continue
        view = view[n:]


Output = tuple[int, bytes]


class ExecSession:
    """A started exec, over explicit streams (see the module docstring).

    The same surface as :class:`~cargohold.container.attach.AttachSession`: :meth:`receive`
    / iteration / :meth:`fileno` for the output (nothing when the caller owns the streams),
    :meth:`write`, :meth:`close_stdin`, :meth:`resize`, :meth:`wait` (the exit code; None
    when detached), :meth:`close`.
    """

    def __init__(self, store: ContainerStore, inst: ExecInstance, runtime: OCIRuntime,
                 spec_path: Path, *, tty: bool, stdin: bool, detach_keys: bytes,
                 on_exit: Callable[[int], None] | None = None) -> None:
        self._store, self._inst, self._runtime = store, inst, runtime
        self._on_exit = on_exit  # told the exit code once the process ended
        self._spec_path = spec_path
        self.tty, self.stdin = tty, stdin
        self._escape = EscapeMatcher(detach_keys if tty else b"")
        self.done = False
        self.detached = False
        self.exit_code: int | None = None
        self._master: int | None = None
        self._pid = 0
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._stdin_w: int | None = None
        self._outputs: dict[int, int] = {}  # read end -> STDOUT/STDERR
        self._selector: selectors.EpollSelector | None = None
        self._background = False  # started detached: nothing to wait for

    @property
    def id(self) -> str:
        return self._inst.id

    # ---- starting -------------------------------------------------------------------------
    def start_tty(self, size: tuple[int, int] | None) -> None:
        _set_subreaper()
        with _console_socket() as (listener, path):
            pid_file = path.parent / "pid"
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            try:
                self._runtime.exec(self._inst.container_id, self._spec_path, tty=True,
                                   detach=True, console_socket=path, pid_file=pid_file,
                                   stdio=Stdio(null, null, null))  # fmt: skip
            finally:
                os.close(null)
            self._master = _receive_master(listener)
            self._pid = int(pid_file.read_text())
        self._spec_path.unlink(missing_ok=True)
        if size:
            self.resize(*size)
        self._record(running=True, pid=self._pid)

    def start_detached(self) -> None:
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            self._runtime.exec(self._inst.container_id, self._spec_path, detach=True,
                               stdio=Stdio(null, null, null))  # fmt: skip
        finally:
            os.close(null)
            self._spec_path.unlink(missing_ok=True)
        self.done = self._background = True
        self._record(running=True)

    def start_tty_detached(self) -> None:
        """``exec -dt``: the process gets a pty and a small detached process holds (and
        drains) the master, so the process keeps a live terminal as under Docker."""
        with _console_socket() as (listener, path):
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            try:
                self._runtime.exec(self._inst.container_id, self._spec_path, tty=True,
                                   detach=True, console_socket=path,
                                   stdio=Stdio(null, null, null))  # fmt: skip
            finally:
                os.close(null)
                self._spec_path.unlink(missing_ok=True)
            master = _receive_master(listener)
        try:
            _hold_master(master)
        finally:
            os.close(master)
        self.done = self._background = True
        self._record(running=True)

    def start_with(self, stdio: Stdio | None) -> None:
        """Without a TTY: the caller's descriptors (``stdio``; None members become
        /dev/null), or pipes read through the session when ``stdio`` is None."""
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        child: list[int] = [null]
        try:
            if stdio is None:
                stdio = self._pipes(child)
            else:
                self.done = True  # no output comes through the session
            given = Stdio(null if stdio.stdin is None else stdio.stdin,
                          null if stdio.stdout is None else stdio.stdout,
                          null if stdio.stderr is None else stdio.stderr)  # fmt: skip
        except BaseException:
            for fd in child:
                os.close(fd)
            raise
        self._record(running=True)
        self._thread = threading.Thread(target=self._run, args=(given, child), daemon=True)
        self._thread.start()

    def _pipes(self, child: list[int]) -> Stdio:
        self._selector = selectors.EpollSelector()
        stdin = None
        if self.stdin:
            stdin, self._stdin_w = os.pipe2(os.O_CLOEXEC)
            child.append(stdin)
        ends = []
        for kind in (STDOUT, STDERR):
            r, w = os.pipe2(os.O_CLOEXEC)
            child.append(w)
            self._outputs[r] = kind
            self._selector.register(r, selectors.EVENT_READ)
            ends.append(w)
        return Stdio(stdin, ends[0], ends[1])

    def _run(self, stdio: Stdio, child: list[int]) -> None:
        try:
            self.exit_code = self._runtime.exec(self._inst.container_id, self._spec_path,
                                                stdio=stdio)
        except BaseException as exc:  # handed to wait()
            self._error = exc
        finally:
            for fd in child:  # the read ends see EOF once the process's copies are gone too
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._spec_path.unlink(missing_ok=True)

    # ---- output ---------------------------------------------------------------------------
    def fileno(self) -> int:
        if self._master is not None:
            return self._master
        if self._selector is not None:
            return self._selector.fileno()
        return -1

    def receive(self) -> list[Output]:
        if self.done:
            return []
        if self._master is not None:
            try:
                data = os.read(self._master, 65536)
            except OSError:  # EIO: every slave end is closed
                data = b""
            if not data:
                self.done = True
                return []
            return [(STDOUT, data)]
        out: list[Output] = []
        assert self._selector is not None
        for key, _ in self._selector.select():
            fd = int(key.fd)  # type: ignore[arg-type]
            data = os.read(fd, 65536)
            if data:
                out.append((self._outputs[fd], data))
                continue
            self._selector.unregister(fd)
            os.close(fd)
            del self._outputs[fd]
        if not self._outputs:
            self.done = True
        return out

    def __iter__(self) -> Iterator[Output]:
        while not self.done:
            yield from self.receive()

    # ---- input ----------------------------------------------------------------------------
    def write(self, data: bytes) -> bool:
        """Send ``data`` to the process's stdin; True when the detach keys ended the
        session (TTY only, as Docker)."""
        if not self.stdin or self.detached:
            return self.detached
        data, detached = self._escape.feed(data)
        target = self._master if self._master is not None else self._stdin_w
        if data and target is not None:
            with contextlib.suppress(OSError):
                _write_all(target, data)
        if detached:
            self.detached = self.done = True
        return detached

    def close_stdin(self) -> None:
        if self._master is not None and self.stdin:
            with contextlib.suppress(OSError):
                os.write(self._master, b"\x04")  # EOF for a canonical-mode reader
        elif self._stdin_w is not None:
            os.close(self._stdin_w)
            self._stdin_w = None

    def resize(self, height: int, width: int) -> None:
        if self._master is not None:
            with contextlib.suppress(OSError):
                import fcntl

                fcntl.ioctl(self._master, _TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))

    # ---- end ------------------------------------------------------------------------------
    def wait(self) -> int | None:
        """Read (and drop) any output left, then the exit code (None when detached;
        ContainerExit(126/127) when the command could not be run: runc said why on the
        process's stderr)."""
        for _ in self:
            pass
        if self._background:
            return 0
        if self.detached:
            return None
        if self._master is not None and self._pid:
            _, status = os.waitpid(self._pid, 0)
            self._pid = 0
            code = os.waitstatus_to_exitcode(status)
            self.exit_code = 128 - code if code < 0 else code
        elif self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            self._record(running=False, exit_code=getattr(error, "exit_code", 126))
            if isinstance(error, CommandNotFound | CannotExecute):
                # runc already said why on the stderr it shares with the process
                raise ContainerExit(error.exit_code) from error
            raise error
        self._record(running=False, exit_code=self.exit_code)
        return self.exit_code

    def close(self) -> None:
        self.done = True
        for fd in (self._master, self._stdin_w, *self._outputs):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._master = self._stdin_w = None
        self._outputs.clear()
        if self._selector is not None:
            self._selector.close()
        self._spec_path.unlink(missing_ok=True)

    def __enter__(self) -> ExecSession:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _record(self, *, running: bool, pid: int = 0, exit_code: int | None = None) -> None:
        self._inst = msgspec.structs.replace(self._inst, running=running, started=True,
                                             pid=pid or self._inst.pid, exit_code=exit_code)
        with contextlib.suppress(OSError):
            save(self._store, self._inst)
        if not running and exit_code is not None and self._on_exit is not None:
            on_exit, self._on_exit = self._on_exit, None
            on_exit(exit_code)


def _hold_master(master: int) -> None:
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    try:  # child: a new session, then a grandchild drains until the pty closes
        os.setsid()
        if os.fork():
            os._exit(0)
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):  # let go of the caller's terminal and pipes
            os.dup2(null, fd)
        while True:
            try:
                if not os.read(master, 65536):
                    break
            except OSError:
                break
    except BaseException:  # a forked child must never return into the caller
        pass
    os._exit(0)

