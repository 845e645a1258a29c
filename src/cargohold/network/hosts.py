"""Per-container /etc/hosts, /etc/hostname, /etc/resolv.conf, and name resolution on user
networks through hosts files kept current as containers join and leave (nerdctl's approach).

The files are bind-mounted into containers, so every rewrite is done in place (same inode)
while holding an flock on the file itself; a network's member list lives in
``<root>/networks/hosts/<network-id>.json`` under its own flock.  Entries managed for a network
sit between ``# cargohold network <id12> begin/end`` marker lines, so the static part of each
file (localhost, own address, --add-host, links) is never touched.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import msgspec

from cargohold.errors import InvalidArgument
from cargohold.util.atomic import read_json, write_json
from cargohold.util.lockfile import FileLock
from cargohold.util.text import go_quote, has_control_or_space

DEFAULT_HOSTS = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\n"
    "ff00::0\tip6-mcastprefix\n"
    "ff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)
FALLBACK_NAMESERVERS = ("8.8.8.8", "8.8.4.4")
SYSTEMD_RESOLVED = Path("/run/systemd/resolve/resolv.conf")


class HostEntry(msgspec.Struct, frozen=True):
    ip: str
    names: tuple[str, ...]

    def line(self) -> str:
        return f"{self.ip}\t{' '.join(self.names)}\n"


# ---------------------------------------------------------------- values written into the files
# Every value that ends up in /etc/hosts, /etc/hostname or resolv.conf is checked where it
# enters (flags, the engine's create/connect), so that none can add a line or a field.

MAX_HOSTNAME = 64  # HOST_NAME_MAX (include/uapi/linux/limits.h), as moby checks it
_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_RE = re.compile(rf"({_LABEL}(?:\.{_LABEL})*)\.?[ \t]*")


def parse_ip(value: str) -> str:
    """An IPv4 or IPv6 address as Go's net.ParseIP takes it (no zone), normalised."""
    text = value.strip()
    if "%" not in text:
        with contextlib.suppress(ValueError):
            return str(ipaddress.ip_address(text))
    raise InvalidArgument(f"IP address is not correctly formatted: {value}")


def validate_dns_search(value: str) -> str:
    """docker/cli's ValidateDNSSearch: a domain name, or "." for none."""
    text = value.strip(" ")
    if text == ".":
        return text
    m = _DOMAIN_RE.fullmatch(text)
    if m is None or not re.search("[a-zA-Z]", text) or len(m.group(1)) >= 255:
        raise InvalidArgument(f"{value} is not a valid domain")
    return m.group(1)


def _plain(value: str, what: str) -> str:
    if not value or has_control_or_space(value):
        raise InvalidArgument(
            f"invalid {what} {go_quote(value)}: it must not be empty or contain whitespace or "
            "control characters"
        )
    return value


def validate_dns_option(value: str) -> str:
    return _plain(value, "DNS option")


def validate_hostname(value: str, what: str = "hostname") -> str:
    """``--hostname`` / ``--domainname``: at most 64 bytes (moby's wording), one field."""
    if not value:
        return value
    if len(value.encode()) > MAX_HOSTNAME:
        raise InvalidArgument(
            f"{what} {go_quote(value)} is too long (maximum {MAX_HOSTNAME} bytes)"
        )
    return _plain(value, what)


def validate_alias(value: str, what: str = "network alias") -> str:
    return _plain(value, what)


def parse_add_host(spec: str, host_gateway: str = "") -> HostEntry:
    """``--add-host name:ip`` (or ``name=ip``; ``host-gateway`` -> ``host_gateway``), checked
    as docker/cli's ValidateExtraHost does; the name is one hosts-file field."""
    sep = "=" if "=" in spec else ":"
    name, _, ip = spec.partition(sep)
    if ip.startswith("[") and ip.endswith("]"):
        ip = ip[1:-1]
    if not name or not ip or ":" in name or has_control_or_space(name) or "#" in name:
        raise InvalidArgument(f"bad format for add-host: {go_quote(spec)}")
    if ip == "host-gateway":
        if not host_gateway:
            raise InvalidArgument("unable to derive the IP value for host-gateway")
        ip = host_gateway
    try:
        parse_ip(ip)
    except InvalidArgument:
        raise InvalidArgument(f"invalid IP address in add-host: {go_quote(ip)}") from None
    return HostEntry(ip, (name,))


