"""The userland proxy of a container's IPv6 published ports (Docker's ``docker-proxy``).

A container on a bridge has only an IPv4 address, and ip6tables cannot DNAT to IPv4, so a port
published on ``::`` is served by a small process that accepts on ``[::]:HOSTPORT`` and relays
to ``container_ip:PORT`` (TCP streams with half-close; UDP datagrams per client).

:func:`start` binds the listening sockets in the caller, so a port already in use fails the
attach at once with a clear error, then hands them to one process per endpoint (``python -m
cargohold.network.userproxy TAG IP PROTO:FD:PORT ...``) in its own session, recorded in
``<root>/networks/proxies/<tag>.pid`` (pid and start time).  :func:`stop` (called by the
bridge's detach, hence by the container's recorded teardown action and by reconciliation after
a crash) kills the process after checking that the pid still names that process.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import cast

from cargohold.errors import Conflict, Internal, InvalidArgument
from cargohold.network.ports import PortBinding

MODULE = "cargohold.network.userproxy"
UDP_IDLE_S = 90.0  # Docker's UDP connection timeout


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


# --------------------------------------------------------------------------- the proxy


async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
    try:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
        if dst.can_write_eof():
            dst.write_eof()
    except OSError:
        pass


async def _serve_tcp(listener: socket.socket, ip: str, port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            back_r, back_w = await asyncio.open_connection(ip, port)
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(_pipe(reader, back_w), _pipe(back_r, writer))
        finally:
            for w in (writer, back_w):
                w.close()

    server = await asyncio.start_server(handle, sock=listener)
    await server.serve_forever()


class _UdpFront(asyncio.DatagramProtocol):
    """Relays each client's datagrams through its own connected socket to the container."""

    def __init__(self, loop: asyncio.AbstractEventLoop, target: tuple[str, int]) -> None:
        self.loop = loop
        self.target = target
        self.clients: dict[tuple[object, ...], tuple[socket.socket, list[float]]] = {}
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.loop.call_later(UDP_IDLE_S / 3, self._expire)

    def datagram_received(self, data: bytes, addr: tuple[object, ...]) -> None:
        entry = self.clients.get(addr)
        if entry is None:
            back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            back.setblocking(False)
            try:
                back.connect(self.target)
            except OSError:
                back.close()
                return
            entry = (back, [time.monotonic()])
            self.clients[addr] = entry
            self.loop.add_reader(back, self._reply, back, addr)
        entry[1][0] = time.monotonic()
        with contextlib.suppress(OSError):
            entry[0].send(data)

    def _reply(self, back: socket.socket, addr: tuple[object, ...]) -> None:
        try:
            data = back.recv(65535)
        except OSError:
            return
        entry = self.clients.get(addr)
        if entry is not None:
            entry[1][0] = time.monotonic()
        if self.transport is not None:
            self.transport.sendto(data, addr)

    def _expire(self) -> None:
        now = time.monotonic()
        for addr, (back, seen) in list(self.clients.items()):
            if now - seen[0] > UDP_IDLE_S:
                self.loop.remove_reader(back)
                back.close()
                del self.clients[addr]
        self.loop.call_later(UDP_IDLE_S / 3, self._expire)


def _identity(front: _UdpFront) -> _UdpFront:
    return front


async def _main(ip: str, specs: Sequence[str]) -> None:
    loop = asyncio.get_running_loop()
    tasks = []
    for spec in specs:
        proto, fd_s, port_s = spec.split(":")
        port = int(port_s)
        if proto == "udp":
            sock = socket.socket(fileno=int(fd_s))
            sock.setblocking(False)
            front = _UdpFront(loop, (ip, port))
            await loop.create_datagram_endpoint(functools.partial(_identity, front), sock=sock)
        else:
            listener = socket.socket(fileno=int(fd_s))
            listener.setblocking(False)
            tasks.append(asyncio.ensure_future(_serve_tcp(listener, ip, port)))
    stop_ev = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_ev.set)
    await stop_ev.wait()
    for t in tasks:
        t.cancel()


def main(argv: Sequence[str]) -> int:
    if len(argv) < 3:
        print(f"usage: {MODULE} TAG CONTAINER_IP PROTO:FD:PORT...", file=sys.stderr)
        return 2
    asyncio.run(_main(argv[1], argv[2:]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
