"""Helpers for :mod:`cargohold.builder.instructions`: instruction flags (BuildKit's BFlags),
``RUN --mount`` specs, Go durations and "did you mean" suggestions."""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterable

import msgspec

from cargohold.errors import InvalidArgument


class ParseError(InvalidArgument):
    """An instruction error not yet located; instructions.py adds file and line."""


# -- suggestions ------------------------------------------------------------------------------


def levenshtein(a: str, b: str) -> int:
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def closest(value: str, options: Iterable[str], case_sensitive: bool) -> str | None:
    """The option within edit distance 2 of ``value`` (BuildKit's suggest.Search)."""
    val = value if case_sensitive else value.lower()
    best, best_dist = None, 3
    for option in options:
        opt = option if case_sensitive else option.lower()
        if opt == val:
            return None
        dist = levenshtein(val, opt)
        if dist < best_dist:
            best, best_dist = opt, dist
    if best is None or case_sensitive:
        return best
    if value == value.lower():
        return best.lower()
    if value == value.upper():
        return best.upper()
    return best


def suggest(message: str, value: str, options: Iterable[str], case_sensitive: bool) -> str:
    match = closest(value, options, case_sensitive)
    return f"{message} (did you mean {match}?)" if match else message


# -- flags ------------------------------------------------------------------------------------


class Flag(msgspec.Struct):

    name: str
    kind: str  # "bool" | "string" | "strings"
    value: str = ""
    values: list[str] = msgspec.field(default_factory=list)
    used: bool = False

    @property
    def is_true(self) -> bool:
        return self.value == "true"


class Flags:
    """The ``--name[=value]`` words of one instruction, checked against the known flags."""

    def __init__(self, args: Iterable[str]) -> None:
        self.args = list(args)
        self.known: dict[str, Flag] = {}

    def _add(self, name: str, kind: str, value: str) -> Flag:
        flag = Flag(name, kind, value)
        self.known[name] = flag
        return flag

    def add_bool(self, name: str, default: bool = False) -> Flag:
        return self._add(name, "bool", "true" if default else "false")

    def add_string(self, name: str, default: str = "") -> Flag:
        return self._add(name, "string", default)

    def add_strings(self, name: str) -> Flag:
        return self._add(name, "strings", "")

    def parse(self) -> None:
        for arg in self.args:
            if arg == "--":
                return
            if not arg.startswith("--"):
                raise ParseError(f"arg should start with -- : {arg}")
            flag_name, has_value, value = arg.partition("=")
            flag = self.known.get(flag_name[2:])
            if flag is None:
                raise ParseError(
                    suggest(f"unknown flag: {flag_name}", flag_name[2:], self.known, True)
                )
            if flag.used and flag.kind != "strings":
                raise ParseError(f"duplicate flag specified: {flag_name}")
            flag.used = True
            self._set(flag, flag_name, bool(has_value), value)

    @staticmethod
    def _set(flag: Flag, flag_name: str, has_value: bool, value: str) -> None:
        if flag.kind == "bool":
            if has_value and not value:
                raise ParseError(f"missing a value on flag: {flag_name}")
            if value.lower() not in ("true", "false", ""):
                raise ParseError(f"expecting boolean value for flag {flag_name}, not: {value}")
            flag.value = "false" if value.lower() == "false" else "true"
            return
        if not has_value:
            raise ParseError(f"missing a value on flag: {flag_name}")
        if flag.kind == "string":
            flag.value = value
        else:
            flag.values.append(value)


# -- Go durations -----------------------------------------------------------------------------

_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "μs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]+)")


def go_duration(text: str) -> int:
    """Parse a Go duration ("30s", "1m30s", "1.5h", "0") into nanoseconds."""
    error = ParseError(f'time: invalid duration "{text}"')
    body = text
    sign = 1
    if body[:1] in ("+", "-"):
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if body == "0":
        return 0
    if not body:
        raise error
    total = 0.0
    pos = 0
    while pos < len(body):
        match = _DURATION_PART.match(body, pos)
        if match is None or match.group(1) in ("", "."):
            raise error
        unit = _UNITS.get(match.group(2))
        if unit is None:
            raise ParseError(f'time: unknown unit "{match.group(2)}" in duration "{text}"')
        total += float(match.group(1)) * unit
        pos = match.end()
    if total > 2**63 - 1:
        raise ParseError(f'time: invalid duration "{text}"')
    return sign * round(total)


# -- RUN --mount ------------------------------------------------------------------------------

MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
SHARING_MODES = ("shared", "private", "locked")
_MOUNT_KEYS = (
    "type", "from", "source", "target", "readonly", "id", "sharing", "required", "size",
    "mode", "uid", "gid", "src", "dst", "destination", "ro", "rw", "readwrite", "env",
)  # fmt: skip
_SIZE = re.compile(r"(?i)([0-9]+(?:\.[0-9]+)?)\s*([kmgtp]?)i?b?\Z")


class Mount(msgspec.Struct, frozen=True):
    """One ``RUN --mount=...`` after validation (BuildKit's instructions.Mount)."""

    type: str = "bind"
    from_: str = ""
    source: str = ""
    target: str = ""
    readonly: bool = True
    size_limit: int = 0
    cache_id: str = ""
    sharing: str = ""
    required: bool = False
    env: str | None = None
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None


