from __future__ import annotations

import io
import os
import tarfile
from contextlib import suppress
from pathlib import Path

import pytest

from cargohold.container.copy import MountPoint, copy_in, copy_out
from cargohold.errors import Forbidden, InvalidArgument, NotFound


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    root = tmp_path / "merged"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "hosts").write_text("127.0.0.1 localhost\n")
    (root / "app" / "conf").mkdir(parents=True)
    (root / "app" / "conf" / "a.ini").write_text("a=1\n")
    os.chmod(root / "app" / "conf" / "a.ini", 0o640)
    (root / "app" / "main.py").write_text("print(1)\n")
    (root / "app" / "link").symlink_to("conf/a.ini")
    (root / "tmp").mkdir()
    return root


@pytest.fixture
def host(tmp_path: Path) -> Path:
    h = tmp_path / "host"
    h.mkdir()
    return h


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    o = tmp_path / "outside"
    o.mkdir()
    (o / "secret").write_text("host secret\n")
    return o


# -- out -----------------------------------------------------------------------------------------


def test_copy_out_file_into_existing_dir_and_as_new_name(rootfs: Path, host: Path) -> None:
    copy_out(rootfs, "/etc/hosts", host)
    assert (host / "hosts").read_text() == "127.0.0.1 localhost\n"
    copy_out(rootfs, "/etc/hosts", host / "renamed")
    assert (host / "renamed").read_text().startswith("127.0.0.1")


def test_copy_out_dir_rules(rootfs: Path, host: Path) -> None:
    copy_out(rootfs, "/app", host)  # existing dir: copied into it
    assert (host / "app" / "conf" / "a.ini").read_text() == "a=1\n"
    assert os.readlink(host / "app" / "link") == "conf/a.ini"
    assert (host / "app" / "conf" / "a.ini").stat().st_mode & 0o777 == 0o640
    copy_out(rootfs, "/app", host / "new")  # missing dest: created with the contents
    assert (host / "new" / "main.py").is_file()
    (host / "existing").mkdir()
    copy_out(rootfs, "/app/.", host / "existing")  # SRC/. copies the contents
    assert (host / "existing" / "main.py").is_file()
    assert not (host / "existing" / "app").exists()


def test_copy_out_errors(rootfs: Path, host: Path) -> None:
    with pytest.raises(NotFound) as info:
        copy_out(rootfs, "/nope", host, container="c")
    assert info.value.message == "Could not find the file /nope in container c"
    (host / "file").write_text("x")
    with pytest.raises(InvalidArgument, match="cannot copy a directory to a file"):
        copy_out(rootfs, "/app", host / "file")
    with pytest.raises(NotFound, match="does not exist"):
        copy_out(rootfs, "/etc/hosts", str(host / "nodir") + "/")


def test_copy_out_symlink_kept_or_followed(rootfs: Path, host: Path) -> None:
    copy_out(rootfs, "/app/link", host / "l1")
    assert os.readlink(host / "l1") == "conf/a.ini"
    copy_out(rootfs, "/app/link", host / "l2", follow_link=True)
    assert (host / "l2").read_text() == "a=1\n" and not (host / "l2").is_symlink()


def test_copy_out_through_hostile_symlinks_stays_inside(
    rootfs: Path, host: Path, outside: Path
) -> None:
    (rootfs / "evil").symlink_to(outside)
    (rootfs / "up").symlink_to("../../../../../..")
    with pytest.raises(NotFound):
        copy_out(rootfs, "/evil/secret", host, container="c")
    copy_out(rootfs, "/up/etc/hosts", host / "h")  # .. clamps at the container root
    assert (host / "h").read_text().startswith("127.0.0.1")
    copy_out(rootfs, "/evil", host / "e")  # the link itself, not its target
    assert (host / "e").is_symlink()


