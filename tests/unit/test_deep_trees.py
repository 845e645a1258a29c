"""A tree deeper than Python's recursion limit (1,000 frames) made by a container: diff,
export, commit and removal walk it without recursing (image layers: test_archive_hostile)."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_container_ops import World

DEPTH = 1100  # below PATH_MAX with one-letter names, above the recursion limit


def make_deep(top: Path, name: str, depth: int, leaf: bytes) -> None:
    """``top/name/name/...`` (``depth`` levels) with a file ``f`` at the bottom, made with
    directory fds (as a process in the container would, ``mkdir x && cd x`` in a loop)."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(depth):
            os.mkdir(name, dir_fd=fd)
            nxt = os.open(name, os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
            os.close(fd)
            fd = nxt
        out = os.open("f", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd)
        os.write(out, leaf)
        os.close(out)
    finally:
        os.close(fd)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = World(tmp_path)
    try:
        yield w
    finally:
        w.close()
        # whatever the test left: pytest's own clean-up (shutil.rmtree) would recurse
        subprocess.run(["rm", "-rf", str(tmp_path / "root")], check=False)


def test_diff_export_commit_and_rm_of_a_deep_container_tree(world: World) -> None:
    record = world.container()
    make_deep(world.merged(record), "c", DEPTH, b"container")
    deep_file = "/".join(["c"] * DEPTH) + "/f"

    changes = world.engine.container_ops.changes(record.id)
    assert ("A", "/" + deep_file) in changes
    assert len(changes) == DEPTH + 1

    out = io.BytesIO()
    world.engine.container_ops.export(record.id, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tf:
        names = set(tf.getnames())
    assert deep_file in names and "etc/passwd" in names

    image_id = world.engine.container_ops.commit(record.id, "deep:1", pause=False)
    top = world.engine.image_store.get(image_id).top_layer
    assert top is not None
    layer_tar = io.BytesIO()
    world.engine.layers.diff_stream(top, layer_tar)
    with tarfile.open(fileobj=io.BytesIO(layer_tar.getvalue())) as tf:
        member = tf.extractfile(deep_file)
        assert member is not None and member.read() == b"container"

    [(_, error)] = world.engine.containers.remove([record.id])
    assert error is None
    assert world.engine.layers.list_rw() == []
    world.engine.images.remove("deep:1")
    assert len(world.engine.layers.list()) == 1  # the base image's
    assert os.listdir(world.engine.settings.root / "tmp") == []
