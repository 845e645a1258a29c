"""Signal names as Docker takes them (moby/sys/signal's map for Linux): ``KILL``, ``SIGKILL``,
``9``, ``RTMIN+3``, ``SIGRTMAX-1``."""

from __future__ import annotations

import re
import signal as _signal

from cargohold.errors import InvalidArgument

# RTMIN, RTMIN+1 .. RTMIN+15, RTMAX-14 .. RTMAX-1, RTMAX
_RT_MIN = re.compile(r"RTMIN(?:\+(\d{1,2}))?\Z")
_RT_MAX = re.compile(r"RTMAX(?:-(\d{1,2}))?\Z")


def _named(name: str) -> int | None:
    if m := _RT_MIN.match(name):
        offset = int(m.group(1) or 0)
        return int(_signal.SIGRTMIN) + offset if offset <= 15 else None
    if m := _RT_MAX.match(name):
        offset = int(m.group(1) or 0)
        return int(_signal.SIGRTMAX) - offset if offset <= 14 else None
    if name.isascii() and name.isalnum():
        try:
            return int(_signal.Signals["SIG" + name])
        except KeyError:
            return None
    return None


def parse_signal(value: str | int) -> int:
    """The number of a signal name or number; "Invalid signal: X" otherwise."""
    text = str(value).strip().upper()
    if text.isascii() and text.isdigit():
        number: int | None = int(text) if 0 < int(text) < 65 else None
    else:
        number = _named(text.removeprefix("SIG"))
    if number is None:
        raise InvalidArgument(f"Invalid signal: {value}")
    return number


def stop_signal(text: str) -> int:
    """A container's stop signal; as moby's ``Container.StopSignal``, an unparsable one (an
    image's STOPSIGNAL) falls back to SIGTERM."""
    if text:
        try:
            return parse_signal(text)
        except InvalidArgument:
            pass
    return int(_signal.SIGTERM)
