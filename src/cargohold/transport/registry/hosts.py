"""Where a registry is reached: mirrors, insecure registries, CA certificates.

``RegistryConfig`` is plain data (the engine loads it from /etc/cargohold/registries.toml);
``endpoints()`` turns a registry name into the ordered endpoints a pull (or push) tries.
"""

from __future__ import annotations

import ipaddress
import os

import msgspec

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "https://registry-1.docker.io"
DEFAULT_CERTS_DIRS = ("/etc/cargohold/certs.d", "/etc/containers/certs.d", "/etc/docker/certs.d")


class Endpoint(msgspec.Struct, frozen=True):
    """One base URL serving the Distribution API for a registry."""

    url: str  # "https://127.0.0.1:5000" (no trailing slash, no /v2)
    tls_verify: bool = True
    ca_files: tuple[str, ...] = ()
    mirror: bool = False
    http_fallback: bool = False  # insecure: https without verification, then plain http

    @property
    def host(self) -> str:
        return self.url.split("://", 1)[1]


class RegistryConfig(msgspec.Struct, frozen=True):
    mirrors: dict[str, tuple[str, ...]] = msgspec.field(default_factory=dict)
    insecure: tuple[str, ...] = ()  # host[:port] or CIDR
    certs_dirs: tuple[str, ...] = DEFAULT_CERTS_DIRS

    def is_insecure(self, host: str) -> bool:
        if host in self.insecure:
            return True
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        name = name.strip("[]")
        try:
            addr = ipaddress.ip_address(name)
        except ValueError:
            return name in self.insecure
        for entry in self.insecure:
            if "/" in entry:
                try:
                    if addr in ipaddress.ip_network(entry, strict=False):
                        return True
                except ValueError:
                    continue
            elif entry == name:
                return True
        return False

    def ca_files(self, host: str) -> tuple[str, ...]:
        out: list[str] = []
        for base in self.certs_dirs:
            d = os.path.join(base, host)
            try:
                names = sorted(os.listdir(d))
            except OSError:
                continue
            out += [os.path.join(d, n) for n in names if n.endswith(".crt")]
        return tuple(out)

    def endpoint(self, registry: str, tls_verify: bool | None = None, mirror: bool = False,
                 url: str | None = None) -> Endpoint:
        """The endpoint for ``registry`` (or a mirror ``url``); ``tls_verify`` overrides."""
        target = url or (DOCKER_HUB_API if registry == DOCKER_HUB else f"https://{registry}")
        if "://" not in target:
            target = "https://" + target
        target = target.rstrip("/")
        host = target.split("://", 1)[1]
        if target.startswith("http://"):
            return Endpoint(target, tls_verify=False, mirror=mirror)
        insecure = self.is_insecure(host) if tls_verify is None else not tls_verify
        if insecure:
            return Endpoint(target, tls_verify=False, mirror=mirror, http_fallback=True)
        return Endpoint(target, True, self.ca_files(host), mirror=mirror)

    def endpoints(self, registry: str, for_pull: bool = True,
                  tls_verify: bool | None = None) -> list[Endpoint]:
        """Mirrors first (pulls only), then the registry itself."""
        out = []
        if for_pull:
            out = [self.endpoint(registry, None, True, m) for m in self.mirrors.get(registry, ())]
        out.append(self.endpoint(registry, tls_verify))
        return out
