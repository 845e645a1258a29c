"""Typed cleanup actions: each kind round-trips through cleanup.json and is carried out by
the one dispatcher of container/ (fakes where root would be needed); files of the previous
version (engine import strings) are still honoured; container/ never reaches the engine."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import typing
from pathlib import Path
from typing import Any

import pytest

from cargohold.container import cleanup
from cargohold.container.cleanup import (
    Command,
    DeleteNetns,
    DetachNetworks,
    ReleaseVolumes,
    RemoveContainer,
    RemoveRwLayer,
    RemoveTree,
    Unknown,
    Unmount,
)
from cargohold.container.endpoints import Endpoints, save_endpoints
from cargohold.container.model import ContainerRecord, MountRecord
from cargohold.container.reconcile import (
    preload_cleanup,
    read_cleanup,
    record_cleanup,
    run_cleanup,
)
from cargohold.container.records import ContainerStore
from cargohold.network.base import Attachment
from cargohold.network.ports import PortBinding
from cargohold.network.store import NetworkStore
from cargohold.store.drivers import select_driver
from cargohold.store.layers import LayerStore
from cargohold.util.ids import random_id
from cargohold.volume.store import VolumeStore

SRC = Path(cleanup.__file__).resolve().parents[1]  # src/cargohold


@pytest.fixture
def store(tmp_path: Path) -> ContainerStore:
    return ContainerStore(tmp_path / "root", tmp_path / "run")


@pytest.fixture
def cid(store: ContainerStore) -> str:
    mounts = (
        MountRecord(type="volume", name="named", destination="/a"),
        MountRecord(type="volume", name="a" * 64, destination="/b", anonymous=True),
        MountRecord(type="bind", source="/tmp", destination="/c"),
    )
    return store.add(ContainerRecord(id=random_id(), name="box", mount_points=mounts)).id


class Calls:
    """What the faked network calls were asked to do."""

    def __init__(self) -> None:
        self.detached: list[tuple[str, str | None, str, bool, bool]] = []
        self.netns: list[str] = []
        self.unmounted: list[str] = []


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Calls:
    from cargohold.network import bridge, netns
    from cargohold.store import locking

    seen = Calls()

    def detach(self: object, container_id: str, netns_path: str | None, network: Any, *,
               delete_link: bool = True, rules: bool = True, **_: object) -> None:
        seen.detached.append((container_id, netns_path, network.name, delete_link, rules))

    monkeypatch.setattr(bridge.BridgeBackend, "detach", detach)
    monkeypatch.setattr(netns, "delete", seen.netns.append)
    monkeypatch.setattr(locking, "umount",
                        lambda target, detach=False: seen.unmounted.append(str(target)))
    return seen


def one_of_each(tmp_path: Path) -> list[cleanup.CleanupAction]:
    return [
        Command(argv=("touch", str(tmp_path / "ran"))),
        Unmount(path=str(tmp_path / "rootfs")),
        RemoveTree(path=str(tmp_path / "tree")),
        DetachNetworks(),
        DeleteNetns(name="cargohold-0123456789ab"),
        ReleaseVolumes(names=("named", "a" * 64), remove=("a" * 64,)),
        RemoveRwLayer(driver="vfs"),
        RemoveContainer(),
    ]


def test_every_kind_has_a_handler_and_round_trips(
    store: ContainerStore, cid: str, tmp_path: Path
) -> None:
    kinds = set(typing.get_args(cleanup.Action))
    assert kinds == set(cleanup._HANDLERS)  # a new kind without a handler fails here
    actions = one_of_each(tmp_path)
    assert {type(a) for a in actions} == kinds
    record_cleanup(store, cid, actions)
    assert read_cleanup(store, cid) == actions
    written = json.loads(store.cleanup_path(cid).read_bytes())
    assert [item["Kind"] for item in written] == [type(a).__name__ for a in actions]
    assert written[1] == {"Kind": "Unmount", "Done": False, "Path": str(tmp_path / "rootfs")}
    assert written[5]["Names"] == ["named", "a" * 64] and written[5]["Remove"] == ["a" * 64]


def test_the_dispatcher_carries_out_each_kind(
    store: ContainerStore, cid: str, tmp_path: Path, calls: Calls
) -> None:
    root = store.root
    nets = NetworkStore(root)
    user = nets.create("backend")
    bridge = nets.get("bridge")
    published = (PortBinding(80, "tcp", "0.0.0.0", 8080),)
    save_endpoints(store, cid, Endpoints("/run/netns/x", {
        "bridge": Attachment(network_id=bridge.id, network="bridge", ports=published),
        "backend": Attachment(network_id=user.id, network="backend"),
        "gone": Attachment(network_id="f" * 64, network="gone"),  # removed meanwhile: skipped
    }))
    volumes = VolumeStore(root)
    for name in ("named", "a" * 64):
        volumes.create(name)
        volumes.add_ref(name, cid)
    layers = LayerStore(root, select_driver(root, "vfs"))
    layers.create_rw(cid, None)
    (tmp_path / "tree" / "sub").mkdir(parents=True)
    record_cleanup(store, cid, one_of_each(tmp_path))

    assert run_cleanup(store, cid) == []

    assert (tmp_path / "ran").exists()
    assert calls.unmounted == [str(tmp_path / "rootfs")]
    assert not (tmp_path / "tree").exists()
    assert sorted(calls.detached) == sorted([
        (cid, "/run/netns/x", "bridge", False, True),
        (cid, "/run/netns/x", "backend", False, False),  # no ports: no rules to look for
    ])
    assert calls.netns == ["cargohold-0123456789ab"]
    assert volumes.get("named").refs == () and not volumes.exists("a" * 64)
    assert cid not in layers.list_rw()
    assert not store.dir(cid).exists()  # RemoveContainer, last


def test_a_failed_action_stays_pending_and_the_container_stays(
    store: ContainerStore, cid: str, tmp_path: Path
) -> None:
    record_cleanup(store, cid, [
        Command(argv=("sh", "-c", "echo nope >&2; exit 3")),
        Command(argv=("touch", str(tmp_path / "after"))),
        RemoveContainer(),
    ])
    assert run_cleanup(store, cid) == ["Command sh -c echo nope >&2; exit 3: sh: nope"]
    assert (tmp_path / "after").exists()  # the others still run
    assert store.dir(cid).exists()
    assert [a.done for a in read_cleanup(store, cid)] == [False, True, False]


def test_an_action_in_use_elsewhere_keeps_the_volume(
    store: ContainerStore, cid: str
) -> None:
    volumes = VolumeStore(store.root)
    volumes.create("a" * 64)
    volumes.add_ref("a" * 64, cid)
    volumes.add_ref("a" * 64, "other")
    record_cleanup(store, cid, [ReleaseVolumes(names=("a" * 64,), remove=("a" * 64,))])
    assert run_cleanup(store, cid) == []
    assert volumes.get("a" * 64).refs == ("other",)


def legacy_file(store: ContainerStore, cid: str, tmp_path: Path) -> list[dict[str, Any]]:
    """cleanup.json as the previous version's start_container wrote it (``--rm``, bridge)."""
    root, runroot = str(store.root), str(store.runroot)
    return [
        {"Args": ["cargohold.engine.container_network:teardown", root, runroot, cid],
         "Done": False, "Kind": "call"},
        {"Args": [str(tmp_path / "rootfs")], "Done": True, "Kind": "unmount"},
        {"Args": ["cargohold.engine.container_volumes:remove_storage", root, runroot, "vfs",
                  cid], "Done": False, "Kind": "call"},
        {"Args": [], "Done": False, "Kind": "remove_container"},
    ]


