"""What every command receives: settings, streams and a lazily built engine."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TextIO

from cargohold.config import Settings

if TYPE_CHECKING:
    from cargohold.engine import Engine


@dataclass
class Context:
    settings: Settings
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    debug: bool = False
    _engine: Engine | None = None

    @classmethod
    def from_options(cls, opts: argparse.Namespace) -> Context:
        settings = Settings.from_env(
            root=opts.root,
            runroot=opts.runroot,
            runtime=opts.runtime,
            storage_driver=opts.storage_driver,
        )
        return cls(settings=settings, debug=bool(opts.debug))

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from cargohold.engine import Engine

            self._engine = Engine(self.settings)
        return self._engine
