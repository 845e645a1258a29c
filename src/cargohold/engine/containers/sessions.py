"""The sessions ``attach``, ``run`` and ``exec`` return, for their clients (the CLI pumps a
terminal through them, an API server a hijacked socket).

Both offer ``fileno()`` / ``receive()`` / iteration for the output as ``(STDOUT|STDERR,
bytes)`` frames (Docker's stdcopy stream numbers; a TTY's bytes come as STDOUT), ``write()``
(True when the detach keys ended the session), ``close_stdin()`` (half-close), ``resize(h, w)``,
``wait()`` (the exit code; None when detached) and ``close()``.
"""

from cargohold.container.attach import STDERR, STDOUT, AttachSession
from cargohold.engine.containers.exec import ExecSession, Stdio

__all__ = ["STDERR", "STDOUT", "AttachSession", "ExecSession", "Stdio"]
