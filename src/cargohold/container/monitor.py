"""The per-container monitor: keeps a detached container's stdio, logs, exit status, restart
policy and health checks alive with no daemon.

:mod:`monitor_spawn` double-forks (``setsid``) the monitor process and waits on a sync pipe
until the container has started (or failed to: runtime errors come back as CommandNotFound
(127), CannotExecute (126) or another category).  The monitor

- holds ``<runroot>/containers/<id>/monitor.lock`` for its whole life (so reconciliation can
  tell a dead monitor by a free lock, whatever happened to its pid),
- becomes a child subreaper, so the container's init is reparented to it once
  ``runc run --detach`` exits and ``waitpid`` gives the real exit status (128 + signal),
- owns stdio: pipes (json-file log ``stdout``/``stderr``) or the pty master received from
  ``runc run --console-socket`` (logged as ``stdout``),
- serves ``attach.sock`` (see attach.py) and copies output to every attached client,
- applies the restart policy with Docker's backoff, runs HEALTHCHECK probes, and on the final
  exit runs the recorded cleanup actions (reconcile.py), including ``--rm``.
"""

from __future__ import annotations

import array
import contextlib
import ctypes
import json
import os
import queue
import selectors
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from cargohold import errors
from cargohold.container import attach as proto
from cargohold.container import events
from cargohold.container.logs import JsonLogWriter
from cargohold.container.model import (
    ContainerRecord,
    Health,
    HealthLogEntry,
    HealthStatus,
    RestartPolicy,
    State,
    Status,
    now_ns,
)
from cargohold.container.monitor_spec import MonitorSpec
from cargohold.container.reconcile import preload_cleanup, run_cleanup
from cargohold.container.records import ContainerStore
from cargohold.runtime.base import OCIRuntime, Stdio
from cargohold.util import eventlog  # noqa: F401 - loaded ahead (prefork), used by events
from cargohold.util.lockfile import FileLock

if TYPE_CHECKING:
    from cargohold.container import health

PR_SET_CHILD_SUBREAPER = 36
_TIOCSWINSZ = 0x5414
DRAIN_SECONDS = 2.0
ATTACH_WAIT_SECONDS = 30.0


def main(argv: list[str] | None = None) -> int:
    """``python -m cargohold.container.monitor SYNC_FD ROOT RUNROOT ID RUNTIME RTROOT WAIT``
    (by hand, for debugging: :mod:`monitor_spawn` forks monitors without an exec)."""
    args = sys.argv[1:] if argv is None else argv
    sync_fd = int(args[0])
    spec = MonitorSpec.from_argv(args[1:])
    if os.fork() != 0:
        os._exit(0)
    return monitor_main(spec, sync_fd)


def monitor_main(spec: MonitorSpec, sync_fd: int, record: ContainerRecord | None = None,
                 runtime: OCIRuntime | None = None) -> int:
    """The monitor process's body: stdio to ``monitor.log``, then :class:`Monitor`."""
    try:
        return prepare(spec, sync_fd, record, runtime).run()
    except BaseException:
        traceback.print_exc()
        return 1


