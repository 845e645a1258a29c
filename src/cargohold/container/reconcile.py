"""Cleanup actions and reconciliation of containers nobody is watching.

Cleanup actions are data recorded in ``<root>/containers/<id>/cleanup.json`` by whoever sets a
container up (the engine: unmount the rw layer, tear down the network, ``--rm``).  The monitor
runs them when the container's process ends for good; if the monitor died (kill -9, reboot) the
next command finds the container through :func:`reconcile` and runs them itself.  Each action is
marked done once it succeeded, so running the list twice is harmless.

Kinds of actions:

- ``argv``: run a command (``args`` is the argv); a non-zero exit is an error.
- ``unmount``: lazily unmount ``args[0]`` (a missing or unmounted path is fine).
- ``rmtree``: remove the directory ``args[0]``.
- ``call``: ``args[0]`` is ``"package.module:function"``, called with the string ``args[1:]``
  (lets store/network code register its own teardown without this module knowing it).
- ``remove_container``: delete the container record (``--rm``); always run last.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence

import msgspec

from cargohold.container.model import State, Status, from_json, now_ns, to_json
from cargohold.container.records import ContainerStore
from cargohold.errors import CargoholdError, NotFound
from cargohold.runtime.base import OCIRuntime
from cargohold.util.atomic import read_json, write_json
from cargohold.util.lockfile import FileLock, held

KINDS = ("argv", "unmount", "rmtree", "call", "remove_container")
_MNT_DETACH = 2


class CleanupAction(msgspec.Struct, frozen=True):
    kind: str = msgspec.field(name="Kind")
    args: tuple[str, ...] = msgspec.field(default=(), name="Args")
    done: bool = msgspec.field(default=False, name="Done")


def read_cleanup(store: ContainerStore, cid: str) -> list[CleanupAction]:
    try:
        data = read_json(store.cleanup_path(cid))
    except FileNotFoundError:
        return []
    return [from_json(CleanupAction, item) for item in data]


def record_cleanup(store: ContainerStore, cid: str, actions: Sequence[CleanupAction]) -> None:
    """Replace the container's cleanup list (the engine calls this before each start)."""
    for action in actions:
        if action.kind not in KINDS:
            raise ValueError(f"unknown cleanup action kind {action.kind!r}")
    with FileLock(store.dir(cid) / "cleanup.lock"):
        # container-private, replaced atomically: no fsync (as the done-marks below)
        write_json(store.cleanup_path(cid), [to_json(a) for a in actions], fsync=False)


def add_cleanup(store: ContainerStore, cid: str, action: CleanupAction) -> None:
    with FileLock(store.dir(cid) / "cleanup.lock"):
        actions = [a for a in read_cleanup(store, cid) if a != action]
        actions.append(action)
        write_json(store.cleanup_path(cid), [to_json(a) for a in actions])


def _unmount(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.umount2(path.encode(), _MNT_DETACH) != 0:
        err = ctypes.get_errno()
        if err not in (22, 2):  # EINVAL: not a mount point; ENOENT: gone
            raise OSError(err, os.strerror(err), path)


def _execute(action: CleanupAction) -> None:
    if action.kind == "argv":
        proc = subprocess.run(list(action.args), capture_output=True, check=False)
        if proc.returncode != 0:
            raise OSError(f"{action.args[0]}: {proc.stderr.decode(errors='replace').strip()}")
    elif action.kind == "unmount":
        _unmount(action.args[0])
    elif action.kind == "rmtree":
        shutil.rmtree(action.args[0], ignore_errors=True)
    elif action.kind == "call":
        module, _, name = action.args[0].partition(":")
        getattr(importlib.import_module(module), name)(*action.args[1:])


def preload_cleanup(store: ContainerStore, cid: str) -> None:
    """Import what the pending ``call`` actions will need (each target module may name more
    in ``CLEANUP_IMPORTS``), so that running them at exit imports nothing: the monitor does
    this while the container starts.  Best effort: failures show up in :func:`run_cleanup`."""
    for action in read_cleanup(store, cid):
        if action.kind != "call" or action.done:
            continue
        try:
            module = importlib.import_module(action.args[0].partition(":")[0])
            for name in getattr(module, "CLEANUP_IMPORTS", ()):
                importlib.import_module(name)
        except ImportError:
            continue


def run_cleanup(store: ContainerStore, cid: str) -> list[str]:
    """Run pending actions in order; returns error messages (failed actions stay pending)."""
    errors: list[str] = []
    remove = False
    lock = FileLock(store.dir(cid) / "cleanup.lock")
    if not store.dir(cid).is_dir():
        return errors
    with lock:
        actions = read_cleanup(store, cid)
        for i, action in enumerate(actions):
            if action.done:
                continue
            if action.kind == "remove_container":
                remove = True
                continue
            try:
                _execute(action)
            except (OSError, CargoholdError, ImportError, AttributeError, TypeError) as exc:
                errors.append(f"{action.kind} {' '.join(action.args)}: {exc}")
                continue
            actions[i] = msgspec.structs.replace(action, done=True)
            write_json(store.cleanup_path(cid), [to_json(a) for a in actions], fsync=False)
    if remove and not errors:
        with contextlib.suppress(NotFound):
            store.remove(cid)
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

        def mark(s: State) -> State:
            if s.status not in _ACTIVE:
                return s
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
    if state.status in (Status.EXITED, Status.DEAD, Status.CREATED):
        with contextlib.suppress(CargoholdError):
            if any(not a.done for a in read_cleanup(store, cid)) and state.status != Status.CREATED:
                run_cleanup(store, cid)
    return state


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
