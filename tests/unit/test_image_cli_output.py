"""The CLI's image commands print what they always printed, now that they render the events
of request-scoped engine calls: ``pull`` (and its ``-q``), ``import``, ``save``/``load``,
against the fake registry, with no root.  Nothing here uses the engine's new API, so the same
test runs unchanged against the code before it."""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_fake import FakeRegistry, digest_of, make_image

Y = make_image([{"etc/why": os.urandom(150_000)}])


@pytest.fixture
def fake() -> Iterator[FakeRegistry]:
    reg = FakeRegistry().start()
    try:
        reg.add_image("y", "1", Y)
        yield reg
    finally:
        reg.close()


def rootfs_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_cli_prints_pull_load_and_import_as_before(tmp_path: Path, fake: FakeRegistry,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """``pull``, ``create``'s auto-pull, ``push -q``, ``save``/``load`` and ``import`` print
    what they printed before their calls became request-scoped (this test passes on the
    previous code too): the bytes, in order, on the same streams."""
    from cargohold.cli.main import main

    root = tmp_path / "cli"

    def cli(*args: str) -> tuple[int, str, str]:
        code = main(["--root", str(root / "root"), "--runroot", str(root / "run"),
                     "--storage-driver", "vfs", *args])
        out, err = capsys.readouterr()
        return code, out, err

    name = f"127.0.0.1:{fake.port}/y:1"
    sid = digest_of(Y.layers[0])[7:19]
    code, out, err = cli("pull", "--tls-verify=false", name)
    layer = [f"{sid}: Pulling fs layer", f"{sid}: Downloading", f"{sid}: Verifying Checksum",
             f"{sid}: Download complete"]
    tail = [f"{sid}: Pull complete", f"Digest: {Y.manifest_digest}",
            f"Status: Downloaded newer image for {name}", name]
    assert (code, err) == (0, "")
    assert out.splitlines() in (["1: Pulling from y", *layer, *tail],
                                ["1: Pulling from y", *layer, f"{sid}: Extracting", *tail])
    code, out, _ = cli("pull", "--tls-verify=false", name)
    assert out.splitlines() == ["1: Pulling from y", f"{sid}: Already exists",
                                f"Digest: {Y.manifest_digest}",
                                f"Status: Image is up to date for {name}", name]
    # create's auto-pull reports on stderr, the container id alone on stdout
    config = tmp_path / "registries.toml"
    config.write_text(f'insecure-registries = ["127.0.0.1:{fake.port}"]\n')
    os.environ["CARGOHOLD_CONFIG"] = str(config)
    try:
        assert cli("rmi", name)[0] == 0
        code, out, err = cli("create", name, "true")
    finally:
        del os.environ["CARGOHOLD_CONFIG"]
    assert code == 0 and len(out.strip()) == 64
    assert err.splitlines()[0] == f"Unable to find image '{name}' locally"
    assert err.splitlines()[1:] == ["1: Pulling from y", f"{sid}: Already exists",
                                    f"Digest: {Y.manifest_digest}",
                                    f"Status: Downloaded newer image for {name}"]
    assert cli("rm", out.strip())[0] == 0
    code, out, _ = cli("pull", "-q", "--tls-verify=false", name)
    assert (code, out) == (0, f"{name}\n")
    tar = tmp_path / "rootfs.tar"
    tar.write_bytes(rootfs_tar({"bin/x": b"x"}))
    code, out, _ = cli("import", "-m", "msg", str(tar), "imp:1")
    assert code == 0 and out.startswith("sha256:") and out.count("\n") == 1
    saved = tmp_path / "saved.tar"
    assert cli("save", "-o", str(saved), "imp:1")[0] == 0
    assert cli("rmi", "imp:1")[0] == 0
    assert cli("load", "-i", str(saved)) == (0, "Loaded image: imp:1\n", "")
    assert cli("load", "-i", str(tmp_path / "nosuch.tar"))[0] != 0
