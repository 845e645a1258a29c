"""save/load round trips with Podman and skopeo archives, on the real (overlay) store.

Each tool gets private storage under a temp dir, removed afterwards.  Tests that need a tool
skip with the reason when it is not installed.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from dockerd_env import private_dockerd
from podman_env import Podman, private_podman

from cargohold.cli.main import main

pytestmark = pytest.mark.interop


def busybox_rootfs_tar(path: Path) -> Path:
    with tarfile.open(path, "w") as tf:
        tf.add("/bin/busybox", "bin/busybox")
        for applet in ("sh", "true", "cat", "echo"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            tf.addfile(info)
        info = tarfile.TarInfo("etc/motd")
        data = b"hello from cargohold\n"
        info.size = len(data)
        import io

        tf.addfile(info, io.BytesIO(data))
    return path


class Env:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.root = tmp / "ch-root"
        self.run = tmp / "ch-run"

    def ch(self, *args: str) -> int:
        return main(["--root", str(self.root), "--runroot", str(self.run), *args])


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    try:
        yield e
    finally:
        subprocess.run(["umount", "-R", "-l", str(e.run)], capture_output=True)
        for p in sorted(e.root.rglob("merged"), reverse=True) if e.root.exists() else []:
            subprocess.run(["umount", "-l", str(p)], capture_output=True)
        shutil.rmtree(tmp_path, ignore_errors=True)


@pytest.fixture
def podman() -> Iterator[Podman]:
    """A private podman that can run containers here (its containers.conf, podman_env.py)."""
    with private_podman() as p:
        yield p


needs_skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")


def _image_id(env: Env, name: str, capsys: pytest.CaptureFixture[str]) -> str:
    capsys.readouterr()
    assert env.ch("inspect", "-f", "{{.Id}}", name) == 0
    return capsys.readouterr().out.strip()


def test_podman_loads_and_runs_what_we_save(env: Env, podman: Podman,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    tar = busybox_rootfs_tar(env.tmp / "rootfs.tar")
    assert env.ch("import", "-c", 'CMD ["/bin/sh"]', str(tar), "interop/busybox:1") == 0
    image_id = _image_id(env, "interop/busybox:1", capsys)
    archive = env.tmp / "saved.tar"
    assert env.ch("save", "-o", str(archive), "interop/busybox:1") == 0
    r = podman("load", "-i", str(archive))
    assert r.returncode == 0, r.stderr
    r = podman("image", "inspect", "docker.io/interop/busybox:1")
    assert r.returncode == 0, r.stderr
    inspected = json.loads(r.stdout)[0]
    assert "sha256:" + inspected["Id"].removeprefix("sha256:") == image_id
    assert inspected["Config"]["Cmd"] == ["/bin/sh"]
    r = podman("run", "--rm", "--network", "none", "docker.io/interop/busybox:1",
               "cat", "/etc/motd")
    assert (r.returncode, r.stdout) == (0, "hello from cargohold\n"), r.stderr


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
def test_we_load_what_podman_saves(env: Env, podman: Podman, fmt: str,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    tar = busybox_rootfs_tar(env.tmp / "rootfs.tar")
    r = podman("import", "--change", "CMD /bin/sh", str(tar), "localhost/fromp:1")
    assert r.returncode == 0, r.stderr
    archive = env.tmp / "p.tar"
    r = podman("save", "--format", fmt, "-o", str(archive), "localhost/fromp:1")
    assert r.returncode == 0, r.stderr
    pid = podman("image", "inspect", "-f", "{{.Id}}", "localhost/fromp:1").stdout.strip()
    capsys.readouterr()
    assert env.ch("load", "-i", str(archive)) == 0
    out = capsys.readouterr().out
    assert "Loaded image" in out
    name = "localhost/fromp:1" if "localhost/fromp:1" in out else out.split()[-1]
    assert _image_id(env, name, capsys) == "sha256:" + pid.removeprefix("sha256:")


@needs_skopeo
def test_we_load_skopeo_oci_archive_with_gzip_layers(env: Env,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    tar = busybox_rootfs_tar(env.tmp / "rootfs.tar")
    assert env.ch("import", str(tar), "src/img:1") == 0
    src_id = _image_id(env, "src/img:1", capsys)
    saved = env.tmp / "ours.tar"
    assert env.ch("save", "-o", str(saved), "src/img:1") == 0
    oci = env.tmp / "skopeo-oci.tar"
    r = subprocess.run(["skopeo", "copy", "--dest-compress-format", "gzip",
                        f"docker-archive:{saved}", f"oci-archive:{oci}:sk/img:2"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert env.ch("rmi", "src/img:1") == 0
    capsys.readouterr()
    assert env.ch("load", "-i", str(oci)) == 0
    out = capsys.readouterr().out
    assert "Loaded image" in out
    # skopeo rewrites the manifest (gzip layers) but keeps the config, so the id is kept
    assert src_id in out or _image_id(env, out.split()[-1], capsys) == src_id


@pytest.fixture
def dockerd() -> Iterator[dict[str, str]]:
    """A private Docker 20.10 daemon (no networking, vfs) for archive round trips."""
    with private_dockerd() as env:
        yield env


def test_docker_round_trips_with_us(env: Env, dockerd: dict[str, str],
                                    capsys: pytest.CaptureFixture[str]) -> None:
    tar = busybox_rootfs_tar(env.tmp / "rootfs.tar")
    assert env.ch("import", "-c", "ENV A=1", str(tar), "interop/docker:1") == 0
    image_id = _image_id(env, "interop/docker:1", capsys)
    ours = env.tmp / "ours.tar"
    assert env.ch("save", "-o", str(ours), "interop/docker:1") == 0
    r = subprocess.run(["docker", "load", "-i", str(ours)], env=dockerd, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    assert "Loaded image: interop/docker:1" in r.stdout
    r = subprocess.run(["docker", "image", "inspect", "-f", "{{.Id}} {{.Config.Env}}",
                        "interop/docker:1"], env=dockerd, capture_output=True, text=True)
    assert r.stdout.split()[0] == image_id and "A=1" in r.stdout
    # and back: docker tags it anew and saves it in its own 20.10 layout
    subprocess.run(["docker", "tag", "interop/docker:1", "fromdocker:2"], env=dockerd, check=True)
    theirs = env.tmp / "theirs.tar"
    r = subprocess.run(["docker", "save", "-o", str(theirs), "fromdocker:2"], env=dockerd,
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert env.ch("rmi", "interop/docker:1") == 0
    capsys.readouterr()
    assert env.ch("load", "-i", str(theirs)) == 0
    assert capsys.readouterr().out.strip() == "Loaded image: fromdocker:2"
    assert _image_id(env, "fromdocker:2", capsys) == image_id