def test_a_file_of_the_previous_version_is_still_carried_out(
    store: ContainerStore, cid: str, tmp_path: Path, calls: Calls
) -> None:
    volumes = VolumeStore(store.root)
    for name in ("named", "a" * 64):
        volumes.create(name)
        volumes.add_ref(name, cid)
    layers = LayerStore(store.root, select_driver(store.root, "vfs"))
    layers.create_rw(cid, None)
    net = NetworkStore(store.root).get("bridge")
    save_endpoints(store, cid, Endpoints("/run/netns/x", {
        "bridge": Attachment(network_id=net.id, network="bridge")}))
    store.cleanup_path(cid).write_text(json.dumps(legacy_file(store, cid, tmp_path)))

    assert read_cleanup(store, cid) == [
        DetachNetworks(),
        DeleteNetns(name=f"cargohold-{cid[:12]}"),
        Unmount(path=str(tmp_path / "rootfs"), done=True),
        ReleaseVolumes(names=("named", "a" * 64), remove=("a" * 64,)),
        RemoveRwLayer(driver="vfs"),
        RemoveContainer(),
    ]
    assert run_cleanup(store, cid) == []
    assert calls.detached == [(cid, "/run/netns/x", "bridge", False, False)]
    assert calls.netns == [f"cargohold-{cid[:12]}"]
    assert calls.unmounted == []  # it was done already
    assert volumes.get("named").refs == () and not volumes.exists("a" * 64)
    assert cid not in layers.list_rw()
    assert not store.dir(cid).exists()


