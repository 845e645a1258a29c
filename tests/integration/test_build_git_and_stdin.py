"""``build`` from git URLs (git daemon and git's dumb HTTP protocol on 127.0.0.1) and with
``-f -`` (the Dockerfile on stdin), on the real store with a busybox base image.

The ``env`` fixture (own --root/--runroot, busybox:test, unmount + remove afterwards) comes from
test_build.py; the servers here are stopped by their fixtures whatever the test's outcome.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import test_build
from test_build import Env, _mounts_under

env = test_build.env  # the fixture: own --root/--runroot with busybox:test, removed afterwards

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs the git binary")

CLONE_ERROR = "unable to prepare context: unable to 'git clone' to temporary context directory: "


def _git(cwd: Path, *args: str) -> str:
    git_env = dict(
        os.environ,
        GIT_AUTHOR_NAME="t",
        GIT_AUTHOR_EMAIL="t@t",
        GIT_COMMITTER_NAME="t",
        GIT_COMMITTER_EMAIL="t@t",
        GIT_CONFIG_NOSYSTEM="1",
        HOME=str(cwd),
    )
    out = subprocess.run(
        ["git", *args], cwd=cwd, env=git_env, check=True, capture_output=True, text=True, timeout=60
    )
    return out.stdout.strip()


@pytest.fixture
def served(tmp_path: Path) -> Path:
    """``<tmp>/srv/repo.git``, a bare repository: on main a Dockerfile at the top and one in
    sub/; branch ``feature`` changes sub/; tag ``v1`` is main's commit."""
    work = tmp_path / "work"
    work.mkdir()
    _git(work, "init", "-q", "-b", "main")
    (work / "Dockerfile").write_text("FROM busybox:test\nCOPY . /ctx/\n")
    (work / "top.txt").write_text("top of main\n")
    (work / "sub").mkdir()
    (work / "sub" / "Dockerfile").write_text("FROM busybox:test\nCOPY file.txt /file\n")
    (work / "sub" / "file.txt").write_text("sub on main\n")
    _git(work, "add", ".")
    _git(work, "commit", "-q", "-m", "main")
    _git(work, "tag", "v1")
    _git(work, "checkout", "-q", "-b", "feature")
    (work / "sub" / "file.txt").write_text("sub on feature\n")
    _git(work, "commit", "-q", "-am", "feature")
    _git(work, "checkout", "-q", "main")
    srv = tmp_path / "srv"
    srv.mkdir()
    _git(srv, "clone", "-q", "--bare", str(work), "repo.git")
    _git(srv / "repo.git", "update-server-info")  # for the dumb HTTP protocol
    return srv


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"git daemon exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("git daemon did not start listening")


@pytest.fixture
def git_daemon(served: Path) -> Iterator[str]:
    """``git://127.0.0.1:PORT`` serving ``served``; the daemon is killed afterwards."""
    port = _free_port()
    proc = subprocess.Popen(
        [
            "git",
            "daemon",
            "--reuseaddr",
            f"--base-path={served}",
            "--export-all",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(served),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_listening(port, proc)
        yield f"git://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def dumb_http(served: Path) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` serving ``served`` as static files (git's dumb protocol)."""
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _contexts_left(env: Env) -> list[str]:
    d = env.root / "buildcache" / "contexts"
    return os.listdir(d) if d.exists() else []


def test_git_daemon_branch_subdir_and_tag(env: Env, git_daemon: str) -> None:
    r = env.ch("build", "-t", "git:feature", f"{git_daemon}/repo.git#feature:sub")
    assert r.returncode == 0, r.stderr
    assert env.run_in("git:feature", "cat", "/file") == "sub on feature\n"
    r = env.ch("build", "-q", "-t", "git:v1", f"{git_daemon}/repo.git#v1:sub")
    assert r.returncode == 0, r.stderr
    assert env.run_in("git:v1", "cat", "/file") == "sub on main\n"
    assert _contexts_left(env) == []
    assert env.rw_layers() == [] and _mounts_under(env.root) == []


def test_dumb_http_default_branch_without_git_dir(env: Env, dumb_http: str) -> None:
    r = env.ch("build", "-t", "git:http", f"{dumb_http}/repo.git")
    assert r.returncode == 0, r.stderr
    assert env.run_in("git:http", "cat", "/ctx/top.txt") == "top of main\n"
    listing = env.run_in("git:http", "ls", "-a", "/ctx").split()
    assert sorted(listing) == [".", "..", "Dockerfile", "sub", "top.txt"]  # no .git
    r = env.ch("build", "-q", "-t", "git:http-feature", f"{dumb_http}/repo.git#feature:sub")
    assert r.returncode == 0, r.stderr
    assert env.run_in("git:http-feature", "cat", "/file") == "sub on feature\n"
    assert _contexts_left(env) == []


def test_missing_ref_fails_and_leaves_nothing(env: Env, git_daemon: str) -> None:
    r = env.ch("build", "-t", "git:nope", f"{git_daemon}/repo.git#nope")
    assert r.returncode == 1
    assert f"{CLONE_ERROR}fatal: Remote branch nope not found in upstream origin" in r.stderr, (
        r.stderr
    )
    assert _contexts_left(env) == []
    assert env.ch("inspect", "git:nope").returncode != 0


def test_subdir_outside_the_clone_refused(env: Env, git_daemon: str) -> None:
    r = env.ch("build", f"{git_daemon}/repo.git#main:../srv")
    assert r.returncode == 1
    assert f'{CLONE_ERROR}error setting git context, "../srv" not within git root' in r.stderr
    r = env.ch("build", f"{git_daemon}/repo.git#main:absent")
    assert r.returncode == 1
    assert "error setting git context, no such directory: absent" in r.stderr
    assert _contexts_left(env) == []


def test_dockerfile_from_stdin(env: Env) -> None:
    (env.ctx / "data.txt").write_text("from the context\n")
    env.dockerfile("FROM busybox:test\nRUN false\n")  # not the one used
    r = env.ch(
        "build",
        "-f",
        "-",
        "-t",
        "stdin-df:1",
        str(env.ctx),
        stdin=b"FROM busybox:test\nCOPY data.txt /data.txt\n",
    )
    assert r.returncode == 0, r.stderr
    assert env.run_in("stdin-df:1", "cat", "/data.txt") == "from the context\n"


def test_dockerfile_from_stdin_with_git_context(env: Env, git_daemon: str) -> None:
    r = env.ch(
        "build",
        "-f",
        "-",
        "-t",
        "stdin-git:1",
        f"{git_daemon}/repo.git#feature",
        stdin=b"FROM busybox:test\nCOPY sub/file.txt /f\n",
    )
    assert r.returncode == 0, r.stderr
    assert env.run_in("stdin-git:1", "cat", "/f") == "sub on feature\n"


def test_stdin_for_both_refused(env: Env) -> None:
    r = env.ch("build", "-f", "-", "-", stdin=b"FROM busybox:test\n")
    assert r.returncode == 1
    assert "invalid argument: can't use stdin for both build context and dockerfile" in r.stderr
