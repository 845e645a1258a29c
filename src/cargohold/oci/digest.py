"""Content digests (``sha256:<64 hex>``) and a hashing writer."""

from __future__ import annotations

import re

from cargohold.errors import InvalidArgument

_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}\Z")
_HEX_RE = re.compile(r"^[a-f0-9]{64}\Z")


def sha256_digest(data: bytes) -> str:
    import hashlib  # lazily: loading OpenSSL costs every CLI call ~3 ms

    return "sha256:" + hashlib.sha256(data).hexdigest()


def is_digest(value: str) -> bool:
    return bool(_DIGEST_RE.match(value))


def validate(value: str) -> str:
    """Return ``value`` if it is a well-formed sha256 digest, else raise InvalidArgument."""
    if not _DIGEST_RE.match(value):
        raise InvalidArgument(f"invalid digest: {value!r}")
    return value


def hex_of(digest: str) -> str:
    """The 64-hex part of a digest (validated, so it is safe as a file name)."""
    return validate(digest).split(":", 1)[1]


def normalize_id(value: str) -> str:
    """Accept ``sha256:<hex>`` or a bare 64-hex id and return the full digest form."""
    if _HEX_RE.match(value):
        return "sha256:" + value
    return validate(value)


def chain_id(parent: str | None, diff_id: str) -> str:
    """OCI ChainID: the diff_id for a base layer, else sha256 of "<parent chain> <diff_id>"."""
    if parent is None:
        return diff_id
    return sha256_digest(f"{parent} {diff_id}".encode())


def chain_ids(diff_ids: list[str]) -> list[str]:
    """ChainIDs of every layer of an image, base first."""
    out: list[str] = []
    parent: str | None = None
    for diff_id in diff_ids:
        parent = chain_id(parent, diff_id)
        out.append(parent)
    return out
