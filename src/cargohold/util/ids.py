"""Identifiers: 64-hex random ids, Docker's 12-hex short form."""

from __future__ import annotations

import secrets


def random_id() -> str:
    """A 64-hex id as Docker uses for containers and volumes."""
    while True:
        value = secrets.token_hex(32)
        # Docker avoids ids whose short form is all digits (ambiguous with numbers).
        if not value[:12].isdigit():
            return value


def short_id(value: str) -> str:
    """Docker's 12-hex short form, dropping any ``sha256:`` prefix."""
    if ":" in value:
        value = value.split(":", 1)[1]
    return value[:12]
