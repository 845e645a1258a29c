"""Cleanup actions (recorded, carried out, redone) and reconciliation of containers nobody
is watching.

Cleanup actions are typed data (``container/cleanup.py``) recorded in
``<root>/containers/<id>/cleanup.json`` by whoever sets a container up (the engine: unmount
the rw layer, tear down the network, ``--rm``).  The monitor carries them out when the
container's process ends for good; if the monitor died (kill -9, reboot) the next command
finds the container through :func:`reconcile` and carries them out itself.  Each action is
marked done once it succeeded, so running the list twice is harmless; ``RemoveContainer`` is
always last and only follows when every other action succeeded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence

import msgspec

from cargohold.container import cleanup
from cargohold.container.cleanup import CleanupAction, Entry, Unknown
from cargohold.container.model import State, Status, now_ns
from cargohold.container.records import ContainerStore
from cargohold.errors import CargoholdError, NotFound
from cargohold.runtime.base import OCIRuntime
from cargohold.util.atomic import write_bytes
from cargohold.util.lockfile import FileLock, held


def _lock(store: ContainerStore, cid: str) -> FileLock:
    return FileLock(store.dir(cid) / "cleanup.lock")


def read_cleanup(store: ContainerStore, cid: str) -> list[Entry]:
    try:
        data = store.cleanup_path(cid).read_bytes()
    except FileNotFoundError:
        return []
    return cleanup.decode(data, store, cid)


def _write(store: ContainerStore, cid: str, actions: Sequence[CleanupAction | Unknown],
           fsync: bool) -> None:
    write_bytes(store.cleanup_path(cid), cleanup.encode(actions), fsync=fsync)


def record_cleanup(store: ContainerStore, cid: str, actions: Sequence[CleanupAction]) -> None:
    """Replace the container's cleanup list (the engine calls this before each start)."""
    for action in actions:
        if not isinstance(action, CleanupAction) or type(action) is CleanupAction:
            raise TypeError(f"not a cleanup action: {action!r}")
    with _lock(store, cid):
        # container-private, replaced atomically: no fsync (as the done-marks below)
        _write(store, cid, actions, fsync=False)


def add_cleanup(store: ContainerStore, cid: str, action: CleanupAction) -> None:
    with _lock(store, cid):
        actions: list[CleanupAction | Unknown] = [
            a for a in read_cleanup(store, cid) if a != action
        ]
        actions.append(action)
        _write(store, cid, actions, fsync=True)


def preload_cleanup(store: ContainerStore, cid: str) -> None:
    """Import what the pending actions will need, so that carrying them out at exit imports
    nothing: the monitor does this while the container starts.  Best effort: failures show
    up in :func:`run_cleanup`."""
    with contextlib.suppress(OSError, ValueError, CargoholdError):
        cleanup.preload(read_cleanup(store, cid))


def run_cleanup(store: ContainerStore, cid: str) -> list[str]:
    """Run pending actions in order; returns error messages (failed actions stay pending)."""
    errors: list[str] = []
    remove: cleanup.RemoveContainer | None = None
    if not store.dir(cid).is_dir():
        return errors
    ctx = cleanup.Context(store, cid)
    with _lock(store, cid):
        actions = read_cleanup(store, cid)
        for i, action in enumerate(actions):
            if action.done:
                continue
            if isinstance(action, cleanup.RemoveContainer):
                remove = action
                continue
            try:
                cleanup.carry_out(action, ctx)
            except Exception as exc:  # reported, the rest still runs: this is an exit path
                errors.append(f"{cleanup.describe(action)}: {exc}")
                continue
            actions[i] = msgspec.structs.replace(action, done=True)
            _write(store, cid, actions, fsync=False)
    if remove is not None and not errors:
        cleanup.carry_out(remove, ctx)
    return errors


# --------------------------------------------------------------------------- reconciliation


def monitor_alive(store: ContainerStore, cid: str) -> bool:
    """True while a monitor holds the container's monitor lock (released when it dies)."""
    return held(store.monitor_lock_path(cid))  # this process's own hold counts as well


_ACTIVE = (Status.RUNNING, Status.PAUSED, Status.RESTARTING)


def reconcile(
    store: ContainerStore, runtime: OCIRuntime | Callable[[], OCIRuntime], cid: str
) -> State:
    """Bring one container's record in line with reality and return its state.

    A container marked running/paused/restarting whose monitor is gone is killed in the
    runtime if its process survived (nothing would collect its output), deleted from the
    runtime, and marked exited: exit code 137 if we had to kill it, else 255 as Docker
    reports a process it lost track of.  Pending cleanup actions are then run.  The name stays
    reserved until ``rm``, as in Docker.
    """
    state = store.read_state(cid)
    if monitor_alive(store, cid):
        return state
    if state.status in _ACTIVE:
        killed = _kill_leftover(runtime() if callable(runtime) else runtime, cid)
        message = "container monitor exited unexpectedly"

        marked: list[bool] = []

        def mark(s: State) -> State:
            if s.status not in _ACTIVE:
                return s
            marked.append(True)  # this process marked it: it writes the die event
            return msgspec.structs.replace(
                s,
                status=Status.EXITED,
                exit_code=137 if killed else 255,
                error=s.error or message,
                pid=0,
                finished_at=now_ns(),
                monitor_pid=0,
            )

        state = store.update_state(cid, mark)
        if marked:
            _lost(store, cid, state.exit_code)
    if state.status in (Status.EXITED, Status.DEAD, Status.CREATED):
        with contextlib.suppress(CargoholdError):
            if any(not a.done for a in read_cleanup(store, cid)) and state.status != Status.CREATED:
                run_cleanup(store, cid)
    return state


def _lost(store: ContainerStore, cid: str, code: int) -> None:
    """The ``die`` event the dead monitor could not write (written by whoever marked it)."""
    from cargohold.container.events import container_event

    with contextlib.suppress(NotFound, OSError, ValueError):
        container_event(store.runbase.parent, store.load(cid), "die", {"exitCode": str(code)})


def _kill_leftover(runtime: OCIRuntime, cid: str) -> bool:
    """Kill and delete the runtime's container if it is still there; True if it was alive."""
    try:
        rstate = runtime.state(cid)
    except CargoholdError:
        return False
    alive = rstate.status in ("running", "paused", "created")
    with contextlib.suppress(CargoholdError):
        runtime.delete(cid, force=True)
    return alive


def reconcile_all(store: ContainerStore, runtime: OCIRuntime) -> None:
    """Reconcile every container (cheap when monitors are alive: one flock test each)."""
    for cid in store.ids():
        with contextlib.suppress(NotFound, FileNotFoundError):
            reconcile(store, runtime, cid)
