"""``cargohold build`` against Docker 20.10's classic builder, field by field.

The same Dockerfiles and contexts are built by cargohold and by a private dockerd
(``DOCKER_BUILDKIT=0``) on the same imported busybox base; both images are saved and compared:
the config fields a Dockerfile sets, every history entry's ``created_by`` and ``empty_layer``,
and the file system the layers make (paths, types, modes, owners, link targets, contents).

Normalised on purpose: the ``file:``/``dir:``/``multi:`` digests in COPY/ADD history (bare for
a downloaded file; Docker's is a tarsum of the context tar its client wrote, ours a content
digest of names, modes and contents), and 20.10's ``--chown=appfile:`` (moby later added the
missing space; we write ``--chown=app file:``).  Each case's ``kept`` names the differences we
keep on purpose, with the reason; everything else must be equal.  Not compared because classic
refuses them: BuildKit features (``--chmod``, heredocs, RUN --mount) and ``COPY --chown=NAME``
where no group is called NAME (classic: "can't find gid for group"; we take the user's passwd
group, as BuildKit does: tests/unit/test_build_layer_tar.py).  Skipped only when docker.io is
not installed.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import io
import json
import os
import re
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from containers_env import busybox_tar
from dockerd_env import docker_cli, private_dockerd
from test_build import Env

pytestmark = pytest.mark.interop

PASSWD = (b"root:x:0:0:root:/root:/bin/sh\nweb:x:33:44:web:/var/www:/bin/sh\n"
          b"app:x:1000:1000::/home/app:/bin/sh\n")
GROUP = b"root:x:0:\nwebgrp:x:44:\nstaff:x:50:app\napp:x:1000:\n"
FIELDS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes", "Labels",
          "StopSignal", "Healthcheck", "OnBuild", "Shell")

WORKDIR_OWNER = ("WORKDIR creates a missing directory owned by USER, as BuildKit does "
                 "(classic: root)")
VOLUME_RUN = ("a RUN after VOLUME keeps what it writes there and makes no mount points, as "
              "BuildKit and the Dockerfile reference say (classic mounts the volumes: writes "
              "are dropped, the mount point directories end up in the layer)")
HEALTH_MERGE = ("HEALTHCHECK replaces the inherited one, as BuildKit and the Dockerfile reference "
                "say (classic fills unset durations and retries from the base image's)")
SETUID = ("COPY keeps setuid/setgid bits, as BuildKit does (classic's chown after the copy "
          "clears them)")


class Build(msgspec.Struct, frozen=True):
    tag: str
    dockerfile: str
    build_args: tuple[str, ...] = ()


class Case(msgspec.Struct, frozen=True):
    builds: tuple[Build, ...]  # built in order; later ones may use earlier tags
    files: dict[str, bytes] = {}
    kept: dict[str, str] = {}  # difference key -> why it is kept
    setup: str = ""  # shell run in the context directory after the files are written


def one(tag: str, dockerfile: str, **kw: Any) -> tuple[Build, ...]:
    return (Build(tag, dockerfile, **kw),)


def _tar(entries: list[tuple[str, bytes | None, dict[str, Any]]], mode: str = "w") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:  # type: ignore[call-overload]
        for name, data, attrs in entries:
            info = tarfile.TarInfo(name)
            for key, value in attrs.items():
                setattr(info, key, value)
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


ARCHIVE = _tar([("d", None, {"type": tarfile.DIRTYPE, "mode": 0o700, "uid": 3, "gid": 4}),
                ("d/f", b"in archive\n", {"mode": 0o4755, "uid": 5, "gid": 6}),
                ("d/l", None, {"type": tarfile.SYMTYPE, "linkname": "f", "uid": 5, "gid": 6}),
                ("top", b"top\n", {"mode": 0o640, "uid": 11, "gid": 12})])
ARCHIVE_GZ = _tar([("g/file", b"gz\n", {"uid": 7, "gid": 8})], "w:gz")
ARCHIVE_XZ = _tar([("x/file", b"xz\n", {"mode": 0o600})], "w:xz")

CASES: dict[str, Case] = {
    "env_and_args": Case(one("diff/env", """\
FROM base
ENV A=1 B="two words" C=${A}x D=${UNSET:-def} E=${A:+alt} F='$A' G="\\$A"
ENV H $A and more
ARG X=fromarg
ARG Y
ARG Z
ENV I=$X J=${Y:-noy} Z=envwins
RUN echo "$I $J $X $Y $Z" > /out
ARG X=again
RUN echo "$X" > /out2
""", build_args=("Y=cli", "Z=hidden"))),
    "default_path": Case(one("diff/path", """\
