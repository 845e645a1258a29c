"""Docker's json-file log driver: the writer the monitor uses and the reader ``logs`` uses.

One JSON object per line, keys in Docker's order::

    {"log":"hi\\n","stream":"stdout","time":"2026-01-02T03:04:05.123456789Z"}

A line longer than 16 KiB is split as Docker does; the pieces lack the trailing newline.  A
partial last line (no newline before the stream closed) is written without one.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

import msgspec

from cargohold.container.model import format_time, parse_time
from cargohold.errors import InvalidArgument

MAX_MESSAGE = 16 * 1024
_GO_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_GO_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")


def encode_entry(stream: str, data: bytes, t_ns: int) -> bytes:
    """One json-file line, escaped the way Go's encoding/json escapes it."""
    text = json.dumps(data.decode("utf-8", "replace"), ensure_ascii=False)
    text = _GO_ESCAPE_RE.sub(lambda m: _GO_ESCAPES[m.group(0)], text)
    return f'{{"log":{text},"stream":"{stream}","time":"{format_time(t_ns)}"}}\n'.encode()


class JsonLogWriter:
    """Appends output of the container's streams to ``path``; one buffer per stream."""

    def __init__(self, path: Path, clock: Callable[[], int] = time.time_ns) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self._buffers: dict[str, bytes] = {}
        self._clock = clock

    def write(self, stream: str, data: bytes) -> None:
        buf = self._buffers.get(stream, b"") + data
        out: list[bytes] = []
        now = self._clock()
        while True:
            nl = buf.find(b"\n", 0, MAX_MESSAGE)
            if nl >= 0:
                out.append(encode_entry(stream, buf[: nl + 1], now))
                buf = buf[nl + 1 :]
            elif len(buf) >= MAX_MESSAGE:
                out.append(encode_entry(stream, buf[:MAX_MESSAGE], now))
                buf = buf[MAX_MESSAGE:]
            else:
                break
        self._buffers[stream] = buf
        if out:
            os.write(self._fd, b"".join(out))

    def flush(self) -> None:
        """Write partial lines (at stream end) without the newline they never had."""
        now = self._clock()
        for stream, buf in self._buffers.items():
            if buf:
                os.write(self._fd, encode_entry(stream, buf, now))
        self._buffers.clear()

    def close(self) -> None:
        if self._fd >= 0:
            self.flush()
            os.close(self._fd)
            self._fd = -1


# --------------------------------------------------------------------------- reading


class LogEntry(msgspec.Struct, frozen=True):
    stream: str  # "stdout" | "stderr"
    data: bytes
    time: int  # ns since the epoch


class LogOptions(msgspec.Struct, frozen=True):
    tail: int = -1  # -1 = all
    since: int = 0  # ns; 0 = from the start
    until: int = 0  # ns; 0 = no limit
    timestamps: bool = False
    follow: bool = False
    stdout: bool = True
    stderr: bool = True


