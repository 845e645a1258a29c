"""The OCI runtime seam: what the container layer needs from runc (or a fake).

Implementations: :class:`cargohold.runtime.runc.Runc` (a thin subprocess wrapper) and
:class:`cargohold.runtime.fake.FakeRuntime` (in memory, for unit tests of the lifecycle).

Errors (categories from :mod:`cargohold.errors`):

- the runtime binary is missing ->
  ``Unavailable('exec: "runc": executable file not found in $PATH')``
- the container is unknown -> ``NotFound("No such container: <id>")``
- an id already in use -> ``Conflict``; a container in the wrong state (kill of a stopped
  container, pause of a paused one) -> ``Conflict``
- the container's command is missing -> ``CommandNotFound`` (Docker's 127); present but not
  executable -> ``CannotExecute`` (Docker's 126)
- anything else runc reports -> ``Internal`` carrying runc's own message.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import msgspec

from cargohold.errors import InvalidArgument

Status = Literal["creating", "created", "running", "paused", "stopped"]
STATUSES: tuple[Status, ...] = ("creating", "created", "running", "paused", "stopped")


class RuntimeState(msgspec.Struct, frozen=True):
    """What ``runc state`` reports for one container."""

    id: str
    status: Status
    pid: int  # 0 once the container has stopped
    bundle: Path
    created: str = ""  # RFC 3339 timestamp as the runtime reports it
    annotations: Mapping[str, str] = msgspec.field(default_factory=dict)


class Stdio(msgspec.Struct, frozen=True):
    """File descriptors handed to the runtime (and so to a non-terminal container process).

    ``None`` means "inherit the caller's". With a console socket the process gets a pty and
    these only carry the runtime's own output.
    """

    stdin: int | None = None
    stdout: int | None = None
    stderr: int | None = None


INHERIT = Stdio()


@runtime_checkable
class OCIRuntime(Protocol):
    """A runc-compatible runtime. Every method is synchronous and raises error categories."""

    name: str

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
        """Create the container (its process waits in ``runc init`` until :meth:`start`)."""
        ...

    def start(self, container_id: str) -> None:
        """Start the user process of a created container."""
        ...

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
        """Create, start and wait for a container in the foreground; return its exit status.

        The container is deleted afterwards unless ``keep``.  ``detach``: return (0) as soon
        as the process runs, like :meth:`create` then :meth:`start` in one runtime call.
        """
        ...

    def state(self, container_id: str) -> RuntimeState: ...

    def list_all(self) -> list[RuntimeState]:
        """Every container this runtime's state root knows (for reconciliation)."""
        ...

    def kill(self, container_id: str, signal: int | str, *, all_processes: bool = False) -> None:
        """Send ``signal`` (number, ``"TERM"`` or ``"SIGTERM"``) to the container's init."""
        ...

    def delete(self, container_id: str, *, force: bool = False) -> None:
        """Remove the runtime's state (``force`` kills a running container first)."""
        ...

    def pause(self, container_id: str) -> None: ...

    def resume(self, container_id: str) -> None: ...

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
        """Run the OCI ``process`` JSON at ``process_spec`` inside the container.

        Returns the process's exit status, or 0 once it is started when ``detach``.
        """
        ...

    def ps(self, container_id: str) -> list[int]:
        """Host pids of every process in the container."""
        ...

    def update(self, container_id: str, resources: Mapping[str, Any]) -> None:
        """Apply OCI ``linux.resources`` to a live container."""
        ...


def signal_arg(signal: int | str) -> str:
    """The signal as runc's command line takes it: ``9`` or ``KILL`` (``SIG`` prefix dropped)."""
    if isinstance(signal, int):
        return str(signal)
    text = signal.strip().upper()
    if text.isdigit():
        return text
    return text.removeprefix("SIG")


def check_id(container_id: str) -> str:
    """Refuse ids runc would refuse (or could mistake for options/paths)."""
    ok = container_id and container_id[0].isalnum()
    if not ok or any(not (c.isalnum() or c in "_+-.") for c in container_id):
        raise InvalidArgument(f"invalid container id format: {container_id!r}")
    return container_id
