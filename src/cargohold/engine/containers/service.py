"""Container service: the lifecycle verbs (create, start, stop, restart, kill, rm, wait, pause,
unpause, rename), listing, inspect, prune and port.

Every verb first reconciles the containers it touches (container/reconcile.py: a dead monitor
means the container exited; its cleanup actions run), which costs one flock test per container
while monitors are alive.  Waiting for a container to exit listens on its monitor's attach
socket for the EXIT frame (sent after the monitor's cleanup), falling back to polling.
"""

from __future__ import annotations

import contextlib
import os
import signal as _signal
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from cargohold.container import events
from cargohold.container.model import ContainerRecord, State, Status
from cargohold.container.signals import parse_signal, stop_signal
from cargohold.errors import CargoholdError, Conflict, InvalidArgument, NotFound

if TYPE_CHECKING:
    from cargohold.container.attach import AttachSession
    from cargohold.container.monitor_spawn import SpawnResult
    from cargohold.engine import Engine
    from cargohold.engine.containers.requests import ContainerCreateRequest
    from cargohold.engine.containers.run import RunResult
    from cargohold.engine.containers.update import UpdateRequest
    from cargohold.engine.messages import MessageSink
    from cargohold.engine.reports import DiskUsage
    from cargohold.network.ports import PortBinding
    from cargohold.runtime.base import OCIRuntime

__all__ = [
    "ContainerRecord",
    "ContainerService",
    "ContainerView",
    "State",
    "Status",
    "view_filter",
]

DEFAULT_STOP_TIMEOUT = 10
KILL_WAIT = 30.0


class ContainerView(msgspec.Struct, frozen=True):
    """A record with its reconciled state (what ``ps`` and ``inspect`` show)."""

    record: ContainerRecord
    state: State


