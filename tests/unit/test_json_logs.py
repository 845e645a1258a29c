from __future__ import annotations

import io
import json
import threading
import time
from pathlib import Path

import pytest

from cargohold.container.logs import (
    MAX_MESSAGE,
    JsonLogWriter,
    LogOptions,
    encode_entry,
    format_entry,
    parse_duration,
    parse_timestamp,
    read_logs,
    write_logs,
)
from cargohold.errors import InvalidArgument

T0 = 1_700_000_000 * 10**9


def _writer(path: Path, start: int = T0) -> JsonLogWriter:
    clock = iter(range(start, start + 10**12, 10**9))
    return JsonLogWriter(path, clock=lambda: next(clock))


def test_docker_line_format() -> None:
    line = encode_entry("stdout", b"a<b>&c\n", T0 + 5)
    expected = b'{"log":"a\\u003cb\\u003e\\u0026c\\n","stream":"stdout",'
    expected += b'"time":"2023-11-14T22:13:20.000000005Z"}\n'
    assert line == expected


def test_writer_splits_lines_buffers_partials_and_long_lines(tmp_path: Path) -> None:
    path = tmp_path / "c-json.log"
    w = _writer(path)
    w.write("stdout", b"one\ntw")
    w.write("stderr", b"err\n")
    w.write("stdout", b"o\n")
    w.write("stdout", b"x" * (MAX_MESSAGE + 10))
    w.write("stdout", b"tail")
    w.close()
    logs = [json.loads(x) for x in path.read_text().splitlines()]
    assert [(x["stream"], x["log"]) for x in logs[:3]] == [
        ("stdout", "one\n"),
        ("stderr", "err\n"),
        ("stdout", "two\n"),
    ]
    assert logs[3]["log"] == "x" * MAX_MESSAGE
    assert logs[4]["log"] == "x" * 10 + "tail"


def _sample(path: Path) -> None:
    w = _writer(path)
    for i in range(5):
        w.write("stdout" if i % 2 == 0 else "stderr", f"line{i}\n".encode())
    w.close()


def test_read_all_tail_since_until_and_streams(tmp_path: Path) -> None:
    path = tmp_path / "log"
    _sample(path)
    data = [e.data for e in read_logs(path, LogOptions())]
    assert data == [f"line{i}\n".encode() for i in range(5)]
    assert [e.data for e in read_logs(path, LogOptions(tail=2))] == [b"line3\n", b"line4\n"]
    assert [e.data for e in read_logs(path, LogOptions(tail=0))] == []
    assert len(list(read_logs(path, LogOptions(tail=50)))) == 5
    since = [e.data for e in read_logs(path, LogOptions(since=T0 + 3 * 10**9))]
    assert since == [b"line3\n", b"line4\n"]
    until = [e.data for e in read_logs(path, LogOptions(until=T0 + 10**9))]
    assert until == [b"line0\n", b"line1\n"]
    assert [e.stream for e in read_logs(path, LogOptions(stderr=False))] == ["stdout"] * 3
    out, err = io.BytesIO(), io.BytesIO()
    write_logs(read_logs(path, LogOptions()), out, err, timestamps=True)
    assert out.getvalue().splitlines()[0] == b"2023-11-14T22:13:20.000000000Z line0"
    assert (
        err.getvalue()
        == b"2023-11-14T22:13:21.000000000Z line1\n2023-11-14T22:13:23.000000000Z line3\n"
    )


def test_follow_returns_after_container_stops(tmp_path: Path) -> None:
    path = tmp_path / "log"
    w = _writer(path)
    w.write("stdout", b"first\n")
    running = threading.Event()
    running.set()

    def later() -> None:
        time.sleep(0.2)
        w.write("stdout", b"second\n")
        w.close()
        running.clear()

    threading.Thread(target=later).start()
    got = [e.data for e in read_logs(path, LogOptions(follow=True), running.is_set, poll=0.01)]
    assert got == [b"first\n", b"second\n"]


def test_format_entry_without_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "log"
    _sample(path)
    entry = next(iter(read_logs(path, LogOptions())))
    assert format_entry(entry, False) == b"line0\n"


@pytest.mark.parametrize(
    ("text", "ns"), [("10m", 600 * 10**9), ("1h30m", 5400 * 10**9), ("1.5s", 1_500_000_000)]
)
def test_parse_duration(text: str, ns: int) -> None:
    assert parse_duration(text) == ns


def test_parse_timestamp_forms() -> None:
    now = T0 + 3600 * 10**9
    assert parse_timestamp("10m", now) == now - 600 * 10**9
    assert parse_timestamp("1700000000", now) == T0
    assert parse_timestamp("1700000000.5", now) == T0 + 500_000_000
    assert parse_timestamp("2023-11-14T22:13:20Z", now) == T0
    assert parse_timestamp("2023-11-14T22:13:20.25Z", now) == T0 + 250_000_000
    assert parse_timestamp("2023-11-14T23:13:20+01:00", now) == T0
    with pytest.raises(InvalidArgument, match="failed to parse value as time or duration"):
        parse_timestamp("yesterday", now)