def check_add_host(spec: str) -> str:
    """``parse_add_host`` before the gateway is known (``host-gateway`` passes); the spec in
    the form docker/cli hands the daemon (``name:ip``, brackets removed)."""
    entry = parse_add_host(spec, "127.0.0.1")
    gateway = spec.endswith(("=host-gateway", ":host-gateway"))
    return f"{entry.names[0]}:{'host-gateway' if gateway else entry.ip}"


def build_hosts(
    hostname: str,
    ip: str | None,
    *,
    domainname: str = "",
    extra: Sequence[HostEntry] = (),
) -> str:
    """Docker's /etc/hosts: defaults, extra entries (--add-host, links), own address."""
    text = DEFAULT_HOSTS + "".join(e.line() for e in extra)
    if ip:
        names = (f"{hostname}.{domainname}", hostname) if domainname else (hostname,)
        text += HostEntry(ip, names).line()
    return text


def build_hostname(hostname: str) -> str:
    return f"{hostname}\n"


class ResolvConf(msgspec.Struct, frozen=True):
    nameservers: tuple[str, ...] = ()
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()

    def render(self) -> str:
        lines = [f"nameserver {ns}" for ns in self.nameservers]
        if self.search:
            lines.append("search " + " ".join(self.search))
        if self.options:
            lines.append("options " + " ".join(self.options))
        return "\n".join(lines) + "\n"


def parse_resolv_conf(text: str) -> ResolvConf:
    ns: list[str] = []
    search: list[str] = []
    options: list[str] = []
    for raw in text.splitlines():
        fields = raw.split("#", 1)[0].split(";", 1)[0].split()
        if not fields:
            continue
        if fields[0] == "nameserver" and len(fields) > 1:
            ns.append(fields[1])
        elif fields[0] in ("search", "domain"):
            search = fields[1:]
        elif fields[0] == "options":
            options.extend(fields[1:])
    return ResolvConf(tuple(ns), tuple(search), tuple(options))


def _is_loopback(addr: str) -> bool:
    try:
        return ipaddress.ip_address(addr.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def host_resolv_conf(path: Path = Path("/etc/resolv.conf")) -> ResolvConf:
    """The host's resolver configuration; systemd-resolved's upstream file when the stub
    (127.0.0.53) is all /etc/resolv.conf names, as Docker does."""
    try:
        conf = parse_resolv_conf(path.read_text())
    except OSError:
        return ResolvConf()
    if (
        path == Path("/etc/resolv.conf")
        and "127.0.0.53" in conf.nameservers
        and SYSTEMD_RESOLVED.exists()
    ):
        try:
            return parse_resolv_conf(SYSTEMD_RESOLVED.read_text())
        except OSError:
            pass
    return conf


def build_resolv_conf(
    host: ResolvConf,
    *,
    dns: Sequence[str] = (),
    dns_search: Sequence[str] = (),
    dns_options: Sequence[str] = (),
) -> str:
    """A container's resolv.conf as Docker writes it for bridge networks: the host's file
    without loopback nameservers (unreachable from the container), 8.8.8.8/8.8.4.4 when none
    remain; --dns, --dns-search and --dns-option replace the corresponding parts."""
    dns = [parse_ip(server) for server in dns]
    dns_search = [validate_dns_search(s) for s in dns_search]
    dns_options = [validate_dns_option(o) for o in dns_options]
    if dns:
        nameservers = tuple(dns)
    else:
        nameservers = tuple(ns for ns in host.nameservers if not _is_loopback(ns))
        if not nameservers:
            nameservers = FALLBACK_NAMESERVERS
    search = tuple(s for s in dns_search if s != ".") if dns_search else host.search
    options = tuple(dns_options) if dns_options else host.options
    return ResolvConf(nameservers, search, options).render()


# ---------------------------------------------------------------- in-place managed blocks


def _markers(block_id: str) -> tuple[str, str]:
    return f"# cargohold {block_id} begin\n", f"# cargohold {block_id} end\n"


def replace_block(text: str, block_id: str, lines: Iterable[str]) -> str:
    """``text`` with the managed block ``block_id`` replaced (removed when ``lines`` is empty)."""
    begin, end = _markers(block_id)
    start = text.find(begin)
    if start >= 0:
        stop = text.find(end, start)
        stop = len(text) if stop < 0 else stop + len(end)
        text = text[:start] + text[stop:]
    body = "".join(lines)
    if body:
        if text and not text.endswith("\n"):
            text += "\n"
        text += begin + body + end
    return text


def rewrite_block(path: Path, block_id: str, lines: Iterable[str]) -> bool:
    """Rewrite one managed block of ``path`` in place under an flock on the file.
    Returns False when the file no longer exists."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    with os.fdopen(fd, "r+", encoding="utf-8") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        old = f.read()
        new = replace_block(old, block_id, lines)
        if new != old:
            f.seek(0)
            f.write(new)
            f.truncate()
            f.flush()
        _unlock(f.fileno())
    return True


def _unlock(fd: int) -> None:
    """Unlock before closing: a process forked meanwhile (a monitor forked by another thread
    of a service) shares the descriptor and would keep the lock for as long as it lives."""
    fcntl.flock(fd, fcntl.LOCK_UN)


def write_in_place(path: Path, text: str) -> None:
    """Create or overwrite ``path`` keeping its inode (it may be bind-mounted)."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    with os.fdopen(fd, "r+", encoding="utf-8") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        f.write(text)
        f.truncate()
        f.flush()
        _unlock(f.fileno())


# ---------------------------------------------------------------- user-network registry


class Member(msgspec.Struct, frozen=True):
    container_id: str
    name: str
    ip: str
    hosts_path: str
    aliases: tuple[str, ...] = msgspec.field(default=())

    def entry(self) -> HostEntry:
        names = [self.name, *self.aliases, self.container_id[:12]]
        return HostEntry(self.ip, tuple(dict.fromkeys(n for n in names if n)))

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "ip": self.ip,
            "hosts_path": self.hosts_path,
            "aliases": list(self.aliases),
        }

    @classmethod
    def from_json(cls, cid: str, obj: Mapping[str, object]) -> Member:
        aliases = obj.get("aliases") or []
        assert isinstance(aliases, list)
        return cls(cid, str(obj["name"]), str(obj["ip"]), str(obj["hosts_path"]), tuple(aliases))


