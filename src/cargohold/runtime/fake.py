"""An in-memory OCI runtime for unit tests of the container lifecycle (no root, no runc).

State machine (as runc): ``create`` -> created; ``start`` -> running; ``pause``/``resume``
toggle paused/running (a created container may be paused too, as runc allows); ``kill`` with a
terminating signal -> stopped with exit code ``128 + signal``; :meth:`FakeRuntime.exit`
simulates the process ending on its own. ``delete`` needs a stopped (or created) container
unless ``force``.

Tests can script failures: ``fail_on["create"] = CommandNotFound(...)`` raises once for that
verb; ``calls`` records every call as ``(verb, container_id)``.
"""

from __future__ import annotations

import signal as _signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
from msgspec.structs import replace

from cargohold.errors import CargoholdError, Conflict, InvalidArgument, NotFound
from cargohold.runtime.base import INHERIT, RuntimeState, Status, Stdio, check_id, signal_arg

# Signals whose default action does not end a process.
_HARMLESS = frozenset(
    {int(_signal.SIGCHLD), int(_signal.SIGCONT), int(_signal.SIGURG), int(_signal.SIGWINCH), 0}
)


def signal_number(signal: int | str) -> int:
    """``9``, ``"KILL"``, ``"SIGKILL"`` -> 9; unknown names raise InvalidArgument."""
    text = signal_arg(signal)
    if text.isdigit():
        return int(text)
    try:
        return int(_signal.Signals["SIG" + text])
    except KeyError:
        raise InvalidArgument(f"invalid signal: {signal}") from None


class FakeContainer(msgspec.Struct):
    id: str
    bundle: Path
    status: Status = "created"
    pid: int = 0
    exit_code: int | None = None
    signals: list[int] = msgspec.field(default_factory=list)
    execs: list[Path] = msgspec.field(default_factory=list)
    resources: dict[str, Any] = msgspec.field(default_factory=dict)


