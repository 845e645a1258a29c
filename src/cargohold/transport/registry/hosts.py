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
# dockerd's stop-gap for registries on this machine: loopback is always insecure (moby's
# LoadInsecureRegistries appends "::1/128", "127.0.0.0/8" to the configured entries)
LOOPBACK_INSECURE = ("::1/128", "127.0.0.0/8")


def resolve_host(name: str) -> list[str]:
    """The addresses ``name`` resolves to (none when it does not), as dockerd's lookupIP."""
    import socket

    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return []
    return [str(info[4][0]) for info in infos]


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


def _hostname(host: str) -> str:
    """The host of ``host[:port]`` (``[::1]:5000`` -> ``::1``; a bare IPv6 address as is)."""
    if host.startswith("[") and "]" in host:
        return host[1:host.index("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class RegistryConfig(msgspec.Struct, frozen=True):
    mirrors: dict[str, tuple[str, ...]] = msgspec.field(default_factory=dict)
    insecure: tuple[str, ...] = ()  # host[:port] or CIDR
    certs_dirs: tuple[str, ...] = DEFAULT_CERTS_DIRS

    def insecure_cidrs(self) -> list[str]:
        """The configured CIDRs, then dockerd's loopback ones (``info`` shows these)."""
        cidrs = [entry for entry in self.insecure if "/" in entry]
        return cidrs + [c for c in LOOPBACK_INSECURE if c not in cidrs]

    def is_insecure(self, host: str, resolve: bool = True) -> bool:
        """dockerd's ``!isSecureIndex``: ``host[:port]`` named in the configuration, or an
        address of it (a name is resolved, unless ``resolve`` is False) in an insecure CIDR:
        the configured ones and loopback (127.0.0.0/8, ::1), so a registry on this machine
        needs no configuration."""
        if host in self.insecure:
            return True
        name = _hostname(host)
        if name in self.insecure:
            return True
        try:
            addrs = [ipaddress.ip_address(name)]
        except ValueError:
            if not resolve:
                return False
            addrs = []
            for text in resolve_host(name):
                try:
                    addrs.append(ipaddress.ip_address(text.split("%", 1)[0]))
                except ValueError:
                    continue
        networks = []
        for entry in self.insecure_cidrs():
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                continue
        return any(addr in net for addr in addrs for net in networks)

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
        if tls_verify is not None:
            insecure = not tls_verify
        else:  # Docker Hub is secure whatever its name resolves to (dockerd's IndexConfigs)
            insecure = self.is_insecure(host, resolve=registry != DOCKER_HUB or mirror)
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