class HostsRegistry:
    """Members of each user network; every join/leave rewrites all members' hosts files."""

    def __init__(self, root: Path) -> None:
        self.dir = root / "networks" / "hosts"

    def _paths(self, network_id: str) -> tuple[Path, FileLock]:
        return self.dir / f"{network_id}.json", FileLock(self.dir / f"{network_id}.lock")

    def _load(self, path: Path) -> dict[str, Member]:
        try:
            data = read_json(path)
        except FileNotFoundError:
            return {}
        return {cid: Member.from_json(cid, m) for cid, m in data.items()}

    def members(self, network_id: str) -> list[Member]:
        path, lock = self._paths(network_id)
        with lock:
            return sorted(self._load(path).values(), key=lambda m: m.name)

    def join(
        self,
        network_id: str,
        container_id: str,
        name: str,
        aliases: Sequence[str],
        ip: str,
        hosts_path: Path,
    ) -> None:
        member = Member(container_id, name.lstrip("/"), ip, str(hosts_path), tuple(aliases))
        self._update(network_id, container_id, member)

    def leave(self, network_id: str, container_id: str) -> None:
        self._update(network_id, container_id, None)

    def _update(self, network_id: str, container_id: str, member: Member | None) -> None:
        path, lock = self._paths(network_id)
        self.dir.mkdir(parents=True, exist_ok=True)
        with lock:
            members = self._load(path)
            old = members.pop(container_id, None)
            if member is not None:
                members[container_id] = member
            block = f"network {network_id[:12]}"
            if old is not None and member is None:
                rewrite_block(Path(old.hosts_path), block, ())
            # A member whose hosts file is gone lost its container: heal the registry.
            members = {c: m for c, m in members.items() if Path(m.hosts_path).exists()}
            for cid, m in members.items():
                lines = [o.entry().line() for o in members.values() if o.container_id != cid]
                rewrite_block(Path(m.hosts_path), block, lines)
            if members:
                write_json(path, {cid: m.to_json() for cid, m in members.items()}, fsync=False)
            else:
                path.unlink(missing_ok=True)
