"""A private podman (its own --root, --runroot, --tmpdir and containers.conf) for interop tests.

podman 4.3 raises the nofile/nproc rlimits above this host's hard limits and then cannot start
a container ("error setting rlimit type 7"); a containers.conf with ``default_ulimits = []``
and runc as the runtime (crun fails on hybrid cgroups) makes ``podman run`` work.  It is passed
through ``CONTAINERS_CONF`` so the host's own configuration is never read or changed.  Use
``--network none`` for runs: podman's networks are configured host-wide.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

CONTAINERS_CONF = '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n'


class Podman(msgspec.Struct, frozen=True):
    argv: tuple[str, ...]  # podman and its storage flags
    env: dict[str, str]

    def __call__(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.argv, *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)


@contextlib.contextmanager
def private_podman(storage_driver: str = "vfs") -> Iterator[Podman]:
    """Skips when podman is not installed; removes its containers, images and dirs after."""
    if shutil.which("podman") is None:
        pytest.skip("podman is not installed")
    base = Path(tempfile.mkdtemp(prefix="chp-", dir="/tmp"))  # a runroot under 50 characters
    (base / "containers.conf").write_text(CONTAINERS_CONF)
    env = {k: v for k, v in os.environ.items() if k != "DOCKER_CONFIG"}
    env["CONTAINERS_CONF"] = str(base / "containers.conf")
    podman = Podman(("podman", "--root", str(base / "root"), "--runroot", str(base / "run"),
                     "--tmpdir", str(base / "tmp"), "--storage-driver", storage_driver), env)
    try:
        yield podman
    finally:
        podman("rm", "-af", timeout=60)
        podman("rmi", "-af", timeout=60)
        subprocess.run(["umount", "-R", "-l", str(base / "run")], capture_output=True)
        subprocess.run(["umount", "-R", "-l", str(base / "root")], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)
