"""Container networking through the CLI (seed sections 2 and 6): default bridge, published
ports reached from 127.0.0.1, -P, --link, user networks, none/host, DNS and hosts options,
and teardown (root).  Traffic stays on loopback and the private bridges created here."""

from __future__ import annotations

import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from containers_env import Env, container_env, needs_runtime

from cargohold.network.portalloc import host_has_ipv6

pytestmark = [
    needs_runtime,
    pytest.mark.skipif(
        subprocess.run(["which", "curl"], capture_output=True).returncode != 0, reason="needs curl"
    ),
]
WEB = "httpd -f -p 80 -h /www"
IPV6 = host_has_ipv6()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with container_env(tmp_path_factory.mktemp("ctr-net")) as e:
        yield e


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def curl(url: str, tries: int = 60) -> str:
    for _ in range(tries):
        r = subprocess.run(["curl", "-s", "-m", "2", url], capture_output=True, text=True)
        if r.returncode == 0:
            return r.stdout
        time.sleep(0.1)
    raise AssertionError(f"{url} unreachable")


def test_default_bridge_files(env: Env) -> None:
    out = env.out(
        "run",
        "--rm",
        "-h",
        "box",
        "--dns",
        "10.1.2.3",
        "--dns-search",
        "example.test",
        "--add-host",
        "db:10.9.9.9",
        "bb",
        "sh",
        "-c",
        "cat /etc/hostname /etc/hosts /etc/resolv.conf; ip -4 addr show eth0",
    )
    assert out.startswith("box\n")
    assert re.search(r"^10\.9\.9\.9\tdb$", out, re.M)
    assert "nameserver 10.1.2.3" in out and "search example.test" in out
    ip = re.search(r"inet (\d+\.\d+\.\d+\.\d+)/", out)
    assert ip and re.search(rf"^{re.escape(ip.group(1))}\tbox$", out, re.M)


def test_published_port_from_loopback_and_teardown(env: Env) -> None:
    port = free_port()
    cid = env.out("run", "-itd", "-p", f"{port}:80", "--name", "web", "bb", "sh", "-c", WEB)
    assert curl(f"http://127.0.0.1:{port}/") == "hello from web\n"
    v6 = [f"80/tcp -> [::]:{port}"] if IPV6 else []  # Docker 20.10: also on :: when possible
    assert env.out("port", "web").splitlines() == [f"80/tcp -> 0.0.0.0:{port}", *v6]
    assert env.out("port", "web", "80").splitlines()[0] == f"0.0.0.0:{port}"
    assert f"0.0.0.0:{port}->80/tcp" in env.out("ps", "--filter", "name=web")
    data = env.inspect("web")
    ns = data["NetworkSettings"]
    want = [{"HostIp": "0.0.0.0", "HostPort": str(port)}]
    want += [{"HostIp": "::", "HostPort": str(port)}] if IPV6 else []
    assert ns["Ports"]["80/tcp"] == want  # type: ignore[index]
    bridge = ns["Networks"]["bridge"]  # type: ignore[index]
    assert bridge["IPAddress"] == ns["IPAddress"] and bridge["Gateway"]  # type: ignore[index]
    assert data["HostConfig"]["PortBindings"] == {  # type: ignore[index]
        "80/tcp": [{"HostIp": "", "HostPort": str(port)}]
    }
    env.ch("rm", "-f", "web")
    assert not Path(f"/run/netns/cargohold-{cid[:12]}").exists()
    rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    assert f"chc-{cid[:12]}" not in rules
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    from cargohold.network.bridge import host_veth_name

    assert host_veth_name(cid, bridge["NetworkID"]) not in links  # type: ignore[index]
    r = subprocess.run(["curl", "-s", "-m", "1", f"http://127.0.0.1:{port}/"], capture_output=True)
    assert r.returncode != 0


def test_publish_all_random_ports(env: Env) -> None:
    env.ch("run", "-itd", "-P", "--name", "web1", "bbvol", "sh", "-c", WEB)
    line = env.out("port", "web1").splitlines()[0]
    m = re.fullmatch(r"80/tcp -> 0\.0\.0\.0:(\d+)", line)
    assert m, line
    assert curl(f"http://127.0.0.1:{m.group(1)}/") == "hello from web\n"


