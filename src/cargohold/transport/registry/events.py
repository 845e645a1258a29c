"""Progress events of pulls and pushes (rendered by the CLI, ignored elsewhere)."""

from __future__ import annotations

from collections.abc import Callable

import msgspec


class Event(msgspec.Struct, frozen=True):
    """One status change: ``id`` is a short layer id, or "" for a whole line of text."""

    id: str
    status: str
    current: int = 0
    total: int = 0


ProgressFn = Callable[[Event], None]


def no_progress(event: Event) -> None:
    pass


def short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]
