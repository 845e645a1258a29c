"""Volumes through the CLI (seed section 1): -v binds, named and anonymous volumes, image
VOLUME pre-fill, --volumes-from, --mount, --tmpfs, --read-only, rm -v (root)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from containers_env import Env, container_env, needs_runtime

pytestmark = needs_runtime


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with container_env(tmp_path_factory.mktemp("ctr-vol")) as e:
        yield e


def volumes(env: Env) -> set[str]:
    return (
        set(env.out("volume", "ls", "-q").split())
        if env.ch("volume", "ls", "-q", check=False).returncode == 0
        else {p.name for p in (env.root / "volumes").glob("*") if p.is_dir()}
    )


def test_bind_mount_writes_reach_the_host(env: Env) -> None:
    host_dir = env.base / "www"  # missing: -v creates it, as Docker does
    env.ch("run", "--rm", "-v", f"{host_dir}:/data1", "bb", "sh", "-c", "echo hi > /data1/f")
    assert (host_dir / "f").read_text() == "hi\n"
    r = env.ch(
        "run",
        "--rm",
        "-v",
        f"{host_dir}:/data1:ro",
        "bb",
        "sh",
        "-c",
        "echo x > /data1/g",
        check=False,
    )
    assert r.returncode != 0 and not (host_dir / "g").exists()


def test_anonymous_volumes_and_volumes_from(env: Env) -> None:
    env.ch(
        "run",
        "--name",
        "test1",
        "-v",
        "/data1",
        "-v",
        "/data2",
        "bb",
        "sh",
        "-c",
        "echo one > /data1/a; echo two > /data2/b",
    )
    mounts = env.inspect("test1")["Mounts"]
    assert {m["Destination"] for m in mounts} == {"/data1", "/data2"}  # type: ignore[union-attr]
    assert all(m["Type"] == "volume" and m["RW"] for m in mounts)  # type: ignore[union-attr]
    out = env.out("run", "--rm", "--volumes-from", "test1", "bb", "cat", "/data1/a", "/data2/b")
    assert out == "one\ntwo"
    r = env.ch(
        "run",
        "--rm",
        "--volumes-from",
        "test1:ro",
        "bb",
        "sh",
        "-c",
        "echo x > /data1/c",
        check=False,
    )
    assert r.returncode != 0
    names = [m["Name"] for m in mounts]  # type: ignore[union-attr]
    for name in names:
        assert (env.root / "volumes" / name / "_data").is_dir()
    env.ch("rm", "-v", "test1")
    for name in names:
        assert not (env.root / "volumes" / name).exists()


def test_image_volume_is_prefilled_and_named_volume_survives(env: Env) -> None:
    out = env.out("run", "--rm", "bbvol", "cat", "/data/seed.txt")
    assert out == "from image"
    env.ch("run", "--rm", "-v", "named1:/data", "bbvol", "sh", "-c", "echo more >> /data/seed.txt")
    data = env.root / "volumes" / "named1" / "_data" / "seed.txt"
    assert data.read_text() == "from image\nmore\n"
    out = env.out("run", "--rm", "-v", "named1:/x", "bb", "cat", "/x/seed.txt")
    assert out == "from image\nmore"
    meta = json.loads((env.root / "volumes" / "named1" / "volume.json").read_text())
    assert meta.get("Refs") in ([], None)


def test_image_volume_with_a_relative_path_as_docker(env: Env) -> None:
    """The shell form ``VOLUME /data ["/logs"]`` stores the entries ``/data`` and ``[/logs]``;
    Docker creates the container, shows ``[/logs]`` as the destination and mounts the volume
    at ``/[/logs]`` (runc puts a relative destination below the root)."""
    tar = env.base / "bb.tar"
    env.ch("import", "-c", 'VOLUME /data ["/logs"]', str(tar), "oddvol:1")
    cfg = json.loads(env.out("image", "inspect", "oddvol:1"))[0]["Config"]
    assert cfg["Volumes"] == {"/data": {}, "[/logs]": {}}
    env.ch("create", "--name", "oddvol", "oddvol:1", "sh", "-c",
           "echo kept > '/[/logs]/f' && grep -c ' /\\[/logs\\] ' /proc/self/mountinfo")
    try:
        mounts = env.inspect("oddvol")["Mounts"]
        by_dest = {m["Destination"]: m for m in mounts}  # type: ignore[index,union-attr]
        assert set(by_dest) == {"/data", "[/logs]"}
        assert by_dest["[/logs]"]["Type"] == "volume"
        assert env.out("start", "-a", "oddvol") == "1"
        name = by_dest["[/logs]"]["Name"]
        assert (env.root / "volumes" / name / "_data" / "f").read_text() == "kept\n"
    finally:
        env.ch("rm", "-v", "oddvol")
    assert not (env.root / "volumes" / name).exists()
    env.ch("rmi", "oddvol:1")


def test_rm_without_v_keeps_anonymous_volume(env: Env) -> None:
    env.ch("create", "--name", "keepvol", "-v", "/keep", "bb", "true")
    name = env.inspect("keepvol")["Mounts"][0]["Name"]  # type: ignore[index]
    env.ch("rm", "keepvol")
    assert (env.root / "volumes" / name / "volume.json").exists()
    env.ch("volume", "rm", name, check=False)


def test_mount_tmpfs_and_read_only(env: Env) -> None:
    src = env.base / "mnt-src"
    src.mkdir()
    (src / "f").write_text("m\n")
    out = env.out(
        "run",
        "--rm",
        "--mount",
        f"type=bind,source={src},target=/m,readonly",
        "--tmpfs",
        "/scratch:size=1m",
        "--read-only",
        "bb",
        "sh",
        "-c",
        "cat /m/f; grep /scratch /proc/mounts | cut -d' ' -f3; "
        "touch /x 2>/dev/null || echo rofs; echo ok > /scratch/t && cat /scratch/t",
    )
    assert out.splitlines() == ["m", "tmpfs", "rofs", "ok"]


def test_bad_mounts_leave_nothing(env: Env) -> None:
    before = set((env.root / "volumes").glob("*")) if (env.root / "volumes").exists() else set()
    for argv, msg in (
        (["-v", "/tmp:rel"], "must be absolute"),
        (["-v", "/tmp:/sys/x"], "/sys"),
        (["--volumes-from", "nosuch"], "No such container: nosuch"),
        (["-v", "newvol:/a", "-v", "/tmp:/a"], "Duplicate mount point"),
    ):
        r = env.ch("run", "--rm", *argv, "bb", "true", check=False)
        assert r.returncode == 125 and msg in r.stderr, (argv, r.stderr)
    after = set((env.root / "volumes").glob("*")) if (env.root / "volumes").exists() else set()
    assert after == before