def test_link_by_name_and_env(env: Env) -> None:
    # web1 from the previous test (EXPOSE 80) is running
    if env.ch("inspect", "web1", check=False).returncode != 0:
        env.ch("run", "-itd", "-P", "--name", "web1", "bbvol", "sh", "-c", WEB)
    out = env.out(
        "run",
        "--rm",
        "--name",
        "web2",
        "--link",
        "web1:web1",
        "bb",
        "sh",
        "-c",
        "wget -qO- http://web1/; echo $WEB1_PORT_80_TCP_ADDR; echo $WEB1_NAME",
    )
    page, addr, name = out.splitlines()
    assert page == "hello from web"
    assert addr == env.inspect("web1")["NetworkSettings"]["IPAddress"]  # type: ignore[index]
    assert name == "/web2/web1"
    r = env.ch("run", "--rm", "--link", "nosuch:x", "bb", "true", check=False)
    assert r.returncode == 125
    env.ch("rm", "-f", "web1")


def test_link_refreshed_after_target_restart(env: Env) -> None:
    env.ch("run", "-d", "--name", "tgt", "bb", "sleep", "300")
    env.ch("run", "-d", "--name", "rcv", "--link", "tgt:alias", "bb", "sleep", "300")
    env.ch("run", "-d", "--name", "filler", "bb", "sleep", "300")  # may take tgt's old address
    env.ch("restart", "-t", "0", "tgt")
    ip = env.inspect("tgt")["NetworkSettings"]["IPAddress"]
    text = (env.root / "containers" / str(env.inspect("rcv")["Id"]) / "hosts").read_text()
    assert re.search(rf"^{re.escape(str(ip))}\talias", text, re.M), text
    env.ch("rm", "-f", "tgt", "rcv", "filler")


def test_user_network_name_resolution(env: Env) -> None:
    r = env.ch("network", "create", "--subnet", "10.252.7.0/24", "chctnet", check=False)
    if r.returncode != 0:
        pytest.skip(f"network create unavailable: {r.stderr}")
    try:
        env.ch(
            "run",
            "-itd",
            "--network",
            "chctnet",
            "--network-alias",
            "svc",
            "--name",
            "n1",
            "bb",
            "sh",
            "-c",
            WEB,
        )
        out = env.out(
            "run",
            "--rm",
            "--network",
            "chctnet",
            "--ip",
            "10.252.7.77",
            "bb",
            "sh",
            "-c",
            "wget -qO- http://n1/; wget -qO- http://svc/; ip -4 addr show eth0",
        )
        assert out.count("hello from web") == 2
        assert "10.252.7.77/24" in out
        ns = env.inspect("n1")["NetworkSettings"]
        assert ns["Networks"]["chctnet"]["IPAddress"].startswith("10.252.7.")  # type: ignore[index]
        assert ns["IPAddress"] == ""  # type: ignore[index]
    finally:
        env.ch("rm", "-f", "n1", check=False)
        env.ch("network", "rm", "chctnet", check=False)


def test_none_and_host_modes(env: Env) -> None:
    out = env.out("run", "--rm", "--network", "none", "bb", "ip", "-o", "link")
    assert [ln.split(":")[1].strip() for ln in out.splitlines()] == ["lo"]
    assert "UP" in out or "LOOPBACK,UP" in out
    out = env.out("run", "--rm", "--network", "host", "bb", "hostname")
    assert out == socket.gethostname()
    r = env.ch("run", "--rm", "--network", "none", "-p", "80", "bb", "true", check=False)
    assert r.returncode == 125 and "conflicting options" in r.stderr
    r = env.ch("run", "--rm", "--network", "nosuchnet", "bb", "true", check=False)
    assert r.returncode == 125 and "network nosuchnet not found" in r.stderr


def test_container_network_mode(env: Env) -> None:
    env.ch("run", "-itd", "--name", "owner", "bb", "sh", "-c", WEB)
    out = env.out(
        "run", "--rm", "--network", "container:owner", "bb", "wget", "-qO-", "http://127.0.0.1/"
    )
    assert out == "hello from web"
    env.ch("rm", "-f", "owner")


def test_port_in_use_rolls_back(env: Env) -> None:
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        r = env.ch(
            "run", "-d", "--name", "clash", "-p", f"{port}:80", "bb", "sleep", "30", check=False
        )
    assert r.returncode == 125, r.stderr
    # the container exists (Created, as Docker) but holds no network resources
    assert env.inspect("clash")["State"]["Status"] == "created"  # type: ignore[index]
    assert not list(Path("/run/netns").glob(f"cargohold-{str(env.inspect('clash')['Id'])[:12]}"))
    env.ch("rm", "clash")
