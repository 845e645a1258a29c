"""Operations on existing containers: exec, logs, attach, top, stats, cp, diff, export, commit.

Works on the records of ``engine.container_store`` (the lifecycle service creates and starts
them).  The rw layer of a container has the container's id; its bundle's config.json is the
base of every ``exec`` process.  Errors use Docker's words ("Container <id> is not running").

Attach and exec return sessions over explicit streams (container/attach.py, container_exec.py);
``cp``, ``logs`` and ``export`` write to or read from the streams they are given.  Nothing here
reads this process's stdin or writes its stdout, and no terminal or signal is touched.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO

import msgspec

from cargohold.container import events
from cargohold.container.logs import LogEntry, LogOptions, parse_timestamp
from cargohold.container.model import ContainerRecord, State, Status, to_json
from cargohold.errors import (
    CargoholdError,
    Conflict,
    Internal,
    InvalidArgument,
    NotFound,
)

if TYPE_CHECKING:
    from cargohold.container.attach import AttachSession
    from cargohold.container.copy import MountPoint
    from cargohold.engine import Engine
    from cargohold.engine.containers.exec import ExecInstance, ExecSession, Stdio
    from cargohold.engine.containers.requests import ExecCreateRequest, ExecStartRequest
    from cargohold.engine.containers.stats import Sample

__all__ = ["ContainerOps", "LogEntry", "LogOptions", "StatsRow", "parse_timestamp"]

_ACTIVE = (Status.RUNNING, Status.PAUSED, Status.RESTARTING)
_SYSTEM_MOUNTS = ("/proc", "/sys", "/dev")


class StatsRow(msgspec.Struct, frozen=True):
    id: str
    name: str
    cpu_percent: float
    mem_usage: int
    mem_limit: int
    mem_percent: float
    net_rx: int
    net_tx: int
    blk_read: int
    blk_write: int
    pids: int
    running: bool


def _env_key(item: str) -> str:
    return item.split("=", 1)[0]


def merge_env(base: Sequence[str], overrides: Sequence[str]) -> list[str]:
    """Docker's ReplaceOrAppendEnvValues: later values replace earlier ones of the same key."""
    out = list(base)
    index = {_env_key(e): i for i, e in enumerate(out)}
    for item in overrides:
        key = _env_key(item)
        if key in index:
            out[index[key]] = item
        else:
            index[key] = len(out)
            out.append(item)
    return out


def bind_mounts(spec: dict[str, Any]) -> list[MountPoint]:
    """The container's bind mounts (volumes, binds, /etc/hosts...) from its OCI config."""
    from cargohold.container.copy import MountPoint

    out: list[MountPoint] = []
    for m in spec.get("mounts") or []:
        options = m.get("options") or []
        if m.get("type") != "bind" and "bind" not in options and "rbind" not in options:
            continue
        dest, source = str(m.get("destination", "")), str(m.get("source", ""))
        if not source.startswith("/") or not dest.startswith("/"):
            continue
        if any(p == s or p.startswith(s + "/") for s in _SYSTEM_MOUNTS for p in (dest, source)):
            continue
        out.append(MountPoint(dest, source, readonly="ro" in options))
    return out


def filter_mountpoint_changes(
    changes: Sequence[tuple[str, str]], mount_targets: Sequence[str]
) -> list[tuple[str, str]]:
    """Drop what the runtime created only as mount points (Docker keeps those in an init
    layer, so its ``diff`` never shows them), and directories changed only to hold them."""
    targets = set(mount_targets)
    hidden = [path for kind, path in changes if kind == "A" and path in targets]
    if not hidden:
        return list(changes)
    parents: set[str] = set()
    for path in hidden:
        parent = os.path.dirname(path)
        while parent not in ("/", ""):
            parents.add(parent)
            parent = os.path.dirname(parent)
    dropped = {p for k, p in changes if k == "A" and p in targets}
    for parent in sorted(parents, key=lambda p: p.count("/"), reverse=True):  # deepest first
        prefix = parent + "/"
        if not any(p.startswith(prefix) for _, p in changes if p not in dropped):
            dropped.add(parent)
    return [(k, p) for k, p in changes if p not in dropped]