FROM base
ENV PATH=/opt/bin:$PATH
RUN echo "$PATH" > /path
CMD ["sh", "-c", "echo $PATH"]
""")),
    "scratch": Case(one("diff/scratch", """\
FROM scratch
COPY f /
ENV PATH=/x:$PATH
CMD ["/f"]
"""), files={"f": b"f\n"}),
    "user_and_groups": Case(one("diff/user", """\
FROM base
USER app
RUN id > /tmp/id1
USER 1000:50
RUN id > /tmp/id2
USER root:staff
RUN id > /tmp/id3
USER web
RUN id > /tmp/id4
USER app:app
""")),
    "workdir": Case(one("diff/workdir", """\
FROM base
WORKDIR /a
WORKDIR b
WORKDIR ../c/./d
WORKDIR /tmp
ENV DIR=/e
WORKDIR $DIR/f
RUN pwd > /pwd
USER app
WORKDIR /home/app/src
RUN pwd > /tmp/pwd2
WORKDIR /a
""", ), kept={"fs:home": WORKDIR_OWNER, "fs:home/app": WORKDIR_OWNER,
              "fs:home/app/src": WORKDIR_OWNER}),
    "copy_chown_and_forms": Case(one("diff/copy", """\
FROM base
WORKDIR /app
COPY --chown=app f1 /f1
COPY --chown=1000:50 f1 /f2
COPY --chown=app:staff dir /dir1/
COPY --chown=7:8 f1 /newdir/sub/f4
COPY --chown=app dir /made/for/app/
COPY f1 .
COPY f1 rel/
COPY f* /glob/
COPY f1 f2 /multi/
COPY dir/ /dir3
COPY lnk /lnk-copied
COPY empty /empty
COPY hard1 hard2 /hard/
COPY . /all/
"""), files={"f1": b"one\n", "f2": b"two\n", "dir/a": b"three\n", "dir/sub/b": b"four\n",
             "hard1": b"h\n", ".dockerignore": b"Dockerfile\n*.ign\n", "a.ign": b"ignored\n"},
        setup="chmod 700 dir/sub && chmod 640 dir/a && ln -s a dir/lnk && ln -s f1 lnk && "
              "mkdir empty && ln hard1 hard2 && chmod 4755 f2",
        kept={"fs:all/f2": SETUID, "fs:glob/f2": SETUID, "fs:multi/f2": SETUID}),
    "copy_into_existing_and_new_dirs": Case(one("diff/copyinto", """\
FROM base
RUN mkdir -p /d/sub /real && echo old > /d/sub/f && chmod 700 /d && chown 1000:1000 /d/sub && \\
    ln -s /real /linkdir && ln -s real /rel
COPY d /d
COPY d /e/
COPY --chown=app d /owned/by/app/
RUN rm -rf /d && echo file > /d
COPY d /d2
COPY f /linkdir/
COPY f /rel/g
COPY d /linkdir/sub/
COPY f /newfile
COPY g /newfile
RUN chmod 600 /newfile
COPY f /newfile
"""), files={"d/sub/f": b"new\n", "d/n": b"n2\n", "f": b"f\n", "g": b"g\n"},
        setup="chmod 750 d && chmod 755 g"),
    "dockerignore_exceptions": Case(one("diff/ignore", "FROM base\nCOPY . /ctx/\n"),
                                    files={"keep/a": b"1\n", "skip/b": b"2\n",
                                           "skip/sub/c": b"3\n", "x.log": b"4\n",
                                           "y.log": b"5\n",
                                           ".dockerignore": b"skip\n!skip/sub\n*.log\n!y.log\n"},
                                    setup="chmod 700 skip"),
    "exec_forms_and_quoting": Case(one("diff/exec", """\
