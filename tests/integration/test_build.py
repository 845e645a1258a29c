"""``build`` end to end on the real (overlay) store with runc, on a busybox base image.

Each test gets its own --root/--runroot under a temp dir; everything is unmounted and removed
afterwards.  Network traffic stays on loopback (a local http.server for ADD <url>).
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import http.server
import io
import json
import os
import secrets
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

APPLETS = ("sh", "true", "false", "cat", "echo", "mkdir", "chmod", "ls", "touch", "rm", "httpd")


def busybox_rootfs_tar(path: Path) -> Path:
    with tarfile.open(path, "w") as tf:
        tf.add("/bin/busybox", "bin/busybox")
        for applet in APPLETS:
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type = tarfile.SYMTYPE
            info.linkname = "busybox"
            tf.addfile(info)
        data = b"root:x:0:0:root:/root:/bin/sh\nweb:x:33:44:web:/var/www:/bin/sh\n"
        info = tarfile.TarInfo("etc/passwd")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
        data = b"root:x:0:\nwebgrp:x:44:\n"
        info = tarfile.TarInfo("etc/group")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    return path


class Env:
    """A private store whose default bridge (for RUN steps) has its own name and /24, so the
    host's cargohold0 is never touched; :meth:`close` removes its networks' rules and bridges,
    mounts and files."""

    def __init__(self, tmp: Path) -> None:
        from cargohold.network.store import NetworkStore

        self.tmp = tmp
        self.root = tmp / "root"
        self.run = tmp / "run"
        self.ctx = tmp / "ctx"
        self.ctx.mkdir(parents=True)
        tag = secrets.token_hex(2)
        NetworkStore(
            self.root,
            default_subnet=f"10.{250 + int(tag, 16) % 5}.{int(tag, 16) % 250}.0/24",
            default_bridge=f"chbd{tag}",
        ).ensure_defaults()

    def close(self) -> None:
        from cargohold.network.bridge import BridgeBackend
        from cargohold.network.store import NetworkStore

        store = NetworkStore(self.root)
        backend = BridgeBackend(store)
        nets = [n for n in store.all() if n.driver == "bridge"]
        for net in nets:
            with contextlib.suppress(Exception):
                backend.remove_network(net)
        for mnt in sorted(_mounts_under(self.tmp), reverse=True):
            subprocess.run(["umount", "-l", mnt], capture_output=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
        rules = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
        left = [ln for ln in rules.splitlines() if any(n.id[:12] in ln for n in nets)]
        assert not left, f"iptables rules left behind: {left}"

    def ch(self, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
        exe = Path(os.sys.executable).parent / "cargohold"  # type: ignore[attr-defined]
        cmd = [str(exe), "--root", str(self.root), "--runroot", str(self.run), *args]
        return subprocess.run(
            cmd,
            input=stdin.decode() if stdin is not None else None,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def build(self, *args: str, ctx: Path | None = None) -> subprocess.CompletedProcess[str]:
        return self.ch("build", *args, str(ctx or self.ctx))

    def dockerfile(self, text: str) -> None:
        (self.ctx / "Dockerfile").write_text(text)

    def image_id(self, name: str) -> str:
        r = self.ch("inspect", "-f", "{{.Id}}", name)
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    def config(self, name: str) -> dict:  # type: ignore[type-arg]
        r = self.ch("inspect", name)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)[0]  # type: ignore[no-any-return]

    def run_in(self, image: str, *cmd: str) -> str:
        r = self.ch("run", "--rm", "--network", "none", image, *cmd)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def layers(self) -> set[str]:
        d = self.root / "layers"
        return {n for n in os.listdir(d) if len(n) == 64} if d.exists() else set()

    def rw_layers(self) -> list[str]:
        d = self.root / "containers-rw"
        return os.listdir(d) if d.exists() else []


def _mounts_under(path: Path) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(str(path))]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    e = Env(tmp_path)
    tar = busybox_rootfs_tar(tmp_path / "busybox.tar")
    r = e.ch("import", "-c", 'CMD ["/bin/sh"]', str(tar), "busybox:test")
    assert r.returncode == 0, r.stderr
    try:
        yield e
    finally:
        e.close()


SEED = """\
FROM busybox:test
MAINTAINER this is apache image <ly>
RUN mkdir -p /var/www/html && echo installed > /installed
EXPOSE 80
ADD index.html /var/www/html/
ADD run.sh /run.sh
RUN chmod +x /run.sh
CMD ["/run.sh"]
"""


def _seed(env: Env) -> None:
    env.dockerfile(SEED)
    (env.ctx / "index.html").write_text("this is test dockerfile web\n")
    (env.ctx / "run.sh").write_text("#!/bin/sh\nexec httpd -f -p 80 -h /var/www/html\n")


def test_seed_apache_example_and_cache(env: Env) -> None:
    _seed(env)
    r = env.build("-t", "httpd:centos7")
    assert r.returncode == 0, r.stderr
    assert "[8/8] CMD" in r.stderr and "naming to docker.io/library/httpd:centos7" in r.stderr
    inspect = env.config("httpd:centos7")
    assert inspect["Author"] == "this is apache image <ly>"
    assert inspect["Config"]["Cmd"] == ["/run.sh"]
    assert inspect["Config"]["ExposedPorts"] == {"80/tcp": {}}
    assert env.run_in("httpd:centos7", "cat", "/var/www/html/index.html") == (
        "this is test dockerfile web\n"
    )
    assert "rwx" in env.run_in("httpd:centos7", "ls", "-l", "/run.sh")
    hist = env.ch("history", "--no-trunc", "--format", "{{.CreatedBy}}", "httpd:centos7").stdout
    assert '/bin/sh -c #(nop)  CMD ["/run.sh"]' in hist
    assert "/bin/sh -c chmod +x /run.sh" in hist
    first = env.image_id("httpd:centos7")
    # an unchanged rebuild: every step CACHED, same image, nothing mounted
    r = env.build("-t", "httpd:centos7")
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("CACHED") == 8
    assert env.image_id("httpd:centos7") == first
    # a changed file invalidates its step and every later one
    (env.ctx / "run.sh").write_text("#!/bin/sh\nexec httpd -f -p 8080 -h /var/www/html\n")
    r = env.build("-t", "httpd:centos7")
    assert r.returncode == 0, r.stderr
    steps = [ln for ln in r.stderr.splitlines() if "CACHED" in ln or "DONE" in ln]
    assert r.stderr.count("CACHED") == 5  # FROM, MAINTAINER, RUN, EXPOSE, ADD index.html
    assert steps
    assert env.image_id("httpd:centos7") != first
    assert env.rw_layers() == [] and _mounts_under(env.root) == []


def test_default_path_groups_and_empty_run_steps(env: Env) -> None:
    """As Docker: an imported base gets the default PATH (so ``$PATH`` expands and ``sh`` is
    found by PATH lookup), RUN as a user has its primary and /etc/group groups, and a RUN that
    changes nothing adds no layer (the /etc mount points leave no trace)."""
    env.dockerfile(
        "FROM busybox:test\nENV PATH=/opt/bin:$PATH\nRUN mkdir /out && chmod 777 /out\n"
        "USER web\nRUN busybox id > /out/id\nRUN true\nCMD sh -c 'echo $PATH'\n"
    )
    r = env.build("-t", "pathed:1")
    assert r.returncode == 0, r.stderr
    cfg = env.config("pathed:1")
    default = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    assert cfg["Config"]["Env"] == [f"PATH=/opt/bin:{default}"]
    assert env.run_in("pathed:1") == f"/opt/bin:{default}\n"
    assert env.run_in("pathed:1", "cat", "/out/id") == (
        "uid=33(web) gid=44(webgrp) groups=44(webgrp)\n")
    hist = json.loads(env.ch("history", "--no-trunc", "--format", "{{json .}}", "pathed:1")
                      .stdout.splitlines()[0])
    assert hist["CreatedBy"] == "/bin/sh -c #(nop)  CMD [\"/bin/sh\" \"-c\" \"sh -c 'echo $PATH'\"]"
    with_layers = env.ch("history", "--no-trunc", "--format", "{{.CreatedBy}}|{{.Size}}",
                         "pathed:1").stdout
    assert "/bin/sh -c true|0B" in with_layers
    # the base, mkdir /out and the id file: no layer for RUN true
    assert len(cfg["RootFS"]["Layers"]) == 3


def test_entrypoint_and_cmd(env: Env) -> None:
    env.dockerfile('FROM busybox:test\nENTRYPOINT ["/bin/echo"]\nCMD ["-n", "hi"]\n')
    r = env.build("-q", "-t", "ep:1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith("sha256:")
    cfg = env.config("ep:1")["Config"]
    assert cfg["Entrypoint"] == ["/bin/echo"] and cfg["Cmd"] == ["-n", "hi"]
    # a new ENTRYPOINT resets the inherited CMD
    env.dockerfile('FROM ep:1\nENTRYPOINT ["/bin/cat"]\n')
    assert env.build("-t", "ep:2").returncode == 0
    cfg = env.config("ep:2")["Config"]
    assert cfg["Entrypoint"] == ["/bin/cat"] and cfg["Cmd"] is None


def test_multi_stage_copy_from_and_target(env: Env) -> None:
    env.dockerfile(
        "ARG BASE=busybox:test\n"
        "FROM $BASE AS builder\n"
        "RUN mkdir /out && echo built > /out/artifact\n"
        "FROM busybox:test AS unused\n"
        "RUN false\n"
        "FROM ${BASE}\n"
        "COPY --from=builder /out/artifact /app/\n"
        "COPY --from=0 --chown=web:webgrp /out /out2\n"
    )
    r = env.build("-t", "ms:1")
    assert r.returncode == 0, r.stderr
    assert "RUN false" not in r.stderr  # the unused stage is skipped
    assert env.run_in("ms:1", "cat", "/app/artifact") == "built\n"
    assert "web" in env.run_in("ms:1", "ls", "-ln", "/out2") or "33" in env.run_in(
        "ms:1", "ls", "-ln", "/out2"
    )
    r = env.build("--target", "builder", "-t", "ms:builder")
    assert r.returncode == 0, r.stderr
    assert env.run_in("ms:builder", "cat", "/out/artifact") == "built\n"


def test_add_archive_extracted_and_url_not(env: Env, tmp_path: Path) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        data = b"from the archive\n"
        info = tarfile.TarInfo("pkg/readme.txt")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    (env.ctx / "pkg.tar.gz").write_bytes(gzip.compress(buf.getvalue()))
    served = tmp_path / "www"
    served.mkdir()
    (served / "blob.tar.gz").write_bytes(gzip.compress(buf.getvalue()))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/blob.tar.gz"
        env.dockerfile(f"FROM busybox:test\nADD pkg.tar.gz /opt/\nADD {url} /dl/\n")
        r = env.build("-t", "add:1")
        assert r.returncode == 0, r.stderr
        assert env.run_in("add:1", "cat", "/opt/pkg/readme.txt") == "from the archive\n"
        listing = env.run_in("add:1", "ls", "-l", "/dl/blob.tar.gz")
        assert listing.startswith("-rw-------")  # downloaded, not extracted
        r = env.build("-t", "add:1")
        assert r.stderr.count("CACHED") == 3  # URL revalidated by Last-Modified
    finally:
        server.shutdown()


def test_run_failure_leaves_nothing(env: Env) -> None:
    env.dockerfile("FROM busybox:test\nENV A=1\nRUN false\n")
    before = env.layers()
    r = env.build("-t", "fail:1")
    assert r.returncode == 1
    assert "Dockerfile:3: The command '/bin/sh -c false' returned a non-zero code: 1" in r.stderr
    assert env.layers() == before
    assert env.rw_layers() == [] and _mounts_under(env.root) == []
    assert env.ch("inspect", "fail:1").returncode != 0
    assert not list((env.run / "builds").iterdir()) if (env.run / "builds").exists() else True


def test_source_date_epoch_reproducible(env: Env) -> None:
    env.dockerfile('FROM busybox:test\nRUN echo data > /f && mkdir /d\nCOPY x /x\nCMD ["sh"]\n')
    (env.ctx / "x").write_text("x\n")
    ids = []
    for _ in range(2):
        r = env.build(
            "--no-cache", "--build-arg", "SOURCE_DATE_EPOCH=1700000000", "-q", "-t", "repro:1"
        )
        assert r.returncode == 0, r.stderr
        ids.append(r.stdout.strip())
    assert ids[0] == ids[1]
    assert env.config("repro:1")["Created"].startswith("2023-11-14T22:13:20")


def test_context_from_tarball_and_stdin(env: Env, tmp_path: Path) -> None:
    _seed(env)
    tarball = tmp_path / "ctx.tar"
    with tarfile.open(tarball, "w") as tf:
        for name in ("Dockerfile", "index.html", "run.sh"):
            tf.add(env.ctx / name, name)
    r = env.ch("build", "-t", "fromtar:1", str(tarball))
    assert r.returncode == 0, r.stderr
    r = env.ch(
        "build", "-q", "-t", "fromstdin:1", "-", stdin=b"FROM busybox:test\nLABEL from=stdin\n"
    )
    assert r.returncode == 0, r.stderr
    assert env.config("fromstdin:1")["Config"]["Labels"] == {"from": "stdin"}


def test_dockerignore_and_outside_context(env: Env) -> None:
    (env.ctx / "keep.txt").write_text("keep\n")
    (env.ctx / "secret.key").write_text("secret\n")
    (env.ctx / ".dockerignore").write_text("*.key\n")
    env.dockerfile("FROM busybox:test\nCOPY . /ctx/\n")
    r = env.build("-t", "ign:1")
    assert r.returncode == 0, r.stderr
    listing = env.run_in("ign:1", "ls", "/ctx")
    assert "keep.txt" in listing and "secret.key" not in listing
    env.dockerfile("FROM busybox:test\nCOPY ../x /x\n")
    r = env.build("-t", "out:1")
    assert r.returncode == 1
    assert "Dockerfile:2:" in r.stderr and "outside the build context" in r.stderr
    os.symlink("/etc/passwd", env.ctx / "link")
    env.dockerfile("FROM busybox:test\nCOPY link /x\n")
    r = env.build("-t", "out:2")
    assert r.returncode == 1  # /etc/passwd resolved inside the context: not there
    env.dockerfile("FROM busybox:test\nCOPY keep.txt secret.key /x\n")
    r = env.build("-t", "out:3")
    assert r.returncode == 1
    env.dockerfile("FROM busybox:test\nCOPY keep.txt Dockerfile /x\n")
    r = env.build("-t", "out:4")
    assert "the destination must be a directory and end with a /" in r.stderr
    assert env.rw_layers() == []


# -- COPY/ADD/WORKDIR layers written as tars (no working container) ----------------------------


def test_copy_destination_rules_on_overlay(env: Env) -> None:
    (env.ctx / "a.txt").write_text("a\n")
    (env.ctx / "b.txt").write_text("b\n")
    (env.ctx / "tree" / "sub").mkdir(parents=True)
    (env.ctx / "tree" / "sub" / "c.txt").write_text("c\n")
    os.symlink("sub/c.txt", env.ctx / "tree" / "link")
    env.dockerfile(
        "FROM busybox:test\n"
        "RUN mkdir -p /opt/app /gone/dir && touch /gone/dir/old\n"
        "RUN rm -rf /gone/dir\n"
        "COPY a.txt /opt/app\n"  # existing dir: into it
        "COPY a.txt /new/name\n"  # new path: the file
        "COPY a.txt /slash/\n"  # trailing slash: a directory
        "COPY a.txt b.txt /multi/\n"
        "COPY tree /gone/dir\n"  # deleted in a lower layer: created again, old file stays gone
        "COPY --chown=web:webgrp a.txt /owned/a.txt\n"
    )
    r = env.build("-t", "cp:1")
    assert r.returncode == 0, r.stderr
    out = env.run_in("cp:1", "sh", "-c",
                     "cat /opt/app/a.txt /new/name /slash/a.txt /multi/b.txt /gone/dir/sub/c.txt;"
                     " ls /gone/dir; ls -ln /owned/a.txt; ls -l /gone/dir/link")
    lines = out.splitlines()
    assert lines[:5] == ["a", "a", "a", "b", "c"]
    assert "old" not in out
    assert " 33 " in out and " 44 " in out
    assert "link -> sub/c.txt" in out
    assert env.rw_layers() == [] and _mounts_under(env.root) == []


def test_copy_layer_reproducible_with_source_date_epoch(env: Env) -> None:
    (env.ctx / "d").mkdir()
    (env.ctx / "d" / "f").write_text("f\n")
    env.dockerfile("FROM busybox:test\nCOPY d /srv/d\nWORKDIR /w\nCOPY d/f /w/\n")
    ids = []
    for _ in range(2):
        os.utime(env.ctx / "d" / "f", None)
        r = env.build("--no-cache", "--build-arg", "SOURCE_DATE_EPOCH=1700000000", "-q",
                      "-t", "repro:2")
        assert r.returncode == 0, r.stderr
        ids.append(r.stdout.strip())
    assert ids[0] == ids[1]


def test_workdir_only_final_stage_has_the_dir(env: Env) -> None:
    env.dockerfile("FROM busybox:test\nUSER web\nWORKDIR /srv/app\nWORKDIR /bin\n")
    r = env.build("-t", "wd:1")
    assert r.returncode == 0, r.stderr
    out = env.run_in("wd:1", "ls", "-lnd", "/srv/app")
    assert out.startswith("d") and " 33 " in out and " 44 " in out
    hist = env.ch("history", "--no-trunc", "--format", "{{.Size}} {{.CreatedBy}}", "wd:1").stdout
    assert any(ln.startswith("0B") and "WORKDIR /bin" in ln for ln in hist.splitlines())


def test_add_hostile_archive_refused(env: Env) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("evil")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc"
        tf.addfile(info)
        data = b"pwned\n"
        info = tarfile.TarInfo("evil/passwd")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    (env.ctx / "evil.tar.gz").write_bytes(gzip.compress(buf.getvalue()))
    env.dockerfile("FROM busybox:test\nADD evil.tar.gz /opt/\n")
    before = env.layers()
    r = env.build("-t", "evil:1")
    assert r.returncode == 1
    assert "Dockerfile:2:" in r.stderr and "unsafe tar entry" in r.stderr
    assert env.layers() == before and env.rw_layers() == []
    assert env.ch("inspect", "evil:1").returncode != 0


def test_builder_prune_and_system_df(env: Env) -> None:
    (env.ctx / "f").write_text("data\n" * 1000)
    env.dockerfile(
        "FROM busybox:test AS builder\n"
        "COPY f /f\n"
        "RUN cat /f /f > /big\n"
        "FROM busybox:test\n"
        "COPY --from=builder /big /big\n"
    )
    r = env.build("-t", "pr:1")
    assert r.returncode == 0, r.stderr
    row = [ln for ln in env.ch("system", "df").stdout.splitlines() if ln.startswith("Build Cache")]
    assert row and row[0].split()[2:4] == ["3", "1"]  # 3 steps cached, 1 held by pr:1
    layers = env.layers()
    r = env.ch("builder", "prune", "-f")  # dangling: the builder stage's steps
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "Deleted build cache objects:" and len(lines) == 5  # 2 keys, blank, total
    assert lines[-1].startswith("Total reclaimed space: ") and lines[-1] != (
        "Total reclaimed space: 0B")
    assert len(env.layers()) == len(layers) - 2  # the builder stage's COPY and RUN layers
    assert env.run_in("pr:1", "cat", "/big") == "data\n" * 2000
    r = env.ch("builder", "prune", "-f")
    assert r.stdout == "Total reclaimed space: 0B\n"
    r = env.ch("builder", "prune", "-a", "-f")
    assert r.returncode == 0 and r.stdout.startswith("Deleted build cache objects:")
    assert len(env.layers()) == len(layers) - 2  # pr:1 keeps its own layers
    r = env.build("-t", "pr:1")
    assert r.returncode == 0 and r.stderr.count("CACHED") == 2  # the two FROM lines only
