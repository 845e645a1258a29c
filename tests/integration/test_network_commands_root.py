"""``network connect/disconnect/rm/prune`` against real namespaces, bridges and iptables (root).

A "running" container here is a record in state running whose monitor lock the test holds,
with a named namespace attached to its first network the way ``start`` does it
(engine/container_network).  Networks use 10.236.x.0/24 only; the fixture asserts that
teardown leaves no bridge, veth, iptables rule or lease behind.  No traffic leaves the host.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from msgspec.structs import replace

from cargohold.cli.main import main
from cargohold.container.model import ContainerRecord, EndpointSettings, HostConfig, Status
from cargohold.container.records import ContainerStore
from cargohold.network import firewall, netns
from cargohold.network.bridge import BridgeBackend, host_veth_name
from cargohold.network.hosts import HostsRegistry, build_hosts, write_in_place
from cargohold.network.store import NetworkStore
from cargohold.util.ids import random_id
from cargohold.util.lockfile import FileLock

pytestmark = pytest.mark.skipif(
    shutil.which("iptables-save") is None or shutil.which("ip") is None,
    reason="needs ip and iptables",
)


def sh(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=False, timeout=10).stdout


class Env:
    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root = root
        self.capsys = capsys
        self.containers = ContainerStore(root, root / "run")
        self.store = NetworkStore(root)
        self.backend = BridgeBackend(self.store)
        self.ids: list[str] = []
        self.locks: list[FileLock] = []

    def __call__(self, *args: str) -> tuple[int, str, str]:
        code = main(
            [
                "--root",
                str(self.root),
                "--runroot",
                str(self.root / "run"),
                "--storage-driver",
                "vfs",
                *args,
            ]
        )
        out, err = self.capsys.readouterr()
        return code, out, err

    def running(self, name: str, network: str) -> str:
        """A running container on ``network`` (namespace, veth, lease, hosts file)."""
        from cargohold.engine.containers import network as cn

        record = ContainerRecord(id=random_id(), name=name,
                                 networks={network: EndpointSettings()},
                                 host_config=HostConfig(network_mode=network))  # fmt: skip
        cid = self.containers.add(record).id
        self.ids.append(cid)
        lock = FileLock(self.containers.monitor_lock_path(cid))
        lock.acquire()  # a live monitor, as far as reconciliation can tell
        self.locks.append(lock)
        self.containers.update_state(cid, lambda s: replace(s, status=Status.RUNNING))
        path = str(netns.create(netns.netns_name(cid)))
        net = self.store.get(network)
        att = self.backend.attach(cid, path, net, ifname="eth0")
        cn.save_endpoints(self.containers, cid, cn.Endpoints(path, {net.name: att}))
        hosts = self.containers.dir(cid) / "hosts"
        write_in_place(hosts, build_hosts(cid[:12], att.ip))
        HostsRegistry(self.root).join(net.id, cid, name, (), att.ip, hosts)
        return cid

    def stop(self, cid: str) -> None:
        """What the monitor does when the container ends: the network's cleanup actions."""
        from cargohold.container import cleanup

        ctx = cleanup.Context(self.containers, cid)
        for action in cleanup.network_teardown(cid):
            cleanup.carry_out(action, ctx)
        self.containers.update_state(cid, lambda s: replace(s, status=Status.EXITED))

    def ns(self, cid: str) -> str:
        return netns.netns_name(cid)


@pytest.fixture
def env(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Env]:
    e = Env(tmp_path / "root", capsys)
    created: list[tuple[str, str]] = []  # (network id, bridge)
    try:
        yield e
    finally:
        errors: list[BaseException] = []
        for net in e.store.all():
            if net.driver == "bridge" and not net.is_default_bridge:
                created.append((net.id, net.bridge))
        for cid in e.ids:
            try:
                e.stop(cid)
            except Exception as exc:  # keep cleaning, report later
                errors.append(exc)
            netns.delete(netns.netns_name(cid))
        for lock in e.locks:
            lock.release()
        for net in e.store.all():
            if net.driver == "bridge" and not net.is_default_bridge:
                try:
                    e.store.remove(net.id)
                    e.backend.remove_network(net)
                except Exception as exc:
                    errors.append(exc)
        links = sh("ip", "-o", "link")
        leftover_links = [b for _, b in created if f" {b}:" in links or f" {b}@" in links]
        leftover_links += [
            ln
            for ln in links.splitlines()
            if any(host_veth_name(c, n) in ln for c in e.ids for n, _ in created)
        ]
        snap = firewall.snapshot()
        tags = [firewall.network_tag(n) for n, _ in created]
        tags += [firewall.container_tag(c, n) for c in e.ids for n, _ in created]
        leftover_rules = [t for t in tags if snap.tagged(t)]
        if all(  # drop our jumps/chains when no other cargohold rule needs them
            not ln.startswith("-A CARGOHOLD-") or "cargohold-jump" in ln
            for t in snap.rules.values()
            for ln in t
        ):
            firewall.cleanup_all()
        leases = [
            p.name
            for p in (e.root / "networks" / "leases").glob("*.json")
            if json.loads(p.read_text()).get("leases")
        ]
        assert not errors, errors
        assert not leftover_links, leftover_links
        assert not leftover_rules, leftover_rules
        assert not leases, leases


