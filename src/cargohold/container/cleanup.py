"""Cleanup actions: what to undo once a container's process ended for good, kept as data.

The engine records them in ``<root>/containers/<id>/cleanup.json`` before each start
(``reconcile.record_cleanup``); the monitor carries them out when the container exits, and
the next command does (``reconcile.reconcile``) if the monitor died.  Each action is a
msgspec Struct of the tagged union :data:`Action`, written as ``{"Kind": "<class name>",
"Done": false, ...fields}``, and carried out by :func:`carry_out` with code of this layer and
below: nothing in the file names code to import.

Adding a kind (build steps, commit pauses and exec sessions will): a ``CleanupAction``
subclass with ``tag=True``, a member of :data:`Action`, and a row in ``_HANDLERS`` (its
handler and the modules the handler imports, which the monitor loads while the container
starts: :func:`preload`).  ``tests/unit/test_cleanup_actions.py`` checks that every kind has
a row and round-trips.

Files of the previous version (``{"Kind": "call", "Args": ["package.module:function",
...]}``, containers running across an upgrade) are read through :func:`from_legacy`.
"""

from __future__ import annotations

import contextlib
import importlib
import shutil
import subprocess
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec

from cargohold.errors import Internal, NotFound

if TYPE_CHECKING:
    from cargohold.container.model import MountRecord
    from cargohold.container.records import ContainerStore


class CleanupAction(msgspec.Struct, frozen=True, kw_only=True, tag_field="Kind", rename="pascal"):
    """One step; ``done`` once it succeeded (a list carried out twice does each step once)."""

    done: bool = False


class Command(CleanupAction, frozen=True, tag=True):
    """Run ``argv``; a non-zero exit is an error."""

    argv: tuple[str, ...]


class Unmount(CleanupAction, frozen=True, tag=True):
    """Lazily unmount ``path`` (the rootfs); one not mounted, or gone, is fine."""

    path: str


class RemoveTree(CleanupAction, frozen=True, tag=True):
    """Remove the directory ``path`` and everything below it."""

    path: str


class DetachNetworks(CleanupAction, frozen=True, tag=True):
    """Detach every live endpoint of ``endpoints.json`` (rules, host ports, port proxies,
    lease, hosts entries of user networks).  The veths go with the namespace
    (:class:`DeleteNetns`, recorded after this)."""


class DeleteNetns(CleanupAction, frozen=True, tag=True):
    """Delete the named network namespace ``/run/netns/<name>``."""

    name: str


class ReleaseVolumes(CleanupAction, frozen=True, tag=True):
    """Drop the container's references to the volumes ``names``, then remove those of
    ``remove`` that no other container uses (``--rm``: its anonymous volumes)."""

    names: tuple[str, ...]
    remove: tuple[str, ...] = ()


class RemoveRwLayer(CleanupAction, frozen=True, tag=True):
    """Remove the container's rw layer (stored by ``driver``)."""

    driver: str


class RemoveContainer(CleanupAction, frozen=True, tag=True):
    """Delete the container's record (``--rm``): carried out last, and only when every
    other action succeeded."""


Action = (
    Command | Unmount | RemoveTree | DetachNetworks | DeleteNetns | ReleaseVolumes
    | RemoveRwLayer | RemoveContainer
)


class Unknown(msgspec.Struct, frozen=True):
    """An entry this version cannot carry out (a kind of a newer version, a legacy call
    target it does not know): kept as written, reported as an error, never marked done."""

    raw: dict[str, Any]
    done: bool = False


Entry = Action | Unknown


class Context(msgspec.Struct, frozen=True):
    """Whose actions these are: the container ``cid`` of ``store``."""

    store: ContainerStore
    cid: str


# ------------------------------------------------------------------------ the file format


def encode(actions: Sequence[CleanupAction | Unknown]) -> bytes:
    return msgspec.json.encode([a.raw if isinstance(a, Unknown) else a for a in actions])


def decode(data: bytes, store: ContainerStore, cid: str) -> list[Entry]:
    """The entries of a cleanup.json (this version's, the previous one's, or a mix)."""
    try:
        return list(msgspec.json.decode(data, type=list[Action]))
    except msgspec.ValidationError:
        pass
    out: list[Entry] = []
    for item in msgspec.json.decode(data, type=list[dict[str, Any]]):
        if "Args" in item or item.get("Kind") in LEGACY_KINDS:
            out += from_legacy(item, store, cid)
            continue
        try:
            out.append(msgspec.convert(item, type=Action))  # type: ignore[arg-type]
        except msgspec.ValidationError:
            out.append(Unknown(item, done=bool(item.get("Done"))))
    return out


LEGACY_KINDS = ("argv", "unmount", "rmtree", "call", "remove_container")
_LEGACY_TEARDOWN = "cargohold.engine.container_network:teardown"
_LEGACY_STORAGE = "cargohold.engine.container_volumes:remove_storage"


def from_legacy(item: dict[str, Any], store: ContainerStore, cid: str) -> list[Entry]:
    """The typed actions for one entry of the previous version's format (kind + string
    args; ``call`` named the engine function to import)."""
    kind, done = item.get("Kind"), bool(item.get("Done"))
    args = [str(a) for a in item.get("Args") or ()]
    found: list[Action] = []
    if kind == "argv" and args:
        found = [Command(argv=tuple(args))]
    elif kind == "unmount" and args:
        found = [Unmount(path=args[0])]
    elif kind == "rmtree" and args:
        found = [RemoveTree(path=args[0])]
    elif kind == "remove_container":
        found = [RemoveContainer()]
    elif kind == "call" and args and args[0] == _LEGACY_TEARDOWN:
        found = network_teardown(cid)
    elif kind == "call" and len(args) == 5 and args[0] == _LEGACY_STORAGE:
        found = storage_removal(_mounts_of(store, cid), driver=args[3])
    if not found:
        return [Unknown(item, done=done)]
    return [msgspec.structs.replace(a, done=done) for a in found]


