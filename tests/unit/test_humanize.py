"""go-units formatting as Docker prints it (expected values from go-units' own tests and
docker outputs)."""

from __future__ import annotations

import pytest

from cargohold.cli.humanize import (
    bytes_size,
    created_ago,
    from_human_size,
    human_duration,
    human_size,
    parse_rfc3339,
    ram_in_bytes,
    status_text,
)
from cargohold.errors import InvalidArgument

MINUTE, HOUR, DAY = 60, 3600, 86400
WEEK, MONTH, YEAR = 7 * DAY, 30 * DAY, 365 * DAY


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, "0B"),
        (999, "999B"),
        (1000, "1kB"),
        (5590, "5.59kB"),
        (72_812_345, "72.8MB"),
        (1_234_567_890, "1.23GB"),
        (1_048_576, "1.05MB"),
        (999_999, "1e+03kB"),  # go's %.3g quirk, as docker images shows it
        (4_861_112, "4.86MB"),
    ],
)
def test_human_size_docker_images(size: int, expected: str) -> None:
    assert human_size(size) == expected


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (1024, "1.024kB"),
        (1_048_576, "1.049MB"),
        (3.42 * 1000**3, "3.42GB"),
        (10_000_000_000_000 * 1000**5, "1e+04YB"),
    ],
)
def test_human_size_precision_4(size: float, expected: str) -> None:
    assert human_size(size, 4) == expected


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        (0, "0B"),
        (1024, "1KiB"),
        (2 * 1024**2, "2MiB"),
        (3.42 * 1024**3, "3.42GiB"),
        (7_709_082, "7.352MiB"),
        (5.372 * 1024**4, "5.372TiB"),
        (1024**5 * 1024**5, "1.049e+06YiB"),
    ],
)
def test_bytes_size(size: float, expected: str) -> None:
    assert bytes_size(size) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("32", 32), ("32b", 32), ("32k", 32 * 1024), ("32Kib", 32 * 1024), ("512m", 512 * 1024**2),
     ("1g", 1024**3), ("32.3", 32), ("0.3MB", int(0.3 * 1024**2))],
)
def test_ram_in_bytes(text: str, expected: int) -> None:
    assert ram_in_bytes(text) == expected


@pytest.mark.parametrize("text", ["", "hello", "-32", " 32 ", "32m b", "32bm", "1.2.3"])
def test_ram_in_bytes_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid size"):
        ram_in_bytes(text)


def test_from_human_size_is_decimal() -> None:
    assert from_human_size("32kb") == 32_000
    assert from_human_size("32.5 kB") == 32_500


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0.45, "Less than a second"),
        (-5, "Less than a second"),
        (1, "1 second"),
        (3, "3 seconds"),
        (59, "59 seconds"),
        (60, "About a minute"),
        (119, "About a minute"),
        (3 * MINUTE, "3 minutes"),
        (35 * MINUTE + 40, "35 minutes"),
        (59 * MINUTE, "59 minutes"),
        (HOUR, "About an hour"),
        (HOUR + 29 * MINUTE, "About an hour"),
        (HOUR + 31 * MINUTE, "2 hours"),
        (3 * HOUR + 29 * MINUTE, "3 hours"),
        (3 * HOUR + 31 * MINUTE, "4 hours"),
        (24 * HOUR, "24 hours"),
        (DAY + 12 * HOUR, "36 hours"),
        (2 * DAY, "2 days"),
        (13 * DAY + 5 * HOUR, "13 days"),
        (2 * WEEK, "2 weeks"),
        (2 * WEEK + 4 * DAY, "2 weeks"),
        (MONTH, "4 weeks"),
        (MONTH + 2 * WEEK, "6 weeks"),
        (2 * MONTH, "2 months"),
        (3 * MONTH + WEEK, "3 months"),
        (24 * MONTH, "24 months"),
        (24 * MONTH + 2 * WEEK, "2 years"),
        (3 * YEAR + 2 * MONTH, "3 years"),
    ],
)
def test_human_duration(seconds: float, expected: str) -> None:
    assert human_duration(seconds) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1970-01-01T00:00:00Z", 0.0),
        ("2024-01-02T03:04:05Z", 1704164645.0),
        ("2024-01-02T03:04:05.123456789Z", 1704164645.123456789),
        ("2024-01-02T05:04:05+02:00", 1704164645.0),
        ("2024-01-01T23:04:05.5-04:00", 1704164645.5),
    ],
)
def test_parse_rfc3339(text: str, expected: float) -> None:
    assert parse_rfc3339(text) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("text", ["yesterday", "2024-01-02", "2024-01-02T03:04:05"])
def test_parse_rfc3339_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_rfc3339(text)


NOW = parse_rfc3339("2024-01-02T03:04:05Z")


def test_created_ago() -> None:
    assert created_ago("2024-01-02T03:04:01.5Z", NOW) == "3 seconds ago"
    assert created_ago(NOW - 2 * WEEK, NOW) == "2 weeks ago"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"state": "created"}, "Created"),
        ({"state": "running", "started_at": NOW - 3}, "Up 3 seconds"),
        ({"state": "paused", "started_at": NOW - 3}, "Up 3 seconds (Paused)"),
        ({"state": "running", "started_at": NOW - 150, "health": "healthy"},
         "Up 2 minutes (healthy)"),
        ({"state": "running", "started_at": NOW - 5, "health": "starting"},
         "Up 5 seconds (health: starting)"),
        ({"state": "running", "started_at": NOW - 5, "health": "unhealthy"},
         "Up 5 seconds (unhealthy)"),
        ({"state": "exited", "exit_code": 0, "started_at": NOW - 300,
          "finished_at": "2024-01-02T03:02:05Z"}, "Exited (0) 2 minutes ago"),
        ({"state": "exited", "exit_code": 137, "started_at": "2024-01-02T03:00:00Z",
          "finished_at": NOW - 7200}, "Exited (137) 2 hours ago"),
        # created but never started: Docker keeps "Created" even when the state says exited
        ({"state": "exited", "started_at": "0001-01-01T00:00:00Z"}, "Created"),
        ({"state": "restarting", "exit_code": 1, "started_at": NOW - 60,
          "finished_at": NOW - 5}, "Restarting (1) 5 seconds ago"),
        ({"state": "dead"}, "Dead"),
        ({"state": "removing", "started_at": NOW - 60}, "Removal In Progress"),
    ],
)
def test_status_text(kwargs: dict[str, object], expected: str) -> None:
    assert status_text(now=NOW, **kwargs) == expected  # type: ignore[arg-type]
