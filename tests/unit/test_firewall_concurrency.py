"""Attaches at once (threads of a service, or processes) plan their iptables rules on a
snapshot and apply them with one restore: the firewall lock keeps every plan current.

iptables is faked here with its two behaviours that matter: ``iptables-save`` shows the
state when it started, and declaring an existing chain in ``iptables-restore --noflush``
flushes it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cargohold.errors import Internal
from cargohold.network import bridge, firewall
from cargohold.network.bridge import BridgeBackend
from cargohold.network.ports import PortSpec
from cargohold.network.store import NetworkStore
from cargohold.util.ids import random_id

BUILTIN = {"nat": ["PREROUTING", "OUTPUT", "POSTROUTING"], "filter": ["FORWARD"]}


class FakeIptables:
    def __init__(self) -> None:
        self.chains: dict[str, dict[str, list[str]]] = {
            t: {c: [] for c in chains} for t, chains in BUILTIN.items()
        }
        self.mutex = threading.Lock()

    def save(self) -> str:
        with self.mutex:
            out = []
            for table, chains in self.chains.items():
                out.append(f"*{table}")
                out += [f":{c} - [0:0]" for c in chains]
                out += [f"-A {c} {rule}" for c, rules in chains.items() for rule in rules]
                out.append("COMMIT")
            return "\n".join(out) + "\n"

    def restore(self, text: str) -> None:
        with self.mutex:
            table: dict[str, list[str]] = {}
            for line in text.splitlines():
                if line.startswith("*"):
                    table = self.chains[line[1:]]
                elif line.startswith(":"):
                    table[line[1:].split()[0]] = []  # new, or an existing one flushed
                elif line.startswith("-A "):
                    chain, rule = line[3:].split(" ", 1)
                    table[chain].append(rule)
                elif line.startswith("-I "):
                    chain, _pos, rule = line[3:].split(" ", 2)
                    table[chain].insert(0, rule)
                elif line.startswith("-D "):
                    chain, rule = line[3:].split(" ", 1)
                    if rule not in table.get(chain, []):
                        raise Internal("iptables-restore failed: Bad rule")
                    table[chain].remove(rule)

    def tagged(self, tag: str) -> list[str]:
        return [r for t in self.chains.values() for rules in t.values() for r in rules
                if r.endswith(f"--comment {tag}") or f"--comment {tag} " in r]


@pytest.fixture
def fake_iptables(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeIptables:
    fake = FakeIptables()

    def started() -> Callable[[], firewall.Snapshot]:
        text = fake.save()  # the state when iptables-save ran
        return lambda: firewall.parse_save(text)

    def run(argv: list[str], stdin: str | None = None) -> str:
        assert argv[0] == "iptables-restore" and stdin is not None
        fake.restore(stdin)
        return ""

    monkeypatch.setattr(firewall, "LOCK_PATH", tmp_path / "iptables.lock", raising=False)
    monkeypatch.setattr(firewall, "snapshot_started", started)
    monkeypatch.setattr(firewall, "_run", run)
    # the ip calls take a while: the window in which another attach could plan its rules
    monkeypatch.setattr(bridge, "run_ip_batch", lambda *a, **k: time.sleep(0.02))
    monkeypatch.setattr(BridgeBackend, "ensure_bridge", lambda self, net: None)
    monkeypatch.setattr(BridgeBackend, "_create_veth", lambda self, *a: None)
    return fake


def test_concurrent_first_attaches_keep_every_rule(
    tmp_path: Path, fake_iptables: FakeIptables
) -> None:
    store = NetworkStore(tmp_path / "root")
    net = store.create("web")
    backend = BridgeBackend(store)  # one backend, as a service's threads share it
    ids = [random_id() for _ in range(6)]
    barrier = threading.Barrier(len(ids))
    errors: list[BaseException] = []

    def attach(cid: str) -> None:
        barrier.wait()
        try:
            backend.attach(cid, "/run/netns/x", net,
                           ports=[PortSpec(80, host_ip="127.0.0.1")])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=attach, args=(cid,)) for cid in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    for cid in ids:  # DNAT + hairpin MASQUERADE of each container's published port
        assert len(fake_iptables.tagged(firewall.container_tag(cid, net.id))) == 2, cid
    network_rules = firewall.network_rules(net.bridge, net.subnet, False, "x")
    expected = sum(len(v) for v in network_rules.values())
    assert len(fake_iptables.tagged(firewall.network_tag(net.id))) == expected  # once
    jumps = sum(len(v) for v in firewall.BASE_RULES.values())
    assert len(fake_iptables.tagged(firewall.JUMP)) == jumps

