"""``image analyze``: the layer replay (whiteouts, opaque directories, overwrites) and the CLI
on an image loaded from a docker-archive, read back from its tar-split records."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

import pytest

from cargohold.cli.main import main
from cargohold.engine.images.analysis import replay
from cargohold.store.layer_entries import Entry

MIB = 1 << 20


def f(path: str, size: int) -> Entry:
    return Entry(path, "file", size)


def d(path: str) -> Entry:
    return Entry(path, "dir", 0)


def test_replay_counts_what_later_layers_hide() -> None:
    layers = [
        [d("etc"), f("etc/a", 10), f("etc/b", 20), d("opt"), f("opt/x", 30), f("opt/y", 40),
         d("var"), f("var/log", 50), f("dup", 1), f("dup", 2)],  # a duplicate entry: 1 hidden
        [Entry("etc/a", "whiteout", 0), f("etc/b", 5),  # delete, overwrite
         Entry("opt", "opaque", 0), f("opt/z", 3),  # opaque dir: x and y hidden
         f("var", 7)],  # a file where a directory was: its tree is hidden
        [Entry("etc/b", "whiteout", 0), f("etc/b", 6),  # the whiteout hides the lower b only
         Entry("missing", "whiteout", 0)],  # nothing there: not counted
    ]
    counts, state = replay(layers)
    assert counts == [{"added": 6, "changed": 1, "removed": 0},
                      {"added": 1, "changed": 2, "removed": 3},
                      {"added": 1, "changed": 0, "removed": 1}]
    assert state.layer_wasted == [10 + 20 + 30 + 40 + 50 + 1, 5, 0]
    assert state.paths == {"dup": [1, 1], "etc/a": [10, 1], "etc/b": [25, 2], "opt/x": [30, 1],
                           "opt/y": [40, 1], "var/log": [50, 1]}
    assert sorted(state.visible) == ["dup", "etc", "etc/b", "opt", "opt/z", "var"]
    assert state.visible["etc/b"].size == 6


def _tar(entries: list[tuple[str, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tf.addfile(info)
            else:
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def docker_archive(path: Path, layers: list[bytes], created_by: list[str]) -> Path:
    diff_ids = ["sha256:" + hashlib.sha256(t).hexdigest() for t in layers]
    config = json.dumps({
        "architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": [{"created_by": c} for c in created_by],
    }).encode()
    config_name = hashlib.sha256(config).hexdigest() + ".json"
    with tarfile.open(path, "w") as tf:
        files = {config_name: config}
        files.update({f"l{i}/layer.tar": t for i, t in enumerate(layers)})
        files["manifest.json"] = json.dumps([{
            "Config": config_name, "RepoTags": ["waste:1"],
            "Layers": [f"l{i}/layer.tar" for i in range(len(layers))]}]).encode()
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def loaded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    base = _tar([("bin", None), ("bin/sh", b"s" * 1000), ("etc", None),
                 ("etc/conf", b"c" * 100)])
    add = _tar([("tmp", None), ("tmp/big", b"\0" * MIB), ("etc", None),
                ("etc/conf", b"C" * 50)])
    remove = _tar([("tmp", None), ("tmp/.wh.big", b""), ("etc", None),
                   ("etc/.wh..wh..opq", b""), ("etc/new", b"n" * 5)])
    archive = docker_archive(tmp_path / "img.tar", [base, add, remove],
                             ["ADD rootfs /", "RUN fetch big", "RUN rm -rf /tmp/big"])
    root = tmp_path / "root"
    assert main(["--root", str(root), "--runroot", str(tmp_path / "run"),
                 "--storage-driver", "vfs", "load", "-i", str(archive)]) == 0
    capsys.readouterr()
    return root


def analyze(root: Path, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["--root", str(root), "--runroot", str(root / "run"), "--storage-driver",
                 "vfs", "image", "analyze", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_analyze_a_loaded_image(loaded: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = analyze(loaded, capsys, "--format", "json", "waste:1")
    assert (code, err) == (0, "")
    data = json.loads(out)
    wasted = MIB + 100 + 50  # /tmp/big deleted; /etc/conf overwritten, then hidden (opaque)
    assert (data["wastedBytes"], data["totalBytes"]) == (wasted, 1100 + MIB + 50 + 5)
    assert data["efficiency"] == round(1 - wasted / data["totalBytes"], 6)
    assert [(la["sizeBytes"], la["added"], la["changed"], la["removed"], la["wastedBytes"],
             la["createdBy"]) for la in data["layers"]] == [
        (1100, 2, 0, 0, 100, "ADD rootfs /"),
        (MIB + 50, 1, 1, 0, MIB + 50, "RUN fetch big"),
        (5, 1, 0, 2, 0, "RUN rm -rf /tmp/big")]
    assert data["wastedPaths"] == [{"path": "/tmp/big", "sizeBytes": MIB, "count": 1},
                                   {"path": "/etc/conf", "sizeBytes": 150, "count": 2}]
    code, out, _ = analyze(loaded, capsys, "waste:1")
    lines = out.splitlines()
    assert lines[2].split() == ["LAYER", "SIZE", "ADDED", "CHANGED", "REMOVED", "WASTED",
                                "CREATED", "BY"]
    assert lines[4].split() == ["2", "1.05MB", "1", "1", "0", "1.05MB", "RUN", "fetch", "big"]
    assert f"Wasted space:  1.05MB ({wasted} bytes)" in lines
    assert lines[-2:] == ["1.05MB   1        /tmp/big", "150B     2        /etc/conf"]


def test_fail_under_gates_on_the_efficiency(loaded: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    # 1005 of 1049731 bytes are not wasted: 0.0957 %
    assert analyze(loaded, capsys, "--fail-under", "0.09", "waste:1")[0] == 0
    code, _, err = analyze(loaded, capsys, "--fail-under", "0.1", "waste:1")
    assert (code, err) == (1, "efficiency 0.096 % is below 0.1 %\n")
    code, _, err = analyze(loaded, capsys, "--fail-under", "200", "waste:1")
    assert code == 125 and "percentage out of range 0-100" in err
    code, _, err = analyze(loaded, capsys, "nosuch")
    assert code == 125 and err == "Error response from daemon: No such image: nosuch\n"
