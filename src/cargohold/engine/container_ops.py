"""Operations on existing containers: exec, logs, attach, top, stats, cp, diff, export, commit.

Works on the records of ``engine.container_store`` (the lifecycle service creates and starts
them).  The rw layer of a container has the container's id; its bundle's config.json is the
base of every ``exec`` process.  Errors use Docker's words ("Container <id> is not running").
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, BinaryIO

import msgspec

from cargohold.container import events
from cargohold.container.model import ContainerRecord, State, Status, to_json
from cargohold.engine.event_hooks import exec_events
from cargohold.errors import (
    CannotExecute,
    CargoholdError,
    CommandNotFound,
    Conflict,
    ContainerExit,
    Internal,
    InvalidArgument,
    NotFound,
)

if TYPE_CHECKING:
    from cargohold.container.attach import AttachResult
    from cargohold.container.copy import MountPoint
    from cargohold.container.logs import LogOptions
    from cargohold.engine import Engine
    from cargohold.engine.container_stats import Sample

_ACTIVE = (Status.RUNNING, Status.PAUSED, Status.RESTARTING)
_SYSTEM_MOUNTS = ("/proc", "/sys", "/dev")


class ExecOptions(msgspec.Struct, frozen=True):
    command: tuple[str, ...]
    interactive: bool = False
    tty: bool = False
    detach: bool = False
    env: tuple[str, ...] = ()  # KEY=VALUE (KEY alone was already resolved by the CLI)
    user: str = ""
    workdir: str = ""
    privileged: bool = False
    detach_keys: str = ""


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
    def exec_process(self, record: ContainerRecord, opts: ExecOptions) -> dict[str, Any]:
        """The OCI process of an exec: the container's process with the exec's changes."""
        if not opts.command:
            raise InvalidArgument("No exec command specified")
        spec = self._bundle_spec(record.id)
        process: dict[str, Any] = json.loads(json.dumps(spec.get("process") or {}))
        process["args"] = list(opts.command)
        process["terminal"] = bool(opts.tty)
        process.pop("consoleSize", None)
        env = list(process.get("env") or [])
        if opts.tty and not any(_env_key(e) == "TERM" for e in env):
            env.append("TERM=xterm")
        elif not opts.tty and record.config.tty and "TERM=xterm" not in record.config.env:
            env = [e for e in env if e != "TERM=xterm"]  # the container's tty added it
        if opts.user:
            from cargohold.container.users import resolve_user_in_rootfs

            user = resolve_user_in_rootfs(
                self._rootfs(record.id, spec), opts.user, record.host_config.group_add
            )
            entry: dict[str, Any] = {"uid": user.uid, "gid": user.gid}
            if user.additional_gids:
                entry["additionalGids"] = list(user.additional_gids)
            process["user"] = entry
            if not any(_env_key(e) == "HOME" for e in record.config.env):
                env = merge_env(env, [f"HOME={user.home}"])
        process["env"] = merge_env(env, opts.env)
        if opts.workdir:
            if not opts.workdir.startswith("/"):
                raise InvalidArgument(
                    f"the working directory '{opts.workdir}' is invalid, it needs to be an "
                    "absolute path"
                )
            process["cwd"] = opts.workdir
        if opts.privileged:
            # As Docker: bounding, permitted and effective only. A non-root user's execve
            # then leaves it no capabilities (no inheritable or ambient set to carry them),
            # and the container's AppArmor profile stays (exec --privileged keeps it).
            caps = sorted(_all_capabilities())
            process["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
        return process

    @exec_events
    def exec(
        self,
        ref: str,
        opts: ExecOptions,
        stdin: int | None = 0,
        stdout: int = 1,
        stderr: int = 2,
    ) -> int:
        """Run ``opts.command`` in the running container; the command's exit status."""
        from cargohold.runtime.base import Stdio

        record, state = self._running(ref)
        if state.status is Status.PAUSED:
            raise Conflict(f"Container {record.id} is paused, unpause the container before exec")
        process = self.exec_process(record, opts)
        from cargohold.container.apparmor import ensure_for_process

        ensure_for_process(process)  # something may have unloaded the default profile
        run_dir = self.store.run_dir(record.id)
        spec_path = run_dir / f"exec-{secrets.token_hex(8)}.json"
        spec_path.write_text(json.dumps(process))
        try:
            runtime = self.engine.runtime_for(record)
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
            try:
                if opts.detach and opts.tty:
                    from cargohold.engine.container_exec import exec_tty_detached

                    exec_tty_detached(runtime, record.id, spec_path)
                    return 0
                if opts.detach:
                    runtime.exec(record.id, spec_path, detach=True, stdio=Stdio(null, null, null))
                    return 0
                if opts.tty:
                    from cargohold.engine.container_exec import exec_tty

                    keys = opts.detach_keys
                    return exec_tty(
                        runtime,
                        record.id,
                        spec_path,
                        stdin if opts.interactive else None,
                        stdout,
                        keys,
                    )
                with _ignore_interrupts():
                    try:
                        return runtime.exec(
                            record.id,
                            spec_path,
                            stdio=Stdio(stdin if opts.interactive else null, stdout, stderr),
                        )
                    except (CommandNotFound, CannotExecute) as exc:
                        # runc already printed why on the stderr it shares with the process
                        raise ContainerExit(exc.exit_code) from exc
            finally:
                os.close(null)
        finally:
            spec_path.unlink(missing_ok=True)

    # ---- logs / attach ---------------------------------------------------------------------
    def logs(self, ref: str, opts: LogOptions, out: BinaryIO, err: BinaryIO) -> None:
        from cargohold.container.logs import read_logs, write_logs

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

        entries = read_logs(self.store.log_path(cid), opts, is_running=running)
        write_logs(entries, out, err, timestamps=opts.timestamps)

    def attach(
        self,
        ref: str,
        *,
        stdin: BinaryIO | None,
        stdout: BinaryIO | None = None,
        stderr: BinaryIO | None = None,
        no_stdin: bool = False,
        sig_proxy: bool = True,
        detach_keys: str = "",
    ) -> AttachResult:
        from cargohold.container import attach as proto

        record, state = self._get(ref)
        if state.status is Status.PAUSED:
            raise Conflict("You cannot attach to a paused container, unpause it first")
        if state.status is Status.RESTARTING:
            raise Conflict("You cannot attach to a restarting container, wait until it is running")
        if state.status not in _ACTIVE:
            raise Conflict("You cannot attach to a stopped container, start it first")
        keys = proto.parse_detach_keys(detach_keys) if detach_keys else proto.DEFAULT_DETACH_KEYS
        try:
            sock = proto.connect(self.store.run_dir(record.id))
        except OSError:
            raise Conflict("You cannot attach to a stopped container, start it first") from None
        self._event(record, "attach")
        use_stdin = stdin if record.config.open_stdin and not no_stdin else None
        with sock:
            result = proto.attach(
                sock,
                stdin=use_stdin,
                stdout=stdout,
                stderr=stderr,
                tty_mode=record.config.tty,
                detach_keys=keys,
                sig_proxy=sig_proxy and not record.config.tty,
                detach_message=True,
            )
        if result.exit_code is None and not result.detached:
            final = self._wait_exit(record.id)
            return msgspec.structs.replace(result, exit_code=final)
        return result

    def _wait_exit(self, cid: str, limit: float = 10.0) -> int | None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            try:
                state = self.store.read_state(cid)
            except NotFound:
                return None
            if state.status not in _ACTIVE:
                return state.exit_code
            time.sleep(0.05)
        return None

    # ---- top / stats ---------------------------------------------------------------------
    def top(self, ref: str, ps_args: str = "-ef") -> tuple[list[str], list[list[str]]]:
        from cargohold.engine.container_stats import parse_ps_output

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
        from cargohold.engine.container_stats import sample

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
        from cargohold.engine.container_stats import cpu_percent, mem_percent

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
        from cargohold.engine.container_commit import commit_container

        return commit_container(self, ref, reference, author=author, message=message,
                                pause=pause, changes=changes)  # fmt: skip

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


@contextlib.contextmanager
def _ignore_interrupts() -> Iterator[None]:
    """While runc waits for an exec, Ctrl-C belongs to the process (runc forwards it)."""
    import signal

    saved = {s: signal.signal(s, lambda *_: None) for s in (signal.SIGINT, signal.SIGQUIT)}
    try:
        yield
    finally:
        for sig, old in saved.items():
            signal.signal(sig, old)
