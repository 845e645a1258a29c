"""Identifiers: 64-hex random ids, Docker's 12-hex short form."""

from __future__ import annotations

import os
from collections.abc import Sequence


def random_id() -> str:
    """A 64-hex id as Docker uses for containers and volumes."""
    while True:
        value = random_hex(32)
        # Docker avoids ids whose short form is all digits (ambiguous with numbers).
        if not value[:12].isdigit():
            return value


def short_id(value: str) -> str:
    """Docker's 12-hex short form, dropping any ``sha256:`` prefix."""
    if ":" in value:
        value = value.split(":", 1)[1]
    return value[:12]


# os.urandom rather than `secrets`: secrets imports hmac, which loads OpenSSL (~3 ms on
# every CLI call that makes an id or a name).


def random_hex(nbytes: int) -> str:
    return os.urandom(nbytes).hex()


def random_choice(items: Sequence[str]) -> str:
    return items[int.from_bytes(os.urandom(4), "big") % len(items)]


def random_below(n: int) -> int:
    return int.from_bytes(os.urandom(4), "big") % n
