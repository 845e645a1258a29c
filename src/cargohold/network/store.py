"""Network records: ``<root>/networks/<id>.json`` with Docker's inspect fields.

The predefined networks (``bridge``, ``host``, ``none``) are created on first use, as Docker
lists them.  The default bridge uses the Linux bridge ``cargohold0`` and 10.77.0.0/16 unless
``Settings.extra["default_bridge_subnet"]`` / ``["default_bridge_name"]`` (or the constructor)
say otherwise.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec

from cargohold.config import Settings
from cargohold.errors import Conflict, Forbidden, InvalidArgument, NotFound
from cargohold.network import ipam
from cargohold.util.atomic import read_json, write_json
from cargohold.util.ids import random_id
from cargohold.util.lockfile import FileLock

DEFAULT_BRIDGE_NAME = "cargohold0"
DEFAULT_SUBNET = "10.77.0.0/16"
PREDEFINED = ("bridge", "host", "none")
BRIDGE_NAME_OPTION = "com.docker.network.bridge.name"
_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]*\Z")


class Network(msgspec.Struct, frozen=True):
    id: str
    name: str
    driver: str  # bridge | host | null
    created: str = ""
    subnet: str = ""
    gateway: str = ""
    internal: bool = False
    labels: Mapping[str, str] = msgspec.field(default_factory=dict)
    options: Mapping[str, str] = msgspec.field(default_factory=dict)

    @property
    def bridge(self) -> str:
        return self.options.get(BRIDGE_NAME_OPTION, "")

    @property
    def is_default_bridge(self) -> bool:
        return self.name == "bridge"

    def to_json(self) -> dict[str, Any]:
        """Docker's ``network inspect`` shape (Containers is filled in by the engine)."""
        config = [{"Subnet": self.subnet, "Gateway": self.gateway}] if self.subnet else []
        return {
            "Name": self.name,
            "Id": self.id,
            "Created": self.created,
            "Scope": "local",
            "Driver": self.driver,
            "EnableIPv6": False,
            "IPAM": {"Driver": "default", "Options": None, "Config": config},
            "Internal": self.internal,
            "Attachable": False,
            "Ingress": False,
            "ConfigFrom": {"Network": ""},
            "ConfigOnly": False,
            "Containers": {},
            "Options": dict(self.options),
            "Labels": dict(self.labels),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Network:
        config = (obj.get("IPAM") or {}).get("Config") or [{}]
        return cls(
            id=obj["Id"],
            name=obj["Name"],
            driver=obj["Driver"],
            created=obj.get("Created", ""),
            subnet=config[0].get("Subnet", ""),
            gateway=config[0].get("Gateway", ""),
            internal=bool(obj.get("Internal", False)),
            labels=dict(obj.get("Labels") or {}),
            options=dict(obj.get("Options") or {}),
        )


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")


class NetworkStore:
    def __init__(
        self,
        root: Path,
        default_subnet: str = DEFAULT_SUBNET,
        default_bridge: str = DEFAULT_BRIDGE_NAME,
    ) -> None:
        self.root = root
        self.dir = root / "networks"
        self.lock = FileLock(self.dir / "networks.lock")
        self.default_subnet = default_subnet
        self.default_bridge = default_bridge

    @classmethod
    def from_settings(cls, settings: Settings) -> NetworkStore:
        return cls(
            settings.root,
            default_subnet=settings.extra.get("default_bridge_subnet", DEFAULT_SUBNET),
            default_bridge=settings.extra.get("default_bridge_name", DEFAULT_BRIDGE_NAME),
        )

    # ------------------------------------------------------------------ reading

    def _load_all(self) -> list[Network]:
        out: list[Network] = []
        if not self.dir.is_dir():
            return out
        for path in self.dir.glob("*.json"):
            try:
                out.append(Network.from_json(read_json(path)))
            except (OSError, ValueError, KeyError):
                continue
        return out

    def all(self) -> list[Network]:
        self.ensure_defaults()
        nets = self._load_all()
        return sorted(nets, key=lambda n: n.name)

    def get(self, name_or_id: str) -> Network:
        if not name_or_id:
            raise NotFound("network  not found")
        nets = self.all()
        for net in nets:
            if net.name == name_or_id or net.id == name_or_id:
                return net
        matches = [n for n in nets if n.id.startswith(name_or_id)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidArgument(
                f"network {name_or_id} is ambiguous ({len(matches)} matches found)"
            )
        raise NotFound(f"network {name_or_id} not found")

    def ls_rows(self) -> list[tuple[str, str, str, str]]:
        """``network ls`` rows: NETWORK ID (short), NAME, DRIVER, SCOPE."""
        return [(n.id[:12], n.name, n.driver, "local") for n in self.all()]

    # ------------------------------------------------------------------ writing

    def _write(self, net: Network) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        write_json(self.dir / f"{net.id}.json", net.to_json(), fsync=False)

    def ensure_defaults(self) -> None:
        if all((self.dir / f".{name}").exists() for name in PREDEFINED):
            return
        with self.lock:
            names = {n.name for n in self._load_all()}
            for name, driver in (("bridge", "bridge"), ("host", "host"), ("none", "null")):
                if name not in names:
                    self._write(self._predefined(name, driver))
                (self.dir / f".{name}").touch()

    def _predefined(self, name: str, driver: str) -> Network:
        if driver != "bridge":
            return Network(id=random_id(), name=name, driver=driver, created=_now())
        subnet = ipam.parse_subnet(self.default_subnet)
        return Network(
            id=random_id(),
            name=name,
            driver="bridge",
            created=_now(),
            subnet=str(subnet),
            gateway=ipam.default_gateway(subnet),
            options={
                BRIDGE_NAME_OPTION: self.default_bridge,
                "com.docker.network.bridge.default_bridge": "true",
                "com.docker.network.bridge.enable_ip_masquerade": "true",
                "com.docker.network.bridge.enable_icc": "true",
                "com.docker.network.driver.mtu": "1500",
            },
        )

    def create(
        self,
        name: str,
        *,
        driver: str = "bridge",
        subnet: str | None = None,
        gateway: str | None = None,
        internal: bool = False,
        labels: Mapping[str, str] | None = None,
        options: Mapping[str, str] | None = None,
        pool: list[ipam.IPv4Net] | None = None,
    ) -> Network:
        if driver != "bridge":
            if driver in ("host", "null"):
                raise Forbidden(f'only one instance of "{driver}" network is allowed')
            raise NotFound(f'plugin "{driver}" not found')
        if not _NAME_RE.match(name):
            raise InvalidArgument(
                f'invalid name "{name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed'
            )
        if gateway and not subnet:
            raise InvalidArgument("every ip-range or gateway must have a corresponding subnet")
        self.ensure_defaults()
        with self.lock:
            nets = self._load_all()
            if any(n.name == name for n in nets):
                raise Conflict(f"network with name {name} already exists")
            existing = [ipam.parse_subnet(n.subnet) for n in nets if n.subnet]
            if subnet:
                net_subnet = ipam.parse_subnet(subnet)
                ipam.check_overlap(net_subnet, existing)
            else:
                net_subnet = ipam.choose_subnet(existing, pool)
            gw = (
                ipam.check_gateway(net_subnet, gateway)
                if gateway
                else ipam.default_gateway(net_subnet)
            )
            net_id = random_id()
            opts = dict(options or {})
            opts.setdefault(BRIDGE_NAME_OPTION, f"chbr-{net_id[:10]}")
            if any(n.bridge == opts[BRIDGE_NAME_OPTION] for n in nets):
                raise Conflict(f"bridge name {opts[BRIDGE_NAME_OPTION]} is already in use")
            net = Network(
                id=net_id,
                name=name,
                driver="bridge",
                created=_now(),
                subnet=str(net_subnet),
                gateway=gw,
                internal=internal,
                labels=dict(labels or {}),
                options=opts,
            )
            self._write(net)
            return net

    def remove(self, name_or_id: str) -> Network:
        """Drop the record (the caller tears the bridge down and checks for endpoints)."""
        net = self.get(name_or_id)
        if net.name in PREDEFINED:
            raise Forbidden(f"{net.name} is a pre-defined network and cannot be removed")
        with self.lock:
            (self.dir / f"{net.id}.json").unlink(missing_ok=True)
        return net

    def leases(self, net: Network) -> ipam.LeaseStore:
        subnet = ipam.parse_subnet(net.subnet)
        return ipam.LeaseStore(self.root, net.id, subnet, net.gateway)
