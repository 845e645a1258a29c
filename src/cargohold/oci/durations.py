"""Go's ``time.ParseDuration``, as Docker reads durations in image configs and filters."""

from __future__ import annotations

import re

from cargohold.errors import InvalidArgument

_GO_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
                   "m": 60_000_000_000, "h": 3_600_000_000_000}


def parse_go_duration(text: str) -> int:
    """Go's ``time.ParseDuration`` ("1m30s", "500ms") in nanoseconds."""
    if text == "0":
        return 0
    pos, total = 0, 0.0
    for m in _GO_DURATION_RE.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise InvalidArgument(f'time: invalid duration "{text}"')
    return int(total)
