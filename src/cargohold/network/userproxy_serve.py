"""The userland proxy process itself (see userproxy.py, which starts and stops it): relays
``[::]:HOSTPORT`` to ``container_ip:PORT``, TCP streams with half-close and UDP datagrams per
client, until SIGTERM.  Kept apart so that attaching a container never imports asyncio."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import socket
import sys
import time
from collections.abc import Sequence
from typing import cast

MODULE = "cargohold.network.userproxy_serve"
UDP_IDLE_S = 90.0  # Docker's UDP connection timeout


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
