from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from cargohold.errors import Conflict, Forbidden, InvalidArgument, NotFound, Unavailable
from cargohold.network import ipam
from cargohold.network.store import NetworkStore

N = ipaddress.IPv4Network


def test_choose_subnet_avoids_existing_reserved_and_routes() -> None:
    pool = [
        N("172.17.0.0/16"),
        N("10.88.0.0/16"),
        N("10.90.0.0/16"),
        N("10.91.0.0/16"),
        N("10.92.0.0/16"),
    ]
    got = ipam.choose_subnet([N("10.91.0.0/16")], pool, avoid=[N("10.90.5.0/24")])
    assert got == N("10.92.0.0/16")
    with pytest.raises(Unavailable):
        ipam.choose_subnet([], [N("172.17.0.0/16")], avoid=[])


def test_overlap() -> None:
    with pytest.raises(Conflict, match="Pool overlaps with other one on this address space"):
        ipam.check_overlap(N("10.1.2.0/24"), [N("10.1.0.0/16")])
    ipam.check_overlap(N("10.2.0.0/24"), [N("10.1.0.0/16")])


def test_host_routes_parse(tmp_path: Path) -> None:
    route = tmp_path / "route"
    route.write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
        "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
    )
    assert ipam.host_routes(route) == [N("192.0.2.0/24")]


def test_leases_round_robin_static_and_persistence(tmp_path: Path) -> None:
    leases = ipam.LeaseStore(tmp_path, "net1", N("10.5.0.0/29"), "10.5.0.1")
    a = leases.allocate("a")
    b = leases.allocate("b")
    assert (a, b) == ("10.5.0.2", "10.5.0.3")
    assert leases.allocate("a") == a  # idempotent
    assert leases.release("a") == a
    assert leases.allocate("c") == "10.5.0.4"  # not the just-released one
    again = ipam.LeaseStore(tmp_path, "net1", N("10.5.0.0/29"), "10.5.0.1")
    assert {x.container_id for x in again.leases()} == {"b", "c"}
    with pytest.raises(Conflict, match="Address already in use"):
        leases.allocate("d", "10.5.0.3")
    with pytest.raises(Conflict):
        leases.allocate("d", "10.5.0.1")  # the gateway
    with pytest.raises(InvalidArgument):
        leases.allocate("d", "10.6.0.3")
    assert leases.allocate("d", "10.5.0.6") == "10.5.0.6"
    leases.allocate("e")
    leases.allocate("f")
    with pytest.raises(Unavailable):
        leases.allocate("g")


def test_store_defaults_create_and_errors(tmp_path: Path) -> None:
    store = NetworkStore(tmp_path, default_subnet="10.99.0.0/16")
    rows = store.ls_rows()
    assert [(r[1], r[2], r[3]) for r in rows] == [
        ("bridge", "bridge", "local"),
        ("host", "host", "local"),
        ("none", "null", "local"),
    ]
    bridge = store.get("bridge")
    assert bridge.subnet == "10.99.0.0/16" and bridge.gateway == "10.99.0.1"
    assert bridge.bridge == "cargohold0"
    net = store.create("foo", subnet="10.98.0.0/24", labels={"a": "b"}, internal=True)
    doc = net.to_json()
    assert doc["IPAM"]["Config"] == [{"Subnet": "10.98.0.0/24", "Gateway": "10.98.0.1"}]
    assert doc["Scope"] == "local" and doc["Driver"] == "bridge" and doc["Internal"] is True
    assert store.get(net.id[:6]).name == "foo"
    with pytest.raises(Conflict, match="network with name foo already exists"):
        store.create("foo")
    with pytest.raises(Conflict, match="Pool overlaps"):
        store.create("bar", subnet="10.99.1.0/24")
    with pytest.raises(NotFound, match="network nope not found"):
        store.get("nope")
    with pytest.raises(Forbidden):
        store.remove("bridge")
    auto = store.create("auto", pool=[N("10.99.0.0/16"), N("10.97.0.0/16")])
    assert auto.subnet == "10.97.0.0/16"
    store.remove("foo")
    assert [n.name for n in store.all()] == ["auto", "bridge", "host", "none"]
