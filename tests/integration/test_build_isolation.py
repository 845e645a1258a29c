"""What a Dockerfile can reach on the host during ``build`` (security issue #10, items 1-5):
cache mount ids, binds of the context and of ``from=`` images, entitlements, the build cache's
own files.  Real runc on both storage drivers, busybox base image, own --root/--runroot per
test (``test_build.Env``); everything is unmounted and removed afterwards."""

from __future__ import annotations

import functools
import hashlib
import http.server
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_build
from test_build import Env, _mounts_under, busybox_rootfs_tar

env = test_build.env  # overlay store (the host's default) with busybox:test


@pytest.fixture(params=["overlay", "vfs"])
def driver_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    """An Env whose store uses the given storage driver."""
    e = Env(tmp_path)
    tar = busybox_rootfs_tar(tmp_path / "busybox.tar")
    r = e.ch("--storage-driver", request.param, "import", "-c", 'CMD ["/bin/sh"]', str(tar),
             "busybox:test")
    assert r.returncode == 0, r.stderr
    try:
        yield e
    finally:
        e.close()


def tree(path: Path) -> dict[str, tuple[int, int, bytes | str | None]]:
    """Every entry below ``path``: (mode, uid, content or link target)."""
    out: dict[str, tuple[int, int, bytes | str | None]] = {}
    for dirpath, dirs, files in os.walk(path):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                body: bytes | str | None = os.readlink(p)
            elif stat.S_ISREG(st.st_mode):
                body = Path(p).read_bytes()
            else:
                body = None
            out[os.path.relpath(p, path)] = (st.st_mode, st.st_uid, body)
    return out


def assert_clean(e: Env) -> None:
    """No working container, mount, view, staging entry or bundle left by the build."""
    assert e.rw_layers() == []
    assert _mounts_under(e.tmp) == []
    tmp = e.root / "tmp"
    assert not tmp.exists() or os.listdir(tmp) == []
    builds = e.run / "builds"
    assert not builds.exists() or os.listdir(builds) == []


def cat(e: Env, image: str, path: str) -> str:
    return e.run_in(image, "cat", path)


# -- item 1: cache mount ids are names ---------------------------------------------------------


def test_cache_mount_ids_never_reach_the_build_cache_or_host(env: Env, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o700)
    (victim / "orig").write_text("orig\n")
    os.chmod(victim, 0o700)
    before = tree(victim)
    env.dockerfile(
        "FROM busybox:test\n"
        # the old ids-as-paths: '.' was mounts/ itself, '..' the whole build cache
        f"RUN --mount=type=cache,id=.,target=/c sh -c 'ln -s {victim} /c/x; ln -s / /c/r'\n"
        "RUN --mount=type=cache,id=..,target=/c ls -A /c > /seen-dotdot\n"
        "RUN --mount=type=cache,id=../x,target=/c ls -A /c > /seen-dotdot-x\n"
        "RUN --mount=type=cache,id=x,target=/c,mode=0777,uid=1234 "
        "sh -c 'echo pwned > /c/owned; ls -A /c > /seen-x'\n"
        "RUN --mount=type=cache,id=r,target=/c ls -A /c > /seen-r\n"
    )
    r = env.build("-t", "cache:1")
    assert r.returncode == 0, r.stderr
    assert tree(victim) == before  # nothing written, chmod'ed or chown'ed on the host
    st = os.stat(victim)
    assert stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == 0
    # each id got its own empty private directory
    for seen in ("/seen-dotdot", "/seen-dotdot-x", "/seen-r"):
        assert cat(env, "cache:1", seen) == "", seen
    assert cat(env, "cache:1", "/seen-x") == "owned\n"
    # named by the hash of the id; mode= and uid= applied to that directory itself
    mounts = env.root / "buildcache" / "mounts"
    x_dir = mounts / hashlib.sha256(b"x").hexdigest()
    st = os.lstat(x_dir)
    assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o777
    assert st.st_uid == 1234
    assert all(len(n) == 64 for n in os.listdir(mounts))
    assert_clean(env)


