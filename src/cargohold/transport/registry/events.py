"""Docker's JSON progress messages (moby's ``pkg/jsonmessage``), as every image call reports.

Pull, push, load, import and the pulls of ``run``/``create``/``FROM`` hand these to the sink
the caller passed for that one call (a callable; pulls and pushes call it from their worker
threads too).  Each encodes with ``msgspec.json.encode`` to exactly what Docker's daemon
streams, field for field::

    {"status":"Pulling from library/busybox","id":"latest"}            status(..., id=tag)
    {"status":"Downloading","progressDetail":{"current":1,"total":2},
     "progress":"[=====>  ]       1B/2B","id":"0123456789ab"}           update(id, ...)
    {"stream":"Loaded image: x:1\\n"}                                    stream(...)
    {"progressDetail":{},"aux":{"Tag":"1","Digest":"sha256:..","Size":528}}
    {"errorDetail":{"code":1,"message":"..."},"error":"..."}           failure(...)

A message with ``progressDetail`` is a layer's progress update (one line per id, redrawn on a
terminal); one without it is a line of text (``id: status`` when it has an id).
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec


class ProgressDetail(msgspec.Struct, frozen=True, omit_defaults=True):
    current: int = 0
    total: int = 0


class ErrorDetail(msgspec.Struct, frozen=True, omit_defaults=True):
    code: int = 0  # build: the failed command's exit code; 0 (left out) elsewhere
    message: str = ""


class Aux(msgspec.Struct, frozen=True, omit_defaults=True):
    """A result for programs: push's ``Tag``/``Digest``/``Size``, build's ``ID``."""

    id: str = msgspec.field(default="", name="ID")
    tag: str = msgspec.field(default="", name="Tag")
    digest: str = msgspec.field(default="", name="Digest")
    size: int = msgspec.field(default=0, name="Size")


class JSONMessage(msgspec.Struct, frozen=True, omit_defaults=True):
    """One message of Docker's JSON stream (fields in the order moby writes them)."""

    stream: str = ""
    status: str = ""
    progress_detail: ProgressDetail | None = msgspec.field(default=None, name="progressDetail")
    progress: str = ""  # the rendered bar, as the daemon sends it (clients may redraw their own)
    id: str = ""
    error_detail: ErrorDetail | None = msgspec.field(default=None, name="errorDetail")
    error: str = ""
    aux: Aux | None = None

    @property
    def current(self) -> int:
        return self.progress_detail.current if self.progress_detail is not None else 0

    @property
    def total(self) -> int:
        return self.progress_detail.total if self.progress_detail is not None else 0


MessageSink = Callable[[JSONMessage], None]
_EMPTY = ProgressDetail()


def discard(message: JSONMessage) -> None:
    """The sink of a caller that shows nothing (``pull -q``)."""


def status(text: str, id: str = "") -> JSONMessage:
    """A line of text: ``Digest: ...``, ``Status: ...``; ``latest: Pulling from x`` with id."""
    return JSONMessage(status=text, id=id)


def update(id: str, action: str, current: int = 0, total: int = 0) -> JSONMessage:
    """A layer's progress (``Pulling fs layer``, ``Downloading`` with byte counts, ...)."""
    if current <= 0 and total <= 0:
        return JSONMessage(status=action, progress_detail=_EMPTY, id=id)
    return JSONMessage(status=action, progress_detail=ProgressDetail(current, total),
                       progress=progress_bar(current, total), id=id)


def stream(text: str) -> JSONMessage:
    return JSONMessage(stream=text)


def aux(value: Aux, progress: bool = False) -> JSONMessage:
    """A result: push's goes out as a progress message (``"progressDetail":{}``, as moby's
    does), build's image id alone."""
    return JSONMessage(progress_detail=_EMPTY if progress else None, aux=value)


def failure(message: str, code: int = 0) -> JSONMessage:
    """The last message of a call that failed (Docker sends the text twice, both ways)."""
    return JSONMessage(error_detail=ErrorDetail(code, message), error=message)


def human_size(n: float) -> str:
    """go-units' ``HumanSize``: four significant digits, decimal units (``1.049MB``)."""
    units = ("B", "kB", "MB", "GB", "TB", "PB")
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000
        i += 1
    return f"{n:.4g}{units[i]}"


def progress_bar(current: int, total: int) -> str:
    """``JSONProgress.String()`` as the daemon renders it (a wide line: with the bar)."""
    if total <= 0:
        return f"{human_size(current):>8}"
    filled = min(50, int(current / total * 100) // 2)
    bar = f"[{'=' * filled}>{' ' * (50 - filled)}] "
    if current > total:
        return f"{bar}{human_size(current):>8}"
    return f"{bar}{human_size(current):>8}/{human_size(total)}"


def short(digest: str) -> str:
    return digest.split(":", 1)[-1][:12]