def test_an_entry_this_version_cannot_run_is_kept_and_reported(
    store: ContainerStore, cid: str, tmp_path: Path
) -> None:
    odd = [
        {"Args": ["somewhere.else:go", "x"], "Done": False, "Kind": "call"},
        {"Kind": "FromTheFuture", "Done": False, "What": 1},
        {"Args": ["gone.module:go"], "Done": True, "Kind": "call"},  # done before: skipped
        {"Kind": "Command", "Done": False, "Argv": ["touch", str(tmp_path / "ran")]},
        {"Kind": "RemoveContainer", "Done": False},
    ]
    store.cleanup_path(cid).write_text(json.dumps(odd))
    errors = run_cleanup(store, cid)
    assert len(errors) == 2 and all("unknown cleanup action" in e for e in errors)
    assert (tmp_path / "ran").exists() and store.dir(cid).exists()
    kept = json.loads(store.cleanup_path(cid).read_bytes())
    assert kept[:3] == odd[:3] and kept[3]["Done"] is True
    assert isinstance(read_cleanup(store, cid)[0], Unknown)


def test_preload_imports_what_the_pending_actions_need(
    store: ContainerStore, cid: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pkg = tmp_path / "mods"
    pkg.mkdir()
    for name in ("pl_pending", "pl_done"):
        (pkg / f"{name}.py").write_text("")
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.syspath_prepend(str(pkg))
    handlers = dict(cleanup._HANDLERS)
    monkeypatch.setattr(cleanup, "_HANDLERS", {
        **handlers,
        DeleteNetns: (handlers[DeleteNetns][0], ("pl_pending", "pl_missing_module")),
        RemoveTree: (handlers[RemoveTree][0], ("pl_done",)),
    })
    record_cleanup(store, cid, [DeleteNetns(name="n"), RemoveTree(path="/x", done=True)])
    preload_cleanup(store, cid)  # a module that cannot be imported is skipped
    assert "pl_pending" in sys.modules and "pl_done" not in sys.modules


def _imports_of(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def test_the_container_layer_never_imports_the_engine() -> None:
    for path in sorted((SRC / "container").glob("*.py")):
        for name in _imports_of(path):  # inside functions too (lint-imports sees those)
            assert not name.startswith(("cargohold.engine", "cargohold.cli")), (path, name)
    for _handler, modules in cleanup._HANDLERS.values():  # what preload imports by name
        for name in modules:
            assert not name.startswith("cargohold.") or name.split(".")[1] in (
                "container", "network", "volume", "store", "runtime", "util"
            ), name


def test_carrying_out_an_old_file_loads_no_engine_module(
    store: ContainerStore, cid: str, tmp_path: Path
) -> None:
    """What a monitor does at exit, in a fresh interpreter: the previous version's file named
    engine functions to import; now nothing of cargohold.engine is loaded."""
    store.cleanup_path(cid).write_text(json.dumps(legacy_file(store, cid, tmp_path)))
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from cargohold.container import monitor\n"
        "from cargohold.container.reconcile import preload_cleanup\n"
        "from cargohold.container.records import ContainerStore\n"
        f"store = ContainerStore(Path({str(store.root)!r}), Path({str(store.runroot)!r}))\n"
        f"preload_cleanup(store, {cid!r})\n"
        "print(sorted(m for m in sys.modules if m.startswith('cargohold.engine')))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=tmp_path)
    assert out.stdout.strip() == "[]"
