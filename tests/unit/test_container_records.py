from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from cargohold.container.model import ContainerRecord, State, Status
from cargohold.container.records import ADJECTIVES, SURNAMES, ContainerStore, random_name
from cargohold.errors import Conflict, InvalidArgument, NotFound


def _id(prefix: str) -> str:
    return (prefix + "0" * 64)[:64]


@pytest.fixture
def store(tmp_path: Path) -> ContainerStore:
    return ContainerStore(tmp_path / "root", tmp_path / "run")


def test_add_get_by_name_id_and_prefix(store: ContainerStore) -> None:
    rec = store.add(ContainerRecord(id=_id("abc1"), name="web"))
    store.add(ContainerRecord(id=_id("abc2"), name="db"))
    assert store.get("web").id == rec.id
    assert store.get("/web").id == rec.id
    assert store.get(rec.id).name == "web"
    assert store.get("abc1").id == rec.id
    with pytest.raises(InvalidArgument, match="multiple IDs found with provided prefix: abc"):
        store.get("abc")
    with pytest.raises(NotFound, match="No such container: nope"):
        store.get("nope")
    assert store.read_state(rec.id) == State()


def test_name_conflict_has_dockers_wording(store: ContainerStore) -> None:
    first = store.add(ContainerRecord(id=_id("1"), name="xx"))
    with pytest.raises(Conflict) as info:
        store.add(ContainerRecord(id=_id("2"), name="xx"))
    assert str(info.value) == (
        f'Conflict. The container name "/xx" is already in use by container "{first.id}". '
        "You have to remove (or rename) that container to be able to reuse that name."
    )


def test_invalid_name(store: ContainerStore) -> None:
    with pytest.raises(InvalidArgument, match=r"Invalid container name \(-x\)"):
        store.add(ContainerRecord(id=_id("1"), name="-x"))


def test_random_names_and_rename_and_remove(store: ContainerStore) -> None:
    rec = store.add(ContainerRecord(id=_id("1")))
    adjective, _, surname = rec.name.partition("_")
    assert adjective in ADJECTIVES and surname.rstrip("0123456789") in SURNAMES
    renamed = store.rename(rec.name, "newname")
    assert store.get("newname").id == rec.id
    with pytest.raises(NotFound):
        store.get(rec.name)
    with pytest.raises(InvalidArgument, match="same name"):
        store.rename("newname", "newname")
    store.remove(renamed.id)
    with pytest.raises(NotFound):
        store.get("newname")
    store.add(ContainerRecord(id=_id("2"), name="newname"))  # the name is free again


def test_random_name_avoids_taken_and_boring_wozniak() -> None:
    seen = {random_name(lambda n: False) for _ in range(300)}
    assert "boring_wozniak" not in seen
    assert random_name(lambda n: "_" in n and not n[-1].isdigit())[-1].isdigit()


def test_list_and_update_state(store: ContainerStore) -> None:
    a = store.add(ContainerRecord(id=_id("a"), name="aa", created=1))
    b = store.add(ContainerRecord(id=_id("b"), name="bb", created=2))
    assert [r.id for r in store.list()] == [b.id, a.id]
    store.update_state(a.id, lambda s: State(status=Status.RUNNING, pid=7))
    assert store.read_state(a.id).pid == 7


def _add(args: tuple[str, str, int]) -> str:
    root, run, n = args
    store = ContainerStore(Path(root), Path(run))
    try:
        store.add(ContainerRecord(id=_id(f"{n:x}"), name="contested"))
        return "won"
    except Conflict:
        return "conflict"


def test_concurrent_add_same_name_exactly_one_wins(tmp_path: Path) -> None:
    args = [(str(tmp_path / "root"), str(tmp_path / "run"), n) for n in range(1, 9)]
    with multiprocessing.get_context("fork").Pool(8) as pool:
        results = pool.map(_add, args)
    assert sorted(results) == ["conflict"] * 7 + ["won"]
    store = ContainerStore(tmp_path / "root", tmp_path / "run")
    assert len(store.list()) == 1