class FakeRuntime:
    """Implements :class:`cargohold.runtime.base.OCIRuntime` in memory."""

    name = "fake"

    def __init__(self, exec_exit_code: int = 0, run_exit_code: int = 0) -> None:
        self.containers: dict[str, FakeContainer] = {}
        self.calls: list[tuple[str, str]] = []
        self.fail_on: dict[str, CargoholdError] = {}
        self.exec_exit_code = exec_exit_code
        self.run_exit_code = run_exit_code
        self._next_pid = 1000

    # -- helpers for tests ---------------------------------------------------------------

    def _enter(self, verb: str, container_id: str) -> None:
        self.calls.append((verb, container_id))
        error = self.fail_on.pop(verb, None)
        if error is not None:
            raise error

    def _get(self, container_id: str) -> FakeContainer:
        try:
            return self.containers[container_id]
        except KeyError:
            raise NotFound(f"No such container: {container_id}") from None

    def exit(self, container_id: str, code: int) -> None:
        """Simulate the container's process exiting on its own with ``code``."""
        c = self._get(container_id)
        if c.status not in ("running", "paused"):
            raise Conflict(f"Container {container_id} is not running")
        c.status, c.pid, c.exit_code = "stopped", 0, code

    def exit_code(self, container_id: str) -> int | None:
        return self._get(container_id).exit_code

    # -- the protocol ----------------------------------------------------------------------

    def create(
        self,
        container_id: str,
        bundle: Path,
        *,
        pid_file: Path | None = None,
        console_socket: Path | None = None,
        stdio: Stdio = INHERIT,
        preserve_fds: int = 0,
    ) -> None:
        self._enter("create", check_id(container_id))
        if container_id in self.containers:
            raise Conflict(f"container with id {container_id} already exists in the runtime")
        self._next_pid += 1
        self.containers[container_id] = FakeContainer(container_id, bundle, pid=self._next_pid)
        if pid_file is not None:
            pid_file.write_text(str(self._next_pid))

    def start(self, container_id: str) -> None:
        self._enter("start", container_id)
        c = self._get(container_id)
        if c.status != "created":
            raise Conflict(f"cannot start a container in the {c.status} state")
        c.status = "running"

    def run(
        self,
        container_id: str,
        bundle: Path,
        *,
        pid_file: Path | None = None,
        console_socket: Path | None = None,
        stdio: Stdio = INHERIT,
        keep: bool = False,
        detach: bool = False,
    ) -> int:
        self.create(container_id, bundle, pid_file=pid_file, stdio=stdio)
        self.start(container_id)
        if detach:
            return 0
        self.exit(container_id, self.run_exit_code)
        if not keep:
            self.delete(container_id)
        return self.run_exit_code

    def state(self, container_id: str) -> RuntimeState:
        self._enter("state", container_id)
        c = self._get(container_id)
        return RuntimeState(id=c.id, status=c.status, pid=c.pid, bundle=c.bundle)

    def list_all(self) -> list[RuntimeState]:
        return [replace(self.state(cid)) for cid in sorted(self.containers)]

    def kill(self, container_id: str, signal: int | str, *, all_processes: bool = False) -> None:
        self._enter("kill", container_id)
        number = signal_number(signal)
        c = self._get(container_id)
        if c.status not in ("created", "running", "paused"):
            raise Conflict(f"Container {container_id} is not running")
        c.signals.append(number)
        if number in _HARMLESS:
            return
        if c.status == "paused" and number != int(_signal.SIGKILL):
            return  # pending until resumed, as with a frozen cgroup
        c.status, c.pid, c.exit_code = "stopped", 0, 128 + number

    def delete(self, container_id: str, *, force: bool = False) -> None:
        self._enter("delete", container_id)
        c = self.containers.get(container_id)
        if c is None:
            if force:
                return
            raise NotFound(f"No such container: {container_id}")
        if c.status in ("running", "paused") and not force:
            raise Conflict(f"cannot delete container {container_id} that is not stopped")
        del self.containers[container_id]

    def pause(self, container_id: str) -> None:
        self._enter("pause", container_id)
        c = self._get(container_id)
        if c.status not in ("created", "running"):
            raise Conflict(f"Container {container_id} is not running")
        c.status = "paused"

    def resume(self, container_id: str) -> None:
        self._enter("resume", container_id)
        c = self._get(container_id)
        if c.status != "paused":
            raise Conflict(f"Container {container_id} is not paused")
        c.status = "running"
        pending = [s for s in c.signals if s not in _HARMLESS]
        if pending:
            c.status, c.pid, c.exit_code = "stopped", 0, 128 + pending[-1]

    def exec(
        self,
        container_id: str,
        process_spec: Path,
        *,
        tty: bool = False,
        detach: bool = False,
        pid_file: Path | None = None,
        console_socket: Path | None = None,
        stdio: Stdio = INHERIT,
    ) -> int:
        self._enter("exec", container_id)
        c = self._get(container_id)
        if c.status != "running":
            raise Conflict(f"Container {container_id} is not running")
        c.execs.append(process_spec)
        return 0 if detach else self.exec_exit_code

    def ps(self, container_id: str) -> list[int]:
        self._enter("ps", container_id)
        c = self._get(container_id)
        return [c.pid] if c.status in ("created", "running", "paused") else []

    def update(self, container_id: str, resources: Mapping[str, Any]) -> None:
        self._enter("update", container_id)
        self._get(container_id).resources.update(resources)


# --------------------------------------------------------------------------- host processes


