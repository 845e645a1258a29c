"""The IPv6 userland proxy against local IPv4 echo servers (no container needed)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cargohold.errors import Conflict
from cargohold.network import userproxy
from cargohold.network.portalloc import host_has_ipv6, probe_bind
from cargohold.network.ports import PortBinding

pytestmark = pytest.mark.skipif(not host_has_ipv6(), reason="no IPv6 on lo")


def _tcp_echo() -> tuple[socket.socket, int]:
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen()

    def run() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                data = b""
                while chunk := conn.recv(65536):
                    data += chunk
                conn.sendall(data.upper())  # replies after the client's half-close

    threading.Thread(target=run, daemon=True).start()
    return srv, int(srv.getsockname()[1])


def _udp_echo() -> tuple[socket.socket, int]:
    srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    srv.bind(("127.0.0.1", 0))

    def run() -> None:
        while True:
            try:
                data, addr = srv.recvfrom(65535)
            except OSError:
                return
            srv.sendto(data[::-1], addr)

    threading.Thread(target=run, daemon=True).start()
    return srv, int(srv.getsockname()[1])


@pytest.fixture
def servers() -> Iterator[tuple[int, int]]:
    tcp, tport = _tcp_echo()
    udp, uport = _udp_echo()
    try:
        yield tport, uport
    finally:
        tcp.close()
        udp.close()


def test_tcp_and_udp_relayed_then_stopped(tmp_path: Path, servers: tuple[int, int]) -> None:
    tport, uport = servers
    h_tcp = probe_bind("::1", 0, "tcp")
    h_udp = probe_bind("::1", 0, "udp")
    tag = "chc-test"
    pid = userproxy.start(
        tmp_path,
        tag,
        "127.0.0.1",
        [PortBinding(tport, "tcp", "::1", h_tcp), PortBinding(uport, "udp", "::1", h_udp)],
    )
    try:
        assert userproxy.running(tmp_path, tag) == pid  # also while it is still exec'ing
        with socket.create_connection(("::1", h_tcp), timeout=10) as c:
            c.sendall(b"hello " * 20000)
            c.shutdown(socket.SHUT_WR)
            got = b""
            while chunk := c.recv(65536):
                got += chunk
        assert got == b"HELLO " * 20000
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as u:
            u.settimeout(10)
            u.sendto(b"abc", ("::1", h_udp))
            assert u.recv(100) == b"cba"
    finally:
        userproxy.stop(tmp_path, tag)
    assert userproxy.running(tmp_path, tag) == 0
    assert not (tmp_path / "networks" / "proxies" / f"{tag}.pid").exists()
    userproxy.stop(tmp_path, tag)  # idempotent


def test_bind_failure_is_a_conflict(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET6) as s:
        s.bind(("::1", 0))
        s.listen()
        port = int(s.getsockname()[1])
        with pytest.raises(Conflict, match=rf"listen tcp6 \[::1\]:{port}: bind: address already"):
            userproxy.start(tmp_path, "chc-x", "127.0.0.1", [PortBinding(80, "tcp", "::1", port)])
    assert not (tmp_path / "networks" / "proxies").exists()