def test_create_needs_no_kernel_objects_until_attach(env: Env) -> None:
    code, _, _ = env("network", "create", "--subnet", "10.236.1.0/24", "lazy")
    assert code == 0
    bridge = env.store.get("lazy").bridge
    assert f" {bridge}:" not in sh("ip", "-o", "link")
    assert env("network", "rm", "lazy")[:2] == (0, "lazy\n")


def test_connect_and_disconnect_a_running_container(env: Env) -> None:
    env("network", "create", "--subnet", "10.236.2.0/24", "front")
    env("network", "create", "--subnet", "10.236.3.0/24", "back")
    web = env.running("web", "front")
    db = env.running("db", "back")
    code, out, err = env("network", "connect", "--alias", "www", "back", "web")
    assert (code, out, err) == (0, "", "")
    addrs = sh("ip", "-n", env.ns(web), "-o", "-4", "addr")
    assert "eth0" in addrs and "10.236.2." in addrs
    assert any("eth1" in ln and "10.236.3." in ln for ln in addrs.splitlines())
    routes = sh("ip", "-n", env.ns(web), "route")
    assert "default via 10.236.2.1" in routes and "default via 10.236.3.1" not in routes
    # name resolution on "back": db's hosts file now lists web and its alias
    db_hosts = (env.containers.dir(db) / "hosts").read_text()
    assert any("web" in ln.split() and "www" in ln.split() for ln in db_hosts.splitlines())
    # network inspect shows both endpoints; the record names the network
    _, out, _ = env("network", "inspect", "back")
    (doc,) = json.loads(out)
    assert {c["Name"] for c in doc["Containers"].values()} == {"web", "db"}
    ep = doc["Containers"][web]
    assert ep["IPv4Address"].startswith("10.236.3.") and ep["IPv4Address"].endswith("/24")
    assert ep["MacAddress"].startswith("02:42:") and len(ep["EndpointID"]) == 64
    assert "back" in env.containers.get(web).networks
    # in use: rm refused, prune keeps it
    code, _, err = env("network", "rm", "back")
    assert code == 1 and "has active endpoints" in err
    assert env("network", "prune", "-f")[1] == ""
    # disconnect: the veth, lease and hosts entry go, the first network stays
    assert env("network", "disconnect", "back", "web") == (0, "", "")
    addrs = sh("ip", "-n", env.ns(web), "-o", "-4", "addr")
    assert "10.236.3." not in addrs and "10.236.2." in addrs
    net = env.store.get("back")
    assert host_veth_name(web, net.id) not in sh("ip", "-o", "link")
    assert env.store.leases(net).lookup(web) is None
    assert not snap_has(firewall.container_tag(web, net.id))
    db_hosts = (env.containers.dir(db) / "hosts").read_text()
    assert not any("web" in ln.split() for ln in db_hosts.splitlines())
    assert "back" not in env.containers.get(web).networks
    _, out, _ = env("network", "inspect", "-f", "{{len .Containers}}", "back")
    assert out == "1\n"


def wait_gone(link: str, seconds: float = 10.0) -> bool:
    """True once ``link`` is gone (the kernel frees a dead namespace's links asynchronously)."""
    import time

    deadline = time.monotonic() + seconds
    while link in sh("ip", "-o", "link"):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_stop_releases_a_connected_network(env: Env) -> None:
    env("network", "create", "--subnet", "10.236.4.0/24", "first")
    env("network", "create", "--subnet", "10.236.5.0/24", "second")
    app = env.running("app", "first")
    assert env("network", "connect", "second", "app")[0] == 0
    second = env.store.get("second")
    assert env.store.leases(second).lookup(app) is not None
    env.stop(app)
    assert env.store.leases(second).lookup(app) is None
    # teardown deletes the namespace; the kernel then removes its veth pairs on its own
    assert wait_gone(host_veth_name(app, second.id))
    # still recorded, so the network stays in use until the container is removed
    assert "second" in env.containers.get(app).networks
    assert env("network", "rm", "second")[0] == 1


def test_rm_and_prune_tear_down_the_bridge(env: Env) -> None:
    env("network", "create", "--subnet", "10.236.6.0/24", "gone")
    env("network", "create", "--subnet", "10.236.7.0/24", "pruned")
    for name in ("gone", "pruned"):
        cid = env.running(f"c-{name}", name)
        env.stop(cid)
        env.containers.remove(cid)
        env.ids.remove(cid)
    nets = {n: env.store.get(n) for n in ("gone", "pruned")}
    links = sh("ip", "-o", "link")
    assert all(f" {n.bridge}:" in links for n in nets.values())  # made by the attach
    assert env("network", "rm", "gone")[:2] == (0, "gone\n")
    assert env("network", "prune", "-f")[1] == "Deleted Networks:\npruned\n\n"
    links = sh("ip", "-o", "link")
    for net in nets.values():
        assert f" {net.bridge}:" not in links
        assert not snap_has(firewall.network_tag(net.id))
        assert not env.store.leases(net).path.exists()


def snap_has(tag: str) -> bool:
    return bool(firewall.snapshot().tagged(tag))