_DURATION_RE = re.compile(r"([0-9]*\.?[0-9]+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9}
_UNITS["h"] = 3600 * 10**9


def parse_duration(text: str) -> int | None:
    """Go's time.ParseDuration ("1h30m", "10s", "-5m") in ns, or None when it is not one."""
    value = text.strip()
    sign = 1
    if value[:1] in "+-" and value:
        sign = -1 if value[0] == "-" else 1
        value = value[1:]
    if not value:
        return None
    pos, total = 0, 0.0
    for m in _DURATION_RE.finditer(value):
        if m.start() != pos:
            return None
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(value):
        return None
    return sign * int(total)


_LOCAL_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d")


def parse_timestamp(value: str, now_ns: int | None = None, option: str = "since") -> int:
    """Docker's --since/--until: RFC 3339 (tz-less = local), unix seconds[.nanos], or a
    duration relative to now ("10m" = ten minutes ago).  Returns ns since the epoch."""
    text = value.strip()
    now = time.time_ns() if now_ns is None else now_ns
    duration = parse_duration(text)
    if duration is not None and text != "0":
        return now - duration
    if re.fullmatch(r"-?[0-9]+(\.[0-9]{1,9})?", text):
        secs, _, frac = text.partition(".")
        return int(secs) * 10**9 + int((frac + "000000000")[:9])
    if "T" in text and (text.endswith(("Z", "z")) or re.search(r"[+-]\d\d:\d\d$", text)):
        try:
            return parse_time(text)
        except ValueError:
            pass
    base, _, frac = text.partition(".")
    for fmt in _LOCAL_FORMATS:
        try:
            local = datetime.strptime(base, fmt)
        except ValueError:
            continue
        frac_ns = int((frac + "000000000")[:9]) if frac.isdigit() else 0
        return int(local.timestamp()) * 10**9 + frac_ns
    raise InvalidArgument(
        f'invalid value for "{option}": failed to parse value as time or duration: "{value}"'
    )


def _decode_line(line: bytes) -> LogEntry | None:
    try:
        obj = json.loads(line)
        return LogEntry(
            str(obj.get("stream", "stdout")),
            str(obj.get("log", "")).encode(),
            parse_time(obj["time"]),
        )
    except (ValueError, KeyError, TypeError):
        return None  # a torn last line while the writer is mid-write, or garbage


def _tail_offset(f: BinaryIO, n: int) -> int:
    """Offset of the start of the last ``n`` lines of ``f``."""
    end = f.seek(0, os.SEEK_END)
    if n <= 0:
        return end
    pos, count, block = end, 0, 64 * 1024
    while pos > 0:
        size = min(block, pos)
        pos -= size
        f.seek(pos)
        chunk = f.read(size)
        # A trailing newline at the very end does not start another line.
        stop = len(chunk) - 1 if pos + size == end else len(chunk)
        idx = chunk.rfind(b"\n", 0, stop)
        while idx >= 0:
            count += 1
            if count == n:
                return pos + idx + 1
            idx = chunk.rfind(b"\n", 0, idx)
    return 0


def _select(entry: LogEntry, opts: LogOptions) -> bool:
    if entry.stream == "stdout" and not opts.stdout:
        return False
    if entry.stream == "stderr" and not opts.stderr:
        return False
    if opts.since and entry.time < opts.since:
        return False
    return not (opts.until and entry.time > opts.until)


def read_logs(
    path: Path,
    opts: LogOptions,
    is_running: Callable[[], bool] = lambda: False,
    poll: float = 0.05,
) -> Iterator[LogEntry]:
    """Entries of the log at ``path``; with ``opts.follow`` keep reading until the container
    stops (``is_running`` turns false), the log file is removed, or ``until`` passes."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below, lives across yields
    except FileNotFoundError:
        return
    with f:
        f.seek(_tail_offset(f, opts.tail) if opts.tail >= 0 else 0)
        pending = b""
        final = not opts.follow
        while True:
            chunk = f.read(1 << 16)
            if chunk:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    entry = _decode_line(line)
                    if entry is not None and _select(entry, opts):
                        yield entry
                continue
            if final or (opts.until and time.time_ns() > opts.until):
                return
            if not is_running() or not path.exists():
                final = True  # one last read: the monitor flushes before it records the exit
                continue
            time.sleep(poll)


def format_entry(entry: LogEntry, timestamps: bool) -> bytes:
    """What ``docker logs`` prints for one entry (RFC3339Nano with fixed 9 digits)."""
    if not timestamps:
        return entry.data
    secs, frac = divmod(entry.time, 10**9)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z "
    return stamp.encode() + entry.data


def write_logs(
    entries: Iterator[LogEntry], out: BinaryIO, err: BinaryIO, timestamps: bool = False
) -> None:
    """Copy entries to ``out``/``err`` by stream, flushing as they arrive (for -f)."""
    for entry in entries:
        target = err if entry.stream == "stderr" else out
        target.write(format_entry(entry, timestamps))
        target.flush()