class ContainerOps:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.store = engine.container_store

    # ---- lookups ---------------------------------------------------------------------------
    def _get(self, ref: str) -> tuple[ContainerRecord, State]:
        record = self.store.get(ref)
        state = self.store.read_state(record.id)
        if state.status in _ACTIVE:
            from cargohold.container.reconcile import reconcile

            state = reconcile(self.store, self.engine.runtime_for(record), record.id)
        return record, state

    def _event(self, record: ContainerRecord, action: str) -> None:
        events.container_event(self.engine.settings.runroot, record, action)

    def _running(self, ref: str) -> tuple[ContainerRecord, State]:
        record, state = self._get(ref)
        if state.status is Status.RESTARTING:
            raise Conflict(
                f"Container {record.id} is restarting, wait until the container is running"
            )
        if state.status not in _ACTIVE:
            raise Conflict(f"Container {record.id} is not running")
        return record, state

    def _bundle_spec(self, cid: str) -> dict[str, Any]:
        path = self.store.bundle_dir(cid) / "config.json"
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise Internal(f"container {cid} has no runtime bundle") from None
        if not isinstance(data, dict):
            raise Internal(f"invalid runtime bundle of container {cid}")
        return data

    def _rootfs(self, cid: str, spec: dict[str, Any]) -> Path:
        root = Path(str((spec.get("root") or {}).get("path") or "rootfs"))
        return root if root.is_absolute() else self.store.bundle_dir(cid) / root

    @contextlib.contextmanager
    def _mounted(self, record: ContainerRecord) -> Iterator[Path]:
        """The container's merged root; a mount made only for this call is undone after."""
        layers = self.engine.layers
        layer_id = record.layer_id or record.id
        rw_dir = layers.layout.rw(layer_id)
        was_mounted = os.path.ismount(rw_dir / "merged")
        merged = layers.mount_rw(layer_id)
        try:
            yield merged
        finally:
            if not was_mounted and self.store.read_state(record.id).status not in _ACTIVE:
                with contextlib.suppress(CargoholdError, OSError):
                    layers.unmount_rw(layer_id)

    # ---- exec ----------------------------------------------------------------------------
    def exec_process(self, record: ContainerRecord, req: ExecCreateRequest) -> dict[str, Any]:
        """The OCI process of an exec: the container's process with the exec's changes."""
        if not req.cmd:
            raise InvalidArgument("No exec command specified")
        spec = self._bundle_spec(record.id)
        process: dict[str, Any] = json.loads(json.dumps(spec.get("process") or {}))
        process["args"] = list(req.cmd)
        process["terminal"] = bool(req.tty)
        process.pop("consoleSize", None)
        env = list(process.get("env") or [])
        if req.tty and not any(_env_key(e) == "TERM" for e in env):
            env.append("TERM=xterm")
        elif not req.tty and record.config.tty and "TERM=xterm" not in record.config.env:
            env = [e for e in env if e != "TERM=xterm"]  # the container's tty added it
        if req.user:
            from cargohold.container.users import resolve_user_in_rootfs

            user = resolve_user_in_rootfs(
                self._rootfs(record.id, spec), req.user, record.host_config.group_add
            )
            entry: dict[str, Any] = {"uid": user.uid, "gid": user.gid}
            if user.additional_gids:
                entry["additionalGids"] = list(user.additional_gids)
            process["user"] = entry
            if not any(_env_key(e) == "HOME" for e in record.config.env):
                env = merge_env(env, [f"HOME={user.home}"])
        process["env"] = merge_env(env, req.env)
        if req.working_dir:
            _check_workdir(req.working_dir)
            process["cwd"] = req.working_dir
        if req.privileged:
            # As Docker: bounding, permitted and effective only. A non-root user's execve
            # then leaves it no capabilities (no inheritable or ambient set to carry them),
            # and the container's AppArmor profile stays (exec --privileged keeps it).
            caps = sorted(_all_capabilities())
            process["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
        return process

    def _exec_target(self, ref: str) -> ContainerRecord:
        record, state = self._running(ref)
        if state.status is Status.PAUSED:
            raise Conflict(f"Container {record.id} is paused, unpause the container before exec")
        return record

    def exec_create(self, ref: str, request: ExecCreateRequest) -> str:
        """``POST /containers/{id}/exec``: check the request, record the instance; its id."""
        from cargohold.engine.containers import exec as X

        record = self._exec_target(ref)
        if not request.cmd:
            raise InvalidArgument("No exec command specified")
        for item in request.env:
            if not item.partition("=")[0]:
                raise InvalidArgument(f"invalid environment variable: {item}")
        if request.working_dir:
            _check_workdir(request.working_dir)
        _keys(request.detach_keys)
        inst = X.new_instance(record.id, request)
        X.forget_exited(self.store, record.id, inst.created)
        X.save(self.store, inst)
        self._exec_event(record, inst, "exec_create")
        return inst.id

    def _exec_event(self, record: ContainerRecord, inst: ExecInstance, action: str,
                    exit_code: int | None = None) -> None:
        """moby's exec events: ``exec_create: CMD ARGS`` and ``exec_start: CMD ARGS`` (the
        action carries the command), then ``exec_die`` with the exit code; one ``execID``."""
        extra = {"execID": inst.id}
        if exit_code is not None:
            extra["exitCode"] = str(exit_code)
        else:
            cmd = list(inst.config.get("Cmd") or [""])
            action = f"{action}: {cmd[0]} {' '.join(cmd[1:])}"
        events.container_event(self.engine.settings.runroot, record, action, extra)

    def exec_start(
        self,
        exec_id: str,
        request: ExecStartRequest | None = None,
        *,
        stdio: Stdio | None = None,
    ) -> ExecSession:
        """``POST /exec/{id}/start``: run the instance; the session over its streams.
        ``stdio``: descriptors the process uses directly (no TTY only); None: pipes read
        through the session."""
        from cargohold.container.apparmor import ensure_for_process
        from cargohold.engine.containers import exec as X
        from cargohold.engine.containers.requests import ExecStartRequest

        start = request or ExecStartRequest()
        inst = X.load(self.store, exec_id)
        if inst.started:
            raise Conflict(f"Error: Exec command {exec_id} has already run")
        record = self._exec_target(inst.container_id)
        req = X.request_of(inst)
        process = self.exec_process(record, req)
        size = start.console_size or req.console_size
        if req.tty and size and all(size):
            process["consoleSize"] = {"height": size[0], "width": size[1]}
        ensure_for_process(process)  # something may have unloaded the default profile
        spec_path = self.store.run_dir(record.id) / f"exec-{exec_id}.json"
        spec_path.write_text(json.dumps(process))
        session = X.ExecSession(self.store, inst, self.engine.runtime_for(record), spec_path,
                                tty=req.tty, stdin=req.attach_stdin and not start.detach,
                                detach_keys=_keys(req.detach_keys),
                                on_exit=lambda code: self._exec_event(record, inst, "exec_die",
                                                                      code))  # fmt: skip
        self._exec_event(record, inst, "exec_start")
        try:
            if start.detach and req.tty:
                session.start_tty_detached()
            elif start.detach:
                session.start_detached()
            elif req.tty:
                session.start_tty(start.console_size or req.console_size)
            else:
                session.start_with(stdio)
        except BaseException:
            session.close()
            raise
        return session

    def exec_inspect(self, exec_id: str) -> ExecInstance:
        """``GET /exec/{id}/json`` (its ``to_docker()``)."""
        from cargohold.engine.containers import exec as X

        return X.load(self.store, exec_id)

    # ---- logs / attach ---------------------------------------------------------------------
    def log_entries(self, ref: str, opts: LogOptions) -> Iterator[LogEntry]:
        """``GET /containers/{id}/logs``: the container's log entries per ``opts`` (the
        query's follow, stdout, stderr, since, until, timestamps and tail), following while
        it runs."""
        from cargohold.container.logs import read_logs

        if not (opts.stdout or opts.stderr):
            raise InvalidArgument("Bad parameters: you must choose at least one stream")
        record, _ = self._get(ref)
        kind = record.host_config.log_config.type or "json-file"
        if kind not in ("json-file", "local", "journald"):
            raise InvalidArgument("configured logging driver does not support reading")
        cid = record.id

        def running() -> bool:
            try:
                return self.store.read_state(cid).status in _ACTIVE
            except NotFound:
                return False

        return read_logs(self.store.log_path(cid), opts, is_running=running)

    def logs(self, ref: str, opts: LogOptions, out: BinaryIO, err: BinaryIO) -> None:
        """The log entries written to ``out`` / ``err`` as ``docker logs`` prints them."""
        from cargohold.container.logs import write_logs

        write_logs(self.log_entries(ref, opts), out, err, timestamps=opts.timestamps)

    def attach(
        self,
        ref: str,
        *,
        stdin: bool = False,
        stdout: bool = True,
        stderr: bool = True,
        detach_keys: str = "",
    ) -> AttachSession:
        """``POST /containers/{id}/attach`` of a running container: a session over its
        streams (stdin only when the container keeps it open)."""
        from cargohold.container import attach as proto

        record, state = self._get(ref)
        if state.status is Status.PAUSED:
            raise Conflict("You cannot attach to a paused container, unpause it first")
        if state.status is Status.RESTARTING:
            raise Conflict("You cannot attach to a restarting container, wait until it is running")
        if state.status not in _ACTIVE:
            raise Conflict("You cannot attach to a stopped container, start it first")
        from cargohold.engine.containers.run import session_for

        keys = proto.parse_detach_keys(detach_keys)
        try:
            sock = proto.connect(self.store.run_dir(record.id))
        except OSError:
            raise Conflict("You cannot attach to a stopped container, start it first") from None
        self._event(record, "attach")
        return session_for(self.store, record, sock, stdin=stdin, stdout=stdout,
                           stderr=stderr, keys=keys)

    # ---- top / stats ---------------------------------------------------------------------
    def top(self, ref: str, ps_args: str = "-ef") -> tuple[list[str], list[list[str]]]:
        from cargohold.engine.containers.stats import parse_ps_output

        record, _ = self._running(ref)
        pids = set(self.engine.runtime_for(record).ps(record.id))
        args = [a for a in ps_args.split(" ") if a] if ps_args else ["-ef"]
        try:
            proc = subprocess.run(["ps", *args], capture_output=True, check=False)
        except FileNotFoundError:
            raise Internal('exec: "ps": executable file not found in $PATH') from None
        if proc.returncode != 0:
            text = proc.stderr.decode(errors="replace").strip()
            raise Internal(f"ps: {text}" if text else f"ps: exit status {proc.returncode}")
        self._event(record, "top")
        return parse_ps_output(proc.stdout.decode(errors="replace"), pids)

    def stats(
        self, refs: Sequence[str], all_containers: bool = False, interval: float = 0.5
    ) -> list[StatsRow]:
        """One stats report (CPU % measured over ``interval`` seconds)."""
        targets = self._stats_targets(refs, all_containers)
        first = self._samples(targets)
        if any(s is not None for s in first.values()):
            time.sleep(interval)
        second = self._samples(targets)
        return [self._stats_row(rec, first.get(rec.id), second.get(rec.id)) for rec in targets]

    def _stats_targets(self, refs: Sequence[str], all_containers: bool) -> list[ContainerRecord]:
        if refs:
            return [self._get(ref)[0] for ref in refs]
        out = []
        for record in self.store.list():
            with contextlib.suppress(NotFound):
                if all_containers or self._get(record.id)[1].status in _ACTIVE:
                    out.append(record)
        return out

    def _samples(self, records: Sequence[ContainerRecord]) -> dict[str, Sample | None]:
        from cargohold.engine.containers.stats import sample

        out: dict[str, Sample | None] = {}
        for record in records:
            try:
                state = self.store.read_state(record.id)
            except NotFound:
                out[record.id] = None
                continue
            out[record.id] = sample(state.pid) if state.status in _ACTIVE and state.pid else None
        return out

    def _stats_row(
        self, record: ContainerRecord, before: Sample | None, after: Sample | None
    ) -> StatsRow:
        from cargohold.engine.containers.stats import cpu_percent, mem_percent

        if after is None:
            return StatsRow(record.id, record.name, 0.0, 0, 0, 0.0, 0, 0, 0, 0, 0, False)
        cpu = cpu_percent(before, after) if before is not None else 0.0
        return StatsRow(record.id, record.name, cpu, after.mem_usage, after.mem_limit,
                        mem_percent(after), after.net_rx, after.net_tx, after.blk_read,
                        after.blk_write, after.pids, True)  # fmt: skip

    # ---- cp / diff / export ----------------------------------------------------------------
    def _mount_points(self, record: ContainerRecord) -> list[MountPoint]:
        try:
            return bind_mounts(self._bundle_spec(record.id))
        except Internal:
            return []

    def copy_from(
        self,
        ref: str,
        src_path: str,
        dest: str,
        *,
        follow_link: bool = False,
        stream: IO[bytes] | None = None,
    ) -> None:
        """``cp CONTAINER:SRC_PATH DEST|-``."""
        from cargohold.container.copy import copy_out

        record, _ = self._get(ref)
        with self._mounted(record) as merged:
            copy_out(merged, src_path, dest, mounts=self._mount_points(record),
                     container=record.name, follow_link=follow_link, stream=stream)  # fmt: skip
        self._event(record, "archive-path")  # moby's name for a copy out of a container

    def copy_to(
        self,
        ref: str,
        src: str,
        dest_path: str,
        *,
        archive: bool = False,
        follow_link: bool = False,
        stream: IO[bytes] | None = None,
    ) -> None:
        """``cp SRC|- CONTAINER:DEST_PATH``."""
        from cargohold.container.copy import copy_in

        record, _ = self._get(ref)
        with self._mounted(record) as merged:
            copy_in(merged, src, dest_path, mounts=self._mount_points(record),
                    container=record.name, follow_link=follow_link, archive=archive,
                    stream=stream, readonly_rootfs=record.host_config.readonly_rootfs)  # fmt: skip
        self._event(record, "extract-to-dir")  # and for a copy into one

    def changes(self, ref: str) -> list[tuple[str, str]]:
        """``diff``: ("A"|"C"|"D", path), sorted by path."""
        record, _ = self._get(ref)
        found = self.engine.layers.rw_changes(record.layer_id or record.id)
        try:
            mounts = self._bundle_spec(record.id).get("mounts") or []
        except Internal:
            mounts = []
        targets = [str(m.get("destination", "")) for m in mounts if isinstance(m, dict)]
        return filter_mountpoint_changes(found, [*targets, *_SYSTEM_MOUNTS])

    def export(self, ref: str, out: BinaryIO) -> None:
        """The container's merged file system (not its volumes) as an uncompressed tar."""
        from cargohold.store.archive import write_layer_from_dir

        record, _ = self._get(ref)
        with self._mounted(record) as merged:
            write_layer_from_dir(merged, out)
        self._event(record, "export")

    # ---- commit ------------------------------------------------------------------------------
    def commit(
        self,
        ref: str,
        reference: str | None = None,
        *,
        author: str = "",
        message: str = "",
        pause: bool = True,
        changes: Sequence[str] = (),
    ) -> str:
        """A new image: the container's image plus one layer of the container's changes."""
        from cargohold.engine.containers.commit import commit_container, commit_target

        target = commit_target(reference, changes)
        record, state = self._get(ref)
        return commit_container(self.engine, record, target, author=author, message=message,
                                changes=changes, config_of=self.container_config_json,
                                pause=lambda: self.pause_during(record, state, pause))

    def pause_during(
        self, record: ContainerRecord, state: State, pause: bool
    ) -> Callable[[], None]:
        """Pause a running container (``commit -p``); returns the function that resumes it."""
        if not pause or state.status is not Status.RUNNING:
            return lambda: None
        runtime = self.engine.runtime_for(record)
        try:
            runtime.pause(record.id)
        except CargoholdError:
            return lambda: None
        self._event(record, "pause")  # moby's commit pauses through its pause verb

        paused = [True]

        def resume() -> None:  # idempotent
            if paused and paused.pop():
                with contextlib.suppress(CargoholdError):
                    runtime.resume(record.id)
                self._event(record, "unpause")

        return resume

    def container_config_json(self, record: ContainerRecord) -> dict[str, Any]:
        """The container's Config with Docker's keys (Healthcheck zero values dropped)."""
        data: dict[str, Any] = to_json(record.config)
        hc = data.get("Healthcheck")
        if isinstance(hc, dict):
            data["Healthcheck"] = {k: v for k, v in hc.items() if v not in (0, [], None, "")}
        return data


def _all_capabilities() -> frozenset[str]:
    from cargohold.container.spec_security import host_capabilities

    return host_capabilities()


def _check_workdir(path: str) -> None:
    if not path.startswith("/"):
        raise InvalidArgument(
            f"the working directory '{path}' is invalid, it needs to be an absolute path"
        )


def _keys(spec: str) -> bytes:
    from cargohold.container.attach import parse_detach_keys

    return parse_detach_keys(spec)
