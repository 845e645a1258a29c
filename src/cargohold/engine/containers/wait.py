"""Waiting for containers: ``wait?condition=not-running|next-exit|removed`` and the exit
wait of ``stop``/``rm``.  A running container's monitor sends an EXIT frame (with the exit
code) on its attach socket once its cleanup is done; without a socket the state is polled.
An AutoRemove container's code outlives it in the store's exit tombstone."""

from __future__ import annotations

import contextlib
import json
import time
from typing import TYPE_CHECKING

from cargohold.container.model import State
from cargohold.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    from cargohold.container.records import ContainerStore
    from cargohold.engine.containers.service import ContainerService

WAIT_CONDITIONS = ("not-running", "next-exit", "removed")


def await_exit(
    service: ContainerService, cid: str, timeout: float | None
) -> tuple[bool, int | None]:
    """(ended, its exit code when the monitor's EXIT frame told it)."""
    from cargohold.container import attach as proto
    from cargohold.container.reconcile import monitor_alive

    deadline = None if timeout is None else time.monotonic() + timeout
    with contextlib.suppress(OSError):
        sock = proto.connect(service.store.run_dir(cid))
        with sock:
            reader = proto.FrameReader()
            while True:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False, None
                sock.settimeout(left)
                try:
                    data = sock.recv(65536)
                except TimeoutError:
                    return False, None
                if not data:
                    break
                for kind, payload in reader.feed(data):
                    if kind == proto.EXIT:
                        with contextlib.suppress(ValueError, TypeError, AttributeError):
                            return True, int(json.loads(payload)["ExitCode"])
                        return True, None
    while True:  # no socket (yet, or any more): poll
        try:
            state = service.store.read_state(cid)
        except NotFound:
            return True, None
        if not state.running or not monitor_alive(service.store, cid):
            service.reconcile(cid)
            return True, None
        if deadline is not None and time.monotonic() >= deadline:
            return False, None
        time.sleep(0.02)

def wait(service: ContainerService, ref: str, condition: str = "not-running") -> int:
    """``POST /containers/{id}/wait?condition=``: block until the container is not
    running (``not-running``, at once if it is not), until its next exit
    (``next-exit``: a created or stopped container is waited for until it has run), or
    until it is removed (``removed``); its exit code."""
    if condition not in WAIT_CONDITIONS:
        raise InvalidArgument(f'invalid condition: "{condition}"')
    view = service.get(ref)
    cid, state = view.record.id, view.state
    if condition == "next-exit" and not state.running:
        state = _wait_started(service, cid, state)
    code = None
    if state.running:
        code = await_exit(service, cid, None)[1]
    if condition == "removed":
        while service.store.dir(cid).is_dir():
            time.sleep(0.05)
    try:
        return service.store.read_state(cid).exit_code if code is None else code
    except NotFound:  # removed (AutoRemove, or rm): its tombstone has the code
        found = service.store.removed_exit_code(cid)
        return found if found is not None else state.exit_code

def _wait_started(service: ContainerService, cid: str, state: State) -> State:
    """Poll until the container has started again (or is gone)."""
    started = state.started_at
    while True:
        try:
            now = service.store.read_state(cid)
        except NotFound:
            return state
        if now.running or now.started_at != started:
            return now
        time.sleep(0.05)



def exit_code_after(store: ContainerStore, cid: str, limit: float = 10.0) -> int | None:
    """The exit code once the container is recorded as stopped (None: gone, or still
    running after ``limit`` seconds): what a session whose connection was lost reports."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            state = store.read_state(cid)
        except NotFound:
            return store.removed_exit_code(cid)
        if not state.running:
            return state.exit_code
        time.sleep(0.05)
    return None
