"""Parsers of command-line values that a client uses to fill the engine's requests: the syntax
docker/cli checks itself before it sends anything (``-p``, ``--expose``, ``-m``, ``--cpus``,
``--dns``, ``--add-host``, ``--detach-keys``).  Each imports its module only when called.

The engine checks the requests again whatever their origin; these only turn text into the
request's fields, with docker/cli's messages for text that cannot be turned into one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from cargohold.container.model import PortBinding


def go_quote(text: str) -> str:
    """Go's ``%q`` of ``text`` (docker/cli quotes flag values with it)."""
    from cargohold.util.text import go_quote as quote

    return quote(text)


def resolver_checks() -> tuple[Callable[[str], str], Callable[[str], str], Callable[[str], str]]:
    """docker/cli's validators of ``--dns``, ``--dns-search`` and ``--add-host`` values."""
    from cargohold.network import hosts as H

    return H.parse_ip, H.validate_dns_search, H.check_add_host


def port_flags(
    publish: Iterable[str], expose: Iterable[str]
) -> tuple[frozenset[str], dict[str, tuple[PortBinding, ...]]]:
    """``--expose`` values as ExposedPorts keys and ``-p`` values as PortBindings."""
    from cargohold.network import ports as P

    exposed: set[str] = set()
    for e in expose:
        exposed.update(P.parse_expose(e))
    raw = P.host_config_port_bindings(P.parse_publish_all(publish))
    bindings = {key: tuple(PortBinding(b["HostIp"], b["HostPort"]) for b in items)
                for key, items in raw.items()}  # fmt: skip
    return frozenset(exposed), bindings


def parse_memory(text: str) -> int:
    """Docker's RAMInBytes (``-m 512m``)."""
    from cargohold.container.spec import parse_memory as parse

    return parse(text)


def parse_cpus(text: str) -> int:
    """``--cpus 1.5`` as nano CPUs."""
    from cargohold.container.spec import parse_cpus as parse

    return parse(text)


def parse_detach_keys(spec: str) -> bytes:
    """``--detach-keys`` (``ctrl-p,ctrl-q``) as the bytes to watch for."""
    from cargohold.container.attach import parse_detach_keys as parse

    return parse(spec)
