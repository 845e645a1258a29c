"""Starting a container's monitor: double fork (``setsid``), then wait on a sync pipe until the
container runs (or failed to: the monitor sends the error's kind and message back).

Two ways in:

- :func:`spawn` forks when the container is ready to launch;
- :class:`Prefork` forks *before* the caller sets the container up (``run`` does it first
  thing): the new monitor imports its modules (~10 ms) and warms the record decoder on the
  second core while the caller builds the container.  Two lines on a pipe drive it: the
  container's :class:`MonitorSpec` as soon as the container exists (the monitor then loads
  its record and opens its log while the caller mounts and wires the container), then
  ``go`` when the bundle is ready.  A caller that fails before the go closes the pipe and
  the monitor exits.

This module stays light: the monitor itself (monitor.py) is imported only in the child.
"""

from __future__ import annotations

import json
import os
import traceback
from typing import TYPE_CHECKING

import msgspec

from cargohold import errors
from cargohold.container.monitor_spec import MonitorSpec as MonitorSpec  # re-exported

if TYPE_CHECKING:
    from collections.abc import Callable

    from cargohold.container.model import ContainerRecord
    from cargohold.runtime.base import OCIRuntime

_ERROR_KINDS: dict[str, type[errors.CargoholdError]] = {
    cls.__name__: cls
    for cls in (
        errors.CommandNotFound,
        errors.CannotExecute,
        errors.NotFound,
        errors.Conflict,
        errors.Unavailable,
        errors.InvalidArgument,
        errors.Internal,
    )
}




class SpawnResult(msgspec.Struct, frozen=True):
    monitor_pid: int
    pid: int  # the container's init pid (host namespace)


def spawn(
    spec: MonitorSpec,
    record: ContainerRecord | None = None,
    runtime: OCIRuntime | None = None,
) -> SpawnResult:
    """Start a detached monitor for ``spec.container_id`` and wait until the container runs
    (or, with ``wait_for_attach``, waits for its first attach client before launching it:
    a launch error then comes in the attach EXIT frame, see :class:`attach.AttachSession`).
    ``record``: the container's stored record, handed to the forked monitor so that it does
    not decode it again; ``runtime``: the runtime object it drives the container with (by
    default one for ``spec.runtime_binary``)."""
    spec.run_dir().mkdir(parents=True, exist_ok=True)
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = _fork_detached(lambda: _monitor_main(spec, w, record, runtime), close=(r,))
        os.waitpid(pid, 0)
    finally:
        os.close(w)
    return _started(spec, r)


def _fork_detached(body: Callable[[], int], close: tuple[int, ...]) -> int:
    """Fork twice into a new session (the monitor outlives its caller, and no terminal signal
    reaches it); the grandchild runs ``body`` and exits with its code.  Returns the pid of the
    intermediate child, which exits at once: the caller waitpids it."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            for fd in close:
                os.close(fd)
            os.setsid()
            code = body() if os.fork() == 0 else 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return pid


class Prefork:
    """A monitor forked ahead of the container's set-up; :meth:`spawn` or :meth:`cancel` it.
    ``runtime_of``: how the monitor gets the runtime for the record it is given (by default
    one for the spec's ``runtime_binary``); it is called in the forked monitor."""

    def __init__(
        self, runtime_of: Callable[[ContainerRecord], OCIRuntime] | None = None
    ) -> None:
        go_r, self._go = os.pipe2(os.O_CLOEXEC)
        self._sync, sync_w = os.pipe2(os.O_CLOEXEC)
        self._announced = False
        self._pid = _fork_detached(
            lambda: _prefork_main(go_r, sync_w, runtime_of), close=(self._go, self._sync)
        )
        os.close(go_r)
        os.close(sync_w)

    def announce(self, spec: MonitorSpec) -> None:
        """Name the container (created, not yet set up): the monitor gets ready for it."""
        if self._go < 0 or self._announced:
            raise errors.Internal("the pre-forked monitor was already given a container")
        spec.run_dir().mkdir(parents=True, exist_ok=True)
        os.write(self._go, json.dumps(spec.to_argv()).encode() + b"\n")
        self._announced = True

    def spawn(self, spec: MonitorSpec) -> SpawnResult:
        """Hand the set-up container to the waiting monitor; as :func:`spawn` from there on."""
        if self._go < 0:
            raise errors.Internal("the pre-forked monitor was already used")
        try:
            if not self._announced:
                self.announce(spec)
            os.write(self._go, b"go\n")
        finally:
            self._close_go()
        return _started(spec, self._sync)

    def cancel(self) -> None:
        """The container is not going to start: the waiting monitor exits."""
        if self._go >= 0:
            self._close_go()
            os.close(self._sync)

    def _close_go(self) -> None:
        os.close(self._go)
        self._go = -1
        os.waitpid(self._pid, 0)  # the intermediate process, gone since the fork


def _started(spec: MonitorSpec, sync_r: int) -> SpawnResult:
    with os.fdopen(sync_r, "rb") as f:
        line = f.readline()
    if not line:
        log = spec.run_dir() / "monitor.log"
        raise errors.Internal(f"container monitor failed to start (see {log})")
    msg = json.loads(line)
    if "error" in msg:
        raise _ERROR_KINDS.get(msg.get("kind", ""), errors.Internal)(msg["error"])
    return SpawnResult(int(msg["monitor_pid"]), int(msg.get("pid", 0)))


def _detach_stdio() -> None:
    """Let go of the CLI's terminal and pipes at once (a caller reading our stdout to EOF
    must not wait for the monitor)."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)


def _prefork_main(
    go_r: int, sync_w: int, runtime_of: Callable[[ContainerRecord], OCIRuntime] | None
) -> int:  # pragma: no cover - runs in the child
    _detach_stdio()
    from cargohold.container import monitor
    from cargohold.container.model import warm_decoder

    warm_decoder()
    with os.fdopen(go_r, "rb") as f:
        line = f.readline()
        if not line:
            return 0  # cancelled, or the caller died
        try:
            spec = MonitorSpec.from_argv(json.loads(line))
            prepared = monitor.prepare(spec, sync_w, runtime_of=runtime_of)
        except BaseException:
            traceback.print_exc()
            return 1
        if f.readline() != b"go\n":
            return 0  # the set-up failed after the container was named
    try:
        return prepared.run()
    except BaseException:
        traceback.print_exc()
        return 1


def _monitor_main(
    spec: MonitorSpec, sync_fd: int, record: ContainerRecord | None, runtime: OCIRuntime | None
) -> int:  # pragma: no cover - runs in the child
    from cargohold.container import monitor

    return monitor.monitor_main(spec, sync_fd, record, runtime)
