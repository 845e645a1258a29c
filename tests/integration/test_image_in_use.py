"""Images used by containers: rmi and prune refuse or keep them as Docker does (root)."""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from cargohold.cli.main import main


class Cli:
    def __init__(self, tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.base = ["--root", str(tmp / "root"), "--runroot", str(tmp / "run")]
        self.capsys = capsys
        self.tmp = tmp

    def __call__(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main([*self.base, *args])
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[Cli]:
    c = Cli(tmp_path, capsys)
    try:
        yield c
    finally:
        _, out, _ = c("ps", "-aq", "--no-trunc")
        for cid in out.split():
            c("rm", "-f", cid)
        subprocess.run(["umount", "-R", "-l", str(tmp_path / "run")], capture_output=True)
        shutil.rmtree(tmp_path, ignore_errors=True)


def busybox_tar(path: Path, marker: str) -> Path:
    with tarfile.open(path, "w") as tf:
        tf.add("/bin/busybox", "bin/busybox")
        info = tarfile.TarInfo("bin/sh")
        info.type = tarfile.SYMTYPE
        info.linkname = "busybox"
        tf.addfile(info)
        import io

        data = marker.encode()
        info = tarfile.TarInfo("etc/marker")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return path


def test_rmi_refuses_an_image_a_container_uses(cli: Cli) -> None:
    _, out, _ = cli("import", "-c", 'CMD ["sh"]', str(busybox_tar(cli.tmp / "a.tar", "a")),
                    "inuse:1")
    image_id = out.strip()
    code, out, err = cli("create", "--name", "holder", "inuse:1")
    assert code == 0, err
    cid = out.strip()
    code, _, err = cli("rmi", "inuse:1")
    assert code == 1
    assert (f'conflict: unable to remove repository reference "inuse:1" (must force) - '
            f"container {cid[:12]} is using its referenced image {image_id[7:19]}") in err
    code, _, err = cli("rmi", image_id[7:19])
    assert code == 1 and "image is being used by stopped container" in err
    # -f untags; the image stays for the container, as in Docker
    code, out, _ = cli("rmi", "-f", "inuse:1")
    assert code == 0 and out.strip() == "Untagged: inuse:1"
    code, out, _ = cli("image", "prune", "-a", "-f")
    assert image_id not in out
    assert cli("inspect", "-f", "{{.Id}}", image_id)[1].strip() == image_id
    assert cli("rm", "holder")[0] == 0
    code, out, _ = cli("image", "prune", "-f")
    assert f"deleted: {image_id}" in out


def test_save_several_images_in_one_archive(cli: Cli) -> None:
    for name in ("first", "second"):
        assert cli("import", str(busybox_tar(cli.tmp / f"{name}.tar", name)), f"{name}:1")[0] == 0
    archive = cli.tmp / "both.tar"
    assert cli("save", "-o", str(archive), "first:1", "second:1")[0] == 0
    with tarfile.open(archive) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
        index = json.load(tf.extractfile("index.json"))  # type: ignore[arg-type]
    assert sorted(m["RepoTags"][0] for m in manifest) == ["first:1", "second:1"]
    assert len(index["manifests"]) == 2
    assert cli("rmi", "first:1", "second:1")[0] == 0
    code, out, _ = cli("load", "-i", str(archive))
    assert code == 0
    assert sorted(out.split("\n")[:2]) == ["Loaded image: first:1", "Loaded image: second:1"]
    code, out, _ = cli("run", "--rm", "--network", "none", "second:1", "/bin/busybox", "cat",
                         "/etc/marker")
    assert code == 0 and out == "second"