class ContainerService:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = engine.container_store

    # ------------------------------------------------------------------ lookups
    def reconcile(self, cid: str, record: ContainerRecord | None = None) -> State:
        """The reconciled state; a leftover is cleaned up with the container's own runtime."""
        from cargohold.container.reconcile import reconcile

        def runtime() -> OCIRuntime:
            return self.engine.runtime_for(record or self.store.get(cid))

        return reconcile(self.store, runtime, cid)

    def get(self, ref: str) -> ContainerView:
        record = self.store.get(ref)
        return ContainerView(record, self.reconcile(record.id, record))

    def views(self, show_all: bool = True) -> list[ContainerView]:
        out = []
        for record in self.store.list():
            try:
                state = self.reconcile(record.id, record)
            except (NotFound, FileNotFoundError):
                continue
            if show_all or state.running:
                out.append(ContainerView(record, state))
        return out

    # ------------------------------------------------------------------ create / start
    def create(
        self,
        request: ContainerCreateRequest,
        *,
        name: str = "",
        platform: str = "",
        pull: str = "missing",
        pull_events: MessageSink | None = None,
    ) -> ContainerRecord:
        """``POST /containers/create?name=&platform=``: the request checked as Docker's
        daemon checks it, then the container (Docker's create ``Warnings``:
        :meth:`create_warnings`).  ``pull``: the CLI's ``--pull`` policy (the API passes
        "never": a missing image is NotFound "No such image: x"); ``pull_events``: where
        an image pull this create starts reports (the call's own sink)."""
        from cargohold.engine.containers.create import create_container

        return create_container(self.engine, request, name=name, platform=platform, pull=pull,
                                pull_events=pull_events)

    def run(
        self,
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
        """``docker run`` in one call (engine/container_run.py)."""
        from cargohold.engine.containers.run import run

        return run(self, request, name=name, platform=platform, pull=pull, detach=detach,
                   detach_keys=detach_keys, created=created,
                   pull_events=pull_events)  # fmt: skip

    def create_warnings(self, record: ContainerRecord) -> list[str]:
        """Docker's create ``Warnings`` (an AppArmor profile asked for where it is off)."""
        from cargohold.engine.containers.create import create_warnings

        return create_warnings(record.host_config)

    def start(self, ref: str, wait_for_attach: bool = False) -> ContainerView:
        """``POST /containers/{id}/start``: start a created or stopped container (a running
        one is left alone, as Docker).  ``wait_for_attach``: the monitor holds the container
        until a client attaches (:meth:`start_attached` does both)."""
        from cargohold.engine.containers.start import start_container

        view = self.get(ref)
        status = view.state.status
        if status in (Status.RUNNING, Status.RESTARTING):
            return view
        if status is Status.PAUSED:
            raise Conflict("cannot start a paused container, try unpause instead")
        if status in (Status.REMOVING, Status.DEAD):
            raise Conflict(
                f"container {view.record.id} is marked for removal and cannot be started"
            )
        result = start_container(self.engine, view.record, wait_for_attach)
        return ContainerView(view.record, self._state_after(view.record.id, result))

    def start_attached(
        self, ref: str, *, stdin: bool = False, detach_keys: str = ""
    ) -> AttachSession | None:
        """``start -a [-i]`` (engine/container_run.py)."""
        from cargohold.engine.containers.run import start_attached

        return start_attached(self, ref, stdin=stdin, detach_keys=detach_keys)

    def _state_after(self, cid: str, result: SpawnResult) -> State:
        try:
            return self.store.read_state(cid)
        except NotFound:  # --rm container already gone
            return State(status=Status.EXITED, pid=result.pid)

    def _event(self, record: ContainerRecord, action: str, **extra: str) -> None:
        events.container_event(self.engine.settings.runroot, record, action, extra)

    # ------------------------------------------------------------------ signals / stop
    def _signal(self, view: ContainerView, signum: int) -> None:
        state = view.state
        if state.pid > 0:
            self._event(view.record, "kill", signal=str(signum))  # before: die comes after
            try:
                os.kill(state.pid, signum)
                return
            except ProcessLookupError:
                return
            except PermissionError:
                pass
            self.engine.runtime_for(view.record).kill(view.record.id, signum)
        elif state.monitor_pid > 0 and state.status is Status.RESTARTING:
            # Between restarts: the monitor itself cancels the pending restart.
            with contextlib.suppress(ProcessLookupError):
                os.kill(state.monitor_pid, _signal.SIGTERM)

    def _mark_stopped(self, cid: str) -> None:
        with contextlib.suppress(NotFound):
            self.store.update_state(
                cid, lambda s: msgspec.structs.replace(s, manually_stopped=True)
            )

    def kill(self, ref: str, signal: str | int = "KILL") -> ContainerRecord:
        view = self.get(ref)
        signum = parse_signal(signal)
        if not view.state.running:
            raise Conflict(
                f"Cannot kill container: {ref}: Container {view.record.id} is not running"
            )
        stop_sig = stop_signal(view.record.config.stop_signal)
        if signum in (_signal.SIGKILL, stop_sig):
            self._mark_stopped(view.record.id)
        self._signal(view, signum)
        if view.state.paused and signum == _signal.SIGKILL:
            with contextlib.suppress(CargoholdError):
                self.engine.runtime_for(view.record).resume(view.record.id)
        return view.record

    def stop(
        self, ref: str, timeout: int | None = None, signal: str | None = None
    ) -> ContainerRecord:
        """``POST /containers/{id}/stop?t=&signal=``: the stop signal (the container's, or
        ``signal``), then SIGKILL after ``timeout`` seconds (-1: wait for ever)."""
        signum = parse_signal(signal) if signal else None
        view = self.get(ref)
        self._stop(view, timeout, signum)
        return view.record

    def _stop(self, view: ContainerView, timeout: int | None, signum: int | None = None) -> None:
        if not view.state.running:
            return
        cid = view.record.id
        self._mark_stopped(cid)
        if view.state.paused:
            with contextlib.suppress(CargoholdError):
                self.engine.runtime_for(view.record).resume(cid)
        if timeout is None:
            timeout = view.record.config.stop_timeout
        if timeout is None:
            timeout = DEFAULT_STOP_TIMEOUT
        if timeout != 0:
            self._signal(view, signum or stop_signal(view.record.config.stop_signal))
            if timeout < 0 or self.wait_exit(cid, float(timeout)):
                self._event(view.record, "stop")
                return
        self._signal(view, _signal.SIGKILL)
        self.wait_exit(cid, KILL_WAIT)
        self._event(view.record, "stop")

    def restart(
        self, ref: str, timeout: int | None = None, signal: str | None = None
    ) -> ContainerRecord:
        """``POST /containers/{id}/restart?t=&signal=``."""
        signum = parse_signal(signal) if signal else None
        view = self.get(ref)
        self._stop(view, timeout, signum)
        self.start(view.record.id)
        self._event(view.record, "restart")
        return view.record

    def resize(self, ref: str, height: int, width: int) -> None:
        """``POST /containers/{id}/resize?h=&w=``: the size of a running container's TTY."""
        from cargohold.container import attach as proto

        view = self.get(ref)
        if not view.state.running:
            raise Conflict(f"Container {view.record.id} is not running")
        if height < 0 or width < 0 or height > 0xFFFF or width > 0xFFFF:
            raise InvalidArgument(f"invalid size: {height}x{width}")
        try:
            with proto.connect(self.store.run_dir(view.record.id)) as sock:
                sock.sendall(proto.resize_frame(height, width))
        except OSError:
            raise Conflict(f"Container {view.record.id} is not running") from None

    def wait_exit(self, cid: str, timeout: float | None) -> bool:
        """Wait until the container's process has ended (True) or ``timeout`` passed."""
        from cargohold.engine.containers.wait import await_exit

        return await_exit(self, cid, timeout)[0]

    def wait(self, ref: str, condition: str = "not-running") -> int:
        """``POST /containers/{id}/wait?condition=`` (engine/container_wait.py)."""
        from cargohold.engine.containers.wait import wait

        return wait(self, ref, condition)

    # ------------------------------------------------------------------ pause
    def pause(self, ref: str) -> ContainerRecord:
        view = self.get(ref)
        cid = view.record.id
        if not view.state.running:
            raise Conflict(f"Container {cid} is not running")
        if view.state.paused:
            raise Conflict(f"Container {cid} is already paused")
        if view.state.restarting:
            raise Conflict(f"Container {cid} is restarting, wait until the container is running")
        self.engine.runtime_for(view.record).pause(cid)
        self.store.update_state(cid, lambda s: msgspec.structs.replace(s, status=Status.PAUSED))
        self._event(view.record, "pause")
        return view.record

    def unpause(self, ref: str) -> ContainerRecord:
        view = self.get(ref)
        cid = view.record.id
        if not view.state.paused:
            raise Conflict(f"Container {cid} is not paused")
        self.engine.runtime_for(view.record).resume(cid)
        self.store.update_state(
            cid,
            lambda s: (
                msgspec.structs.replace(s, status=Status.RUNNING)
                if s.status is Status.PAUSED
                else s
            ),
        )
        self._event(view.record, "unpause")
        return view.record

    # ------------------------------------------------------------------ removal
    def remove(
        self, refs: Sequence[str], force: bool = False, volumes: bool = False
    ) -> list[tuple[str, CargoholdError | None]]:
        """Remove containers; running ones only with ``force`` (all killed first, then
        waited for together).  Returns (ref, error or None) per container, in order."""
        views: list[tuple[str, ContainerView | None, CargoholdError | None]] = []
        for ref in refs:
            try:
                view = self.get(ref)
            except CargoholdError as exc:
                views.append((ref, None, exc))
                continue
            if view.state.running and not force:
                views.append(
                    (
                        ref,
                        None,
                        Conflict(
                            f"You cannot remove a running container {view.record.id}. Stop the "
                            "container before attempting removal or force remove"
                        ),
                    )
                )
                continue
            views.append((ref, view, None))
        for _, pending, _ in views:
            if pending is not None and pending.state.running:
                self._mark_stopped(pending.record.id)
                self._signal(pending, _signal.SIGKILL)
                if pending.state.paused:
                    with contextlib.suppress(CargoholdError):
                        self.engine.runtime_for(pending.record).resume(pending.record.id)
        out: list[tuple[str, CargoholdError | None]] = []
        for ref, target, err in views:
            if target is None:
                out.append((ref, err))
                continue
            try:
                if target.state.running:
                    self.wait_exit(target.record.id, KILL_WAIT)
                self._remove_stopped(target.record, volumes)
                out.append((ref, None))
            except CargoholdError as exc:
                out.append((ref, exc))
        return out

    def _remove_stopped(self, record: ContainerRecord, volumes: bool) -> None:
        from cargohold.container.reconcile import run_cleanup
        from cargohold.engine.containers.volumes import release

        cid = record.id
        state = self.reconcile(cid, record)
        if state.running:
            raise Conflict(f"container {cid} did not stop")
        if not self.store.dir(cid).is_dir():
            return  # --rm got there first
        errors = [e for e in run_cleanup(self.store, cid) if "remove_container" not in e]
        if errors:
            raise CargoholdError(f"cleaning up container {cid}: {errors[0]}")
        # the monitor deleted the runtime's container on exit (reconcile does after a crash)
        release(self.engine, record, remove_anonymous=volumes)
        self.engine.layers.remove_rw(cid)
        with contextlib.suppress(NotFound):
            self.store.remove(cid)

    def prune(self, filters: Sequence[str] = ()) -> tuple[list[str], int]:
        """Remove stopped containers matching ``filters`` (label, label!, until)."""
        from cargohold.engine.prune_filters import PruneFilters

        wanted = PruneFilters.parse(filters)
        deleted: list[str] = []
        reclaimed = 0
        for view in self.views():
            if view.state.running:
                continue
            labels, created = view.record.config.labels, view.record.created / 1e9
            if not wanted.empty and not wanted.match(labels, created):
                continue
            cid = view.record.id
            with contextlib.suppress(CargoholdError, OSError):
                reclaimed += self.engine.layers.rw_size(cid)
            try:
                self._remove_stopped(view.record, volumes=False)
            except CargoholdError:
                continue
            deleted.append(cid)
        events.prune_event(self.engine.settings.runroot, "container", reclaimed)
        return deleted, reclaimed

    def update(self, ref: str, request: UpdateRequest) -> list[str]:
        """``update``: new restart policy / limits (engine/container_update.py); warnings."""
        from cargohold.engine.containers.update import update_container

        warnings = update_container(self.engine, ref, request)
        self._event(self.store.get(ref), "update")
        return warnings

    def rename(self, ref: str, new_name: str) -> ContainerRecord:
        from cargohold.engine.containers import network as cnet
        from cargohold.network.hosts import HostsRegistry

        old_name = self.store.get(ref).name
        record = self.store.rename(ref, new_name)
        self._relink(old_name, record)
        if self.reconcile(record.id, record).running:
            eps = cnet.load_endpoints(self.store, record.id)
            registry = HostsRegistry(self.engine.network_store.root)
            hosts = self.store.dir(record.id) / "hosts"
            for name, att in eps.networks.items():
                if name != "bridge":
                    registry.join(
                        att.network_id, record.id, record.name, att.aliases, att.ip, hosts
                    )
        return record

    def _relink(self, old_name: str, target: ContainerRecord) -> None:
        """After a rename: containers linking to ``old_name`` now name the target by its new
        name (the alias stays, as Docker's link graph keeps it), so ``ps`` shows
        ``new,receiver/alias`` and the receivers' hosts entries carry the new name."""
        from cargohold.engine.containers import network as cnet
        from cargohold.network.links import parse_link

        def relinked(raw: tuple[str, ...]) -> tuple[str, ...]:
            out = []
            for item in raw:
                spec = parse_link(item)
                out.append(f"{target.name}:{spec.alias}" if spec.name == old_name else item)
            return tuple(out)

        changed = False
        for cid in self.store.ids():
            if cid == target.id:
                continue
            try:
                if not any(parse_link(x).name == old_name for x in self.store.links_of(cid)):
                    continue
            except (CargoholdError, FileNotFoundError):
                continue

            def relink(rec: ContainerRecord) -> ContainerRecord:
                host = msgspec.structs.replace(
                    rec.host_config, links=relinked(rec.host_config.links)
                )
                nets = {
                    n: msgspec.structs.replace(ep, links=relinked(ep.links))
                    for n, ep in rec.networks.items()
                }
                return msgspec.structs.replace(rec, host_config=host, networks=nets)

            with contextlib.suppress(NotFound):
                self.store.change_record(cid, relink)
                changed = True
        if changed:
            with contextlib.suppress(CargoholdError, OSError):
                cnet.refresh_links(self.engine, target)

    # ------------------------------------------------------------------ views
    def ports(self, ref: str) -> list[PortBinding]:
        from cargohold.engine.containers.network import published

        view = self.get(ref)
        if not view.state.running:
            return []
        return published(self.store, view.record.id)

    def inspect(self, ref: str) -> dict[str, Any]:
        from cargohold.engine.containers.inspect import inspect_container

        view = self.get(ref)
        return inspect_container(self.engine, view.record, view.state)

    def size(self, cid: str) -> int:
        try:
            return self.engine.layers.rw_size(cid)
        except (CargoholdError, OSError):
            return 0

    def sizes(self, cid: str, image_id: str) -> tuple[int, int]:
        """Docker's (SizeRw, SizeRootFs): the rw layer's bytes, and those plus the image's
        (ps -s shows them as "12B (virtual 1.98MB)")."""
        rw = self.size(cid)
        try:
            image = self.engine.image_store.get(image_id) if image_id else None
            virtual = self.engine.images.size(image) if image is not None else 0
        except (CargoholdError, OSError):
            virtual = 0
        return rw, rw + virtual

    def disk_usage(self) -> DiskUsage:
        from cargohold.engine.reports import DiskUsage

        views = self.views()
        sizes = {v.record.id: self.size(v.record.id) for v in views}
        active = [v for v in views if v.state.running]
        reclaimable = sum(sizes[v.record.id] for v in views if not v.state.running)
        return DiskUsage("Containers", len(views), len(active), sum(sizes.values()), reclaimable)

    def using_image(self, image_id: str) -> list[tuple[str, bool]]:
        out = []
        for record in self.store.list():
            if record.image_id == image_id:
                try:
                    running = self.store.read_state(record.id).running
                except NotFound:
                    continue
                out.append((record.id, running))
        return out


def view_filter(filters: Sequence[str]) -> Callable[[ContainerView], bool]:
    """``ps --filter``: status, name, label, ancestor, exited, id (AND between keys, OR within
    one key, as Docker)."""
    import re

    groups: dict[str, list[str]] = {}
    for raw in filters:
        key, eq, value = raw.partition("=")
        key = key.strip().lower()
        if not eq:
            raise InvalidArgument(f"bad format of filter (expected name=value): {raw}")
        if key not in ("status", "name", "label", "ancestor", "exited", "id", "health"):
            raise InvalidArgument(f"invalid filter '{key}'")
        if key == "status" and value not in [s.value for s in Status]:
            raise InvalidArgument(
                f"invalid filter 'status={value}': Invalid filter 'status={value}'"
            )
        if key == "exited" and not value.lstrip("-").isdigit():
            raise InvalidArgument(f"invalid filter 'exited={value}'")
        groups.setdefault(key, []).append(value)

    def one(key: str, value: str, v: ContainerView) -> bool:
        rec, st = v.record, v.state
        if key == "status":
            return st.status.value == value
        if key == "name":
            return re.search(value, rec.name) is not None
        if key == "id":
            return rec.id.startswith(value)
        if key == "exited":
            return st.status is Status.EXITED and st.exit_code == int(value)
        if key == "health":
            health = st.health.status.value if st.health else "none"
            return health == value
        if key == "label":
            k, eq2, val = value.partition("=")
            labels = rec.config.labels
            return k in labels and (not eq2 or labels[k] == val)
        # ancestor: the image name as given (tag defaults to latest) or its id (prefix)
        return _ancestor(value, rec)

    def match(v: ContainerView) -> bool:
        return all(any(one(k, val, v) for val in vals) for k, vals in groups.items())

    return match


def _ancestor(value: str, rec: ContainerRecord) -> bool:
    def norm(name: str) -> str:
        last = name.rsplit("/", 1)[-1]
        return name if ":" in last or "@" in last else name + ":latest"

    bare = rec.image_id.split(":", 1)[-1]
    wanted = value.split(":", 1)[-1] if value.startswith("sha256:") else value
    if rec.config.image and norm(value) == norm(rec.config.image):
        return True
    return (
        len(wanted) >= 4
        and all(c in "0123456789abcdef" for c in wanted)
        and bare.startswith(wanted)
    )
