"""Image commands end to end through the CLI on a vfs store in a temp dir (no root)."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from cargohold.cli.main import main


def make_rootfs_tar(path: Path, files: dict[str, bytes], compression: str = "") -> Path:
    mode = f"w:{compression}" if compression else "w"
    with tarfile.open(path, mode) as tf:  # type: ignore[call-overload]
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tf.addfile(info, io.BytesIO(data))
    return path


class Cli:
    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root = root
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        code = main(["--root", str(self.root), "--runroot", str(self.root / "run"),
                     "--storage-driver", "vfs", *args])
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(tmp_path / "root", capsys)


@pytest.fixture
def rootfs(tmp_path: Path) -> Path:
    return make_rootfs_tar(tmp_path / "rootfs.tar", {"bin/hello": b"#!/bin/sh\necho hi\n",
                                                     "etc/motd": b"welcome\n"})


def test_import_lists_image_with_docker_columns(cli: Cli, rootfs: Path) -> None:
    code, out, _ = cli("import", str(rootfs), "debian:test")
    assert code == 0
    image_id = out.strip()
    assert image_id.startswith("sha256:") and len(image_id) == 71
    code, out, _ = cli("images")
    header, row = out.splitlines()[:2]
    assert header.split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert row.split()[:3] == ["debian", "test", image_id[7:19]]


@pytest.mark.parametrize("compression", ["gz", "bz2", "xz"])
def test_import_reads_compressed_tarballs(cli: Cli, tmp_path: Path, compression: str) -> None:
    tar = make_rootfs_tar(tmp_path / f"r.tar.{compression}", {"a": b"x" * 1000}, compression)
    code, out, err = cli("import", str(tar), "c:1")
    assert code == 0, err
    code, out, _ = cli("image", "inspect", "-f", "{{.RootFS.Type}} {{len .RootFS.Layers}}", "c:1")
    assert out.strip() == "layers 1"


def test_import_changes_and_message_show_in_inspect_and_history(cli: Cli, rootfs: Path) -> None:
    code, _, err = cli("import", "-c", 'CMD ["/bin/hello"]', "-c", "ENV A=1", "-m", "from test",
                       str(rootfs), "app:v1")
    assert code == 0, err
    _, out, _ = cli("inspect", "-f", "{{json .Config.Cmd}} {{index .Config.Env 0}}", "app:v1")
    assert out.strip() == '["/bin/hello"] A=1'
    _, out, _ = cli("history", "app:v1")
    assert "from test" in out.splitlines()[1]


def test_import_change_expands_path_without_a_default(cli: Cli, rootfs: Path) -> None:
    """Unlike a build stage, ``import --change`` (and ``commit --change``) adds no default PATH:
    dockerd 20.10 gives ``docker import -c 'ENV PATH=/x:$PATH'`` the Env ``["PATH=/x:"]``."""
    code, _, err = cli("import", "-c", "ENV PATH=/x:$PATH", str(rootfs), "nopath:1")
    assert code == 0, err
    _, out, _ = cli("inspect", "-f", "{{json .Config.Env}}", "nopath:1")
    assert out.strip() == '["PATH=/x:"]'


def test_same_tarball_twice_stores_layer_once(cli: Cli, rootfs: Path) -> None:
    cli("import", str(rootfs), "a:1")
    cli("import", str(rootfs), "b:1")
    layers = list((cli.root / "layers").iterdir())
    assert len([p for p in layers if len(p.name) == 64]) == 1


def test_tag_and_rmi_untags_before_deleting(cli: Cli, rootfs: Path) -> None:
    _, out, _ = cli("import", str(rootfs), "one:1")
    image_id = out.strip()
    assert cli("tag", "one:1", "two:2")[0] == 0
    code, out, _ = cli("rmi", "one:1")
    assert code == 0 and out.strip() == "Untagged: one:1"
    code, out, _ = cli("rmi", "two:2")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "Untagged: two:2" and lines[1] == f"Deleted: {image_id}"
    code, out, _ = cli("images", "-q")
    assert out.strip() == ""


def test_rmi_by_id_with_two_tags_needs_force(cli: Cli, rootfs: Path) -> None:
    _, out, _ = cli("import", str(rootfs), "one:1")
    image_id = out.strip()
    cli("tag", "one:1", "two:2")
    code, _, err = cli("rmi", image_id[7:19])
    assert code == 1
    assert "image is referenced in multiple repositories" in err
    code, out, _ = cli("rmi", "-f", image_id[7:19])
    assert code == 0 and f"Deleted: {image_id}" in out


def test_rmi_missing_image_reports_docker_error(cli: Cli) -> None:
    code, _, err = cli("rmi", "nosuch:1")
    assert code == 1
    assert "No such image: nosuch:1" in err


def test_save_and_load_round_trip(cli: Cli, rootfs: Path, tmp_path: Path) -> None:
    _, out, _ = cli("import", "-c", "LABEL k=v", str(rootfs), "round:trip")
    image_id = out.strip()
    archive = tmp_path / "saved.tar"
    assert cli("save", "-o", str(archive), "round:trip")[0] == 0
    with tarfile.open(archive) as tf:
        names = set(tf.getnames())
        manifest = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert {"manifest.json", "index.json", "oci-layout"} <= names
    assert manifest[0]["RepoTags"] == ["round:trip"]
    cli("rmi", "round:trip")
    code, out, err = cli("load", "-i", str(archive))
    assert code == 0, err
    assert out.strip() == "Loaded image: round:trip"
    _, out, _ = cli("inspect", "-f", "{{.Id}} {{.Config.Labels.k}}", "round:trip")
    assert out.strip() == f"{image_id} v"


def test_load_rejects_junk(cli: Cli, tmp_path: Path) -> None:
    junk = tmp_path / "junk.tar"
    junk.write_bytes(b"this is not a tar archive" * 100)
    code, _, err = cli("load", "-i", str(junk))
    assert code == 125 and err
    assert cli("images", "-q")[1].strip() == ""


def test_import_of_hostile_tarball_registers_nothing(cli: Cli, tmp_path: Path) -> None:
    bad = make_rootfs_tar(tmp_path / "bad.tar", {"../escape": b"x"})
    code, _, err = cli("import", str(bad), "bad:1")
    assert code == 125
    assert "../escape" in err
    assert not (tmp_path / "root" / "escape").exists()
    assert cli("images", "-q")[1].strip() == ""
    layers = cli.root / "layers"
    assert not [p for p in layers.iterdir() if len(p.name) == 64] if layers.exists() else True


def test_images_filters(cli: Cli, rootfs: Path, tmp_path: Path) -> None:
    cli("import", "-c", "LABEL tier=web", str(rootfs), "web:1")
    other = make_rootfs_tar(tmp_path / "o.tar", {"x": b"y"})
    cli("import", str(other))
    _, out, _ = cli("images", "--filter", "dangling=true", "--format", "{{.Repository}}:{{.Tag}}")
    assert out.strip() == "<none>:<none>"
    _, out, _ = cli("images", "--filter", "label=tier=web", "--format", "{{.Repository}}")
    assert out.strip() == "web"
    _, out, _ = cli("images", "--filter", "reference=w*", "--format", "{{.Repository}}")
    assert out.strip() == "web"


def test_image_prune_removes_dangling_only(cli: Cli, rootfs: Path, tmp_path: Path) -> None:
    cli("import", str(rootfs), "keep:1")
    other = make_rootfs_tar(tmp_path / "o.tar", {"x": b"y"})
    _, out, _ = cli("import", str(other))
    dangling = out.strip()
    code, out, _ = cli("image", "prune", "-f")
    assert code == 0
    assert f"deleted: {dangling}" in out
    _, out, _ = cli("images", "--format", "{{.Repository}}")
    assert out.strip() == "keep"


def test_two_concurrent_imports_store_the_layer_once(tmp_path: Path, rootfs: Path) -> None:
    import subprocess
    import sys

    root = tmp_path / "croot"
    cmd = [sys.executable, "-m", "cargohold", "--root", str(root), "--runroot",
           str(tmp_path / "crun"), "--storage-driver", "vfs", "import", str(rootfs)]
    procs = [subprocess.Popen([*cmd, f"same:{i}"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for i in range(2)]
    results = [p.communicate() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], results
    ids = {out.strip() for out, _ in results}
    assert len(ids) == 2  # distinct configs (created times), one shared layer
    layers = [p for p in (root / "layers").iterdir() if len(p.name) == 64]
    assert len(layers) == 1


def test_import_from_http_url(cli: Cli, tmp_path: Path) -> None:
    import functools
    import http.server
    import threading

    serve_dir = tmp_path / "srv"
    serve_dir.mkdir()
    make_rootfs_tar(serve_dir / "rootfs.tar.gz", {"etc/os-release": b"ID=test\n"}, "gz")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(serve_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/rootfs.tar.gz"
        code, out, err = cli("import", url, "fromurl:1")
        assert code == 0, err
        _, out, _ = cli("history", "--format", "{{.Comment}}", "fromurl:1")
        assert out.strip() == f"Imported from {url}"
        code, _, err = cli("import", url.replace("rootfs", "missing"), "nothing:1")
        assert code == 125 and "404" in err
    finally:
        server.shutdown()
        server.server_close()


def test_import_zstd_from_stdin_like_the_seed(tmp_path: Path, rootfs: Path) -> None:
    """Seed section 3: `cat template.tar.gz | docker import - debian:test` (here zstd)."""
    import subprocess
    import sys

    import zstandard

    compressed = tmp_path / "rootfs.tar.zst"
    compressed.write_bytes(zstandard.ZstdCompressor().compress(rootfs.read_bytes()))
    base = [sys.executable, "-m", "cargohold", "--root", str(tmp_path / "sroot"),
            "--runroot", str(tmp_path / "srun"), "--storage-driver", "vfs"]
    with open(compressed, "rb") as stdin:
        r = subprocess.run([*base, "import", "-", "debian:test"], stdin=stdin,
                           capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([*base, "images", "--format", "{{.Repository}}:{{.Tag}}"],
                       capture_output=True, text=True)
    assert r.stdout.strip() == "debian:test"
