"""The userland proxy of a container's IPv6 published ports (Docker's ``docker-proxy``).

A container on a bridge has only an IPv4 address, and ip6tables cannot DNAT to IPv4, so a port
published on ``::`` is served by a small process that accepts on ``[::]:HOSTPORT`` and relays
to ``container_ip:PORT`` (TCP streams with half-close; UDP datagrams per client).

:func:`start` binds the listening sockets in the caller, so a port already in use fails the
attach at once with a clear error, then hands them to one process per endpoint (``python -m
cargohold.network.userproxy_serve TAG IP PROTO:FD:PORT ...``) in its own session, recorded in
``<root>/networks/proxies/<tag>.pid`` (pid and start time).  :func:`stop` (called by the
bridge's detach, hence by the container's recorded teardown action and by reconciliation after
a crash) kills the process after checking that the pid still names that process.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from cargohold.errors import Conflict, Internal, InvalidArgument
from cargohold.network.ports import PortBinding

MODULE = "cargohold.network.userproxy_serve"  # the proxy process (asyncio: ~12 ms to import)


def _pid_path(root: Path, tag: str) -> Path:
    return root / "networks" / "proxies" / f"{tag}.pid"


def _bind(b: PortBinding) -> socket.socket:
    kind = socket.SOCK_DGRAM if b.proto == "udp" else socket.SOCK_STREAM
    family = socket.AF_INET6 if ":" in b.host_ip else socket.AF_INET
    s = socket.socket(family, kind)
    try:
        if family == socket.AF_INET6:
            s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if kind == socket.SOCK_STREAM:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((b.host_ip, b.host_port))
        if kind == socket.SOCK_STREAM:
            s.listen(128)
    except OSError as e:
        s.close()
        addr = f"[{b.host_ip}]" if family == socket.AF_INET6 else b.host_ip
        v = "6" if family == socket.AF_INET6 else "4"
        reason = {
            errno.EADDRINUSE: "address already in use",
            errno.EADDRNOTAVAIL: "cannot assign requested address",
            errno.EACCES: "permission denied",
        }.get(e.errno or 0, e.strerror or str(e))
        msg = (
            f"Error starting userland proxy: listen {b.proto}{v} {addr}:{b.host_port}: "
            f"bind: {reason}"
        )
        raise (Conflict(msg) if e.errno == errno.EADDRINUSE else InvalidArgument(msg)) from None
    return s


def start(root: Path, tag: str, container_ip: str, bindings: Sequence[PortBinding]) -> int:
    """Bind every binding, then start the proxy process; returns its pid (0 if none)."""
    if not bindings:
        return 0
    socks: list[socket.socket] = []
    try:
        for b in bindings:
            socks.append(_bind(b))
        args = [
            f"{b.proto}:{s.fileno()}:{b.container_port}"
            for b, s in zip(bindings, socks, strict=True)
        ]
        env = dict(os.environ)
        pkg_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [pkg_root, env.get("PYTHONPATH")]))
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", MODULE, tag, container_ip, *args],
                pass_fds=[s.fileno() for s in socks],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                cwd="/",
                env=env,
            )
        except OSError as e:
            raise Internal(f"cannot start the userland proxy: {e}") from None
    finally:
        for s in socks:
            s.close()
    path = _pid_path(root, tag)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{proc.pid} {_start_time(proc.pid)}\n")
    proc.returncode = 0  # never waited for here: keep subprocess from tracking it
    return proc.pid


def _stat(pid: int) -> list[str]:
    """The fields of /proc/PID/stat after the command name (state first); [] when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return []


def _start_time(pid: int) -> str:
    fields = _stat(pid)
    return fields[19] if len(fields) > 19 else ""


def _read(root: Path, tag: str) -> tuple[int, str]:
    try:
        pid_s, _, start = _pid_path(root, tag).read_text().strip().partition(" ")
        return int(pid_s), start
    except (OSError, ValueError):
        return 0, ""


def _alive(pid: int, start: str) -> bool:
    """The recorded process still exists and is not a zombie.  Its start time (fixed at fork,
    unchanged by exec) tells it from a later process that reused the pid; its argv cannot:
    it is empty for a moment while the proxy execs."""
    fields = _stat(pid)
    if len(fields) <= 19 or fields[0] in ("Z", "X"):
        return False
    return bool(start) and fields[19] == start


def stop(root: Path, tag: str) -> None:
    """Kill the endpoint's proxy, if any (idempotent; safe after a crash or pid reuse)."""
    pid, start = _read(root, tag)
    if pid and _alive(pid, start):
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
            for _ in range(200):
                if not _alive(pid, start):
                    break
                time.sleep(0.01)
            else:
                continue
            break
    _pid_path(root, tag).unlink(missing_ok=True)


def running(root: Path, tag: str) -> int:
    """The pid of the endpoint's live proxy, else 0."""
    pid, start = _read(root, tag)
    return pid if pid and _alive(pid, start) else 0