def _bool(key: str, value: str) -> bool:
    low = value.lower()
    if low in ("1", "t", "true"):
        return True
    if low in ("0", "f", "false"):
        return False
    raise ParseError(f"invalid value for {key}: {value}")


def _uint(key: str, value: str, base: int) -> int:
    try:
        number = int(value, base)
    except ValueError:
        number = -1
    if not 0 <= number < 2**32:
        raise ParseError(f"invalid value {value} for {key}")
    return number


def _ram_bytes(value: str) -> int:
    match = _SIZE.match(value.strip())
    if match is None:
        raise ParseError(f"invalid value for size: {value}")
    power = "bkmgtp".index(match.group(2).lower() or "b")
    return int(float(match.group(1)) * (1024**power))


def parse_mount(spec: str, expand: Callable[[str], str] | None) -> Mount:
    """Parse a ``--mount`` CSV spec.  Without ``expand`` (parse time), values containing
    ``$`` are only checked later, when the executor calls again with its expander."""
    try:
        fields = next(csv.reader([spec]), [])
    except csv.Error as exc:
        raise ParseError(f"failed to parse csv mounts: {exc}") from None
    values: dict[str, object] = {"type": "bind"}
    ro_auto = True
    for item in fields:
        key, has_value, value = item.partition("=")
        key = key.lower()
        if not has_value:
            ro_auto = _mount_flag(values, key, item) and ro_auto
            continue
        if expand is not None:
            value = expand(value)
        elif "$" in value:
            if key == "from" and value.index("$") != len(value) - 1:
                raise ParseError(
                    f"'{key}' doesn't support variable expansion, define alias stage instead"
                )
            continue
        if key in ("readonly", "ro", "readwrite", "rw"):
            ro_auto = False
        _mount_field(values, key, value, item)
    return _finish_mount(values, ro_auto)


def _mount_flag(values: dict[str, object], key: str, item: str) -> bool:
    """A bare word in a mount spec; returns whether readonly is still automatic."""
    if key in ("readonly", "ro"):
        values["readonly"] = True
        return False
    if key in ("readwrite", "rw"):
        values["readonly"] = False
        return False
    if key == "required":
        if values["type"] not in ("secret", "ssh"):
            raise ParseError(f"unexpected key '{key}' for mount type '{values['type']}'")
        values["required"] = True
        return True
    raise ParseError(f"invalid field '{item}' must be a key=value pair")


def _mount_field(values: dict[str, object], key: str, value: str, item: str) -> None:
    kind = values["type"]
    if key == "type":
        if value.lower() not in MOUNT_TYPES:
            raise ParseError(suggest(f'unsupported mount type "{value}"', value, MOUNT_TYPES, True))
        values["type"] = value.lower()
    elif key in ("from", "id", "env"):
        values[{"from": "from_", "id": "cache_id", "env": "env"}[key]] = value
    elif key in ("source", "src"):
        values["source"] = value
    elif key in ("target", "dst", "destination"):
        values["target"] = value
    elif key in ("readonly", "ro"):
        values["readonly"] = _bool(key, value)
    elif key in ("readwrite", "rw"):
        values["readonly"] = not _bool(key, value)
    elif key == "required" and kind in ("secret", "ssh"):
        values["required"] = _bool(key, value)
    elif key == "size" and kind == "tmpfs":
        values["size_limit"] = _ram_bytes(value)
    elif key in ("required", "size"):
        raise ParseError(f"unexpected key '{key}' for mount type '{kind}'")
    elif key == "sharing":
        if value.lower() not in SHARING_MODES:
            raise ParseError(
                suggest(f'unsupported sharing value "{value}"', value, SHARING_MODES, True)
            )
        values["sharing"] = value.lower()
    elif key in ("mode", "uid", "gid"):
        values[key] = _uint(key, value, 8 if key == "mode" else 10)
    else:
        raise ParseError(suggest(f"unexpected key '{key}' in '{item}'", key, _MOUNT_KEYS, True))


def _finish_mount(values: dict[str, object], ro_auto: bool) -> Mount:
    kind = str(values["type"])
    if kind not in ("secret", "ssh", "cache"):
        for key in ("mode", "uid", "gid"):
            if key in values:
                raise ParseError(f'{key} not allowed for "{kind}" type mounts')
    if ro_auto:
        values["readonly"] = kind not in ("cache", "tmpfs")
    if kind == "secret":
        if values.get("from_"):
            raise ParseError("secret mount should not have a from")
        if values.get("sharing"):
            raise ParseError("secret mount should not define sharing")
        if not (values.get("source") or values.get("target") or values.get("cache_id")):
            raise ParseError("invalid secret mount. one of source, target required")
        if values.get("source") and values.get("cache_id"):
            raise ParseError("both source and id can't be set")
    if values.get("sharing") and kind != "cache":
        raise ParseError(f"invalid cache sharing set for {kind} mount")
    return Mount(**values)  # type: ignore[arg-type]
