"""Docker's human-readable sizes, durations and container status words (go-units semantics).

``docker images`` / ``ps -s`` / ``history`` print sizes with ``HumanSizeWithPrecision(n, 3)``
(decimal units: ``72.8MB``, ``5.59kB``), ``docker stats`` prints memory with ``BytesSize``
(binary units, 4 significant digits: ``7.352MiB``).  Durations follow ``HumanDuration``.
"""

from __future__ import annotations

import re

from cargohold.errors import InvalidArgument

_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def _custom_size(size: float, base: float, units: tuple[str, ...], precision: int) -> str:
    i = 0
    while size >= base and i < len(units) - 1:
        size /= base
        i += 1
    return "%.*g%s" % (precision, size, units[i])  # noqa: UP031 - Go's %.*g


def human_size(size: float, precision: int = 3) -> str:
    """Decimal size as ``docker images`` prints it: ``0B``, ``5.59kB``, ``72.8MB``."""
    return _custom_size(float(size), 1000.0, _DECIMAL_UNITS, precision)


def bytes_size(size: float, precision: int = 4) -> str:
    """Binary size as ``docker stats`` prints memory: ``1KiB``, ``7.352MiB``."""
    return _custom_size(float(size), 1024.0, _BINARY_UNITS, precision)


_SIZE_RE = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_MULTIPLIERS = {"k": 1, "m": 2, "g": 3, "t": 4, "p": 5}


def _parse_size(text: str, base: int) -> int:
    m = _SIZE_RE.match(text)
    if m is None or m.group(1).count(".") > 1:
        raise InvalidArgument(f"invalid size: '{text}'")
    value = float(m.group(1))
    unit = m.group(2)
    if unit:
        value *= base ** _MULTIPLIERS[unit.lower()]
    return int(value)


def ram_in_bytes(text: str) -> int:
    """Binary size as ``-m 512m`` / ``--shm-size 64m`` accept (go-units RAMInBytes)."""
    return _parse_size(text, 1024)


def from_human_size(text: str) -> int:
    """Decimal size (go-units FromHumanSize): ``32kb`` -> 32000."""
    return _parse_size(text, 1000)


def human_duration(seconds: float) -> str:
    """go-units ``HumanDuration``: "Less than a second", "About a minute", "3 weeks", ..."""
    secs = int(seconds)
    if secs < 1:
        return "Less than a second"
    if secs == 1:
        return "1 second"
    if secs < 60:
        return f"{secs} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


_RFC3339_RE = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?"
    r"(?:([Zz])|([+-])(\d{2}):?(\d{2}))$"
)

GO_ZERO_TIME = "0001-01-01T00:00:00Z"


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 in the proleptic Gregorian calendar (no calendar import)."""
    year -= month <= 2
    era = year // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def parse_rfc3339(text: str) -> float:
    """Seconds since the epoch for an RFC 3339 time (nanosecond fractions, ``Z`` or offset)."""
    m = _RFC3339_RE.match(text.strip())
    if m is None:
        raise InvalidArgument(f"invalid timestamp: {text!r}")
    year, month, day, hour, minute, second = (int(m.group(i)) for i in range(1, 7))
    whole = _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second
    frac = float("0." + m.group(7)) if m.group(7) else 0.0
    if m.group(9):
        offset = int(m.group(10)) * 3600 + int(m.group(11)) * 60
        whole -= offset if m.group(9) == "+" else -offset
    return whole + frac


def timestamp(value: float | str | None) -> float | None:
    """A time given as epoch seconds, RFC 3339 text or nothing; Go's zero time is nothing."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        if value.startswith("0001-01-01"):
            return None
        return parse_rfc3339(value)
    return float(value)


def created_ago(created: float | str, now: float) -> str:
    """``docker images`` / ``ps`` CREATED column: "3 seconds ago", "2 weeks ago"."""
    ts = timestamp(created)
    if ts is None:
        return "N/A"
    return human_duration(now - ts) + " ago"


def status_text(
    state: str,
    *,
    exit_code: int = 0,
    started_at: float | str | None = None,
    finished_at: float | str | None = None,
    health: str | None = None,
    now: float,
) -> str:
    """The STATUS column of ``docker ps`` (moby ``State.String``).

    ``state`` is Docker's status word: created, running, paused, restarting, removing,
    exited or dead.  ``health`` is starting, healthy, unhealthy or None (no healthcheck).
    """
    started = timestamp(started_at)
    finished = timestamp(finished_at)
    if state in ("running", "paused", "restarting"):
        up = human_duration(now - started) if started is not None else "Less than a second"
        if state == "paused":
            return f"Up {up} (Paused)"
        if state == "restarting":
            since = human_duration(now - finished) if finished is not None else "Less than a second"
            return f"Restarting ({exit_code}) {since} ago"
        if health:
            word = "health: starting" if health == "starting" else health
            return f"Up {up} ({word})"
        return f"Up {up}"
    if state == "removing":
        return "Removal In Progress"
    if state == "dead":
        return "Dead"
    if started is None:
        return "Created"
    if finished is None:
        return ""
    return f"Exited ({exit_code}) {human_duration(now - finished)} ago"
