"""What a container's monitor is started with (shared by the spawner and the monitor, so
neither imports the other)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

if TYPE_CHECKING:
    from cargohold.runtime.base import OCIRuntime


class MonitorSpec(msgspec.Struct, frozen=True):
    """Everything a monitor needs; the rest comes from the container's record."""

    root: Path
    runroot: Path
    container_id: str
    runtime_binary: str = "runc"
    runtime_root: Path | None = None  # default: <runroot>/runc
    wait_for_attach: bool = False  # hold `start` until the first attach client connects

    def to_argv(self) -> list[str]:
        argv = [str(self.root), str(self.runroot), self.container_id, self.runtime_binary]
        argv.append(str(self.runtime_root or ""))
        return [*argv, "1" if self.wait_for_attach else "0"]

    @classmethod
    def from_argv(cls, argv: list[str]) -> MonitorSpec:
        root, runroot, cid, binary, rt_root, wait = argv[:6]
        return cls(
            Path(root), Path(runroot), cid, binary, Path(rt_root) if rt_root else None, wait == "1"
        )

    def runtime(self) -> OCIRuntime:
        from cargohold.runtime.runc import Runc

        return Runc(self.runtime_binary, self.runtime_root or self.runroot / "runc")

    def run_dir(self) -> Path:
        """``<runroot>/containers/<id>``: the monitor's log, lock and attach socket."""
        return self.runroot / "containers" / self.container_id
