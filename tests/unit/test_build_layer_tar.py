"""COPY/ADD/WORKDIR layers generated as tars (no working container) on a real vfs layer store:
destination rules, --chown by name, archives, symlinks, SOURCE_DATE_EPOCH, WORKDIR layers, and
the parent view over overlay-style diff dirs."""

from __future__ import annotations

import gzip
import io
import json
import os
import stat
import tarfile
from pathlib import Path
from typing import Any

import pytest

from cargohold.builder.context import BuildContext
from cargohold.builder.executor import Backend, BuildFailed, BuildOptions, Executor
from cargohold.builder.layer_tar import ParentView
from cargohold.builder.progress import Progress
from cargohold.store.blobs import BlobStore
from cargohold.store.drivers.base import Layout
from cargohold.store.drivers.vfs import VfsDriver
from cargohold.store.images import ImageStore
from cargohold.store.layers import LayerStore
from cargohold.transport.local import LocalStores, register_layer

ROOT = os.geteuid() == 0


def _tar(entries: list[tuple[str, str, Any]]) -> bytes:
    """(name, kind, payload) with kind file/dir/sym; files get mode 0644, dirs 0755."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_600_000_000
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, payload if payload else 0o755
                tf.addfile(info)
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, payload
                tf.addfile(info)
            else:
                data = payload.encode() if isinstance(payload, str) else payload
                info.size, info.mode = len(data), 0o644
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


BASE = [
    ("etc", "dir", 0o755),
    ("etc/passwd", "file", "root:x:0:0:root:/root:/bin/sh\nweb:x:33:44:web:/var/www:/bin/sh\n"),
    ("etc/group", "file", "root:x:0:\nwebgrp:x:44:\n"),
    ("opt", "dir", 0o750),
    ("opt/app", "dir", 0o700),
    ("run", "dir", 0o755),
    ("var", "dir", 0o755),
    ("var/run", "sym", "/run"),
    ("target", "file", "old"),
]


class Harness:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        root = tmp / "root"
        blobs = BlobStore(root)
        self.layers = LayerStore(root, VfsDriver(Layout(root)))
        self.stores = LocalStores(blobs, self.layers, ImageStore(root, blobs))
        self.base = register_layer(self.stores, io.BytesIO(_tar(BASE)), None)
        self.ctx = tmp / "ctx"
        self.ctx.mkdir()
        self.root = root

    def build(self, text: str, **opts: Any) -> tuple[dict[str, Any], str]:
        base_config = {"architecture": "amd64", "os": "linux", "config": {},
                       "rootfs": {"type": "layers", "diff_ids": [self.base.diff_id]},
                       "history": [{"created_by": "base"}]}
        backend = Backend(
            stores=self.stores, root=self.root, runroot=self.tmp / "run",
            resolve_image=lambda name: ("sha256:" + "c" * 64, json.loads(json.dumps(base_config)),
                                        self.base.chain_id),
            pull_image=lambda name: None, tag_image=lambda image_id, name: name,
            runtime=lambda: None, network_store=lambda: None,
        )
        out = io.StringIO()
        opts.setdefault("no_cache", True)
        ex = Executor(backend, BuildOptions(**opts), BuildContext(self.ctx), Progress(out))
        image_id = ex.build("FROM base\n" + text)
        record = self.stores.images.get(image_id)
        self.top = record.top_layer
        return json.loads(self.stores.blobs.read(image_id)), out.getvalue()

    def rootfs(self) -> Path:
        assert self.top is not None
        return self.layers.diff_path(self.top)  # vfs: the whole tree

    def last_tar(self) -> dict[str, tarfile.TarInfo]:
        assert self.top is not None
        buf = io.BytesIO()
        self.layers.write_tar(self.top, buf.write)
        buf.seek(0)
        with tarfile.open(fileobj=buf) as tf:
            return {m.name: m for m in tf.getmembers()}


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def test_copy_into_existing_dir_and_new_path(h: Harness) -> None:
    (h.ctx / "a.txt").write_text("a")
    (h.ctx / "dir" / "sub").mkdir(parents=True)
    (h.ctx / "dir" / "sub" / "b.txt").write_text("b")
    h.build("COPY a.txt /opt/app\nCOPY a.txt /new/name\nCOPY dir /opt/app\n")
    fs = h.rootfs()
    assert (fs / "opt/app/a.txt").read_text() == "a"  # existing dir: copied into it
    assert (fs / "new/name").read_text() == "a"  # new path: the file itself
    assert (fs / "opt/app/sub/b.txt").read_text() == "b"  # a dir source copies its contents
    assert not (fs / "opt/app/dir").exists()
    members = h.last_tar()
    # the existing parents are in the layer with the image's metadata, no working container
    assert stat.S_IMODE(members["opt"].mode) == 0o750
    assert stat.S_IMODE(members["opt/app"].mode) == 0o700
    assert list(members)[:2] == ["opt", "opt/app"]
    assert not list((h.root / "containers-rw").iterdir()) if (h.root / "containers-rw").exists() \
        else True


def test_new_directory_destinations_and_ignored_parents_as_docker(h: Harness) -> None:
    """A directory copied to a new path makes it 0755 (owned by --chown), not the source's
    mode; an exception below a directory .dockerignore excludes comes with that directory
    made 0755 and root-owned, as Docker's daemon recreates it."""
    (h.ctx / "d" / "sub").mkdir(parents=True)
    (h.ctx / "d" / "f").write_text("f")
    os.chmod(h.ctx / "d", 0o750)
    (h.ctx / "skip" / "sub").mkdir(parents=True)
    (h.ctx / "skip" / "b").write_text("b")
    (h.ctx / "skip" / "sub" / "c").write_text("c")
    os.chmod(h.ctx / "skip", 0o700)
    (h.ctx / ".dockerignore").write_text("skip\n!skip/sub\n")
    h.build("COPY d /new/\n")
    members = h.last_tar()
    assert stat.S_IMODE(members["new"].mode) == 0o755
    h.build("COPY --chown=web d /owned\n")
    members = h.last_tar()
    assert stat.S_IMODE(members["owned"].mode) == 0o755
    assert (members["owned"].uid, members["owned"].gid) == (33, 44)
    h.build("COPY . /ctx/\n")
    members = h.last_tar()
    assert "ctx/skip/b" not in members and members["ctx/skip/sub/c"].isreg()
    assert stat.S_IMODE(members["ctx/skip"].mode) == 0o755 and members["ctx/skip"].uid == 0


