"""iptables rules of cargohold's bridges, applied with one ``iptables-restore --noflush``.

Only dedicated chains are used (CARGOHOLD-*); the single jump into each from a built-in chain
is the only rule placed outside them.  Every rule carries a comment naming its owner:
``cargohold-jump`` (jumps), ``chn-<network-id12>`` (a network's NAT/forwarding rules) and
``chc-<container-id12>-<network-id12>`` (a container's published ports), so teardown deletes
exactly the lines ``iptables-save`` shows for that owner and never touches anyone else's.

Filter layout: FORWARD -> CARGOHOLD-FORWARD -> CARGOHOLD-FWD-IN (traffic *entering* one of
our bridges: replies, published ports and same-bridge traffic accepted, the rest dropped, so
networks are isolated from each other) then CARGOHOLD-FWD-OUT (traffic *leaving* a bridge:
accepted, or dropped for --internal networks).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import msgspec

from cargohold.errors import Internal
from cargohold.network.ports import PortBinding
from cargohold.util.lockfile import FileLock

# iptables is one per host (every store root, process and thread): its lock is too
LOCK_PATH = Path("/run/lock/cargohold-iptables.lock")

JUMP = "cargohold-jump"
CHAINS: dict[str, tuple[str, ...]] = {
    "nat": ("CARGOHOLD-DNAT", "CARGOHOLD-POSTROUTING"),
    "filter": ("CARGOHOLD-FORWARD", "CARGOHOLD-FWD-IN", "CARGOHOLD-FWD-OUT"),
}
_C = f"-m comment --comment {JUMP}"
BASE_RULES: dict[str, tuple[str, ...]] = {
    "nat": (
        f"-A PREROUTING -m addrtype --dst-type LOCAL {_C} -j CARGOHOLD-DNAT",
        f"-A OUTPUT -m addrtype --dst-type LOCAL {_C} -j CARGOHOLD-DNAT",
        f"-A POSTROUTING {_C} -j CARGOHOLD-POSTROUTING",
    ),
    "filter": (
        f"-I FORWARD 1 {_C} -j CARGOHOLD-FORWARD",
        f"-A CARGOHOLD-FORWARD {_C} -j CARGOHOLD-FWD-IN",
        f"-A CARGOHOLD-FORWARD {_C} -j CARGOHOLD-FWD-OUT",
    ),
}


def network_tag(network_id: str) -> str:
    return f"chn-{network_id[:12]}"


def container_tag(container_id: str, network_id: str) -> str:
    return f"chc-{container_id[:12]}-{network_id[:12]}"


class Snapshot(msgspec.Struct, frozen=True):
    """The parts of ``iptables-save`` we care about: chains per table and rule lines."""

    chains: dict[str, set[str]] = msgspec.field(default_factory=dict)
    rules: dict[str, list[str]] = msgspec.field(default_factory=dict)

    def tagged(self, tag: str) -> dict[str, list[str]]:
        token = f"--comment {tag}"
        out: dict[str, list[str]] = {}
        for table, lines in self.rules.items():
            hits = [ln for ln in lines if ln.endswith(token) or f"{token} " in ln]
            if hits:
                out[table] = hits
        return out


def parse_save(text: str) -> Snapshot:
    snap = Snapshot()
    table = ""
    for line in text.splitlines():
        if line.startswith("*"):
            table = line[1:].strip()
            snap.chains.setdefault(table, set())
            snap.rules.setdefault(table, [])
        elif line.startswith(":") and table:
            snap.chains[table].add(line[1:].split()[0])
        elif line.startswith("-A ") and table:
            snap.rules[table].append(line)
    return snap


def _run(argv: Sequence[str], stdin: str | None = None) -> str:
    proc = subprocess.run(
        argv, input=stdin, capture_output=True, text=True, check=False, close_fds=True
    )
    if proc.returncode != 0:
        raise Internal(f"{argv[0]} failed: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def rules_lock() -> FileLock:
    """Held from an ``iptables-save`` to the ``iptables-restore`` computed from it: a restore
    planned on a stale snapshot would declare a chain someone else just created (which
    flushes it) or add a network's rules twice."""
    return FileLock(LOCK_PATH)


def snapshot() -> Snapshot:
    """One ``iptables-save`` of every table (one process instead of one per table).  A table
    it does not list has none of our chains; ``restore`` declares them."""
    return snapshot_started()()