def test_cache_mount_content_is_kept_by_id(env: Env) -> None:
    env.dockerfile("FROM busybox:test\n"
                   "RUN --mount=type=cache,target=/root/.cache sh -c 'echo $$ >> /root/.cache/n'\n"
                   "RUN --mount=type=cache,id=other,target=/root/.cache "
                   "sh -c 'ls -A /root/.cache > /other'\n")
    assert env.build("--no-cache", "-t", "keep:1").returncode == 0
    r = env.build("--no-cache", "-t", "keep:1")
    assert r.returncode == 0, r.stderr
    key = hashlib.sha256(b"/root/.cache").hexdigest()  # no id: the target, as BuildKit
    n = (env.root / "buildcache" / "mounts" / key / "n").read_text().split()
    assert len(n) == 2  # both builds wrote into the same cache
    assert cat(env, "keep:1", "/other") == ""


def test_planted_link_in_an_older_cache_is_not_followed(env: Env, tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.mkdir(mode=0o700)
    mounts = env.root / "buildcache" / "mounts"
    mounts.mkdir(parents=True)
    os.symlink(victim, mounts / hashlib.sha256(b"/c").hexdigest())
    env.dockerfile("FROM busybox:test\n"
                   "RUN --mount=type=cache,target=/c,mode=0777 sh -c 'echo x > /c/f'\n")
    r = env.build("-t", "plant:1")
    assert r.returncode == 0, r.stderr
    assert os.listdir(victim) == [] and stat.S_IMODE(os.stat(victim).st_mode) == 0o700


# -- item 2: binds of the context ------------------------------------------------------------


def _context(e: Env) -> None:
    hooks = e.ctx / ".git" / "hooks"
    hooks.mkdir(parents=True)
    (hooks / "pre-commit.sample").write_text("#!/bin/sh\n")
    (e.ctx / "keep.txt").write_text("keep\n")
    (e.ctx / "secret.key").write_text("secret\n")
    (e.ctx / "sub" / "dir").mkdir(parents=True)
    (e.ctx / "sub" / "dir" / "a.log").write_text("log\n")
    (e.ctx / "sub" / "dir" / "b.txt").write_text("b\n")
    (e.ctx / "only" / "deep").mkdir(parents=True)
    (e.ctx / "only" / "keep").write_text("k\n")
    (e.ctx / "only" / "other").write_text("o\n")
    os.chmod(e.ctx / "sub", 0o750)
    (e.ctx / ".dockerignore").write_text("*.key\n**/*.log\nonly/*\n!only/keep\n")


def test_context_bind_shows_the_transferred_context_and_discards_writes(driver_env: Env) -> None:
    env = driver_env
    _context(env)
    env.dockerfile(
        "FROM busybox:test\n"
        "RUN --mount=type=bind,target=/ctx,rw sh -c 'echo evil > /ctx/.git/hooks/pre-commit"
        " && echo x > /ctx/new && rm /ctx/keep.txt && rm -r /ctx/sub && chmod 777 /ctx'\n"
        "RUN --mount=type=bind,target=/ctx cd /ctx && busybox find . | busybox sort > /ro"
        " && ls -ld sub > /sub-mode && cat keep.txt > /keep\n"
        "RUN --mount=type=bind,target=/ctx sh -c 'echo x > /ctx/try' || echo refused > /try\n"
        "RUN --mount=type=bind,source=sub/dir,target=/d,rw sh -c 'ls -A /d > /d-list;"
        " echo y > /d/new'\n"
    )
    before = tree(env.ctx)
    r = env.build("-t", "ctx:1")
    assert r.returncode == 0, r.stderr
    assert tree(env.ctx) == before  # the user's directory is never written
    listing = cat(env, "ctx:1", "/ro").split()
    assert listing == [
        ".", "./.dockerignore", "./.git", "./.git/hooks", "./.git/hooks/pre-commit.sample",
        "./Dockerfile", "./keep.txt", "./only", "./only/keep", "./sub", "./sub/dir",
        "./sub/dir/b.txt",
    ]
    assert cat(env, "ctx:1", "/keep") == "keep\n"  # the earlier step's writes are gone
    assert cat(env, "ctx:1", "/sub-mode").startswith("drwxr-x---")
    assert cat(env, "ctx:1", "/try") == "refused\n"  # read-only stays read-only
    assert cat(env, "ctx:1", "/d-list") == "b.txt\n"
    assert_clean(env)


def test_what_a_bind_reads_is_part_of_the_step_cache_key(env: Env) -> None:
    (env.ctx / "sub").mkdir()
    (env.ctx / "sub" / "f").write_text("one\n")
    (env.ctx / "other").write_text("x\n")
    env.dockerfile("FROM busybox:test AS s\nARG V=1\nRUN echo $V > /v\n"
                   "FROM busybox:test\n"
                   "RUN --mount=type=bind,source=sub,target=/s cat /s/f > /out\n"
                   "RUN --mount=type=bind,from=s,target=/s cat /s/v > /v\n")
    assert env.build("-t", "key:1").returncode == 0
    (env.ctx / "other").write_text("y\n")  # not what the bind reads: still cached
    r = env.build("-t", "key:1")
    assert r.returncode == 0 and r.stderr.count("CACHED") == 6, r.stderr
    (env.ctx / "sub" / "f").write_text("two\n")
    r = env.build("--build-arg", "V=2", "-t", "key:1")
    assert r.returncode == 0, r.stderr
    assert cat(env, "key:1", "/out") == "two\n" and cat(env, "key:1", "/v") == "2\n"


def test_ignored_dockerfile_and_dockerignore_are_not_in_the_view(env: Env) -> None:
    (env.ctx / "a").write_text("a\n")
    (env.ctx / ".dockerignore").write_text("Dockerfile\n.dockerignore\n")
    env.dockerfile("FROM busybox:test\nRUN --mount=type=bind,target=/ctx ls -A /ctx > /l\n")
    r = env.build("-t", "ign:1")
    assert r.returncode == 0, r.stderr
    assert cat(env, "ign:1", "/l") == "a\n"


def test_failed_step_with_views_leaves_nothing(env: Env) -> None:
    _context(env)
    env.dockerfile(
        "FROM busybox:test\n"
        "RUN --mount=type=bind,target=/ctx,rw --mount=type=bind,from=busybox:test,rw,target=/b"
        " sh -c 'echo x > /ctx/f; echo y > /b/f; false'\n"
    )
    before, layers = tree(env.ctx), env.layers()
    r = env.build("-t", "fail:1")
    assert r.returncode == 1
    assert "returned a non-zero code: 1" in r.stderr
    assert tree(env.ctx) == before and env.layers() == layers
    assert_clean(env)
    # a missing mount source (here: excluded by .dockerignore) is a located error
    env.dockerfile("FROM busybox:test\nRUN --mount=type=bind,source=secret.key,target=/k true\n")
    r = env.build("-t", "fail:2")
    assert r.returncode == 1
    assert "Dockerfile:2: failed to mount secret.key: not found in the build context" in r.stderr
    assert_clean(env)


def test_interrupted_build_unmounts_its_views(env: Env) -> None:
    _context(env)
    env.dockerfile(
        "FROM busybox:test\n"
        "RUN --mount=type=bind,target=/ctx,rw --mount=type=bind,from=busybox:test,rw,target=/b"
        " --mount=type=bind,target=/r busybox sleep 60\n"
    )
    exe = Path(sys.executable).parent / "cargohold"
    proc = subprocess.Popen(
        [str(exe), "--root", str(env.root), "--runroot", str(env.run), "build", "-t", "int:1",
         str(env.ctx)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while len(_mounts_under(env.root / "tmp")) < 3:  # the three views are up
            assert time.monotonic() < deadline and proc.poll() is None, "step never started"
            time.sleep(0.05)
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0, err
    assert "interrupted" in err
    assert_clean(env)


# -- item 3: from= binds are snapshots -------------------------------------------------------


def test_from_bind_rw_is_thrown_away_on_every_driver(driver_env: Env) -> None:
    e = driver_env
    e.dockerfile(
        "FROM busybox:test AS base\n"
        "RUN echo orig > /data\n"
        "FROM busybox:test\n"
        "RUN --mount=type=bind,from=base,rw,target=/b sh -c 'echo evil > /b/data;"
        " echo new > /b/bin/new; rm /b/bin/cat'\n"
        "RUN --mount=type=bind,from=busybox:test,rw,target=/i sh -c 'echo evil > /i/bin/evil'\n"
        "RUN --mount=type=bind,from=base,target=/b sh -c 'cat /b/data > /seen;"
        " ls /b/bin > /bin-list'\n"
        "RUN --mount=type=bind,from=base,target=/b sh -c 'echo x > /b/try' || echo refused > /ro\n"
    )
    r = e.build("-t", "from:1")
    assert r.returncode == 0, r.stderr
    assert cat(e, "from:1", "/seen") == "orig\n"
    bins = cat(e, "from:1", "/bin-list").split()
    assert "cat" in bins and "new" not in bins
    assert cat(e, "from:1", "/ro") == "refused\n"
    assert "evil" not in e.run_in("busybox:test", "ls", "/bin")
    r = e.build("--target", "base", "-t", "base:1")
    assert r.returncode == 0, r.stderr
    assert cat(e, "base:1", "/data") == "orig\n"
    assert e.ch("save", "-o", str(e.tmp / "base.tar"), "base:1").returncode == 0
    assert_clean(e)


# -- mount points runc made: removed inside the rootfs, never through a planted link ---------


def _no_etc_image(e: Env) -> None:
    import tarfile

    with tarfile.open(e.tmp / "noetc.tar", "w") as tf:
        tf.add("/bin/busybox", "bin/busybox")
        info = tarfile.TarInfo("bin/sh")
        info.type, info.linkname = tarfile.SYMTYPE, "busybox"
        tf.addfile(info)
    assert e.ch("import", str(e.tmp / "noetc.tar"), "noetc:1").returncode == 0


def _last_layer_names(e: Env, image: str) -> list[str]:
    import json
    import tarfile

    out = e.tmp / "saved.tar"
    assert e.ch("save", "-o", str(out), image).returncode == 0
    with tarfile.open(out) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
        layer = tf.extractfile(manifest[0]["Layers"][-1])
        assert layer is not None
        with tarfile.open(fileobj=layer) as lt:
            return sorted(m.name for m in lt.getmembers())


def test_mount_stubs_are_removed_inside_the_rootfs(driver_env: Env, tmp_path: Path) -> None:
    e = driver_env
    _no_etc_image(e)
    host = tmp_path / "hostdir"
    host.mkdir()
    (host / "hosts").write_text("")
    (host / "resolv.conf").write_text("")
    (host / "hostname").mkdir()
    e.dockerfile(f"FROM noetc:1\nRUN busybox mv /etc /etc.old && busybox ln -s {host} /etc\n")
    r = e.build("-t", "stub:1")
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(host)) == ["hostname", "hosts", "resolv.conf"]
    e.dockerfile("FROM noetc:1\nRUN echo hi > /x\n")
    r = e.build("-t", "stub:2")
    assert r.returncode == 0, r.stderr
    assert _last_layer_names(e, "stub:2") == ["x"]  # the stubs stayed out of the layer


# -- item 4: entitlements --------------------------------------------------------------------


def _nets(e: Env, image: str) -> set[str]:
    return set(cat(e, image, "/nets").split())


def _sees_host_network(nets: set[str], before: set[str]) -> bool:
    """Every host interface that existed before and still exists is there (other tests on
    this machine add and remove bridges meanwhile), and more than lo."""
    stable = before & set(os.listdir("/sys/class/net"))
    return bool(stable - {"lo"}) and stable <= nets


def test_network_host_needs_the_entitlement(env: Env) -> None:
    host_nets = set(os.listdir("/sys/class/net"))
    assert host_nets - {"lo"}, "the host has no interface besides lo"
    env.dockerfile("FROM busybox:test\nRUN echo first > /first\n"
                   "RUN --network=host ls /sys/class/net > /nets\n")
    layers = env.layers()
    r = env.build("--network", "none", "-t", "net:1")
    assert r.returncode == 1
    assert ("ERROR: Dockerfile:3: network.host is not allowed: RUN --network=host needs "
            "'build --allow network.host'") in r.stderr
    assert "RUN echo first" not in r.stderr  # refused before any step ran
    assert env.layers() == layers
    assert_clean(env)
    r = env.build("--network", "none", "--allow", "network.host", "-t", "net:1")
    assert r.returncode == 0, r.stderr
    assert _sees_host_network(_nets(env, "net:1"), host_nets)
    r = env.build("--network", "host", "-t", "net:2")  # the command line's own grant
    assert r.returncode == 0, r.stderr
    assert _sees_host_network(_nets(env, "net:2"), host_nets)


def test_run_network_default_and_none_never_widen(env: Env) -> None:
    env.dockerfile("FROM busybox:test\nRUN --network=default ls /sys/class/net > /nets\n")
    r = env.build("--network", "none", "-t", "net:3")
    assert r.returncode == 0, r.stderr
    assert _nets(env, "net:3") == {"lo"}
    env.dockerfile("FROM busybox:test\nRUN --network=none ls /sys/class/net > /nets\n")
    r = env.build("--network", "host", "-t", "net:4")
    assert r.returncode == 0, r.stderr
    assert _nets(env, "net:4") == {"lo"}


def test_unknown_entitlement_is_an_error(env: Env) -> None:
    env.dockerfile("FROM busybox:test\n")
    r = env.build("--allow", "device.evil", "-t", "x:1")
    assert r.returncode == 1
    assert "unknown entitlement device.evil" in r.stderr


def _status(e: Env, image: str) -> dict[str, str]:
    lines = cat(e, image, "/status").splitlines()
    return dict(ln.split(":\t", 1) for ln in lines if ":\t" in ln)


def test_security_insecure_needs_the_entitlement_and_runs_privileged(env: Env) -> None:
    env.dockerfile("FROM busybox:test\nRUN --security=insecure cat /proc/self/status > /status\n"
                   "RUN cat /proc/self/status > /status-default\n")
    layers = env.layers()
    r = env.build("-t", "sec:1")
    assert r.returncode == 1
    assert ("ERROR: Dockerfile:2: security.insecure is not allowed: RUN --security=insecure "
            "needs 'build --allow security.insecure'") in r.stderr
    assert env.layers() == layers
    assert_clean(env)
    r = env.build("--allow", "security.insecure", "-t", "sec:1")
    assert r.returncode == 0, r.stderr
    privileged = _status(env, "sec:1")
    with open("/proc/self/status") as f:
        host_caps = dict(ln.split(":\t", 1) for ln in f.read().splitlines() if ":\t" in ln)
    assert privileged["CapEff"] == host_caps["CapBnd"]  # every capability the host has
    assert privileged["Seccomp"].strip() == "0"
    default = dict(ln.split(":\t", 1) for ln in
                   cat(env, "sec:1", "/status-default").splitlines() if ":\t" in ln)
    assert default["Seccomp"].strip() == "2" and default["CapEff"] != privileged["CapEff"]


# -- item 5: the build cache is root-only and out of every step's reach ------------------------


def _serve(directory: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def _modes(buildcache: Path) -> list[str]:
    """Entries of the build cache that are not root-only (a cache mount's own content is the
    step's; its directory has the mount's mode)."""
    bad = []
    mounts = buildcache / "mounts"
    for dirpath, dirs, files in os.walk(buildcache):
        if Path(dirpath).parent == mounts:
            dirs[:] = []
            continue
        for name in dirs:
            p = Path(dirpath) / name
            if p.parent != mounts and stat.S_IMODE(os.lstat(p).st_mode) != 0o700:
                bad.append(f"{p} {oct(os.lstat(p).st_mode)}")
        for name in files:
            p = Path(dirpath) / name
            if stat.S_IMODE(os.lstat(p).st_mode) != 0o600:
                bad.append(f"{p} {oct(os.lstat(p).st_mode)}")
    return bad


def test_build_cache_is_root_only_and_unreachable(env: Env, tmp_path: Path) -> None:
    www = tmp_path / "www"
    www.mkdir()
    (www / "blob.txt").write_text("blob\n")
    server, url = _serve(www)
    try:
        (env.ctx / "f").write_text("f\n")
        env.dockerfile(f"FROM busybox:test\nCOPY f /f\nADD {url}/blob.txt /blob\n"
                       "RUN --mount=type=cache,target=/c echo > /c/x\n")
        r = env.build("-t", "bc:1")
        assert r.returncode == 0, r.stderr
    finally:
        server.shutdown()
    buildcache = env.root / "buildcache"
    assert stat.S_IMODE(os.stat(buildcache).st_mode) == 0o700
    assert {"steps", "urls", "mounts", "statcache.json"} <= set(os.listdir(buildcache))
    assert _modes(buildcache) == []
    steps = sorted(p.name for p in (buildcache / "steps").rglob("*.json"))
    # a store an older version made 0755 is fixed when the build service uses it
    os.chmod(buildcache, 0o755)
    env.dockerfile(
        "FROM busybox:test\n"
        "RUN --mount=type=cache,id=..,target=/c1 --mount=type=cache,id=.,target=/c2"
        " --mount=type=bind,target=/ctx,rw --mount=type=bind,from=busybox:test,rw,target=/img"
        f" busybox find / -path /proc -prune -o -path /sys -prune -o \\( -name statcache.json"
        f" -o -name {steps[0]} -o -name '*.data' \\) -print > /found\n"
    )
    r = env.build("-t", "bc:2")
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(buildcache).st_mode) == 0o700
    assert cat(env, "bc:2", "/found") == ""
    assert_clean(env)
