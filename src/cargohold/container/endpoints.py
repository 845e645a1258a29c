"""A running container's live endpoints: ``<root>/containers/<id>/endpoints.json``
(``{"SandboxKey": path, "Networks": {name: Attachment}}``).

Written by the engine when it attaches the container (start, ``network connect``), read by
inspect and by the network teardown the container's cleanup actions carry out on exit
(``container/cleanup.py``).  What a container *asked for* stays in its record
(``ContainerRecord.networks``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from cargohold.network.base import Attachment
from cargohold.util.atomic import read_json, write_json

if TYPE_CHECKING:
    from cargohold.container.records import ContainerStore

ENDPOINTS = "endpoints.json"


class Endpoints(msgspec.Struct, frozen=True):
    sandbox_key: str = ""
    networks: dict[str, Attachment] = msgspec.field(default_factory=dict)


def load_endpoints(store: ContainerStore, cid: str) -> Endpoints:
    try:
        data = read_json(store.dir(cid) / ENDPOINTS)
    except (FileNotFoundError, ValueError):
        return Endpoints()
    nets = {k: Attachment.from_json(v) for k, v in (data.get("Networks") or {}).items()}
    return Endpoints(str(data.get("SandboxKey") or ""), nets)


def save_endpoints(store: ContainerStore, cid: str, eps: Endpoints) -> None:
    data = {
        "SandboxKey": eps.sandbox_key,
        "Networks": {k: a.to_json() for k, a in eps.networks.items()},
    }
    write_json(store.dir(cid) / ENDPOINTS, data, fsync=False)
