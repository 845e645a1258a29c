"""Bridge networking on real network namespaces (root).

Every test uses its own subnets (10.231-10.235.x) and bridge names (chit*), and the fixture
asserts that teardown leaves no veth, bridge, iptables rule, lease or host port behind.
Traffic stays on loopback and the private bridges created here.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cargohold.errors import Conflict
from cargohold.network import firewall, netns
from cargohold.network.bridge import BridgeBackend
from cargohold.network.hosts import HostsRegistry, build_hosts
from cargohold.network.ports import parse_publish
from cargohold.network.store import Network, NetworkStore

pytestmark = pytest.mark.skipif(
    shutil.which("iptables-restore") is None or shutil.which("curl") is None,
    reason="needs iptables-restore and curl",
)


def sh(*argv: str, check: bool = True, timeout: float = 10) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, check=check, timeout=timeout)


@dataclass
class Env:
    root: Path
    store: NetworkStore
    backend: BridgeBackend
    namespaces: list[str] = field(default_factory=list)
    attached: list[tuple[str, Network]] = field(default_factory=list)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    extra_links: list[str] = field(default_factory=list)

    def netns(self) -> tuple[str, str]:
        name = f"chit-{secrets.token_hex(4)}"
        self.namespaces.append(name)
        return name, str(netns.create(name))

    def attach(self, cid: str, path: str, net: Network, **kw: object) -> object:
        self.attached.append((cid, net))
        return self.backend.attach(cid, path, net, **kw)  # type: ignore[arg-type]

    def serve(self, ns: str, port: int = 80, bind: str = "0.0.0.0") -> None:
        cmd = [sys.executable, "-m", "http.server", str(port), "--bind", bind]
        if ns:
            cmd = ["ip", "netns", "exec", ns, *cmd]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd="/tmp"
        )
        self.procs.append(proc)
        probe = ["ip", "netns", "exec", ns] if ns else []
        url = f"http://{'127.0.0.1' if bind == '0.0.0.0' else bind}:{port}/"
        for _ in range(100):
            if (
                sh(*probe, "curl", "-s", "-o", "/dev/null", "-m", "1", url, check=False).returncode
                == 0
            ):
                return
            time.sleep(0.05)
        raise AssertionError(f"http.server in {ns or 'host'} did not come up")


def curl(url: str, ns: str = "", timeout: float = 2) -> subprocess.CompletedProcess[str]:
    prefix = ["ip", "netns", "exec", ns] if ns else []
    return sh(
        *prefix,
        "curl",
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-m",
        str(timeout),
        url,
        check=False,
        timeout=timeout + 5,
    )


def our_links() -> set[str]:
    """Names of host links that look like cargohold's veths (chv*) or this module's (chit*)."""
    names = set()
    for line in sh("ip", "-o", "link").stdout.splitlines():
        name = line.split(": ", 2)[1].split("@", 1)[0]
        if name.startswith(("chv", "chit")):
            names.add(name)
    return names


def our_rules(tags: list[str]) -> list[str]:
    text = sh("iptables-save").stdout
    return [ln for ln in text.splitlines() if any(t in ln for t in tags)]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    store = NetworkStore(tmp_path, default_subnet="10.231.0.0/24", default_bridge="chit0")
    e = Env(tmp_path, store, BridgeBackend(store))
    links_before = our_links()  # other cargohold containers may run on this host (the demo)
    try:
        yield e
    finally:
        for proc in e.procs:
            proc.kill()
            proc.wait()
        errors: list[BaseException] = []
        for cid, net in e.attached:
            try:
                e.backend.detach(cid, None, net)
            except Exception as exc:  # keep cleaning, report later
                errors.append(exc)
        for name in e.namespaces:
            netns.delete(name)
            shutil.rmtree(Path("/etc/netns") / name, ignore_errors=True)
        nets = [n for n in store.all() if n.driver == "bridge"]
        for net in nets:
            e.backend.remove_network(net)
        for link in e.extra_links:
            sh("ip", "link", "del", link, check=False)
        tags = [firewall.network_tag(n.id) for n in nets]
        tags += [firewall.container_tag(cid, net.id) for cid, net in e.attached]
        leftover_rules = our_rules(tags)
        leftover_links = sorted(our_links() - links_before)
        # drop the jumps/chains if no other cargohold rules exist on this host
        snap = firewall.snapshot()
        if all(
            not ln.startswith("-A CARGOHOLD-") or "cargohold-jump" in ln
            for t in snap.rules.values()
            for ln in t
        ):
            firewall.cleanup_all()
        leases = [p for p in (tmp_path / "networks" / "leases").glob("*.json")]
        hostports = tmp_path / "networks" / "hostports.json"
        assert not errors, errors
        assert not leftover_rules, leftover_rules
        assert not leftover_links, leftover_links
        assert not leases, leases
        assert not hostports.exists() or hostports.read_text().strip() in ("{}", "")


def test_two_namespaces_on_default_bridge(env: Env) -> None:
    net = env.store.get("bridge")
    a_ns, a = env.netns()
    b_ns, b = env.netns()
    t0 = time.perf_counter()
    att_a = env.attach("a" * 64, a, net)
    t1 = time.perf_counter()
    att_b = env.attach("b" * 64, b, net)
    t2 = time.perf_counter()
    print(f"\nattach (creates bridge) {1000 * (t1 - t0):.1f} ms, attach {1000 * (t2 - t1):.1f} ms")
    assert att_a.ip == "10.231.0.2" and att_b.ip == "10.231.0.3"
    assert att_a.gateway == "10.231.0.1" and att_a.prefixlen == 24
    assert att_a.mac == "02:42:0a:e7:00:02"
    addr = sh("ip", "-n", a_ns, "-o", "-4", "addr", "show", "eth0").stdout
    assert "10.231.0.2/24" in addr
    assert "default via 10.231.0.1" in sh("ip", "-n", a_ns, "route").stdout
    env.serve(b_ns)
    assert curl(f"http://{att_b.ip}/", a_ns).stdout == "200"
    # the host reaches containers through the bridge's gateway address
    assert curl(f"http://{att_b.ip}/").stdout == "200"
    t3 = time.perf_counter()
    env.backend.detach("a" * 64, a, net)
    t4 = time.perf_counter()
    env.backend.detach("a" * 64, a, net)  # idempotent
    print(f"detach {1000 * (t4 - t3):.1f} ms")
    assert "eth0" not in sh("ip", "-n", a_ns, "-o", "link").stdout
    assert att_a.host_ifname not in sh("ip", "-o", "link").stdout


def test_user_network_name_resolution(env: Env) -> None:
    net = env.store.create(
        "itnet", subnet="10.232.0.0/24", options={"com.docker.network.bridge.name": "chit1"}
    )
    registry = HostsRegistry(env.root)
    members = {}
    for name in ("web", "client", "late"):
        ns, path = env.netns()
        # `ip netns exec` bind-mounts /etc/netns/<ns>/hosts over /etc/hosts
        hosts = Path("/etc/netns") / ns / "hosts"
        hosts.parent.mkdir(parents=True, exist_ok=True)
        members[name] = (ns, path, hosts)
    for name in ("web", "client"):
        ns, path, hosts = members[name]
        att = env.attach(name * 8, path, net, aliases=[f"{name}-alias"])
        hosts.write_text(build_hosts(name, att.ip))  # type: ignore[attr-defined]
        registry.join(net.id, name * 8, name, [f"{name}-alias"], att.ip, hosts)  # type: ignore[attr-defined]
    env.serve(members["web"][0])
    client_ns = members["client"][0]
    assert curl("http://web/", client_ns).stdout == "200"
    assert curl("http://web-alias/", client_ns).stdout == "200"
    # a container joining later is resolvable by the ones already there, and vice versa
    late_ns, late_path, late_hosts = members["late"]
    att = env.attach("late" * 8, late_path, net)
    late_hosts.write_text(build_hosts("late", att.ip))  # type: ignore[attr-defined]
    registry.join(net.id, "late" * 8, "late", [], att.ip, late_hosts)  # type: ignore[attr-defined]
    assert "\tlate " in members["client"][2].read_text()
    assert curl("http://web/", late_ns).stdout == "200"
    # leaving removes the entries everywhere
    registry.leave(net.id, "web" * 8)
    env.backend.detach("web" * 8, members["web"][1], net)
    assert "web" not in members["client"][2].read_text().split("begin", 1)[-1]
    assert curl("http://web/", client_ns, timeout=1).stdout != "200"
    for name in ("client", "late"):
        registry.leave(net.id, name * 8)


def test_published_ports_from_loopback(env: Env) -> None:
    net = env.store.get("bridge")
    ns, path = env.netns()
    specs = parse_publish("127.0.0.1::80") + parse_publish("18765:80")
    t0 = time.perf_counter()
    att = env.attach("p" * 64, path, net, ports=specs)
    print(f"\nattach with 2 published ports {1000 * (time.perf_counter() - t0):.1f} ms")
    ports = {b.host_ip: b.host_port for b in att.ports}  # type: ignore[attr-defined]
    assert ports["0.0.0.0"] == 18765
    random_port = ports["127.0.0.1"]
    assert 1024 < random_port <= 65535
    env.serve(ns)
    assert curl("http://127.0.0.1:18765/").stdout == "200"
    assert curl(f"http://127.0.0.1:{random_port}/").stdout == "200"
    # from another container, through the host's address on the bridge (NAT + hairpin path)
    other_ns, other = env.netns()
    env.attach("q" * 64, other, net)
    assert curl("http://10.231.0.1:18765/", other_ns).stdout == "200"
    env.backend.detach("p" * 64, path, net)
    assert curl("http://127.0.0.1:18765/", timeout=1).stdout != "200"


def test_port_in_use_rolls_back(env: Env) -> None:
    net = env.store.get("bridge")
    _, a = env.netns()
    _, b = env.netns()
    env.attach("a" * 64, a, net, ports=parse_publish("18766:80"))
    with pytest.raises(
        Conflict, match=r"^Bind for 0.0.0.0:18766 failed: port is already allocated$"
    ):
        env.attach("b" * 64, b, net, ports=parse_publish("18766:80"))
    # a host process listening on the port
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 18767))
        listener.listen()
        with pytest.raises(Conflict, match="address already in use"):
            env.attach("b" * 64, b, net, ports=parse_publish("18767:80"))
    # nothing of b remains: no veth, no rule, no lease, no host port
    tag = firewall.container_tag("b" * 64, net.id)
    assert our_rules([tag]) == []
    assert [x.container_id for x in env.store.leases(net).leases()] == ["a" * 64]
    assert list(env.backend.ports.owners()) == [f"{'a' * 64}/{net.id}"]
    assert "eth0" not in sh("ip", "netns", "exec", env.namespaces[1], "ip", "-o", "link").stdout


def test_internal_network_has_no_egress(env: Env) -> None:
    # a listener on a host-side address of another private bridge
    env.extra_links.append("chit-outside")
    sh("ip", "link", "add", "chit-outside", "type", "bridge")
    sh("ip", "addr", "add", "10.235.0.1/24", "dev", "chit-outside")
    sh("ip", "link", "set", "chit-outside", "up")
    env.serve("", port=18768, bind="10.235.0.1")
    internal = env.store.create(
        "itinternal",
        subnet="10.233.0.0/24",
        internal=True,
        options={"com.docker.network.bridge.name": "chit2"},
    )
    i_ns, i_path = env.netns()
    j_ns, j_path = env.netns()
    ai = env.attach("i" * 64, i_path, internal, ports=parse_publish("18769:80"))
    env.attach("j" * 64, j_path, internal)
    assert "default" not in sh("ip", "-n", i_ns, "route").stdout
    assert ai.ports == ()  # type: ignore[attr-defined]
    assert curl("http://10.235.0.1:18768/", i_ns, timeout=1).stdout != "200"
    # peers on the same internal network still talk
    env.serve(j_ns)
    assert curl("http://10.233.0.3/", i_ns).stdout == "200"
    assert not any(
        "MASQUERADE" in ln and "10.233.0.0/24" in ln
        for ln in our_rules([firewall.network_tag(internal.id)])
    )
    # the same listener is reachable from a normal bridge network (routed via its gateway)
    n_ns, n_path = env.netns()
    env.attach("n" * 64, n_path, env.store.get("bridge"))
    assert curl("http://10.235.0.1:18768/", n_ns).stdout == "200"


def test_reconcile_after_crash(env: Env) -> None:
    net = env.store.get("bridge")
    ns, path = env.netns()
    env.attach("z" * 64, path, net, ports=parse_publish("18770:80"))
    netns.delete(ns)  # the container died with its namespace; nobody detached
    with contextlib.suppress(ValueError):
        env.namespaces.remove(ns)
    cleaned = env.backend.reconcile(lambda cid: False)
    assert cleaned == ["z" * 64]
    assert env.store.leases(net).leases() == []
    assert our_rules([firewall.container_tag("z" * 64, net.id)]) == []
