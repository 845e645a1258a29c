"""Registry authentication: WWW-Authenticate challenges and Docker's credential file.

Credentials live in ``~/.docker/config.json`` (or ``$DOCKER_CONFIG/config.json``) in Docker's
format, so ``docker login`` and ``cargohold login`` share them::

    {"auths": {"127.0.0.1:5000": {"auth": "<base64 user:password>"}}}

Docker Hub's entry is keyed ``https://index.docker.io/v1/``.
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path
from typing import Any

import msgspec

from cargohold.errors import InvalidArgument
from cargohold.util.atomic import write_bytes
from cargohold.util.lockfile import FileLock

DOCKER_HUB_KEY = "https://index.docker.io/v1/"
_HUB_ALIASES = ("docker.io", "index.docker.io", "registry-1.docker.io")

_PARAM_RE = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


class Credentials(msgspec.Struct, frozen=True):
    username: str
    password: str

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode()
        return "Basic " + base64.b64encode(raw).decode()


class Challenge(msgspec.Struct, frozen=True):
    scheme: str  # "bearer" | "basic" (lower case)
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """Parse one ``WWW-Authenticate`` value: ``Bearer realm="..",service="..",scope=".."``."""
    header = header.strip()
    if not header:
        return None
    scheme, _, rest = header.partition(" ")
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM_RE.match(rest, pos)
        if m is None or m.end() == pos:
            break
        value = m.group(2) if m.group(2) is not None else m.group(3)
        params[m.group(1).lower()] = re.sub(r"\\(.)", r"\1", value or "")
        pos = m.end()
    return Challenge(scheme.lower(), params)


def server_key(registry: str) -> str:
    """The key Docker uses in ``auths`` for ``registry`` (Docker Hub's legacy URL)."""
    host = registry.removeprefix("https://").removeprefix("http://").rstrip("/")
    host = host.removesuffix("/v1").removesuffix("/v2")
    if host in _HUB_ALIASES:
        return DOCKER_HUB_KEY
    return host


def _host_of(key: str) -> str:
    host = key.removeprefix("https://").removeprefix("http://").split("/", 1)[0]
    return "docker.io" if host in _HUB_ALIASES else host


def default_auth_file(env: dict[str, str] | os._Environ[str] | None = None) -> Path:
    env = env if env is not None else os.environ
    base = env.get("DOCKER_CONFIG")
    if base:
        return Path(base) / "config.json"
    return Path(env.get("HOME") or os.path.expanduser("~")) / ".docker" / "config.json"


class AuthFile:
    """Docker's ``config.json``: read, add or remove one registry's credentials."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> dict[str, Any]:
        try:
            with open(self.path, "rb") as f:
                data = json.load(f)
        except FileNotFoundError:
            return {}
        except ValueError as e:
            raise InvalidArgument(f"loading config file {self.path}: {e}") from None
        if not isinstance(data, dict):
            raise InvalidArgument(f"loading config file {self.path}: not a JSON object")
        return data

    def get(self, registry: str) -> Credentials | None:
        """Stored credentials for ``registry`` (any of the key spellings Docker accepts)."""
        auths = self._load().get("auths") or {}
        want = _host_of(server_key(registry))
        entry = auths.get(server_key(registry))
        if entry is None:
            entry = next((v for k, v in auths.items() if _host_of(k) == want), None)
        if not isinstance(entry, dict):
            return None
        if entry.get("username") and entry.get("password"):
            return Credentials(str(entry["username"]), str(entry["password"]))
        auth = entry.get("auth")
        if not auth:
            return None
        try:
            user, sep, password = base64.b64decode(auth).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            raise InvalidArgument(f"invalid auth entry for {registry} in {self.path}") from None
        if not sep:
            raise InvalidArgument(f"invalid auth entry for {registry} in {self.path}")
        return Credentials(user, password)

    def _lock(self) -> FileLock:
        """Held over each read-modify-write, so two logins at once (threads or processes)
        both stay: ``<file>.lock`` beside the file (the file itself is replaced by rename)."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        return FileLock(self.path.with_name(self.path.name + ".lock"))

    def store(self, registry: str, creds: Credentials) -> None:
        with self._lock():
            data = self._load()
            auths = data.setdefault("auths", {})
            raw = f"{creds.username}:{creds.password}".encode()
            auths[server_key(registry)] = {"auth": base64.b64encode(raw).decode()}
            self._write(data)

    def remove(self, registry: str) -> bool:
        """Forget ``registry``'s credentials; False when there were none."""
        with self._lock():
            data = self._load()
            auths = data.get("auths") or {}
            want = _host_of(server_key(registry))
            keys = [k for k in auths if k == server_key(registry) or _host_of(k) == want]
            if not keys:
                return False
            for k in keys:
                del auths[k]
            self._write(data)
            return True

    def _write(self, data: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_bytes(self.path, json.dumps(data, indent="\t").encode() + b"\n", mode=0o600)
