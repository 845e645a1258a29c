"""``image bootstrap`` on a real store: busybox (no network) and one Debian bootstrap.

The Debian test is network-bound (~25 s against deb.debian.org): it is marked ``slow`` and is
skipped with the reason when the host's mirror cannot be reached.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from cargohold.cli.main import main
from cargohold.config import Settings
from cargohold.engine import Engine
from cargohold.engine.images.bootstrap import detect_mirror, release_epoch
from cargohold.errors import Unavailable

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]
BUSYBOX = Path("/bin/busybox")


class Env:
    def __init__(self, tmp: Path) -> None:
        self.root = tmp / "root"
        self.run = tmp / "run"

    def ch(self, *args: str) -> int:
        return main(["--root", str(self.root), "--runroot", str(self.run), *args])

    def engine(self) -> Engine:
        return Engine(Settings(root=self.root, runroot=self.run))

    def layer_dir(self, name: str) -> Path:
        engine = self.engine()
        record = engine.images.resolve(name)
        assert record.top_layer is not None
        return engine.layers.diff_path(record.top_layer)


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    try:
        yield e
    finally:
        subprocess.run(["umount", "-R", "-l", str(e.run)], capture_output=True)
        shutil.rmtree(tmp_path, ignore_errors=True)


def _out(capsys: pytest.CaptureFixture[str]) -> str:
    return capsys.readouterr().out.strip()


@pytest.mark.skipif(not BUSYBOX.exists(), reason="busybox-static not installed")
def test_busybox_image(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert env.ch("image", "bootstrap", "-q", "busybox") == 0
    first = _out(capsys)
    assert first.startswith("sha256:")
    # the same inputs give the same image; --tag names it differently
    assert env.ch("image", "bootstrap", "-q", "--tag", "mybox:1", "busybox") == 0
    assert _out(capsys) == first
    assert env.ch("inspect", "busybox") == 0
    info = json.loads(_out(capsys))[0]
    assert info["Id"] == first
    assert info["RepoTags"] == ["busybox:latest", "mybox:1"]
    assert info["Config"]["Cmd"] == ["sh"]
    assert any(e.startswith("PATH=") for e in info["Config"]["Env"])
    assert info["Created"].startswith("20")
    assert len(info["RootFS"]["Layers"]) == 1

    diff = env.layer_dir("busybox")
    assert (diff / "bin/busybox").stat().st_mode & 0o111
    assert os.readlink(diff / "bin/sh") == "../bin/busybox"
    assert os.readlink(diff / "usr/bin/env") == "../../bin/busybox"
    assert stat.S_IMODE((diff / "tmp").stat().st_mode) == 0o1777
    assert (diff / "etc/passwd").read_text().startswith("root:x:0:0:")
    assert "root:x:0:" in (diff / "etc/group").read_text()
    # the applet links work once the rootfs is the root
    out = subprocess.run(
        ["chroot", str(diff), "/bin/sh", "-c", "echo ok; id -u"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split() == ["ok", "0"]


def test_unknown_target_is_a_usage_error(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    assert env.ch("image", "bootstrap", "centos:7") == 125
    assert "cannot bootstrap 'centos:7'" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("mmdebstrap") is None and shutil.which("debootstrap") is None,
    reason="neither mmdebstrap nor debootstrap is installed",
)
def test_debian_bookworm_minbase(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    mirror = detect_mirror("debian")
    try:
        epoch = release_epoch(mirror, "bookworm", timeout=10)
    except Unavailable as exc:
        pytest.skip(f"Debian mirror unreachable: {exc}")
    capsys.readouterr()
    assert env.ch("image", "bootstrap", "-q", "debian:bookworm") == 0
    image_id = _out(capsys)
    assert env.ch("inspect", "debian:bookworm") == 0
    info = json.loads(_out(capsys))[0]
    assert info["Id"] == image_id
    assert info["Config"]["Cmd"] == ["bash"]
    assert info["Created"] == _rfc3339(epoch)

    diff = env.layer_dir("debian:bookworm")
    assert (diff / "etc/debian_version").read_text().startswith("12.")
    assert (diff / "usr/bin/apt-get").exists() and (diff / "usr/bin/bash").exists()
    assert mirror in (diff / "etc/apt/sources.list").read_text()
    lists = {p.name for p in (diff / "var/lib/apt/lists").iterdir()}
    assert lists <= {"lock", "partial", "auxfiles"}  # package lists cleaned
    assert not list((diff / "var/cache/apt/archives").glob("*.deb"))
    for host_file in ("etc/hostname", "etc/resolv.conf"):  # nothing from the build host
        assert not (diff / host_file).exists()
    newest = max(os.lstat(p).st_mtime for p in diff.rglob("*"))
    assert newest <= epoch  # every mtime clamped to SOURCE_DATE_EPOCH


def _rfc3339(epoch: int) -> str:
    import time

    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
