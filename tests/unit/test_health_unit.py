from __future__ import annotations

from cargohold.container.health import (
    Schedule,
    apply_result,
    go_duration,
    merge,
    next_delay,
    probe_argv,
    run_probe,
)
from cargohold.container.model import (
    Health,
    HealthcheckConfig,
    HealthLogEntry,
    HealthStatus,
    RestartPolicy,
)
from cargohold.container.monitor import RestartManager

S = 10**9


def _result(start: int, code: int) -> HealthLogEntry:
    return HealthLogEntry(start=start, end=start + 1, exit_code=code, output="")


def test_probe_argv() -> None:
    assert probe_argv(HealthcheckConfig(test=("CMD", "true"))) == ["true"]
    assert probe_argv(HealthcheckConfig(test=("CMD-SHELL", "exit 1"))) == [
        "/bin/sh",
        "-c",
        "exit 1",
    ]
    assert probe_argv(HealthcheckConfig(test=("NONE",))) is None
    assert probe_argv(None) is None


def test_defaults_and_merge() -> None:
    sched = Schedule.of(HealthcheckConfig(test=("CMD", "true")))
    assert (sched.interval, sched.timeout, sched.retries, sched.start_interval) == (
        30 * S,
        30 * S,
        3,
        5 * S,
    )
    image = HealthcheckConfig(test=("CMD", "a"), interval=5 * S, retries=2)
    run = HealthcheckConfig(interval=S)
    assert merge(image, run) == HealthcheckConfig(test=("CMD", "a"), interval=S, retries=2)


def test_state_machine_as_moby() -> None:
    sched = Schedule.of(HealthcheckConfig(test=("CMD", "x"), retries=2, start_period=10 * S))
    started = 100 * S
    h = Health()
    # failures inside the start period do not count while starting
    h = apply_result(h, _result(started + S, 1), sched, started)
    assert (h.status, h.failing_streak) == (HealthStatus.STARTING, 0)
    h = apply_result(h, _result(started + 11 * S, 1), sched, started)
    assert (h.status, h.failing_streak) == (HealthStatus.STARTING, 1)
    h = apply_result(h, _result(started + 12 * S, 1), sched, started)
    assert (h.status, h.failing_streak) == (HealthStatus.UNHEALTHY, 2)
    h = apply_result(h, _result(started + 13 * S, 0), sched, started)
    assert (h.status, h.failing_streak) == (HealthStatus.HEALTHY, 0)
    for i in range(10):
        h = apply_result(h, _result(started + (20 + i) * S, 0), sched, started)
    assert len(h.log) == 5


def test_start_interval_only_while_starting_in_start_period() -> None:
    cfg = HealthcheckConfig(
        test=("CMD", "x"), interval=30 * S, start_period=60 * S, start_interval=2 * S
    )
    sched = Schedule.of(cfg)
    assert next_delay(Health(), sched, 0, 10 * S) == 2 * S
    assert next_delay(Health(), sched, 0, 61 * S) == 30 * S
    assert next_delay(Health(HealthStatus.HEALTHY), sched, 0, 10 * S) == 30 * S


def test_run_probe_timeout_and_output() -> None:
    sched = Schedule.of(HealthcheckConfig(test=("CMD", "x"), timeout=2 * S))

    def slow(argv: list[str], timeout: int) -> tuple[int, bytes]:
        raise TimeoutError

    r = run_probe(slow, ["x"], sched)
    assert (r.exit_code, r.output) == (-1, "Health check exceeded timeout (2s)")
    r = run_probe(lambda argv, t: (0, b"y" * 5000), ["x"], sched)
    assert r.exit_code == 0 and len(r.output) == 4096


def test_go_duration() -> None:
    assert go_duration(30 * S) == "30s"
    assert go_duration(90 * S) == "1m30s"
    assert go_duration(500_000_000) == "500ms"
    assert go_duration(3600 * S) == "1h0m0s"


def test_restart_manager_backoff_and_limits() -> None:
    rm = RestartManager(RestartPolicy("on-failure", 2))
    assert rm.next_delay(1, False, 0) == 100_000_000
    assert rm.next_delay(1, False, 0) == 200_000_000
    assert rm.next_delay(1, False, 0) is None  # two retries used
    rm = RestartManager(RestartPolicy("on-failure", 0))
    assert rm.next_delay(0, False, 0) is None
    rm = RestartManager(RestartPolicy("always"))
    for _ in range(3):
        rm.next_delay(0, False, 0)
    assert rm.next_delay(0, False, 11 * S) == 100_000_000  # reset after 10 s up
    assert rm.next_delay(0, True, 0) is None  # stopped by the user
    assert RestartManager(RestartPolicy("no")).next_delay(1, False, 0) is None