FROM base
ARG A="a b"
RUN ["echo", "hi there"]
RUN ["sh", "-c", "echo $A > /a"]
ENV X= Y=""
ENV PATHX $PATH:/extra
ENV ONE two three
ENV ESC=a\\ b QUOTED="a \\"q\\" b" DOLLAR=\\$HOME
RUN echo "$ESC|$QUOTED|$DOLLAR" > /e
SHELL ["/bin/sh", "-xc"]
RUN ["echo", "json"]
CMD ["echo", "é", "tab\\there", "quote\\"q", "back\\\\slash", "<>&"]
ENTRYPOINT ["/bin/sh", "-c"]
LABEL "com.example.key"="v" empty= 'single'='s q'
HEALTHCHECK --start-period=3s CMD ["true"]
""")),
    "numeric_users": Case(one("diff/usernum", """\
FROM base
USER 4242
RUN id > /tmp/id && touch /tmp/owned
USER 4242:4343
RUN id > /tmp/id2
USER root
WORKDIR rel
""")),
    "scratch_stage": Case(one("diff/scratchstage", """\
FROM scratch AS files
COPY f /in/f
FROM base
COPY --from=files /in /out
COPY --from=files / /all/
"""), files={"f": b"f\n"}),
    "add_archives": Case(one("diff/add", """\
FROM base
ADD arch.tar /x/
ADD arch.tar.gz /y
ADD --chown=app arch.tar /z/
ADD arch.tar.xz /n/
ADD plain.txt /p/
ADD arch.tar /x/again.tar
COPY arch.tar /copied/
"""), files={"arch.tar": ARCHIVE, "arch.tar.gz": ARCHIVE_GZ, "arch.tar.xz": ARCHIVE_XZ,
             "plain.txt": b"plain\n"}),
    "add_url": Case(one("diff/url", """\
FROM base
ADD {url}/remote.txt /r1
ADD {url}/remote.txt /dir/
ADD --chown=app {url}/remote.txt /r2
""")),
    "expose": Case(one("diff/expose", """\
FROM base
EXPOSE 80
EXPOSE 443/tcp 53/udp 8080/TCP
ARG P=9000
EXPOSE $P 7000-7002/udp 80
EXPOSE 80 443/udp 8000-8002
""")),
    "volume": Case(one("diff/volume", """\
FROM base
VOLUME /data
VOLUME /a /b
VOLUME ["/c", "/d"]
VOLUME /data ["/logs"]
ENV V=/ev
VOLUME $V
RUN mkdir -p /data && echo x > /data/afterwards
"""), kept={f"fs:{p}": VOLUME_RUN for p in
            ("[", "[/logs]", "a", "b", "c", "d", "ev", "data/afterwards")}),
    "healthcheck": Case((
        Build("diff/hc1", 'FROM base\nHEALTHCHECK --interval=30s --timeout=10s '
                          '--start-period=1m30s --retries=5 CMD ["/bin/true", "a"]\n'),
        Build("diff/hc2", 'FROM base\nHEALTHCHECK --interval=500ms CMD echo "x y"\n'),
        Build("diff/hc3", "FROM base\nHEALTHCHECK NONE\n"),
        Build("diff/hc4", "FROM base\nHEALTHCHECK --retries=3 --timeout=1h1m1s CMD true\n"),
        Build("diff/hc5", "FROM diff/hc1\nHEALTHCHECK --interval=5s CMD true\n"),
    ), kept={"diff/hc5 config:Healthcheck": HEALTH_MERGE}),
    "onbuild": Case((
        Build("diff/onbuild", """\
FROM base
ONBUILD RUN echo built > /onbuilt
ONBUILD ENV OB=1
ONBUILD   COPY   f /f
"""),
        Build("diff/onbuild-child", "FROM diff/onbuild\nRUN cat /onbuilt\n"),
    ), files={"f": b"f\n"}),
    "shell": Case(one("diff/shell", """\
FROM base
SHELL ["/bin/sh", "-ec"]
RUN echo $0 > /s1
HEALTHCHECK --retries=3 CMD wget -q -O- http://localhost/ || exit 1
ONBUILD RUN echo x
SHELL ["/bin/echo", "pre"]
RUN hello world
CMD run this
ENTRYPOINT exec this
""")),
    "label_and_maintainer": Case(one("diff/label", """\
FROM base
LABEL a=b
LABEL "multi word"="v a l" c=d
ARG L=lv
LABEL e=$L f="${L}2" g='$L'
LABEL version=1.0 \\
      description="This text illustrates \\
that label-values can span multiple lines."
MAINTAINER someone <a@b>
""")),
    "stopsignal": Case((
        Build("diff/sig1", "FROM base\nSTOPSIGNAL SIGKILL\nSTOPSIGNAL 9\nSTOPSIGNAL USR1\n"),
        Build("diff/sig2", "FROM base\nSTOPSIGNAL SIGRTMIN+3\n"),
    )),
    "entrypoint_and_cmd": Case((
        Build("diff/entry1", 'FROM base\nCMD ["a", "b"]\nENTRYPOINT ["/bin/echo"]\n'),
        Build("diff/entry2", 'FROM base\nENTRYPOINT echo hi\nCMD ["x"]\n'
                             'ENTRYPOINT ["/bin/sh", "-c"]\n'),
        Build("diff/entry3", 'FROM diff/entry1\nENTRYPOINT ["/bin/cat"]\n'),
        Build("diff/entry4", "FROM base\nCMD []\nENTRYPOINT []\n"),
        Build("diff/entry5", 'FROM diff/entry1\nLABEL more=1\nCMD ["override"]\n'),
    )),
    "multi_stage": Case(one("diff/multi", """\
FROM base AS build
RUN mkdir -p /out/sub && echo a > /out/sub/a && chmod 700 /out/sub && \\
    chown 1000:50 /out/sub/a && ln -s sub/a /out/link
ENV INBUILD=1
FROM build AS third
RUN echo $INBUILD > /third
FROM base
COPY --from=build /out /copied
COPY --from=build /out/sub/a /file-a
COPY --from=build --chown=app /out/link /link2
COPY --from=0 /out/ /copied2/
COPY --from=third /third /
COPY --from=base /etc/passwd /etc/group /fromimage/
""")),
    "run_layers": Case(one("diff/run", """\
FROM base
RUN true
RUN rm /etc/group && mkdir -p /data/x && echo a > /data/x/a
RUN rm -rf /data && echo file > /data
RUN chmod 700 /root && chown 1000 /www
RUN ln -s /nowhere /dangling && ln /etc/passwd /etc/passwd.hard && mkfifo /fifo
RUN mkdir /opq && echo 1 > /opq/1
RUN rm -rf /opq && mkdir /opq && echo 2 > /opq/2
RUN touch /etc/x && rm /etc/x
RUN mkdir -p /etc/d && rm -rf /etc/d
RUN ls /etc > /dev/null
WORKDIR /etc
""")),
    "args_before_from": Case(one("diff/argfrom", """\
ARG TAG=latest
ARG UNUSED=1
FROM base:${TAG}
ARG TAG
USER ${TAG:-x}
ARG U=app
USER $U
STOPSIGNAL ${SIG:-SIGQUIT}
""")),
}


# -- the two builders --------------------------------------------------------------------------


class Builders:
    def __init__(self, tmp: Path, docker_env: dict[str, str]) -> None:
        self.tmp = tmp
        self.cargo = Env(tmp / "cargohold")
        self.docker_env = {**docker_env, "DOCKER_BUILDKIT": "0"}
        cli = docker_cli()
        assert cli is not None
        self.cli = cli

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([self.cli, *args], env=self.docker_env, capture_output=True,
                           text=True, timeout=300)
        if check:
            assert r.returncode == 0, f"docker {' '.join(args)}: {r.stdout}\n{r.stderr}"
        return r

    def import_base(self) -> None:
        tar = busybox_tar(self.tmp / "base.tar", {"etc/passwd": PASSWD, "etc/group": GROUP})
        r = self.cargo.ch("import", str(tar), "base:latest")
        assert r.returncode == 0, r.stderr
        self.docker("import", str(tar), "base:latest")

    def build_both(self, build: Build, ctx: Path) -> tuple[Path, Path]:
        (ctx / "Dockerfile").write_text(build.dockerfile)
        args = [a for pair in build.build_args for a in ("--build-arg", pair)]
        r = self.cargo.ch("build", "--no-cache", "--network", "none", *args, "-t", build.tag,
                          str(ctx))
        assert r.returncode == 0, f"cargohold build {build.tag}: {r.stderr}"
        self.docker("build", "--no-cache", "--network", "none", *args, "-t", build.tag,
                    str(ctx))
        ours, theirs = self.tmp / "ours.tar", self.tmp / "theirs.tar"
        r = self.cargo.ch("save", "-o", str(ours), build.tag)
        assert r.returncode == 0, r.stderr
        self.docker("save", "-o", str(theirs), build.tag)
        return ours, theirs


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A file server on 127.0.0.1 for ADD <url> (both builders download on this host)."""
    served = tmp_path_factory.mktemp("served")
    (served / "remote.txt").write_text("remote content\n")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        thread.join()


@pytest.fixture(scope="module")
def builders(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Builders]:
    with private_dockerd("overlay2", skip_if_down=False) as docker_env:
        b = Builders(tmp_path_factory.mktemp("differential"), docker_env)
        try:
            b.import_base()
            yield b
        finally:
            b.cargo.close()


# -- comparing ---------------------------------------------------------------------------------


class Image(msgspec.Struct):
    config: dict[str, Any]
    history: list[tuple[str, bool]]
    files: dict[str, dict[str, Any]]


_CHOWN_20_10 = re.compile(r"(--chown=\S+?)((?:(?:file|dir|multi):)?[0-9a-f]{64}\b)")
_HASH = re.compile(r"\b((?:file|dir|multi):)?[0-9a-f]{64}\b")


def created_by(text: str) -> str:
    return _HASH.sub(r"\1<digest>", _CHOWN_20_10.sub(r"\1 \2", text))


def load_image(path: Path) -> Image:
    with tarfile.open(path) as tf:
        manifest = json.load(_member(tf, "manifest.json"))[0]
        config = json.load(_member(tf, manifest["Config"]))
        files: dict[str, dict[str, Any]] = {}
        for layer in manifest["Layers"]:
            _apply(files, _member(tf, layer).read())
    history = [(created_by(h.get("created_by", "")), bool(h.get("empty_layer")))
               for h in config.get("history") or []]
    return Image({**config.get("config", {}), "author": config.get("author")}, history, files)


def _member(tf: tarfile.TarFile, name: str) -> io.BufferedReader:
    f = tf.extractfile(name)
    assert f is not None, name
    return f  # type: ignore[return-value]


def _apply(files: dict[str, dict[str, Any]], layer: bytes) -> None:
    with tarfile.open(fileobj=io.BytesIO(layer)) as lt:
        members = lt.getmembers()
        for m in members:  # whiteouts hide the lower layers' entries first
            name = m.name.rstrip("/").removeprefix("./")
            parent, base = os.path.split(name)
            if base == ".wh..wh..opq":
                for key in [k for k in files if k.startswith(parent + "/")]:
                    del files[key]
            elif base.startswith(".wh."):
                gone = os.path.join(parent, base[4:])
                for key in [k for k in files if k == gone or k.startswith(gone + "/")]:
                    del files[key]
        for m in members:
            name = m.name.rstrip("/").removeprefix("./")
            if os.path.basename(name).startswith(".wh."):
                continue
            if m.islnk():  # one inode: the target's metadata and content
                files[name] = dict(files.get(m.linkname.rstrip("/").removeprefix("./"), {}))
                continue
            entry: dict[str, Any] = {"type": m.type.decode(), "mode": oct(m.mode & 0o7777),
                                     "uid": m.uid, "gid": m.gid}
            if m.isreg():
                body = lt.extractfile(m)
                assert body is not None
                entry["type"] = "0"
                entry["sha256"] = hashlib.sha256(body.read()).hexdigest()[:16]
            elif m.issym():
                entry["link"] = m.linkname
            elif m.ischr() or m.isblk():
                entry["dev"] = (m.devmajor, m.devminor)
            files[name] = entry


def differences(ours: Image, theirs: Image) -> dict[str, str]:
    out: dict[str, str] = {}
    for field in (*FIELDS, "author"):
        a, b = ours.config.get(field), theirs.config.get(field)
        if field in ("WorkingDir", "User", "StopSignal", "author"):
            a, b = a or None, b or None  # Docker writes every field, "" when unset
        if a != b:
            out[f"config:{field}"] = f"cargohold {a!r}, docker {b!r}"
    for i in range(max(len(ours.history), len(theirs.history))):
        a_h = ours.history[i] if i < len(ours.history) else None
        b_h = theirs.history[i] if i < len(theirs.history) else None
        if a_h != b_h:
            out[f"history:{i}"] = f"cargohold {a_h}, docker {b_h}"
    for path in sorted(set(ours.files) | set(theirs.files)):
        if ours.files.get(path) != theirs.files.get(path):
            out[f"fs:{path}"] = f"cargohold {ours.files.get(path)}, docker {theirs.files.get(path)}"
    return out


@pytest.mark.parametrize("name", list(CASES))
def test_build_matches_docker_classic_builder(builders: Builders, url: str, name: str,
                                              tmp_path: Path) -> None:
    case = CASES[name]
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    for rel, data in case.files.items():
        (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
        (ctx / rel).write_bytes(data)
    if case.setup:
        subprocess.run(["sh", "-ec", case.setup], cwd=ctx, check=True)
    found: dict[str, str] = {}
    for build in case.builds:
        build = msgspec.structs.replace(build, dockerfile=build.dockerfile.replace("{url}", url))
        ours, theirs = builders.build_both(build, ctx)
        diffs = differences(load_image(ours), load_image(theirs))
        prefix = f"{build.tag} " if len(case.builds) > 1 else ""
        found.update({prefix + k: v for k, v in diffs.items()})
    unexplained = {k: v for k, v in found.items() if k not in case.kept}
    assert not unexplained, "\n".join(f"{k}: {v}" for k, v in unexplained.items())