class ProcessRuntime:
    """Implements :class:`~cargohold.runtime.base.OCIRuntime` with plain host processes: a
    container's ``process.args`` run as a child of the caller, without namespaces or a root
    file system (cwd is the bundle's rootfs), so unit tests can drive the whole lifecycle
    (monitor, attach, exec, wait, rm) without root.  Its state is files under ``root``, so a
    forked monitor and the test see the same containers.  ``process.terminal`` with a console
    socket gets a pty whose master is sent over the socket, as runc does."""

    name = "process"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # -- state files -----------------------------------------------------------------------
    def _path(self, container_id: str) -> Path:
        return self.root / f"{check_id(container_id)}.json"

    def _load(self, container_id: str) -> dict[str, Any]:
        import json

        try:
            data: dict[str, Any] = json.loads(self._path(container_id).read_text())
        except FileNotFoundError:
            raise NotFound(f"No such container: {container_id}") from None
        return data

    def _save(self, container_id: str, data: dict[str, Any]) -> None:
        import json

        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self._path(container_id).with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(self._path(container_id))

    @staticmethod
    def _alive(pid: int) -> bool:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return False
        return stat.rpartition(")")[2].split()[0] not in ("Z", "X")

    def _status(self, data: dict[str, Any]) -> Status:
        if data.get("status") == "created":
            return "created"
        if data.get("pid") and self._alive(int(data["pid"])):
            return "paused" if data.get("status") == "paused" else "running"
        return "stopped"

    # -- processes -------------------------------------------------------------------------
    def _spawn(self, process: dict[str, Any], cwd: str, stdio: Stdio,
               console_socket: Path | None) -> int:
        """Fork and exec ``process`` (its errors as runc words them); the child's pid."""
        import os

        from cargohold.errors import CannotExecute, CommandNotFound

        args = [str(a) for a in process.get("args") or []]
        env = dict(e.split("=", 1) for e in process.get("env") or [] if "=" in e)
        master = slave = -1
        if process.get("terminal") and console_socket is not None:
            master, slave = os.openpty()
            size = process.get("consoleSize") or {}
            if size:
                import fcntl
                import struct

                fcntl.ioctl(slave, 0x5414,  # TIOCSWINSZ, as runc sets process.consoleSize
                            struct.pack("HHHH", size["height"], size["width"], 0, 0))
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            try:
                os.close(err_r)
                if slave >= 0:
                    os.close(master)
                    os.login_tty(slave)
                else:
                    for fd, src in enumerate((stdio.stdin, stdio.stdout, stdio.stderr)):
                        if src is not None and src != fd:
                            os.dup2(src, fd)
                    os.setsid()
                os.chdir(cwd if os.path.isdir(cwd) else "/")
                os.execvpe(args[0], args, env)
            except OSError as exc:
                os.write(err_w, str(exc.errno).encode())
            finally:
                os._exit(127)
        os.close(err_w)
        if slave >= 0:
            os.close(slave)
        with os.fdopen(err_r, "rb") as f:
            failed = f.read()
        if failed:
            os.waitpid(pid, 0)
            if master >= 0:
                os.close(master)
            if int(failed) == 2:
                raise CommandNotFound(f'exec: "{args[0]}": executable file not found in $PATH')
            raise CannotExecute(f'exec: "{args[0]}": permission denied')
        if master >= 0:
            self._send_master(console_socket, master)  # type: ignore[arg-type]
        return pid

    @staticmethod
    def _send_master(console_socket: Path, master: int) -> None:
        import os
        import socket

        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(str(console_socket))
            socket.send_fds(sock, [b"console"], [master])
        os.close(master)

    def _bundle_process(self, bundle: Path) -> tuple[dict[str, Any], str]:
        import json

        spec = json.loads((bundle / "config.json").read_text())
        root = Path(str((spec.get("root") or {}).get("path") or "rootfs"))
        rootfs = root if root.is_absolute() else bundle / root
        return spec.get("process") or {}, str(rootfs)

    # -- the protocol ----------------------------------------------------------------------
    def create(self, container_id: str, bundle: Path, *, pid_file: Path | None = None,
               console_socket: Path | None = None, stdio: Stdio = INHERIT,
               preserve_fds: int = 0) -> None:
        if self._path(container_id).exists():
            raise Conflict(f"container with id {container_id} already exists")
        self._save(container_id, {"bundle": str(bundle), "status": "created", "pid": 0})

    def start(self, container_id: str) -> None:
        data = self._load(container_id)
        if data.get("status") != "created":
            raise Conflict(f"cannot start a container in the {self._status(data)} state")
        process, cwd = self._bundle_process(Path(data["bundle"]))
        data.update(pid=self._spawn(process, cwd, INHERIT, None), status="running")
        self._save(container_id, data)

    def run(self, container_id: str, bundle: Path, *, pid_file: Path | None = None,
            console_socket: Path | None = None, stdio: Stdio = INHERIT, keep: bool = False,
            detach: bool = False) -> int:
        import os

        if self._path(container_id).exists():
            raise Conflict(f"container with id {container_id} already exists")
        process, cwd = self._bundle_process(bundle)
        pid = self._spawn(process, cwd, stdio, console_socket)
        self._save(container_id, {"bundle": str(bundle), "status": "running", "pid": pid})
        if pid_file is not None:
            pid_file.write_text(str(pid))
        if detach:
            return 0
        _, status = os.waitpid(pid, 0)
        if not keep:
            self.delete(container_id, force=True)
        return os.waitstatus_to_exitcode(status)

    def state(self, container_id: str) -> RuntimeState:
        data = self._load(container_id)
        status = self._status(data)
        pid = int(data.get("pid") or 0) if status != "stopped" else 0
        return RuntimeState(id=container_id, status=status, pid=pid, bundle=Path(data["bundle"]))

    def list_all(self) -> list[RuntimeState]:
        if not self.root.is_dir():
            return []
        return [self.state(p.stem) for p in sorted(self.root.glob("*.json"))]

    def kill(self, container_id: str, signal: int | str, *, all_processes: bool = False) -> None:
        import os

        state = self.state(container_id)
        if state.status not in ("running", "paused"):
            raise Conflict(f"Container {container_id} is not running")
        os.kill(state.pid, signal_number(signal))

    def delete(self, container_id: str, *, force: bool = False) -> None:
        import contextlib
        import os

        try:
            state = self.state(container_id)
        except NotFound:
            if force:
                return
            raise
        if state.status in ("running", "paused"):
            if not force:
                raise Conflict(f"cannot delete container {container_id} that is not stopped")
            with contextlib.suppress(ProcessLookupError):
                os.kill(state.pid, _signal.SIGKILL)
        self._path(container_id).unlink(missing_ok=True)

    def _set_paused(self, container_id: str, paused: bool) -> None:
        import os

        data = self._load(container_id)
        if self._status(data) != ("running" if paused else "paused"):
            word = "running" if paused else "paused"
            raise Conflict(f"Container {container_id} is not {word}")
        os.kill(int(data["pid"]), _signal.SIGSTOP if paused else _signal.SIGCONT)
        data["status"] = "paused" if paused else "running"
        self._save(container_id, data)

    def pause(self, container_id: str) -> None:
        self._set_paused(container_id, True)

    def resume(self, container_id: str) -> None:
        self._set_paused(container_id, False)

    def exec(self, container_id: str, process_spec: Path, *, tty: bool = False,
             detach: bool = False, pid_file: Path | None = None,
             console_socket: Path | None = None, stdio: Stdio = INHERIT) -> int:
        import json
        import os

        state = self.state(container_id)
        if state.status != "running":
            raise Conflict(f"Container {container_id} is not running")
        process = json.loads(process_spec.read_text())
        _, cwd = self._bundle_process(state.bundle)
        pid = self._spawn(process, cwd, stdio, console_socket if tty else None)
        if pid_file is not None:
            pid_file.write_text(str(pid))
        if detach:
            return 0
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status)

    def ps(self, container_id: str) -> list[int]:
        state = self.state(container_id)
        return [state.pid] if state.pid else []

    def update(self, container_id: str, resources: Mapping[str, Any]) -> None:
        self.state(container_id)
