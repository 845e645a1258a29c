"""A thin wrapper around the ``runc`` command line (or any runc-compatible binary).

Every call is ``<binary> --root <state_root> --log-format json <verb> ...`` run directly (no
shell). Commands whose stdio is ours capture runc's stderr; commands whose stdio belongs to the
container (create, run, exec) get a private ``--log`` file instead, read back on failure. runc's
JSON log lines are turned into error categories by :func:`classify`.

Messages runc 1.1 prints (and what they become):

- ``container does not exist`` -> NotFound ``No such container: <id>``
- ``container with given ID already exists`` -> Conflict
- ``container not running`` / ``cannot start a container in the paused state`` -> Conflict
- ``unable to start container process: exec: "x": executable file not found in $PATH`` and
  ``exec: "/x": stat /x: no such file or directory`` -> CommandNotFound (127)
- ``unable to start container process: exec: "/bin/f": permission denied`` -> CannotExecute (126)
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from cargohold.config import Settings
from cargohold.errors import (
    CannotExecute,
    CargoholdError,
    CommandNotFound,
    Conflict,
    Internal,
    NotFound,
    Unavailable,
)
from cargohold.runtime.base import (
    INHERIT,
    STATUSES,
    RuntimeState,
    Status,
    Stdio,
    check_id,
    signal_arg,
)

_counter = itertools.count()

_START_VERBS = frozenset({"create", "run", "exec"})


def classify(verb: str, message: str, container_id: str = "") -> CargoholdError:
    """Turn runc's error ``message`` for ``verb`` into an error category."""
    msg = message.strip()
    low = msg.lower()
    if "container does not exist" in low:
        return NotFound(f"No such container: {container_id}" if container_id else msg)
    if "already exists" in low and "container" in low:
        return Conflict(f"container with id {container_id} already exists in the runtime")
    if verb in _START_VERBS and "exec:" in low:
        if "executable file not found" in low or "no such file or directory" in low:
            return CommandNotFound(f"OCI runtime {verb} failed: {msg}: unknown")
        if "permission denied" in low or "is a directory" in low or "exec format error" in low:
            return CannotExecute(f"OCI runtime {verb} failed: {msg}: unknown")
    if "not running" in low:
        return Conflict(f"Container {container_id} is not running")
    if "paused" in low or "not paused" in low or "cannot start" in low:
        return Conflict(msg)
    return Internal(f"OCI runtime {verb} failed: {msg}" if verb else msg)