def snapshot_started() -> Callable[[], Snapshot]:
    """Start ``iptables-save`` now and return the function that collects its snapshot, so
    the caller does other work (the ``ip`` calls of an attach) while it runs."""
    proc = subprocess.Popen(
        ["iptables-save"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        close_fds=True,
    )

    done: list[Snapshot] = []

    def collect() -> Snapshot:  # idempotent
        if not done:
            out, err = proc.communicate()
            if proc.returncode != 0:
                raise Internal(f"iptables-save failed: {err.strip() or out.strip()}")
            done.append(parse_save(out))
        return done[0]

    return collect


def restore(ops: dict[str, list[str]], snap: Snapshot) -> None:
    """Apply rule lines per table in one atomic ``iptables-restore --noflush`` call, first
    declaring the chains among ours that do not exist yet (declaring an existing chain would
    flush it)."""
    body: list[str] = []
    for table in ("nat", "filter"):
        lines = ops.get(table, [])
        if not lines:
            continue
        body.append(f"*{table}")
        existing = snap.chains.get(table, set())
        body.extend(f":{c} - [0:0]" for c in CHAINS[table] if c not in existing)
        body.extend(lines)
        body.append("COMMIT")
    if body:
        _run(["iptables-restore", "-w", "--noflush"], "\n".join(body) + "\n")


def base_ops(snap: Snapshot) -> dict[str, list[str]]:
    """The jumps into our chains, when missing."""
    have = snap.tagged(JUMP)
    ops: dict[str, list[str]] = {}
    for table, rules in BASE_RULES.items():
        if len(have.get(table, [])) < len(rules):
            # Partial state (someone deleted a jump): drop ours and re-add all of them.
            ops[table] = [*delete_lines(have.get(table, [])), *rules]
    return ops


def delete_lines(saved: Iterable[str]) -> list[str]:
    return ["-D " + ln[3:] for ln in saved]


def network_rules(bridge: str, subnet: str, internal: bool, tag: str) -> dict[str, list[str]]:
    c = f"-m comment --comment {tag}"
    nat = [f"-A CARGOHOLD-POSTROUTING -s 127.0.0.0/8 -o {bridge} {c} -j MASQUERADE"]
    fwd_in = [
        f"-A CARGOHOLD-FWD-IN -o {bridge} -m conntrack --ctstate RELATED,ESTABLISHED {c} -j ACCEPT",
        f"-A CARGOHOLD-FWD-IN -i {bridge} -o {bridge} {c} -j ACCEPT",
    ]
    if internal:
        fwd_out = [f"-A CARGOHOLD-FWD-OUT -i {bridge} {c} -j DROP"]
    else:
        nat.append(f"-A CARGOHOLD-POSTROUTING -s {subnet} ! -o {bridge} {c} -j MASQUERADE")
        fwd_in.append(f"-A CARGOHOLD-FWD-IN -o {bridge} -m conntrack --ctstate DNAT {c} -j ACCEPT")
        fwd_out = [f"-A CARGOHOLD-FWD-OUT -i {bridge} {c} -j ACCEPT"]
    fwd_in.append(f"-A CARGOHOLD-FWD-IN -o {bridge} {c} -j DROP")
    return {"nat": nat, "filter": fwd_in + fwd_out}


def port_rules(ip: str, bindings: Iterable[PortBinding], tag: str) -> dict[str, list[str]]:
    c = f"-m comment --comment {tag}"
    nat: list[str] = []
    for b in bindings:
        if ":" in b.host_ip:
            continue  # IPv4 NAT only
        dest = "" if b.host_ip in ("", "0.0.0.0") else f"-d {b.host_ip}/32 "
        match = f"-p {b.proto} -m {b.proto} --dport"
        nat.append(
            f"-A CARGOHOLD-DNAT {dest}{match} {b.host_port} {c} "
            f"-j DNAT --to-destination {ip}:{b.container_port}"
        )
        nat.append(
            f"-A CARGOHOLD-POSTROUTING -s {ip}/32 -d {ip}/32 {match} {b.container_port} "
            f"{c} -j MASQUERADE"
        )
    return {"nat": nat} if nat else {}


def merge(*parts: dict[str, list[str]]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for p in parts:
        for table, lines in p.items():
            out.setdefault(table, []).extend(lines)
    return out


def remove_tagged(tags: Sequence[str], snap: Snapshot | None = None) -> None:
    """Delete every rule carrying one of ``tags`` (no-op when there is none); a caller
    passing ``snap`` holds :func:`rules_lock` since it took it."""
    with rules_lock():
        snap = snap or snapshot()
        ops = merge(*({t: delete_lines(ls) for t, ls in snap.tagged(tag).items()} for tag in tags))
        restore(ops, snap)


def cleanup_all() -> None:
    """Remove every cargohold rule, jump and chain (used by tests and `system reset`)."""
    with rules_lock():
        _cleanup_all(snapshot())


def _cleanup_all(snap: Snapshot) -> None:
    ops: dict[str, list[str]] = {}
    for table, chains in CHAINS.items():
        mine = [c for c in chains if c in snap.chains.get(table, set())]
        jumps = [ln for ln in snap.rules.get(table, []) if not ln.startswith("-A CARGOHOLD-")]
        lines = delete_lines(ln for ln in jumps if any(f"-j {c}" in ln for c in mine))
        lines += [f"-F {c}" for c in mine] + [f"-X {c}" for c in mine]
        if lines:
            ops[table] = lines
    body: list[str] = []
    for table, lines in ops.items():
        body += [f"*{table}", *lines, "COMMIT"]
    if body:
        _run(["iptables-restore", "-w", "--noflush"], "\n".join(body) + "\n")