def prepare(
    spec: MonitorSpec,
    sync_fd: int,
    record: ContainerRecord | None = None,
    runtime: OCIRuntime | None = None,
    runtime_of: Callable[[ContainerRecord], OCIRuntime] | None = None,
) -> Monitor:
    """Stdio to ``monitor.log`` and a :class:`Monitor` with the container's record loaded,
    not yet running (a pre-forked monitor does this while its caller finishes the set-up).
    The runtime: ``runtime``, else ``runtime_of(record)``, else one for the spec's binary."""
    store = ContainerStore(spec.root, spec.runroot)
    run_dir = store.run_dir(spec.container_id)
    null = os.open(os.devnull, os.O_RDWR)
    logfd = os.open(run_dir / "monitor.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.dup2(logfd, 2)
    os.close(null)
    os.close(logfd)
    os.set_inheritable(sync_fd, False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    if record is None and runtime is None and runtime_of is not None:
        record = store.load(spec.container_id)
    if runtime is None:
        runtime = runtime_of(record) if runtime_of and record else spec.runtime()
    return Monitor(store, runtime, spec.container_id, spec.wait_for_attach, sync_fd, record)


# --------------------------------------------------------------------------- restart policy


class RestartManager(msgspec.Struct):
    """Docker's restart manager: 100 ms doubling backoff (max 1 min), reset after 10 s up."""

    policy: RestartPolicy
    timeout_ns: int = 0
    count: int = 0

    def next_delay(self, exit_code: int, manually_stopped: bool, ran_ns: int) -> int | None:
        """Nanoseconds to wait before restarting, or None to stay stopped."""
        if self.policy.is_none or manually_stopped:
            return None
        if ran_ns >= 10 * 10**9:
            self.timeout_ns = 0
        if self.timeout_ns == 0:
            self.timeout_ns = 100_000_000
        elif self.timeout_ns < 60 * 10**9:
            self.timeout_ns *= 2
        self.timeout_ns = min(self.timeout_ns, 60 * 10**9)
        name, limit = self.policy.name, self.policy.maximum_retry_count
        if name in ("always", "unless-stopped"):
            restart = True
        elif name == "on-failure":
            restart = exit_code != 0 and (limit == 0 or self.count < limit)
        else:
            restart = False
        if not restart:
            return None
        self.count += 1
        return self.timeout_ns


# --------------------------------------------------------------------------- the monitor


def _set_subreaper() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _exit_code(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.waitstatus_to_exitcode(status)


def _recv_fd(listener: socket.socket) -> int:
    conn, _ = listener.accept()
    with conn:
        fds = array.array("i")
        _msg, anc, _flags, _addr = conn.recvmsg(4096, socket.CMSG_SPACE(fds.itemsize))
        for level, kind, data in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds.frombytes(data[: len(data) - (len(data) % fds.itemsize)])
    if not fds:
        raise errors.Internal("runtime sent no console file descriptor")
    return fds[0]


class Monitor:
    def __init__(
        self,
        store: ContainerStore,
        runtime: OCIRuntime,
        cid: str,
        wait_for_attach: bool,
        sync_fd: int | None,
        record: ContainerRecord | None = None,
    ) -> None:
        self.store, self.runtime, self.cid = store, runtime, cid
        self.record: ContainerRecord = record if record is not None else store.load(cid)
        self.run_dir = store.run_dir(cid)
        self.bundle = store.bundle_dir(cid)
        self.wait_for_attach = wait_for_attach
        self.sync_fd = sync_fd
        self.sel = selectors.DefaultSelector()
        self.restart = RestartManager(self.record.host_config.restart_policy)
        self.pid = 0
        self.started_ns = 0
        self.exit_status: int | None = None
        self.out_fds: dict[int, str] = {}
        self.stdin_w: int | None = None
        self.master: int | None = None
        self.pending_size: tuple[int, int] | None = None
        self.timers: list[tuple[float, Callable[[], None]]] = []
        self.probe_results: queue.Queue[HealthLogEntry] = queue.Queue()
        self.probe_running = threading.Lock()
        self.probe_epoch = 0
        self.done = False
        self._deleting: threading.Thread | None = None
        self.awaiting_attach = False
        self.preloaded = False
        self.log = JsonLogWriter(store.log_path(cid))
        self.hc = self.record.config.healthcheck
        self.probe: list[str] | None = None
        if self.hc is not None:  # health.py is imported only for containers with a check
            from cargohold.container import health

            self.probe = health.probe_argv(self.hc)

    # -- reporting to the spawner ---------------------------------------------------
    def _report(self, msg: dict[str, object]) -> None:
        if self.sync_fd is None:
            return
        with contextlib.suppress(OSError):
            os.write(self.sync_fd, json.dumps(msg).encode() + b"\n")
            os.close(self.sync_fd)
        self.sync_fd = None

    # -- main -----------------------------------------------------------------------
    def run(self) -> int:
        os.chdir(self.run_dir)
        lock = FileLock(self.store.monitor_lock_path(self.cid))
        if not lock.acquire(blocking=False):
            self._report({"error": f"container {self.cid} is already running", "kind": "Conflict"})
            return 1
        _set_subreaper()
        self._setup_signals()
        self.server = proto.AttachServer(self.sel, self._on_frame, self._on_connect)
        self.store.update_state(
            self.cid,
            lambda s: msgspec.structs.replace(
                s, monitor_pid=os.getpid(), manually_stopped=False, restart_count=0
            ),
        )
        try:
            self._start(first=True)
        except errors.CargoholdError as exc:
            self._failed_start(exc)
            return 0
        while not self.done:
            self._tick()
        return 0

    def _setup_signals(self) -> None:
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(w)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, lambda *_: None)
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
        self._wake_r = r
        self.sel.register(r, selectors.EVENT_READ, self._on_wakeup)
        pr, pw = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._probe_wake_w = pw
        self.sel.register(pr, selectors.EVENT_READ, lambda _m: self._on_probe_result(pr))

    def _tick(self) -> None:
        now = time.monotonic()
        self.timers.sort(key=lambda t: t[0])
        timeout = max(0.0, self.timers[0][0] - now) if self.timers else None
        for key, mask in self.sel.select(timeout):
            key.data(mask)
        now = time.monotonic()
        while self.timers and self.timers[0][0] <= now:
            _, fn = self.timers.pop(0)
            fn()

    def _after(self, seconds: float, fn: Callable[[], None]) -> None:
        self.timers.append((time.monotonic() + seconds, fn))

    # -- starting ---------------------------------------------------------------------
    def _start(self, first: bool) -> None:
        if not first:  # the previous run is deleted on exit; this covers a failed delete
            with contextlib.suppress(errors.CargoholdError):
                self.runtime.delete(self.cid, force=True)
        if first and self.wait_for_attach:
            # Held for the first attach client: nothing exists in the runtime until it
            # connects (or the wait is over); then one `runc run --detach` creates and starts
            # it (one runtime process less than create + start).  A launch error reaches the
            # client in the EXIT frame (with its kind), no longer through the spawn report.
            self.awaiting_attach = True
            self._report({"monitor_pid": os.getpid(), "pid": 0, "waiting": True})
            self._after(ATTACH_WAIT_SECONDS, self._attach_wait_over)
            return
        self._launch_now()
        self._running()

    def _launch_now(self) -> None:
        """Create and start the container with one `runc run --detach`; sets ``self.pid``."""
        pid_file = self.run_dir / "pid"
        pid_file.unlink(missing_ok=True)
        if self.record.config.tty:
            self._create_tty(pid_file)
        else:
            self._create_pipes(pid_file)
        self.pid = int(pid_file.read_text())

    def _launch(self, pid_file: Path, stdio: Stdio, console_socket: Path | None = None) -> None:
        if not self.preloaded:  # the exit's cleanup imports now, while runc works
            self.preloaded = True
            threading.Thread(
                target=preload_cleanup, args=(self.store, self.cid), daemon=True
            ).start()
        self.runtime.run(
            self.cid,
            self.bundle,
            pid_file=pid_file,
            console_socket=console_socket,
            stdio=stdio,
            detach=True,
        )

    def _create_pipes(self, pid_file: Path) -> None:
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        child_in: int | None = None
        if self.record.config.open_stdin:
            child_in, self.stdin_w = os.pipe2(os.O_CLOEXEC)
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            stdio = Stdio(child_in if child_in is not None else null, out_w, err_w)
            self._launch(pid_file, stdio)
        except BaseException:
            for fd in (out_r, err_r, self.stdin_w):
                if fd is not None:
                    os.close(fd)
            self.stdin_w = None
            raise
        finally:
            for fd in (out_w, err_w, child_in, null):
                if fd is not None:
                    os.close(fd)
        self._watch_output(out_r, "stdout")
        self._watch_output(err_r, "stderr")

    def _create_tty(self, pid_file: Path) -> None:
        tmpdir = None
        path = self.run_dir / "console.sock"
        if len(str(path)) > 100:
            import tempfile

            tmpdir = tempfile.mkdtemp(prefix="cargohold-console-")
            path = Path(tmpdir) / "c.sock"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            path.unlink(missing_ok=True)
            listener.bind(str(path))
            listener.listen(1)
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            try:
                self._launch(pid_file, Stdio(null, null, null), console_socket=path)
            finally:
                os.close(null)
            listener.settimeout(10)
            self.master = _recv_fd(listener)
        finally:
            listener.close()
            path.unlink(missing_ok=True)
            if tmpdir:
                os.rmdir(tmpdir)
        os.set_blocking(self.master, False)
        if self.pending_size:
            self._resize(*self.pending_size)
        self._watch_output(self.master, "stdout")

    def _watch_output(self, fd: int, stream: str) -> None:
        os.set_blocking(fd, False)
        self.out_fds[fd] = stream
        self.sel.register(fd, selectors.EVENT_READ, lambda _m: self._on_output(fd))

    def _on_connect(self) -> None:
        if self.awaiting_attach:
            self.awaiting_attach = False
            self._event("attach")  # the run/start -a client this start waited for
            self._launch_held()

    def _attach_wait_over(self) -> None:
        if self.awaiting_attach:  # nobody came: start anyway, output goes to the log
            self.awaiting_attach = False
            self._launch_held()

    def _launch_held(self) -> None:
        try:
            self._launch_now()
        except errors.CargoholdError as exc:
            self._failed_start(exc)
            return
        self._running()

    def _running(self) -> None:
        self.started_ns = now_ns()
        self.exit_status = None
        hc = Health() if self.probe else None
        self.store.update_state(
            self.cid,
            lambda s: msgspec.structs.replace(
                s,
                status=Status.RUNNING,
                pid=self.pid,
                started_at=self.started_ns,
                exit_code=0,
                error="",
                oom_killed=False,
                health=hc,
            ),
        )
        self._volume_event("mount")
        self._event("start")  # before the report: the spawner returns once it has it
        self._report({"monitor_pid": os.getpid(), "pid": self.pid})
        self._schedule_probe()
        self._reap()  # the process may have ended already

    def _failed_start(self, exc: errors.CargoholdError) -> None:
        code = exc.exit_code if exc.exit_code in (126, 127) else 125
        self._close_stdio()
        with contextlib.suppress(errors.CargoholdError):
            self.runtime.delete(self.cid, force=True)
        self.store.update_state(
            self.cid,
            lambda s: msgspec.structs.replace(
                s,
                status=Status.EXITED if s.started_at else Status.CREATED,
                exit_code=code,
                error=exc.message,
                pid=0,
                finished_at=now_ns(),
                monitor_pid=0,
            ),
        )
        self._report({"error": exc.message, "kind": type(exc).__name__})
        self._finish(code, exc.message, type(exc).__name__)

    # -- events -----------------------------------------------------------------------
    def _on_wakeup(self, _mask: int) -> None:
        try:
            data = os.read(self._wake_r, 512)
        except BlockingIOError:
            return
        if signal.SIGTERM in data or signal.SIGINT in data or signal.SIGHUP in data:
            # Asked to stop: never restart; a pending restart is cancelled now.
            self.store.update_state(
                self.cid, lambda s: msgspec.structs.replace(s, manually_stopped=True)
            )
            if self.pid == 0 and not self.done:
                self._final_exit(self._last_code)
        if signal.SIGCHLD in data:
            self._reap()

    def _reap(self) -> None:
        if self.pid and self.exit_status is None:
            with contextlib.suppress(ChildProcessError):
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid == self.pid:
                    self._reaped(status)
        # Orphans reparented to us (we are a subreaper); never while a probe's runtime call
        # waits for its own child, which a waitpid(-1) could steal.  The container's init may
        # end between the waitpid above and this loop: its status must not be dropped here
        # (that lost the exit and hung the monitor).
        if self.probe_running.acquire(blocking=False):
            try:
                while True:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                    if pid == 0:
                        break
                    if pid == self.pid and self.exit_status is None:
                        self._reaped(status)
            except ChildProcessError:
                pass
            finally:
                self.probe_running.release()

    def _reaped(self, status: int) -> None:
        self.exit_status = _exit_code(status)
        self._after(DRAIN_SECONDS, self._drain_over)
        self._maybe_exited()

    def _on_output(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError:  # EIO: the pty's last slave closed
            data = b""
        if not data:
            self._close_output(fd)
            self._maybe_exited()
            return
        stream = self.out_fds[fd]
        self.log.write(stream, data)
        self.server.broadcast(proto.STDERR if stream == "stderr" else proto.STDOUT, data)

    def _close_output(self, fd: int) -> None:
        if fd in self.out_fds:
            del self.out_fds[fd]
            self.sel.unregister(fd)
            os.close(fd)
            if fd == self.master:
                self.master = None

    def _drain_over(self) -> None:
        for fd in list(self.out_fds):
            self._close_output(fd)
        self._maybe_exited()

    def _on_frame(self, kind: int, payload: bytes) -> None:
        if kind == proto.STDIN:
            target = self.master if self.master is not None else self.stdin_w
            if target is not None:
                with contextlib.suppress(OSError):
                    os.write(target, payload)
        elif kind == proto.CLOSE_STDIN:
            if self.stdin_w is not None and self.record.config.stdin_once:
                os.close(self.stdin_w)
                self.stdin_w = None
        elif kind == proto.RESIZE and len(payload) == 4:
            rows, cols = int.from_bytes(payload[:2], "big"), int.from_bytes(payload[2:], "big")
            self._resize(rows, cols)
        elif kind == proto.SIGNAL and self.pid:
            with contextlib.suppress(errors.CargoholdError, ValueError):
                self.runtime.kill(self.cid, int(payload))

    def _resize(self, rows: int, cols: int) -> None:
        self.pending_size = (rows, cols)
        if self.master is not None:
            import fcntl
            import struct

            with contextlib.suppress(OSError):
                fcntl.ioctl(self.master, _TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))

    def _event(self, action: str, **extra: str) -> None:
        """``container <action>`` into the shared event log (container/events.py)."""
        events.container_event(self.store.runbase.parent, self.record, action, extra)

    def _volume_event(self, action: str) -> None:
        events.volume_mounts(self.store.runbase.parent, self.record, action)

    # -- exit, restart, finish --------------------------------------------------------
    _last_code = 0

    def _maybe_exited(self) -> None:
        if self.exit_status is None or self.out_fds or self.pid == 0:
            return
        code, self.pid = self.exit_status, 0
        self._last_code = code
        self.timers = [t for t in self.timers if t[1] != self._drain_over]
        self.probe_epoch += 1
        self.log.flush()
        oom = self._oom_killed()
        if oom:
            self._event("oom")
        self._event("die", exitCode=str(code))
        self._volume_event("unmount")
        self._close_stdio()
        self._delete_in_background()  # joined before a restart or the EXIT frame
        delay = None if self.record.host_config.auto_remove else self._restart_delay(code, oom)
        if delay is None:
            self._final_exit(code, oom)
            return
        self.server.finish(proto.EXIT, json.dumps({"ExitCode": code}).encode())
        self._after(delay / 1e9, self._restart)

    def _restart_delay(self, code: int, oom: bool) -> int | None:
        """The wait before the next start (None: stay stopped), decided and recorded under
        the state lock that `update` holds while it rewrites the record: a policy changed
        before this exit is the one applied, a later change applies to the next exit.  (A
        ``--rm`` container never restarts: `update` refuses to give it a policy.)"""
        ran = now_ns() - self.started_ns
        with self.store.state_lock(self.cid):
            state = self.store.read_state(self.cid)
            policy = self.store.restart_policy_of(self.cid)
            if policy is not None:
                self.restart.policy = policy
            delay = self.restart.next_delay(code, state.manually_stopped, ran)
            if delay is not None:
                self.store.write_state(self.cid, msgspec.structs.replace(
                    state,
                    status=Status.RESTARTING,
                    exit_code=code,
                    pid=0,
                    finished_at=now_ns(),
                    oom_killed=oom,
                    restart_count=state.restart_count + 1,
                ))
        return delay

    def _delete_in_background(self) -> None:
        """``runtime delete`` (cgroups, runtime state: ~5 ms) while the cleanup runs."""

        def work() -> None:
            # holds the probe lock: the orphan loop of _reap must not steal its child's status
            with self.probe_running, contextlib.suppress(errors.CargoholdError):
                self.runtime.delete(self.cid, force=True)

        self._deleting = threading.Thread(target=work, daemon=True)
        self._deleting.start()

    def _deleted(self) -> None:
        if self._deleting is not None:
            self._deleting.join()
            self._deleting = None

    def _restart(self) -> None:
        self._deleted()
        if self.done:
            return
        if self.store.read_state(self.cid).manually_stopped:
            self._final_exit(self._last_code)
            return
        try:
            self._start(first=False)
        except errors.CargoholdError as exc:
            self._failed_start(exc)

    def _final_exit(self, code: int, oom: bool = False) -> None:
        self.store.update_state(
            self.cid,
            lambda s: msgspec.structs.replace(
                s,
                status=Status.EXITED,
                exit_code=code,
                pid=0,
                finished_at=now_ns(),
                oom_killed=oom,
                monitor_pid=0,
            ),
        )
        self._finish(code, "")

    def _finish(self, code: int, error: str, kind: str = "") -> None:
        self.done = True
        self.log.close()
        for msg in run_cleanup(self.store, self.cid):
            print(f"cleanup: {msg}", file=sys.stderr)
        if self.record.host_config.auto_remove and self.store.dir(self.cid).is_dir():
            with contextlib.suppress(errors.CargoholdError, OSError):
                self.store.remove(self.cid)
        self._deleted()
        info: dict[str, object] = {"ExitCode": code, "Error": error}
        if kind:  # the container did not start: the client raises this error kind
            info["Kind"] = kind
        self.server.finish(proto.EXIT, json.dumps(info).encode())

    def _close_stdio(self) -> None:
        for fd in list(self.out_fds):
            self._close_output(fd)
        if self.stdin_w is not None:
            os.close(self.stdin_w)
            self.stdin_w = None

    def _oom_killed(self) -> bool:
        try:
            with open(self.bundle / "config.json", "rb") as f:
                path = json.load(f).get("linux", {}).get("cgroupsPath", "") or f"/{self.cid}"
        except (OSError, ValueError):
            return False
        for name in (
            f"/sys/fs/cgroup/memory{path}/memory.oom_control",
            f"/sys/fs/cgroup{path}/memory.events",
        ):
            with contextlib.suppress(OSError, ValueError):
                for line in Path(name).read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "oom_kill" and int(value) > 0:
                        return True
        return False

    # -- health checks ----------------------------------------------------------------
    def _schedule_probe(self) -> None:
        if not self.probe or not self.hc or self.pid == 0:
            return
        from cargohold.container import health

        state = self.store.read_state(self.cid)
        sched = health.Schedule.of(self.hc)
        delay = health.next_delay(state.health or Health(), sched, self.started_ns, now_ns())
        epoch = self.probe_epoch
        self._after(delay / 1e9, lambda: self._launch_probe(epoch))

    def _launch_probe(self, epoch: int) -> None:
        if epoch != self.probe_epoch or self.pid == 0 or not self.probe or not self.hc:
            return
        from cargohold.container import health

        sched = health.Schedule.of(self.hc)
        exec_fn = health.runtime_exec_fn(
            self.runtime, self.cid, self.bundle, self.run_dir / "probes"
        )
        argv = self.probe

        def work() -> None:
            with self.probe_running:
                result = health.run_probe(exec_fn, argv, sched)
            self.probe_results.put(result)
            with contextlib.suppress(OSError):
                os.write(self._probe_wake_w, bytes([epoch & 0xFF]))

        threading.Thread(target=work, daemon=True).start()

    def _on_probe_result(self, fd: int) -> None:
        from cargohold.container import health

        with contextlib.suppress(BlockingIOError):
            os.read(fd, 512)
        while not self.probe_results.empty():
            result = self.probe_results.get()
            if self.pid == 0 or not self.hc:
                continue
            sched = health.Schedule.of(self.hc)

            statuses: list[HealthStatus] = []

            def change(
                s: State,
                result: HealthLogEntry = result,
                sched: health.Schedule = sched,
                statuses: list[HealthStatus] = statuses,
            ) -> State:
                h = health.apply_result(s.health or Health(), result, sched, self.started_ns)
                statuses[:] = [(s.health or Health()).status, h.status]
                return msgspec.structs.replace(s, health=h)

            self.store.update_state(self.cid, change)
            if statuses and statuses[0] != statuses[1]:  # moby: only a change is an event
                self._event(f"health_status: {statuses[1].value}")
            self._schedule_probe()


__all__ = ["HealthStatus", "Monitor", "RestartManager", "main", "monitor_main", "prepare"]

if __name__ == "__main__":
    sys.exit(main())
