"""Events around engine calls that have many ways out: a decorator per kind, so the call's
body stays as it is (container/events.py writes them).

``exec``: ``exec_create: CMD ARGS`` and ``exec_start: CMD ARGS`` (moby's action names carry
the command), then ``exec_die`` with the exit code once a foreground exec ended; all three
carry the same ``execID``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from cargohold.container import events
from cargohold.container.model import Status
from cargohold.errors import ContainerExit

if TYPE_CHECKING:
    from cargohold.engine.container_ops import ContainerOps, ExecOptions

F = TypeVar("F", bound=Callable[..., int])


def exec_events(method: F) -> F:
    """Wrap ``ContainerOps.exec(self, ref, opts, ...)``."""

    @functools.wraps(method)
    def wrapper(self: ContainerOps, ref: str, opts: ExecOptions, *args: Any, **kw: Any) -> int:
        from cargohold.util.ids import random_id

        if not opts.command:
            return method(self, ref, opts, *args, **kw)
        record, state = self._running(ref)  # not running: its error, and no event
        if state.status is Status.PAUSED:
            return method(self, ref, opts, *args, **kw)
        runroot = self.engine.settings.runroot
        extra = {"execID": random_id()}
        command = f"{opts.command[0]} {' '.join(opts.command[1:])}"
        events.container_event(runroot, record, f"exec_create: {command}", extra)
        events.container_event(runroot, record, f"exec_start: {command}", extra)
        code: int | None = None
        try:
            code = method(self, ref, opts, *args, **kw)
            return code
        except ContainerExit as exc:
            code = exc.exit_code
            raise
        finally:
            if code is not None and not opts.detach:
                events.container_event(runroot, record, "exec_die",
                                       {**extra, "exitCode": str(code)})  # fmt: skip

    return wrapper  # type: ignore[return-value]