def test_trailing_slash_rules_and_symlinked_destination(h: Harness) -> None:
    (h.ctx / "a.txt").write_text("a")
    (h.ctx / "b.txt").write_text("b")
    h.build("COPY a.txt /x/\nCOPY a.txt /y\nCOPY a.txt b.txt /multi/\nCOPY a.txt /var/run/\n")
    fs = h.rootfs()
    assert (fs / "x/a.txt").read_text() == "a"
    assert (fs / "y").is_file()
    assert {p.name for p in (fs / "multi").iterdir()} == {"a.txt", "b.txt"}
    assert (fs / "run/a.txt").read_text() == "a"  # /var/run -> /run followed inside the image
    assert (fs / "var/run").is_symlink()
    (h.ctx / "Dockerfile").write_text("")
    with pytest.raises(BuildFailed, match="must be a directory and end with a /"):
        h.build("COPY a.txt b.txt /multi\n")


def test_chown_by_name_and_chmod(h: Harness) -> None:
    (h.ctx / "f").write_text("f")
    h.build("COPY --chown=web:webgrp --chmod=640 f /srv/f\nCOPY --chown=web f /srv/g\n")
    members = h.last_tar()
    # a user name alone brings its passwd group (BuildKit's; classic fails without a "web" group)
    assert (members["srv/g"].uid, members["srv/g"].gid) == (33, 44)
    # the first COPY created /srv owned by its --chown, as both of Docker's builders do
    assert (members["srv"].uid, members["srv"].gid) == (33, 44)
    assert stat.S_IMODE(members["srv"].mode) == 0o755
    h.build("COPY --chown=web:webgrp --chmod=640 f /srv/f\n")
    members = h.last_tar()
    assert (members["srv/f"].uid, members["srv/f"].gid) == (33, 44)
    assert stat.S_IMODE(members["srv/f"].mode) == 0o640
    with pytest.raises(BuildFailed, match="no such user"):
        h.build("COPY --chown=nobody f /srv/f\n")


def test_add_local_targz_extracted(h: Harness) -> None:
    data = _tar([("pkg", "dir", 0o755), ("pkg/readme.txt", "file", "from the archive\n"),
                 ("pkg/link", "sym", "readme.txt")])
    (h.ctx / "pkg.tar.gz").write_bytes(gzip.compress(data))
    h.build("ADD pkg.tar.gz /opt/\n")
    fs = h.rootfs()
    assert (fs / "opt/pkg/readme.txt").read_text() == "from the archive\n"
    assert os.readlink(fs / "opt/pkg/link") == "readme.txt"
    assert not (fs / "opt/pkg.tar.gz").exists()


