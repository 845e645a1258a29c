"""Docker image references: grammar, normalisation and Docker's familiar short form.

Grammar (docker/distribution ``reference``)::

    reference       := name [ ":" tag ] [ "@" digest ]
    name            := [domain "/"] path-component ["/" path-component]*
    domain          := domain-component ["." domain-component]* [":" port-number]
    domain-component:= /([a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])/
    path-component  := alpha-numeric [separator alpha-numeric]*
    alpha-numeric   := /[a-z0-9]+/
    separator       := /[_.]|__|[-]*/
    tag             := /[\\w][\\w.-]{0,127}/
    digest          := algorithm ":" hex

Normalisation follows ``ParseNormalizedNamed``: the first ``/``-separated component is a
registry domain only if it contains ``.`` or ``:`` or is ``localhost``; otherwise the domain is
``docker.io`` and a single-component path gets the ``library/`` prefix.
"""

from __future__ import annotations

import re

import msgspec
from msgspec.structs import replace

from cargohold.errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
NAME_TOTAL_LENGTH_MAX = 255

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEPARATOR}{_ALNUM})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|{_IPV6})(?::[0-9]+)?"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_REFERENCE_RE = re.compile(
    rf"^(?P<name>(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*))"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?\Z"
)
_TAG_RE = re.compile(rf"^{_TAG}\Z")
_SHA256_RE = re.compile(r"^sha256:[a-f0-9]{64}\Z")
_FULL_HEX_RE = re.compile(r"^[a-f0-9]{64}\Z")
_SHORT_ID_RE = re.compile(r"^(?:sha256:)?[a-f0-9]{1,64}\Z")

INVALID_FORMAT = "invalid reference format"


class Reference(msgspec.Struct, frozen=True):
    """A parsed, normalised reference (``domain`` is never empty)."""

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """Fully-qualified repository name, e.g. ``docker.io/library/centos``."""
        return f"{self.domain}/{self.path}"

    @property
    def name_familiar(self) -> str:
        """Docker's short repository name: ``centos``, ``user/app``, ``quay.io/a/b``."""
        if self.domain == DEFAULT_DOMAIN:
            rest = self.path.removeprefix(OFFICIAL_REPO_PREFIX)
            if rest != self.path and "/" not in rest:
                return rest
            return self.path
        return self.repository

    def _suffix(self) -> str:
        out = ""
        if self.tag is not None:
            out += ":" + self.tag
        if self.digest is not None:
            out += "@" + self.digest
        return out

    def __str__(self) -> str:
        return self.repository + self._suffix()

    def familiar(self) -> str:
        """Docker's short form as ``docker images`` and ``RepoTags`` show it."""
        return self.name_familiar + self._suffix()

    def is_name_only(self) -> bool:
        return self.tag is None and self.digest is None

    def with_default_tag(self) -> Reference:
        """Add ``:latest`` when the reference has neither a tag nor a digest."""
        return replace(self, tag=DEFAULT_TAG) if self.is_name_only() else self

    def with_tag(self, tag: str) -> Reference:
        if not _TAG_RE.match(tag):
            raise InvalidArgument(INVALID_FORMAT)
        return replace(self, tag=tag, digest=None)

    def with_digest(self, digest: str) -> Reference:
        if not _SHA256_RE.match(digest):
            raise InvalidArgument(INVALID_FORMAT)
        return replace(self, tag=None, digest=digest)

    def name_only(self) -> Reference:
        return replace(self, tag=None, digest=None)


def _split_domain(name: str) -> tuple[str, str]:
    i = name.find("/")
    first = name[:i] if i >= 0 else ""
    if i == -1 or ("." not in first and ":" not in first and first != "localhost"):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, name[i + 1 :]
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def parse_reference(s: str) -> Reference:
    """Parse and normalise ``s`` as ``docker pull`` / ``docker tag`` do.

    Raises InvalidArgument with Docker's wording ("invalid reference format...").
    """
    if _FULL_HEX_RE.match(s):
        raise InvalidArgument(
            f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
        )
    if not s:
        raise InvalidArgument(INVALID_FORMAT)
    domain, remainder = _split_domain(s)
    remote_name = remainder.split(":", 1)[0]
    if remote_name != remote_name.lower():
        raise InvalidArgument(f"{INVALID_FORMAT}: repository name must be lowercase")
    m = _REFERENCE_RE.match(f"{domain}/{remainder}")
    if m is None or m.group("domain") != domain:
        raise InvalidArgument(INVALID_FORMAT)
    if len(m.group("name")) > NAME_TOTAL_LENGTH_MAX:
        raise InvalidArgument(
            f"{INVALID_FORMAT}: repository name must not be more than "
            f"{NAME_TOTAL_LENGTH_MAX} characters"
        )
    digest = m.group("digest")
    if digest is not None and not _SHA256_RE.match(digest):
        algorithm = digest.split(":", 1)[0]
        if algorithm != "sha256":
            raise InvalidArgument(f"{INVALID_FORMAT}: unsupported digest algorithm")
        raise InvalidArgument(f"{INVALID_FORMAT}: invalid checksum digest length")
    return Reference(domain=domain, path=m.group("path"), tag=m.group("tag"), digest=digest)


def normalize(s: str) -> str:
    """Fully-qualified string form with ``:latest`` added when there is no tag or digest."""
    return str(parse_reference(s).with_default_tag())


def familiar(s: str) -> str:
    """Docker's short form of ``s`` (tag kept as given, none added)."""
    return parse_reference(s).familiar()


def is_valid_tag(tag: str) -> bool:
    return bool(_TAG_RE.match(tag))


def is_short_id_candidate(s: str) -> bool:
    """True when ``s`` could be an image or container id or an id prefix.

    Lowercase hex of 1 to 64 characters, with or without ``sha256:``.  Callers try an id
    lookup for these (Docker does so after a failed name lookup).
    """
    return bool(_SHORT_ID_RE.match(s))
