"""Explicit settings: no module-level globals; every service receives a Settings."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

DEFAULT_ROOT = Path("/var/lib/cargohold")
DEFAULT_RUNROOT = Path("/run/cargohold")


class Settings(msgspec.Struct, frozen=True):
    root: Path = DEFAULT_ROOT
    runroot: Path = DEFAULT_RUNROOT
    runtime: str = ""  # the default OCI runtime: a name (runtime/choice.py) or a path; "" = runc
    runtimes: dict[str, str] = msgspec.field(default_factory=dict)  # name -> binary (config file)
    storage_driver: str = ""  # "" = overlay when the kernel supports it, else vfs
    compression: str = "gzip"  # gzip | zstd | none (for save/push)
    compression_level: int = 0  # 0: the algorithm's default (engine/registry.py DEFAULT_LEVELS)
    extra: dict[str, str] = msgspec.field(default_factory=dict)

    @classmethod
    def from_env(
        cls,
        root: str | None = None,
        runroot: str | None = None,
        runtime: str | None = None,
        storage_driver: str | None = None,
    ) -> Settings:
        """Command-line values win over CARGOHOLD_* environment variables over defaults."""
        env = os.environ
        return cls(
            root=Path(root or env.get("CARGOHOLD_ROOT") or DEFAULT_ROOT),
            runroot=Path(runroot or env.get("CARGOHOLD_RUNROOT") or DEFAULT_RUNROOT),
            runtime=runtime or env.get("CARGOHOLD_RUNTIME") or "",
            storage_driver=storage_driver or env.get("CARGOHOLD_STORAGE_DRIVER") or "",
        )