@pytest.mark.parametrize("entries", [
    [("../escape", "file", "x")],
    [("evil", "sym", "/etc"), ("evil/passwd", "file", "pwned")],
    [("run/x", "file", "through the image's /var/run link")],  # below var/run -> /run
])
def test_hostile_archive_refused(h: Harness, entries: list[tuple[str, str, Any]]) -> None:
    (h.ctx / "bad.tar").write_bytes(_tar(entries))
    before = {ly.chain_id for ly in h.layers.list()}
    dest = "/var/" if entries[0][0] == "run/x" else "/opt/"
    with pytest.raises(BuildFailed, match=r"Dockerfile:2: .*unsafe tar entry"):
        h.build(f"ADD bad.tar {dest}\n")
    assert {ly.chain_id for ly in h.layers.list()} == before
    assert (h.layers.diff_path(h.base.chain_id) / "etc/passwd").read_text().startswith("root")


def test_symlinks_kept_and_hardlinks(h: Harness) -> None:
    (h.ctx / "d").mkdir()
    (h.ctx / "d" / "real").write_text("r")
    os.symlink("real", h.ctx / "d" / "link")
    os.symlink("/etc/passwd", h.ctx / "d" / "abs")
    os.link(h.ctx / "d" / "real", h.ctx / "d" / "zhard")
    h.build("COPY d /d\n")
    fs = h.rootfs()
    assert os.readlink(fs / "d/link") == "real" and os.readlink(fs / "d/abs") == "/etc/passwd"
    members = h.last_tar()
    assert members["d/zhard"].islnk() and members["d/zhard"].linkname == "d/real"
    assert os.stat(fs / "d/zhard").st_ino == os.stat(fs / "d/real").st_ino


def test_source_date_epoch_reproducible(h: Harness) -> None:
    (h.ctx / "f").write_text("f")
    (h.ctx / "d").mkdir()
    (h.ctx / "d" / "g").write_text("g")
    text = "COPY f /new/dir/f\nCOPY d /opt/d\nWORKDIR /w\n"
    a, _ = h.build(text, source_date_epoch=1_000_000_000)
    tar_a = h.last_tar()
    os.utime(h.ctx / "f", None)
    b, _ = h.build(text, source_date_epoch=1_000_000_000)
    assert a["rootfs"]["diff_ids"] == b["rootfs"]["diff_ids"] and a == b
    assert all(m.mtime <= 1_000_000_000 for m in tar_a.values())


def test_workdir_creates_dir_owned_by_user(h: Harness) -> None:
    config, _ = h.build("USER web\nWORKDIR /srv/www\nWORKDIR /opt\n")
    assert config["config"]["WorkingDir"] == "/opt"
    members = h.last_tar()  # the last layer is WORKDIR /srv/www's: /opt exists (config only)
    assert (members["srv/www"].uid, members["srv/www"].gid) == (33, 44)
    assert (h.rootfs() / "srv/www").is_dir()
    empty = [x.get("empty_layer", False) for x in config["history"][1:]]
    assert empty == [True, False, True]
    assert len(config["rootfs"]["diff_ids"]) == 2


def test_workdir_only_final_stage_has_the_dir(h: Harness) -> None:
    h.build("WORKDIR /app\n")
    assert (h.rootfs() / "app").is_dir()


@pytest.mark.skipif(not ROOT, reason="overlay whiteouts are 0/0 character devices (root)")
def test_parent_view_overlay_whiteouts_and_opaque(tmp_path: Path) -> None:
    low, mid, top = (tmp_path / n for n in ("low", "mid", "top"))
    for d in (low / "a", low / "o", mid / "a", top, mid / "o"):
        d.mkdir(parents=True, exist_ok=True)
    (low / "a" / "gone").write_text("x")
    (low / "o" / "hidden").write_text("x")
    (low / "a" / "kept").write_text("x")
    os.mknod(mid / "a" / "gone", stat.S_IFCHR | 0o600, 0)
    os.setxattr(mid / "o", "trusted.overlay.opaque", b"y")
    os.symlink("../a", top / "link")
    view = ParentView([str(top), str(mid), str(low)], overlay=True)
    assert view.resolve("/a/gone").st is None
    assert view.resolve("/a/kept").st is not None
    assert view.resolve("/o/hidden").st is None
    node = view.resolve("/link/kept")
    assert node.rel == "a/kept" and node.st is not None
    assert view.resolve("/link", follow_final=False).rel == "link"
