"""A running container swaps a directory for a symlink to a host path, in a loop, while
``export``, ``commit --pause=false`` and ``diff`` read it (issue #10 item 7; root only).

The symlink's target is a host directory holding a marker file: whatever the timing, the
marker's name and content must never appear in an exported tar, a committed layer or the
``diff`` listing, and every command must succeed.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from containers_env import Env, container_env, needs_runtime

pytestmark = [
    pytest.mark.integration,
    needs_runtime,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
]

ROUNDS = 6


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with container_env(tmp_path_factory.mktemp("walk-races")) as e:
        yield e


@pytest.fixture
def host_marker() -> Iterator[tuple[Path, str, bytes]]:
    """A host directory the container does not have, with a uniquely named secret file."""
    base = Path(tempfile.mkdtemp(prefix="ch-host-", dir="/var/tmp"))
    name, secret = f"MARKER-{secrets.token_hex(6)}", f"HOSTSECRET-{secrets.token_hex(8)}"
    (base / name).write_text(secret)
    try:
        yield base, name, secret.encode()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def swapping_container(env: Env, target: Path) -> str:
    script = (
        "mkdir /victim && i=0 && while [ $i -lt 300 ]; do echo own > /victim/f$i; "
        "i=$((i+1)); done && touch /ready && "
        f"while true; do mv /victim /victim.d; ln -s {target} /victim; rm /victim; "
        "mv /victim.d /victim; done"
    )
    cid = env.out("run", "-d", "--network", "none", "bb", "sh", "-c", script)
    env.wait_for(lambda: env.ch("exec", cid, "test", "-e", "/ready", check=False).returncode == 0)
    return cid


def test_export_commit_and_diff_never_read_the_host(
    env: Env, host_marker: tuple[Path, str, bytes]
) -> None:
    target, name, secret = host_marker
    cid = swapping_container(env, target)
    images: list[str] = []
    try:
        for i in range(ROUNDS):
            out = subprocess.run(env.argv("export", cid), capture_output=True, timeout=120,
                                 check=False)  # fmt: skip
            assert out.returncode == 0, out.stderr
            assert secret not in out.stdout and name.encode() not in out.stdout
            assert b"victim" in out.stdout  # the walk did meet the directory

            image = f"raced:{i}"
            env.out("commit", "--pause=false", cid, image)
            images.append(image)

            changes = env.out("diff", cid)
            assert name not in changes, changes
        leaked = [str(p) for p in (env.root / "layers").glob(f"*/diff/**/{name}")]
        assert not leaked
        for layer_file in (env.root / "layers").glob("*/diff/**/f0"):
            assert layer_file.read_text() == "own\n"
    finally:
        env.ch("rm", "-f", cid, check=False)
        if images:
            env.ch("rmi", *images, check=False)
