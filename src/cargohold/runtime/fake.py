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
