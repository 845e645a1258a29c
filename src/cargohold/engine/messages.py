"""The events the engine's request-scoped image calls report, for cli/ and api/.

Every call that streams progress (``registry.pull``/``push``/``ensure``, ``images.load``/
``import_image``, ``builds.build``) takes a sink for that one call: a callable the engine
calls with each event, from the calling thread and, for pulls, pushes and RUN output, from
worker threads (a sink must be thread-safe).  A sink, not an iterator: the events come from
several threads and from deep inside (the pull of a ``FROM`` or of ``run``), and a generator
would move the work into a thread of its own, away from the caller's Ctrl-C and ``finally``.
A failed call's last event is its error (``JSONMessage.error_detail``); then it raises.

Pull/push/load/import speak Docker's JSON messages (``JSONMessage``, encoded with
``msgspec.json.encode`` as the daemon writes them); a build reports ``BuildEvent``s plus the
JSON messages of its pulls, its ``{"aux":{"ID":...}}`` result and its error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from cargohold.errors import CargoholdError
from cargohold.transport.registry.events import (
    Aux,
    ErrorDetail,
    JSONMessage,
    MessageSink,
    ProgressDetail,
    discard,
    failure,
)

__all__ = ["Aux", "ErrorDetail", "JSONMessage", "MessageSink", "ProgressDetail", "discard",
           "reporting_errors"]



@contextmanager
def reporting_errors(sink: Callable[[JSONMessage], None]) -> Iterator[None]:
    """A failure inside ends the call's events with Docker's error message, then raises.
    (An interrupt is no error of the call: it just raises.)"""
    try:
        yield
    except CargoholdError as exc:
        sink(failure(exc.message, getattr(exc, "code", 0)))
        raise
    except OSError as exc:
        sink(failure(str(exc)))
        raise
