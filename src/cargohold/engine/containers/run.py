"""``docker run`` and ``start -a`` as single engine calls: the container is made and started
with its monitor holding it until the returned attach session is connected, so no output is
lost (the API will attach before start instead, as Docker clients do).

``run`` forks the container's monitor first (monitor_spawn.Prefork): the child imports the
monitor and warms the record decoder on the other core while this process creates, mounts and
wires the container, then gets the go.  A request the engine refuses costs no fork.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import msgspec

from cargohold.container.model import ContainerRecord

if TYPE_CHECKING:
    import socket

    from cargohold.container.attach import AttachSession
    from cargohold.container.records import ContainerStore
    from cargohold.engine.containers.requests import ContainerCreateRequest
    from cargohold.engine.containers.service import ContainerService
    from cargohold.engine.messages import MessageSink


class RunResult(msgspec.Struct, frozen=True):
    """What :func:`run` made: the container, and the session attached to
    it (None with ``detach``)."""

    record: ContainerRecord
    session: AttachSession | None = None


def run(
    service: ContainerService,
    request: ContainerCreateRequest,
    *,
    name: str = "",
    platform: str = "",
    pull: str = "missing",
    detach: bool = False,
    detach_keys: str = "",
    created: Callable[[ContainerRecord], object] | None = None,
    pull_events: MessageSink | None = None,
) -> RunResult:
    """``docker run``: create and start in one call.  The container's monitor is forked
    first and gets ready on another core while the container is made and wired.  Unless
    ``detach``, the monitor holds the container until the returned session (the streams
    the request's AttachStdin/Stdout/Stderr name) is connected, so no output is lost.
    ``created`` is called with the record between create and start (the CLI prints the
    create warnings there).  A container with AutoRemove that fails to start is
    removed."""
    from cargohold.container.attach import parse_detach_keys
    from cargohold.container.monitor_spawn import Prefork
    from cargohold.engine.containers.create import check_request, create_container
    from cargohold.engine.containers.start import start_container

    checked = check_request(request, name)  # a bad request costs no fork
    keys = parse_detach_keys(detach_keys)
    prefork = Prefork(runtime_of=service.engine.runtime_for)
    try:
        record = create_container(service.engine, request, name=name, platform=platform,
                                  pull=pull, checked=checked,
                                  pull_events=pull_events)  # fmt: skip
        if created is not None:
            created(record)
        try:
            start_container(service.engine, record, not detach, prefork)
            session = None if detach else _run_session(service, record, keys)
        except BaseException:
            if record.host_config.auto_remove:
                with contextlib.suppress(Exception):
                    service.remove([record.id], force=True, volumes=True)
            raise
    finally:
        prefork.cancel()
    return RunResult(record, session)


def _run_session(service: ContainerService, record: ContainerRecord,
                 keys: bytes) -> AttachSession:
    cfg = record.config
    return held_session(service, record, keys, stdin=cfg.attach_stdin,
                        stdout=cfg.attach_stdout, stderr=cfg.attach_stderr)


def held_session(service: ContainerService, record: ContainerRecord, keys: bytes, *,
                 stdin: bool, stdout: bool, stderr: bool) -> AttachSession:
    """The session whose connection releases a container its monitor holds."""
    from cargohold.container import attach as proto

    sock = proto.connect(service.store.run_dir(record.id))
    return session_for(service.store, record, sock, stdin=stdin, stdout=stdout,
                       stderr=stderr, keys=keys)


def session_for(store: ContainerStore, record: ContainerRecord, sock: socket.socket, *,
                stdin: bool, stdout: bool, stderr: bool, keys: bytes) -> AttachSession:
    """A session on a connected attach socket (stdin only if the container keeps it open);
    a connection lost without the exit frame falls back to the recorded state."""
    from cargohold.container.attach import AttachSession

    def lost() -> int | None:
        from cargohold.engine.containers.wait import exit_code_after

        return exit_code_after(store, record.id)

    return AttachSession(sock, tty=record.config.tty, stdin=stdin and record.config.open_stdin,
                         stdout=stdout, stderr=stderr, detach_keys=keys,
                         container_id=record.id, lost=lost)  # fmt: skip


def start_attached(
    service: ContainerService, ref: str, *, stdin: bool = False, detach_keys: str = ""
) -> AttachSession | None:
    """``start -a [-i]``: start the container held for the returned session (stdout,
    stderr and, with ``stdin``, the container's open stdin); None when it was running
    already."""
    from cargohold.container.attach import parse_detach_keys

    keys = parse_detach_keys(detach_keys)
    view = service.get(ref)
    if view.state.running:
        return None
    service.start(view.record.id, wait_for_attach=True)
    return held_session(service, view.record, keys, stdin=stdin, stdout=True, stderr=True)

