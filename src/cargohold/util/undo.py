"""Steps to revert when a multi-step operation fails part-way (create, start, attach)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable


class Undo:
    """Steps to revert, run in reverse order when the block fails."""

    def __init__(self) -> None:
        self.steps: list[Callable[[], object]] = []

    def add(self, step: Callable[[], object]) -> None:
        self.steps.append(step)

    def run(self) -> None:
        for step in reversed(self.steps):
            with contextlib.suppress(Exception):
                step()
        self.steps.clear()
