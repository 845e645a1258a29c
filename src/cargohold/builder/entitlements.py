"""Entitlements: what a Dockerfile may ask for only when ``build --allow`` grants it.

As BuildKit: ``RUN --network=host`` needs ``network.host`` and ``RUN --security=insecure``
(a privileged step) needs ``security.insecure``.  ``build --network host`` grants
``network.host`` too (the user asked for the host's network on the command line).  A
Dockerfile never widens what the command line set: ``RUN --network=default`` is what
``build --network`` chose and ``RUN --network=none`` always narrows it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from cargohold.builder.instructions import RunInstruction
from cargohold.builder.plan import Plan
from cargohold.errors import InvalidArgument

NETWORK_HOST = "network.host"
SECURITY_INSECURE = "security.insecure"
KNOWN = (NETWORK_HOST, SECURITY_INSECURE)


def validate(values: Iterable[str]) -> tuple[str, ...]:
    """The ``--allow`` values, refusing unknown ones with BuildKit's wording."""
    out = []
    for value in values:
        if value not in KNOWN:
            raise InvalidArgument(
                f"unknown entitlement {value} (supported: {', '.join(KNOWN)})"
            )
        if value not in out:
            out.append(value)
    return tuple(out)


def granted(allow: Iterable[str], network: str) -> frozenset[str]:
    """What this build may do: ``--allow`` plus the grant of ``--network host``."""
    grants = set(allow)
    if network == "host":
        grants.add(NETWORK_HOST)
    return frozenset(grants)


def refusals(plan: Plan, grants: frozenset[str]) -> Iterator[tuple[int, str]]:
    """(line, why) of each planned RUN asking for more than ``grants``."""
    for ps in plan.stages:
        for inst in ps.stage.instructions:
            why = refusal(inst, grants) if isinstance(inst, RunInstruction) else None
            if why is not None:
                yield inst.start_line, why


def refusal(inst: RunInstruction, grants: frozenset[str]) -> str | None:
    """Why ``inst`` may not run with ``grants`` (BuildKit's "... is not allowed"), or None."""
    if inst.network == "host" and NETWORK_HOST not in grants:
        return (f"{NETWORK_HOST} is not allowed: RUN --network=host needs "
                f"'build --allow {NETWORK_HOST}'")
    if inst.security == "insecure" and SECURITY_INSECURE not in grants:
        return (f"{SECURITY_INSECURE} is not allowed: RUN --security=insecure needs "
                f"'build --allow {SECURITY_INSECURE}'")
    return None
