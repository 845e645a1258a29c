"""Named network namespaces (``/run/netns/<name>``), created before the container starts so
networking is set up before runc runs and survives until cleanup."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cargohold.errors import Internal

NETNS_DIR = Path("/run/netns")


def netns_name(container_id: str) -> str:
    return f"cargohold-{container_id[:12]}"


def create(name: str) -> Path:
    path = NETNS_DIR / name
    if path.exists():
        return path
    proc = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if proc.returncode != 0:
        raise Internal(f"cannot create network namespace {name}: {proc.stderr.strip()}")
    return path


def delete(name: str) -> None:
    """Remove the namespace (its veth ends vanish with it); no-op when already gone."""
    if not (NETNS_DIR / name).exists():
        return
    proc = subprocess.run(["ip", "netns", "del", name], capture_output=True, text=True)
    if proc.returncode != 0 and (NETNS_DIR / name).exists():
        raise Internal(f"cannot delete network namespace {name}: {proc.stderr.strip()}")
