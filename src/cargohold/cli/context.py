"""What every command receives: settings, streams and a lazily built engine."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, TextIO

import msgspec

from cargohold.config import Settings

if TYPE_CHECKING:
    from cargohold.cli.progress import ProgressPrinter
    from cargohold.engine import Engine
    from cargohold.engine.messages import JSONMessage

# The configuration file is read only when one of these says there is something to apply.
_CONFIG_FILES = ("/etc/cargohold/registries.toml", "/etc/cargohold/registries.json")
_CONFIG_ENV = ("CARGOHOLD_CONFIG", "CARGOHOLD_NETWORK_SUBNET", "CARGOHOLD_NETWORK_BRIDGE")


class Context(msgspec.Struct):
    settings: Settings
    stdout: TextIO = msgspec.field(default_factory=lambda: sys.stdout)
    stderr: TextIO = msgspec.field(default_factory=lambda: sys.stderr)
    debug: bool = False
    _engine: Engine | None = None
    _pull_printer: ProgressPrinter | None = None

    @classmethod
    def from_options(cls, opts: argparse.Namespace) -> Context:
        settings = Settings.from_env(
            root=opts.root,
            runroot=opts.runroot,
            runtime=opts.runtime,
            storage_driver=opts.storage_driver,
        )
        if any(os.environ.get(v) for v in _CONFIG_ENV) or any(
                os.path.isfile(f) for f in _CONFIG_FILES):
            from cargohold.engine import settings_file

            settings = settings_file.apply(settings)
        return cls(settings=settings, debug=bool(opts.debug))

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from cargohold.engine import Engine

            self._engine = Engine(self.settings)
        return self._engine

    @property
    def pull_printer(self) -> ProgressPrinter:
        """The sink for the pulls a command's call may start (run, create, FROM): they
        report on stderr, as Docker's CLI does ("Unable to find image 'x:latest' locally",
        the layers, "Status: ...")."""
        if self._pull_printer is None:
            from cargohold.cli.progress import ProgressPrinter

            self._pull_printer = ProgressPrinter(self.stderr)
        return self._pull_printer

    def pull_events(self, event: JSONMessage) -> None:
        """``pull_printer`` as a sink made only when a pull reports (``run`` of an image
        that is present pays nothing)."""
        self.pull_printer(event)
