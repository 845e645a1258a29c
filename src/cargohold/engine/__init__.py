"""The engine: the only surface the CLI (and later the API) calls.

``Engine`` wires the stores and services together from explicit Settings; each service is
built on first use so a command pays only for what it touches.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING

from cargohold.config import Settings

if TYPE_CHECKING:
    pass


class Engine:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def root(self) -> Settings:
        return self.settings