def parse_log(text: str) -> str:
    """The last error message in runc's output (JSON log lines or plain text)."""
    errors: list[str] = []
    plain: list[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            plain.append(line)
            continue
        if isinstance(entry, dict) and entry.get("level") in ("error", "fatal", "panic"):
            errors.append(str(entry.get("msg", "")))
    if errors:
        return errors[-1]
    return plain[-1] if plain else ""


class Runc:
    """``runc`` with its state kept under ``state_root`` (cargohold's ``<runroot>/runc``)."""

    def __init__(self, binary: str = "runc", state_root: Path = Path("/run/cargohold/runc")):
        self.binary = binary
        self.name = Path(binary).name
        self.state_root = Path(state_root)
        self._path: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings, name: str | None = None) -> Runc:
        """Runtime ``name`` (default: the settings' default runtime) with our state root."""
        from cargohold.runtime.choice import runtime_binary

        chosen = settings.runtime if name is None else name
        return cls(runtime_binary(chosen, settings.runtimes), settings.runroot / "runc")

    # -- plumbing ------------------------------------------------------------------------

    def _argv(self, args: Sequence[str], log: Path | None = None) -> list[str]:
        if self._path is None:
            found = self.binary if "/" in self.binary else shutil.which(self.binary)
            if not found or not os.access(found, os.X_OK):
                raise Unavailable(f'exec: "{self.binary}": executable file not found in $PATH')
            self._path = found
            self.state_root.mkdir(parents=True, exist_ok=True, mode=0o700)
        argv = [self._path, "--root", str(self.state_root), "--log-format", "json"]
        if log is not None:
            argv += ["--log", str(log)]
        return [*argv, *args]

    def _call(
        self,
        verb: str,
        args: Sequence[str],
        container_id: str = "",
        stdin_data: bytes | None = None,
    ) -> bytes:
        """Run a command whose stdio is ours; return stdout or raise the classified error."""
        argv = self._argv([verb, *args])
        try:
            proc = subprocess.run(
                argv,
                input=stdin_data,
                stdin=None if stdin_data is not None else subprocess.DEVNULL,
                capture_output=True,
                check=False,
            )
        except FileNotFoundError:
            self._path = None
            raise Unavailable(
                f'exec: "{self.binary}": executable file not found in $PATH'
            ) from None
        if proc.returncode != 0:
            message = parse_log(proc.stderr.decode(errors="replace"))
            raise classify(verb, message or f"exit status {proc.returncode}", container_id)
        return proc.stdout

    @contextlib.contextmanager
    def _log_file(self, container_id: str) -> Iterator[Path]:
        # outside runc's own state dir: `runc list` treats every entry there as a container
        logs = self.state_root.parent / "runc-logs"
        logs.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = logs / f"{container_id}.{os.getpid()}.{next(_counter)}.json"
        try:
            yield path
        finally:
            path.unlink(missing_ok=True)

    def _spawn(
        self, verb: str, args: Sequence[str], container_id: str, stdio: Stdio, preserve: int = 0
    ) -> int:
        """Run a command whose stdio belongs to the container; errors come from --log."""
        with self._log_file(container_id) as log:
            argv = self._argv([verb, *args], log=log)
            try:
                proc = subprocess.run(
                    argv,
                    stdin=stdio.stdin,
                    stdout=stdio.stdout,
                    stderr=stdio.stderr,
                    pass_fds=tuple(range(3, 3 + preserve)),
                    check=False,
                )
            except FileNotFoundError:
                self._path = None
                raise Unavailable(
                    f'exec: "{self.binary}": executable file not found in $PATH'
                ) from None
            try:
                message = parse_log(log.read_text(errors="replace"))
            except FileNotFoundError:
                message = ""
        if message:
            raise classify(verb, message, container_id)
        if proc.returncode != 0 and verb == "create":
            raise classify(verb, f"exit status {proc.returncode}", container_id)
        return proc.returncode

    # -- the OCIRuntime protocol -------------------------------------------------------

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
        args = _start_args(bundle, pid_file, console_socket, preserve_fds)
        self._spawn("create", [*args, check_id(container_id)], container_id, stdio, preserve_fds)

    def start(self, container_id: str) -> None:
        self._call("start", [check_id(container_id)], container_id)

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
        args = _start_args(bundle, pid_file, console_socket, 0)
        if keep:
            args.append("--keep")
        if detach:
            args.append("--detach")
        try:
            code = self._spawn("run", [*args, check_id(container_id)], container_id, stdio)
            if detach and code != 0:
                raise classify("run", f"exit status {code}", container_id)
        except CargoholdError as exc:
            if not detach:
                raise
            # the wording of create+start (and Docker's), whichever call did both
            text = exc.message.replace("OCI runtime run failed", "OCI runtime create failed", 1)
            raise type(exc)(text.replace("runc run failed", "runc create failed", 1)) from None
        return code

    def state(self, container_id: str) -> RuntimeState:
        out = self._call("state", [check_id(container_id)], container_id)
        return _state_from_json(json.loads(out))

    def list_all(self) -> list[RuntimeState]:
        out = self._call("list", ["--format", "json"])
        data = json.loads(out or b"null") or []
        return [_state_from_json(item) for item in data]

    def kill(self, container_id: str, signal: int | str, *, all_processes: bool = False) -> None:
        args = ["--all"] if all_processes else []
        self._call("kill", [*args, check_id(container_id), signal_arg(signal)], container_id)

    def delete(self, container_id: str, *, force: bool = False) -> None:
        args = ["--force"] if force else []
        self._call("delete", [*args, check_id(container_id)], container_id)

    def pause(self, container_id: str) -> None:
        self._call("pause", [check_id(container_id)], container_id)

    def resume(self, container_id: str) -> None:
        self._call("resume", [check_id(container_id)], container_id)

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
        args = ["--process", str(process_spec)]
        if tty:
            args.append("--tty")
        if detach:
            args.append("--detach")
        if pid_file is not None:
            args += ["--pid-file", str(pid_file)]
        if console_socket is not None:
            args += ["--console-socket", str(console_socket)]
        return self._spawn("exec", [*args, check_id(container_id)], container_id, stdio)

    def ps(self, container_id: str) -> list[int]:
        out = self._call("ps", ["--format", "json", check_id(container_id)], container_id)
        return [int(pid) for pid in json.loads(out or b"null") or []]

    def update(self, container_id: str, resources: Mapping[str, Any]) -> None:
        data = json.dumps(dict(resources)).encode()
        self._call("update", ["--resources", "-", check_id(container_id)], container_id, data)


def _start_args(
    bundle: Path, pid_file: Path | None, console_socket: Path | None, preserve_fds: int
) -> list[str]:
    args = ["--bundle", str(bundle)]
    if pid_file is not None:
        args += ["--pid-file", str(pid_file)]
    if console_socket is not None:
        args += ["--console-socket", str(console_socket)]
    if preserve_fds:
        args += ["--preserve-fds", str(preserve_fds)]
    return args


def _state_from_json(data: Mapping[str, Any]) -> RuntimeState:
    status = str(data.get("status", "stopped"))
    if status not in STATUSES:
        raise Internal(f"runtime reported an unknown container status {status!r}")
    checked: Status = status  # type: ignore[assignment]
    return RuntimeState(
        id=str(data["id"]),
        status=checked,
        pid=int(data.get("pid") or 0),
        bundle=Path(str(data.get("bundle", ""))),
        created=str(data.get("created", "")),
        annotations=dict(data.get("annotations") or {}),
    )
