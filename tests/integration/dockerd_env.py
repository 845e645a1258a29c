"""A private Docker daemon (docker.io's dockerd) for the interop and differential tests.

It gets its own data root, exec root, pid file and socket under a short temp dir, no bridge, no
iptables, no IP forwarding and containerd namespaces of its own, so nothing on the host (or a
dockerd already running) is touched; stopping it unmounts and removes everything it made.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def docker_cli() -> str | None:
    """docker.io's own client (the daemon's version) when installed, else any ``docker``."""
    return shutil.which("docker", path="/usr/bin") or shutil.which("docker")


@contextlib.contextmanager
def private_dockerd(storage_driver: str = "vfs", skip_if_down: bool = True) -> Iterator[
        dict[str, str]]:
    """The environment (``DOCKER_HOST``) of a private dockerd, stopped and removed afterwards.

    Skips when docker.io is not installed; a daemon that does not come up skips too, or fails
    the test when ``skip_if_down`` is False."""
    if shutil.which("dockerd") is None or docker_cli() is None:
        pytest.skip("docker.io (dockerd) is not installed")
    base = Path(tempfile.mkdtemp(prefix="chd-", dir="/tmp"))  # unix socket paths are short
    sock = base / "docker.sock"
    (base / "daemon.json").write_text("{}")  # never the host's /etc/docker/daemon.json
    log = open(base / "dockerd.log", "wb")  # noqa: SIM115 - closed in finally
    tag = secrets.token_hex(4)  # containerd: [A-Za-z0-9]+ joined by single . _ or -
    proc = subprocess.Popen(
        ["dockerd", "--config-file", str(base / "daemon.json"), "--data-root", str(base / "data"),
         "--exec-root", str(base / "exec"), "--pidfile", str(base / "docker.pid"),
         "--host", f"unix://{sock}", "--iptables=false", "--ip-forward=false",
         "--ip-masq=false", "--bridge=none", "--storage-driver", storage_driver,
         "--containerd-namespace", f"cargohold-{tag}",
         "--containerd-plugins-namespace", f"cargohold-{tag}-plugins"],
        stdout=log, stderr=log, start_new_session=True,
    )
    env = {**os.environ, "DOCKER_HOST": f"unix://{sock}"}
    try:
        problem = _wait_until_up(proc, env, base)
        if problem is not None:
            if skip_if_down:
                pytest.skip(problem)
            raise AssertionError(problem)
        yield env
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        log.close()
        for sub in ("exec", "data"):
            subprocess.run(["umount", "-R", "-l", str(base / sub)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _wait_until_up(proc: subprocess.Popen[bytes], env: dict[str, str], base: Path) -> str | None:
    cli = docker_cli()
    assert cli is not None
    for _ in range(150):
        if proc.poll() is not None:
            break
        if subprocess.run([cli, "version"], env=env, capture_output=True).returncode == 0:
            return None
        time.sleep(0.2)
    if proc.poll() is None:
        return "dockerd did not come up within 30 s"
    return f"dockerd could not start: {(base / 'dockerd.log').read_text()[-300:]}"
