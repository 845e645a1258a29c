#!/usr/bin/env python3
"""Compare cargohold's default seccomp profile with a Docker-format profile, rule by rule.

    python scripts/seccomp_compare.py path/to/moby/profiles/seccomp/default.json

Rules are grouped by everything but their names (action, errno, argument filters,
includes/excludes), so the output lists, per condition, the syscalls only one side allows,
and the architecture maps that differ. Exit status 1 when anything differs. A maintenance
tool for keeping ``container/seccomp_default.json`` in line with Docker's; never run by
cargohold itself.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

OURS = Path(__file__).resolve().parents[1] / "src/cargohold/container/seccomp_default.json"


def _condition(rule: dict[str, Any]) -> str:
    args = [
        {k: v for k, v in arg.items() if not (k == "valueTwo" and v == 0)}
        for arg in rule.get("args") or []
    ]
    key = {k: v for k, v in rule.items() if k not in ("names", "name", "comment", "args")}
    if args:
        key["args"] = args
    return json.dumps(key, sort_keys=True)


def _groups(profile: dict[str, Any]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for rule in profile.get("syscalls") or []:
        names = rule.get("names") or [rule.get("name")]
        out.setdefault(_condition(rule), set()).update(n for n in names if n)
    return out


def _arch_map(profile: dict[str, Any]) -> dict[str, list[str]]:
    """Both formats as {main SCMP arch: [main, *sub-architectures]}."""
    raw = profile.get("archMap") or {}
    if isinstance(raw, dict):
        return {arches[0]: list(arches) for arches in raw.values() if arches}
    return {e["architecture"]: [e["architecture"], *(e.get("subArchitectures") or [])]
            for e in raw}


def compare(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    lines = []
    for key in ("defaultAction", "defaultErrnoRet"):
        if ours.get(key) != theirs.get(key):
            lines.append(f"{key}: ours {ours.get(key)!r}, theirs {theirs.get(key)!r}")
    a, b = _groups(ours), _groups(theirs)
    for cond in sorted(set(a) | set(b)):
        only_ours, only_theirs = a.get(cond, set()) - b.get(cond, set()), b.get(
            cond, set()) - a.get(cond, set())
        if only_ours or only_theirs:
            lines.append(f"{cond}\n  only ours:   {sorted(only_ours)}\n"
                         f"  only theirs: {sorted(only_theirs)}")
    ma, mb = _arch_map(ours), _arch_map(theirs)
    for arch in sorted(set(ma) | set(mb)):
        if ma.get(arch) != mb.get(arch):
            lines.append(f"archMap {arch}: ours {ma.get(arch)}, theirs {mb.get(arch)}")
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    ours = json.loads(OURS.read_text())
    theirs = json.loads(Path(argv[1]).read_text())
    diff = compare(ours, theirs)
    print("\n".join(diff) if diff else "same rules")
    return 1 if diff else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
