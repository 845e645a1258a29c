"""No unprivileged host user reaches what a container wrote (issue #10 item 6; root only).

A container writes a file, a setuid-root busybox and a world-writable device node
into a named volume and a file into its root file system; then user ``nobody`` (65534) tries
to stat, open and execute them, an image layer's file and the container's bundle by their
host paths.  The store sits in a directory everyone may traverse, so only cargohold's own
modes stand in the way.  Then the store is put back to the modes older versions made (0755)
and the next command must close it again.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from containers_env import Env, container_env, needs_runtime

pytestmark = [
    pytest.mark.integration,
    needs_runtime,
    pytest.mark.skipif(
        os.geteuid() != 0
        or shutil.which("setpriv") is None
        or not Path("/usr/bin/python3").exists(),
        reason="needs root, setpriv (util-linux) and /usr/bin/python3",
    ),
]

# Run as nobody: for each path, what stat / open for reading / open for writing / executing
# it gives ("ok" or the errno name).
PROBE = r"""
import errno, json, os, subprocess, sys
def attempt(fn):
    try:
        got = fn()
        return got if isinstance(got, str) else "ok"
    except OSError as e:
        return errno.errorcode.get(e.errno, str(e.errno))
def run(path):
    proc = subprocess.run([path, "id", "-u"], capture_output=True, text=True, timeout=10)
    return f"ran: exit {proc.returncode}, euid {proc.stdout.strip()}"
out = {}
for path in sys.argv[1:]:
    out[path] = {
        "stat": attempt(lambda: os.stat(path)),
        "read": attempt(lambda: os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))),
        "write": attempt(lambda: os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))),
        "exec": attempt(lambda: run(path)),
    }
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    # pytest's own temp dirs are 0700: the store must live where nobody may traverse to it
    base = Path(tempfile.mkdtemp(prefix="ch-state-", dir="/var/tmp"))
    os.chmod(base, 0o755)
    try:
        with container_env(base) as e:
            yield e
    finally:
        shutil.rmtree(base, ignore_errors=True)


def as_nobody(*paths: Path) -> dict[str, dict[str, str]]:
    proc = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
         "/usr/bin/python3", "-c", PROBE, *map(str, paths)],
        capture_output=True, text=True, timeout=60, check=True, cwd="/",
    )  # fmt: skip
    result: dict[str, dict[str, str]] = json.loads(proc.stdout)
    return result


def written_by_container(env: Env) -> tuple[str, list[Path]]:
    script = (
        "echo secret > /vol/file && cp /bin/busybox /vol/busybox && chmod 4755 /vol/busybox && "
        "mknod /vol/null c 1 3 && chmod 666 /vol/null && echo secret > /rootfile && "
        "touch /ready && exec sleep 1000"
    )
    cid = env.out("run", "-d", "--network", "none", "-v", "statevol:/vol", "bb", "sh", "-c",
                  script)  # fmt: skip
    env.wait_for(lambda: env.ch("exec", cid, "test", "-e", "/ready", check=False).returncode == 0)
    data = env.root / "volumes" / "statevol" / "_data"
    rw = [p for p in (env.root / "containers-rw").glob(f"{cid}*/*/rootfile")]
    layer_files = sorted((env.root / "layers").glob("*/diff/bin/busybox"))
    bundle = env.run_root / "containers" / cid / "bundle" / "config.json"
    paths = [data / "file", data / "busybox", data / "null", *rw, *layer_files]
    paths += [env.root / "containers" / cid / "config.json"]
    paths += [bundle] if bundle.exists() else []
    assert len(rw) >= 1 and layer_files, (rw, layer_files)
    for p in paths:
        assert os.path.lexists(p), p
    assert os.stat(data / "busybox").st_mode & stat.S_ISUID
    return cid, paths


def assert_unreachable(paths: list[Path]) -> None:
    seen = as_nobody(*paths)
    for path, results in seen.items():
        assert set(results.values()) == {"EACCES"}, (path, results)


def test_nobody_cannot_reach_volume_rootfs_or_layer_files(env: Env) -> None:
    cid, paths = written_by_container(env)
    try:
        assert_unreachable(paths)
        assert stat.S_IMODE(os.stat(env.root).st_mode) == 0o710
        assert stat.S_IMODE(os.stat(env.run_root).st_mode) == 0o700
    finally:
        env.ch("rm", "-f", cid, check=False)
        env.ch("volume", "rm", "statevol", check=False)


def test_an_old_store_with_0755_modes_is_closed_by_the_next_command(env: Env) -> None:
    cid, paths = written_by_container(env)
    try:
        for path in (env.root, env.run_root, env.root / "volumes", env.root / "layers",
                     env.root / "containers-rw", env.root / "containers"):  # fmt: skip
            os.chmod(path, 0o755)
        suid = env.root / "volumes" / "statevol" / "_data" / "busybox"
        assert as_nobody(suid)[str(suid)]["stat"] == "ok"  # the old modes let nobody in
        env.out("ps", "-q")
        assert stat.S_IMODE(os.stat(env.root).st_mode) == 0o710
        assert stat.S_IMODE(os.stat(env.root / "volumes").st_mode) == 0o700
        assert stat.S_IMODE(os.stat(env.run_root).st_mode) == 0o700
        assert_unreachable(paths)
    finally:
        env.ch("rm", "-f", cid, check=False)
        env.ch("volume", "rm", "statevol", check=False)
