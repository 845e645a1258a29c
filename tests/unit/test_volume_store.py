from __future__ import annotations

import os
from pathlib import Path

import pytest

from cargohold.errors import Conflict, InvalidArgument, NotFound
from cargohold.volume.store import VolumeFilters, VolumeStore


@pytest.fixture
def store(tmp_path: Path) -> VolumeStore:
    return VolumeStore(tmp_path / "state")


def test_create_named_and_inspect(store: VolumeStore, tmp_path: Path) -> None:
    vol = store.create("myvol", labels={"a": "1"})
    assert vol.mountpoint == str(tmp_path / "state/volumes/myvol/_data")
    assert Path(vol.mountpoint).is_dir()
    doc = store.inspect("myvol")
    assert list(doc) == ["CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"]
    assert doc["Driver"] == "local" and doc["Scope"] == "local" and doc["Labels"] == {"a": "1"}
    assert doc["Options"] == {}
    # creating an existing name returns it (Docker)
    assert store.create("myvol").created_at == vol.created_at


def test_anonymous_has_64_hex_name(store: VolumeStore) -> None:
    vol = store.create()
    assert len(vol.name) == 64 and all(c in "0123456789abcdef" for c in vol.name)
    assert vol.anonymous and store.inspect(vol.name)["Labels"] is None


def test_invalid_names_and_options(store: VolumeStore) -> None:
    with pytest.raises(InvalidArgument, match="includes invalid characters for a local volume"):
        store.create("../evil")
    with pytest.raises(InvalidArgument, match='invalid option key: "bogus"'):
        store.create("v1", options={"bogus": "1"})
    with pytest.raises(NotFound):
        store.create("v1", driver="nfs")


def test_get_missing(store: VolumeStore) -> None:
    with pytest.raises(NotFound, match="get nosuchvol: no such volume"):
        store.get("nosuchvol")
    with pytest.raises(NotFound):
        store.remove("nosuchvol")
    store.remove("nosuchvol", force=True)


def test_in_use_cannot_be_removed(store: VolumeStore) -> None:
    store.create("myvol")
    cid = "c" * 64
    store.add_ref("myvol", cid)
    store.add_ref("myvol", cid)
    assert store.get("myvol").refs == (cid,)
    for force in (False, True):
        with pytest.raises(Conflict) as info:
            store.remove("myvol", force=force)
        assert info.value.message == f"remove myvol: volume is in use - [{cid}]"
    store.remove_ref("myvol", cid)
    store.remove("myvol")
    assert not store.exists("myvol")
    assert not (store.dir / "myvol").exists()


def test_list_filters(store: VolumeStore) -> None:
    store.create("alpha", labels={"env": "prod"})
    store.create("beta", labels={"env": "dev"})
    store.create("gamma")
    store.add_ref("gamma", "c1")
    names = lambda f: [v.name for v in store.list(VolumeFilters.parse(f))]  # noqa: E731
    assert names([]) == ["alpha", "beta", "gamma"]
    assert names(["dangling=true"]) == ["alpha", "beta"]
    assert names(["dangling=false"]) == ["gamma"]
    assert names(["name=al"]) == ["alpha"]
    assert names(["label=env"]) == ["alpha", "beta"]
    assert names({"label": ["env=dev"]}) == ["beta"]
    with pytest.raises(InvalidArgument, match="Invalid filter 'colour'"):
        VolumeFilters.parse(["colour=red"])
    with pytest.raises(InvalidArgument, match="Invalid filter 'dangling=maybe'"):
        VolumeFilters.parse(["dangling=maybe"])


def test_prune_removes_unused_named_and_anonymous(store: VolumeStore) -> None:
    store.create("named")
    anon = store.create()
    store.create("busy")
    store.add_ref("busy", "c1")
    Path(anon.mountpoint, "f").write_bytes(b"x" * 10000)
    report = store.prune()
    assert sorted(report.deleted) == sorted(["named", anon.name])
    assert report.space_reclaimed >= 10000
    assert [v.name for v in store.list()] == ["busy"]


def test_prune_anonymous_only(store: VolumeStore) -> None:
    store.create("named")
    anon = store.create()
    assert store.prune(anonymous_only=True).deleted == (anon.name,)


def test_half_created_volume_is_invisible(store: VolumeStore) -> None:
    (store.dir / "ghost" / "_data").mkdir(parents=True)
    assert store.list() == []
    assert not store.exists("ghost")


def _image_dir(tmp_path: Path) -> Path:
    src = tmp_path / "image" / "var" / "lib" / "db"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f.txt").write_text("hello")
    os.chmod(src / "sub" / "f.txt", 0o640)
    (src / "inner").symlink_to("sub/f.txt")
    (src / "escape").symlink_to("/etc/passwd")
    os.chmod(src, 0o750)
    return src


def test_populate_copies_once(store: VolumeStore, tmp_path: Path) -> None:
    src = _image_dir(tmp_path)
    vol = store.create()
    assert store.populate_from(vol.name, src)
    data = Path(vol.mountpoint)
    assert (data / "sub" / "f.txt").read_text() == "hello"
    assert (data / "sub" / "f.txt").stat().st_mode & 0o777 == 0o640
    assert os.readlink(data / "inner") == "sub/f.txt"
    assert os.readlink(data / "escape") == "/etc/passwd"  # copied as a link, never followed
    assert data.stat().st_mode & 0o777 == 0o750
    assert store.get(vol.name).populated
    (data / "sub" / "f.txt").unlink()
    assert not store.populate_from(vol.name, src)
    assert not (data / "sub" / "f.txt").exists()


def test_populate_skips_nonempty_nocopy_and_missing(store: VolumeStore, tmp_path: Path) -> None:
    src = _image_dir(tmp_path)
    full = store.create("full")
    Path(full.mountpoint, "mine").write_text("keep")
    assert not store.populate_from("full", src)
    assert sorted(os.listdir(full.mountpoint)) == ["mine"]
    nocopy = store.create("nocopy")
    assert not store.populate_from("nocopy", src, nocopy=True)
    assert os.listdir(nocopy.mountpoint) == []
    store.create("missing")
    assert not store.populate_from("missing", tmp_path / "nothing-here")
    assert store.get("missing").populated


def test_populate_source_that_is_a_symlink_is_not_followed(
    store: VolumeStore, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    link = tmp_path / "image-link"
    link.symlink_to(outside)
    vol = store.create()
    assert not store.populate_from(vol.name, link)
    assert os.listdir(vol.mountpoint) == []


def test_populate_beneath_resolves_inside_the_rootfs(store: VolumeStore, tmp_path: Path) -> None:
    rootfs = tmp_path / "rootfs"
    (rootfs / "real").mkdir(parents=True)
    (rootfs / "real" / "f").write_text("inside")
    (rootfs / "data").symlink_to("/real")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    (rootfs / "evil").symlink_to(outside)
    vol = store.create()
    assert store.populate_from(vol.name, "/data", beneath=rootfs)
    assert os.listdir(vol.mountpoint) == ["f"]
    other = store.create()
    assert not store.populate_from(other.name, "/evil", beneath=rootfs)
    assert os.listdir(other.mountpoint) == []