def test_copy_out_tar_stream(rootfs: Path) -> None:
    buf = io.BytesIO()
    copy_out(rootfs, "/app", "-", stream=buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tf:
        names = tf.getnames()
        assert tf.getmember("app/link").issym()
        member = tf.extractfile("app/conf/a.ini")
        assert member is not None and member.read() == b"a=1\n"
    assert names[0] == "app" and "app/main.py" in names


def test_copy_out_reaches_into_mounts(rootfs: Path, host: Path, tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    (vol / "data.txt").write_text("in the volume")
    (rootfs / "data1").mkdir()
    mounts = [MountPoint("/data1", str(vol))]
    copy_out(rootfs, "/data1/data.txt", host / "d", mounts=mounts)
    assert (host / "d").read_text() == "in the volume"
    copy_out(rootfs, "/", host / "all", mounts=mounts)
    assert (host / "all" / "data1" / "data.txt").read_text() == "in the volume"


# -- in ------------------------------------------------------------------------------------------


def test_copy_in_file_and_dir(rootfs: Path, host: Path) -> None:
    (host / "f.txt").write_text("hello")
    (host / "tree" / "sub").mkdir(parents=True)
    (host / "tree" / "sub" / "x").write_text("x")
    copy_in(rootfs, host / "f.txt", "/tmp")
    assert (rootfs / "tmp" / "f.txt").read_text() == "hello"
    copy_in(rootfs, host / "f.txt", "/tmp/g.txt")
    assert (rootfs / "tmp" / "g.txt").read_text() == "hello"
    copy_in(rootfs, host / "tree", "/tmp")
    assert (rootfs / "tmp" / "tree" / "sub" / "x").read_text() == "x"
    copy_in(rootfs, host / "tree", "/newdir")
    assert (rootfs / "newdir" / "sub" / "x").is_file()
    copy_in(rootfs, str(host / "tree") + "/.", "/etc")
    assert (rootfs / "etc" / "sub" / "x").is_file()


def test_copy_in_overwrites_file(rootfs: Path, host: Path) -> None:
    (host / "hosts").write_text("new\n")
    copy_in(rootfs, host / "hosts", "/etc/hosts")
    assert (rootfs / "etc" / "hosts").read_text() == "new\n"


def test_copy_in_ownership(rootfs: Path, host: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("chown needs root")
    (host / "owned").write_text("o")
    os.chown(host / "owned", 1234, 5678)
    copy_in(rootfs, host / "owned", "/tmp/plain")
    copy_in(rootfs, host / "owned", "/tmp/archived", archive=True)
    plain, archived = (rootfs / "tmp" / "plain").stat(), (rootfs / "tmp" / "archived").stat()
    assert (plain.st_uid, plain.st_gid) == (0, 0)
    assert (archived.st_uid, archived.st_gid) == (1234, 5678)


def test_copy_in_errors(rootfs: Path, host: Path) -> None:
    (host / "f").write_text("x")
    with pytest.raises(NotFound, match="no such file or directory"):
        copy_in(rootfs, host / "missing", "/tmp")
    with pytest.raises(NotFound, match="Could not find the file /no/such in container c"):
        copy_in(rootfs, host / "f", "/no/such/file", container="c")
    (host / "d").mkdir()
    with pytest.raises(InvalidArgument, match="cannot copy a directory to a file"):
        copy_in(rootfs, host / "d", "/etc/hosts")


@pytest.mark.parametrize(
    "link_target",
    ["OUTSIDE", "../../../../../../../../OUTSIDE", "/etc/../../../../OUTSIDE"],
)
def test_copy_in_through_hostile_dest_symlink(
    rootfs: Path, host: Path, outside: Path, link_target: str
) -> None:
    target = link_target.replace("OUTSIDE", str(outside).lstrip("/"))
    if link_target == "OUTSIDE":
        target = str(outside)
    (rootfs / "tmp" / "evil").symlink_to(target)
    (host / "payload").write_text("pwned")
    with suppress(NotFound, InvalidArgument):
        copy_in(rootfs, host / "payload", "/tmp/evil/")
    assert sorted(os.listdir(outside)) == ["secret"]
    # when the link's target exists inside the container, that is where the file goes
    (rootfs / str(outside).lstrip("/")).mkdir(parents=True)
    copy_in(rootfs, host / "payload", "/tmp/evil/")
    assert (rootfs / str(outside).lstrip("/") / "payload").read_text() == "pwned"
    assert sorted(os.listdir(outside)) == ["secret"]
    assert (outside / "secret").read_text() == "host secret\n"


def test_copy_in_dest_symlink_to_dir_inside_is_followed(rootfs: Path, host: Path) -> None:
    (rootfs / "cfg").symlink_to("/app/conf")
    (host / "b.ini").write_text("b")
    copy_in(rootfs, host / "b.ini", "/cfg")
    assert (rootfs / "app" / "conf" / "b.ini").read_text() == "b"


def test_copy_in_replaces_final_symlink_instead_of_following(
    rootfs: Path, host: Path, outside: Path
) -> None:
    (rootfs / "tmp" / "trap").symlink_to(outside / "secret")
    (host / "trap").write_text("new")
    copy_in(rootfs, host / "trap", "/tmp")
    assert (outside / "secret").read_text() == "host secret\n"
    assert (rootfs / "tmp" / "trap").read_text() == "new"
    assert not (rootfs / "tmp" / "trap").is_symlink()


def _tar(entries: list[tuple[str, bytes | None, str | None]]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data, link in entries:
            info = tarfile.TarInfo(name)
            if link is not None:
                info.type = tarfile.SYMTYPE
                info.linkname = link
                tf.addfile(info)
            elif data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


def test_copy_in_tar_stream(rootfs: Path) -> None:
    stream = _tar([("pkg", None, None), ("pkg/a", b"A", None), ("pkg/l", None, "a")])
    copy_in(rootfs, "-", "/tmp", stream=stream)
    assert (rootfs / "tmp" / "pkg" / "a").read_bytes() == b"A"
    assert os.readlink(rootfs / "tmp" / "pkg" / "l") == "a"
    with pytest.raises(InvalidArgument, match="must be a directory"):
        copy_in(rootfs, "-", "/etc/hosts", stream=_tar([("x", b"x", None)]), container="c")
    with pytest.raises(NotFound):
        copy_in(rootfs, "-", "/missing", stream=_tar([("x", b"x", None)]))


def test_copy_in_tar_stream_attacks(rootfs: Path, outside: Path) -> None:
    with pytest.raises(InvalidArgument, match="outside of the destination"):
        copy_in(rootfs, "-", "/tmp", stream=_tar([("../../x", b"x", None)]))
    # symlink entry to the host followed by a file "through" it: lands in the container
    evil = _tar([("esc", None, str(outside)), ("esc/secret", b"pwned", None)])
    with pytest.raises(NotFound):
        copy_in(rootfs, "-", "/tmp", stream=evil)
    assert (outside / "secret").read_text() == "host secret\n"
    assert sorted(os.listdir(outside)) == ["secret"]


def test_tar_round_trip(rootfs: Path, tmp_path: Path) -> None:
    buf = io.BytesIO()
    copy_out(rootfs, "/app", "-", stream=buf)
    buf.seek(0)
    other = tmp_path / "other"
    (other / "srv").mkdir(parents=True)
    copy_in(other, "-", "/srv", stream=buf)
    assert (other / "srv" / "app" / "conf" / "a.ini").read_text() == "a=1\n"
    assert os.readlink(other / "srv" / "app" / "link") == "conf/a.ini"


def test_copy_in_into_volume_and_readonly(rootfs: Path, host: Path, tmp_path: Path) -> None:
    vol = tmp_path / "vol"
    vol.mkdir()
    (rootfs / "data").mkdir()
    (host / "f").write_text("v")
    copy_in(rootfs, host / "f", "/data", mounts=[("/data", str(vol))])
    assert (vol / "f").read_text() == "v" and not (rootfs / "data" / "f").exists()
    with pytest.raises(Forbidden, match="mounted volume is marked read-only"):
        copy_in(rootfs, host / "f", "/data/g", mounts=[MountPoint("/data", str(vol), True)])
    with pytest.raises(Forbidden, match="container rootfs is marked read-only"):
        copy_in(rootfs, host / "f", "/tmp", readonly_rootfs=True)
