"""Published ports on IPv6 (root): as Docker 20.10 without --ipv6, ``-p P:80`` is published on
0.0.0.0 (DNAT) and on :: through a userland proxy to the container's IPv4 address.  Traffic
stays on loopback and the private bridge of the test environment."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from containers_env import Env, container_env, needs_runtime

from cargohold.network import firewall, userproxy
from cargohold.network.portalloc import host_has_ipv6

pytestmark = [
    needs_runtime,
    pytest.mark.skipif(
        subprocess.run(["which", "curl"], capture_output=True).returncode != 0, reason="needs curl"
    ),
    pytest.mark.skipif(not host_has_ipv6(), reason="the host has no IPv6 (no ::1 on lo)"),
]
WEB = "httpd -f -p 80 -h /www"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with container_env(tmp_path_factory.mktemp("ctr-ipv6")) as e:
        yield e


def free_port() -> int:
    """A port free on both 0.0.0.0 and ::."""
    while True:
        with socket.socket() as s:
            s.bind(("0.0.0.0", 0))
            port = int(s.getsockname()[1])
        with socket.socket(socket.AF_INET6) as s6:
            s6.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                s6.bind(("::", port))
            except OSError:
                continue
        return port


def curl(url: str, tries: int = 60) -> str:
    for _ in range(tries):
        r = subprocess.run(["curl", "-g", "-s", "-m", "2", url], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout
        time.sleep(0.1)
    raise AssertionError(f"{url} unreachable")


def proxy_tag(env: Env, cid: str) -> str:
    net_id = str(env.inspect(cid)["NetworkSettings"]["Networks"]["bridge"]["NetworkID"])  # type: ignore[index]
    return firewall.container_tag(cid, net_id)


def proxies_of(cid: str) -> list[int]:
    """Live userland proxy processes of the container (by their argv)."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            argv = Path(f"/proc/{d}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if userproxy.MODULE.encode() in argv and any(
            a.startswith(f"chc-{cid[:12]}".encode()) for a in argv
        ):
            out.append(int(d))
    return out


def test_published_on_ipv6_through_the_proxy(env: Env) -> None:
    port = free_port()
    cid = env.out("run", "-itd", "-p", f"{port}:80", "--name", "web6", "bb", "sh", "-c", WEB)
    try:
        assert curl(f"http://[::1]:{port}/") == "hello from web\n"
        assert curl(f"http://127.0.0.1:{port}/") == "hello from web\n"
        assert env.out("port", "web6").splitlines() == [
            f"80/tcp -> 0.0.0.0:{port}",
            f"80/tcp -> [::]:{port}",
        ]
        ps = env.out("ps", "--filter", "name=web6", "--format", "{{.Ports}}")
        assert ps == f"0.0.0.0:{port}->80/tcp, :::{port}->80/tcp"
        ports = env.inspect("web6")["NetworkSettings"]["Ports"]  # type: ignore[index]
        assert ports["80/tcp"] == [  # type: ignore[index]
            {"HostIp": "0.0.0.0", "HostPort": str(port)},
            {"HostIp": "::", "HostPort": str(port)},
        ]
        tag = proxy_tag(env, cid)
        assert userproxy.running(env.root, tag) in proxies_of(cid)
        assert len(proxies_of(cid)) == 1
    finally:
        env.ch("rm", "-f", "web6")
    assert proxies_of(cid) == []
    assert not list((env.root / "networks" / "proxies").glob(f"chc-{cid[:12]}*"))
    r = subprocess.run(
        ["curl", "-g", "-s", "-m", "1", f"http://[::1]:{port}/"], capture_output=True, check=False
    )
    assert r.returncode != 0


def test_ipv6_port_in_use_rolls_back(env: Env) -> None:
    port = free_port()
    with socket.socket(socket.AF_INET6) as listener:
        listener.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        listener.bind(("::", port))
        listener.listen()
        r = env.ch(
            "run", "-d", "-p", f"{port}:80", "--name", "busy6", "bb", "sleep", "60", check=False
        )
        assert r.returncode == 125
        assert f"[::]:{port}" in r.stderr and "address already in use" in r.stderr, r.stderr
    # nothing of busy6 keeps the ports: the same spec works now
    env.ch("rm", "-f", "busy6", check=False)
    env.ch("run", "-d", "-p", f"{port}:80", "--name", "busy6", "bb", "sleep", "60")
    env.ch("rm", "-f", "busy6")


def test_ipv6_port_allocated_by_another_container(env: Env) -> None:
    port = free_port()
    env.ch("run", "-d", "-p", f"[::]:{port}:80", "--name", "only6", "bb", "sleep", "60")
    try:
        r = env.ch(
            "run", "-d", "-p", f"{port}:80", "--name", "both", "bb", "sleep", "60", check=False
        )
        assert r.returncode == 125
        assert f"Bind for :::{port} failed: port is already allocated" in r.stderr, r.stderr
        # the IPv4 side alone does not clash with an IPv6-only publication
        env.ch("run", "-d", "-p", f"0.0.0.0:{port}:80", "--name", "only4", "bb", "sleep", "60")
    finally:
        env.ch("rm", "-f", "only6", "both", "only4", check=False)


def test_proxy_killed_by_reconcile_after_monitor_crash(env: Env) -> None:
    port = free_port()
    cid = env.out("run", "-d", "-p", f"{port}:80", "--name", "crash6", "bb", "sh", "-c", WEB)
    try:
        assert len(proxies_of(cid)) == 1
        state = json.loads((env.root / "containers" / cid / "state.json").read_text())
        os.kill(int(state["MonitorPid"]), signal.SIGKILL)
        env.wait_for(lambda: "Exited" in env.out("ps", "-a", "--filter", "name=crash6"))
        env.wait_for(lambda: proxies_of(cid) == [])
    finally:
        env.ch("rm", "-f", "crash6", check=False)
    assert proxies_of(cid) == []