def _mounts_of(store: ContainerStore, cid: str) -> tuple[MountRecord, ...]:
    try:
        return store.load(cid).mount_points
    except (FileNotFoundError, ValueError):
        return ()


# ------------------------------------------------------------------------ what the engine records


def network_teardown(cid: str) -> list[Action]:
    """The actions that undo a container's own network namespace and its endpoints."""
    from cargohold.network.netns import netns_name

    return [DetachNetworks(), DeleteNetns(name=netns_name(cid))]


def storage_removal(mounts: Iterable[MountRecord], driver: str) -> list[Action]:
    """``--rm``: the container's volumes released (anonymous ones removed), its rw layer."""
    volumes = [m for m in mounts if m.type == "volume" and m.name]
    actions: list[Action] = []
    if volumes:
        names = tuple(m.name for m in volumes)
        actions.append(ReleaseVolumes(names=names, remove=tuple(m.name for m in volumes
                                                                  if m.anonymous)))
    actions.append(RemoveRwLayer(driver=driver))
    return actions


# ------------------------------------------------------------------------ carrying them out


def _command(action: Command, ctx: Context) -> None:
    proc = subprocess.run(list(action.argv), capture_output=True, check=False)
    if proc.returncode != 0:
        raise OSError(f"{action.argv[0]}: {proc.stderr.decode(errors='replace').strip()}")


def _unmount(action: Unmount, ctx: Context) -> None:
    from cargohold.store.locking import umount

    umount(action.path, detach=True)


def _remove_tree(action: RemoveTree, ctx: Context) -> None:
    shutil.rmtree(action.path, ignore_errors=True)


def _detach_networks(action: DetachNetworks, ctx: Context) -> None:
    from cargohold.container.endpoints import ENDPOINTS, load_endpoints
    from cargohold.container.events import network_event
    from cargohold.network.bridge import BridgeBackend
    from cargohold.network.store import NetworkStore

    eps = load_endpoints(ctx.store, ctx.cid)
    nstore = NetworkStore(ctx.store.root)
    backend = BridgeBackend(nstore)
    errors: list[Exception] = []
    for att in eps.networks.values():
        try:
            net = nstore.get(att.network_id)
        except NotFound:
            continue
        try:
            # an attachment without published ports added no rules of its own
            backend.detach(ctx.cid, eps.sandbox_key or None, net, delete_link=False,
                           rules=bool(att.ports))
            network_event(ctx.store.runroot, net, "disconnect", ctx.cid)
        except Exception as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
    (ctx.store.dir(ctx.cid) / ENDPOINTS).unlink(missing_ok=True)


def _delete_netns(action: DeleteNetns, ctx: Context) -> None:
    from cargohold.network import netns

    netns.delete(action.name)


def _release_volumes(action: ReleaseVolumes, ctx: Context) -> None:
    from cargohold.volume.store import VolumeStore

    VolumeStore(ctx.store.root).release(ctx.cid, action.names, action.remove)


def _remove_rw_layer(action: RemoveRwLayer, ctx: Context) -> None:
    from cargohold.store.drivers import select_driver
    from cargohold.store.layers import LayerStore

    root = ctx.store.root
    LayerStore(root, select_driver(root, action.driver)).remove_rw(ctx.cid)


def _remove_container(action: RemoveContainer, ctx: Context) -> None:
    with contextlib.suppress(NotFound):
        ctx.store.remove(ctx.cid)


_NETWORK = ("cargohold.container.endpoints", "cargohold.container.events",
            "cargohold.network.bridge", "cargohold.network.store",
            "hashlib")  # hashlib: bridge.host_veth_name
# kind -> (handler, the modules it imports: loaded ahead by the monitor)
_HANDLERS: dict[type[CleanupAction], tuple[Callable[[Any, Context], None], tuple[str, ...]]] = {
    Command: (_command, ()),
    Unmount: (_unmount, ("cargohold.store.locking",)),
    RemoveTree: (_remove_tree, ()),
    DetachNetworks: (_detach_networks, _NETWORK),
    DeleteNetns: (_delete_netns, ("cargohold.network.netns",)),
    ReleaseVolumes: (_release_volumes, ("cargohold.volume.store",)),
    RemoveRwLayer: (_remove_rw_layer, ("cargohold.store.layers", "cargohold.store.drivers")),
    RemoveContainer: (_remove_container, ()),
}


def carry_out(action: Entry, ctx: Context) -> None:
    """Carry out one action (raises what went wrong: OSError or a CargoholdError)."""
    if isinstance(action, Unknown):
        raise Internal(f"unknown cleanup action {msgspec.json.encode(action.raw).decode()}")
    handler, _modules = _HANDLERS[type(action)]
    handler(action, ctx)


def preload(actions: Iterable[Entry]) -> None:
    """Import what carrying out the pending ``actions`` will need, so that the exit path
    imports nothing (the monitor runs this while runc starts the container)."""
    for action in actions:
        if action.done or isinstance(action, Unknown):
            continue
        for name in _HANDLERS[type(action)][1]:
            with contextlib.suppress(ImportError):
                importlib.import_module(name)


def describe(action: Entry) -> str:
    """An action as error messages name it: ``Unmount /path``."""
    if isinstance(action, Unknown):
        return f"Unknown {action.raw.get('Kind')}"
    fields = msgspec.structs.asdict(action)
    fields.pop("done", None)
    values = " ".join(str(v) if not isinstance(v, tuple) else " ".join(v)
                      for v in fields.values())
    return f"{type(action).__name__} {values}".rstrip()

