"""HEALTHCHECK: probe scheduling and the starting -> healthy/unhealthy state machine (as moby).

- ``CMD`` probes run their argv, ``CMD-SHELL`` runs ``/bin/sh -c``; ``NONE`` disables.
- exit 0 -> healthy and FailingStreak 0; any other result increments FailingStreak, except while
  the status is still ``starting`` and the probe began inside the start period; the status turns
  unhealthy once FailingStreak reaches Retries.
- a probe that overruns its timeout gets ExitCode -1 and "Health check exceeded timeout (30s)".
- the Log keeps the last 5 results, Output truncated to 4096 bytes.
- probes run every Interval; during the start period, while still ``starting``, every
  StartInterval when one was given.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from cargohold.container.model import (
    MAX_HEALTH_LOG,
    Health,
    HealthcheckConfig,
    HealthLogEntry,
    HealthStatus,
    now_ns,
)
from cargohold.errors import CargoholdError
from cargohold.runtime.base import OCIRuntime, Stdio

SECOND = 1_000_000_000
DEFAULT_INTERVAL = 30 * SECOND
DEFAULT_TIMEOUT = 30 * SECOND
DEFAULT_START_INTERVAL = 5 * SECOND
DEFAULT_RETRIES = 3
MAX_OUTPUT = 4096


class Schedule(msgspec.Struct, frozen=True):
    interval: int
    timeout: int
    start_period: int
    start_interval: int
    retries: int

    @classmethod
    def of(cls, cfg: HealthcheckConfig) -> Schedule:
        return cls(
            interval=cfg.interval or DEFAULT_INTERVAL,
            timeout=cfg.timeout or DEFAULT_TIMEOUT,
            start_period=cfg.start_period,
            start_interval=cfg.start_interval or DEFAULT_START_INTERVAL,
            retries=cfg.retries if cfg.retries > 0 else DEFAULT_RETRIES,
        )


def merge(image: HealthcheckConfig | None, run: HealthcheckConfig | None) -> HealthcheckConfig:
    """``--health-*`` flags over the image's HEALTHCHECK, field by field (as Docker)."""
    base = image or HealthcheckConfig()
    if run is None:
        return base
    return HealthcheckConfig(
        test=run.test or base.test,
        interval=run.interval or base.interval,
        timeout=run.timeout or base.timeout,
        start_period=run.start_period or base.start_period,
        start_interval=run.start_interval or base.start_interval,
        retries=run.retries or base.retries,
    )


def probe_argv(
    cfg: HealthcheckConfig | None, shell: tuple[str, ...] = ("/bin/sh", "-c")
) -> list[str] | None:
    """The command a probe runs, or None when health checking is off."""
    if cfg is None or cfg.disabled:
        return None
    kind, rest = cfg.test[0], list(cfg.test[1:])
    if kind == "CMD":
        return rest or None
    if kind == "CMD-SHELL":
        return [*shell, " ".join(rest)] if rest else None
    return list(cfg.test)  # a bare command list: treat as CMD


def next_delay(health: Health, sched: Schedule, started_at: int, now: int) -> int:
    """Nanoseconds until the next probe."""
    in_start_period = now < started_at + sched.start_period
    if health.status is HealthStatus.STARTING and sched.start_period and in_start_period:
        return min(sched.start_interval, sched.interval)
    return sched.interval


def apply_result(
    health: Health, result: HealthLogEntry, sched: Schedule, started_at: int
) -> Health:
    log = (*health.log, result)[-MAX_HEALTH_LOG:]
    if result.exit_code == 0:
        return Health(HealthStatus.HEALTHY, 0, log)
    streak, status = health.failing_streak, health.status
    within_start = result.start - started_at < sched.start_period
    if not (status is HealthStatus.STARTING and within_start):
        streak += 1
        if streak >= sched.retries:
            status = HealthStatus.UNHEALTHY
    return Health(status, streak, log)


def go_duration(ns: int) -> str:
    """Go's Duration.String() for the common cases: 30s, 1m30s, 500ms, 1h0m0s."""
    if ns < SECOND:
        if ns % 1_000_000 == 0:
            return f"{ns // 1_000_000}ms"
        return f"{ns / 1_000_000:g}ms"
    secs = ns / SECOND
    hours, rem = divmod(secs, 3600)
    minutes, seconds = divmod(rem, 60)
    sec_text = f"{seconds:.9f}".rstrip("0").rstrip(".") + "s"
    if hours:
        return f"{int(hours)}h{int(minutes)}m{sec_text}"
    if minutes:
        return f"{int(minutes)}m{sec_text}"
    return sec_text


ExecFn = Callable[[list[str], int], tuple[int, bytes]]
"""Run argv in the container with a timeout (ns); return (exit code, combined output).

Raises TimeoutError when the timeout passed (the probe process has been killed)."""


def run_probe(exec_fn: ExecFn, argv: list[str], sched: Schedule) -> HealthLogEntry:
    start = now_ns()
    try:
        code, output = exec_fn(argv, sched.timeout)
        text = output[:MAX_OUTPUT].decode("utf-8", "replace")
    except TimeoutError:
        code, text = -1, f"Health check exceeded timeout ({go_duration(sched.timeout)})"
    except (CargoholdError, OSError) as exc:
        code, text = -1, str(exc)
    return HealthLogEntry(start=start, end=now_ns(), exit_code=code, output=text)


def runtime_exec_fn(runtime: OCIRuntime, container_id: str, bundle: Path, workdir: Path) -> ExecFn:
    """An ExecFn running probes with ``runtime.exec`` and the container's own process
    settings (env, user, cwd, capabilities) from ``bundle/config.json``."""
    with open(bundle / "config.json", "rb") as f:
        template: dict[str, Any] = json.load(f)["process"]

    def run(argv: list[str], timeout_ns: int) -> tuple[int, bytes]:
        process = {**template, "args": argv, "terminal": False}
        process.pop("consoleSize", None)
        workdir.mkdir(parents=True, exist_ok=True)
        spec = workdir / f"probe-{os.getpid()}-{threading.get_ident()}.json"
        pid_file = spec.with_suffix(".pid")
        spec.write_text(json.dumps(process))
        pid_file.unlink(missing_ok=True)
        timed_out = threading.Event()

        def kill() -> None:
            timed_out.set()
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)

        timer = threading.Timer(timeout_ns / SECOND, kill)
        with tempfile.TemporaryFile() as out, open(os.devnull, "rb") as null:
            timer.start()
            try:
                code = runtime.exec(
                    container_id,
                    spec,
                    pid_file=pid_file,
                    stdio=Stdio(null.fileno(), out.fileno(), out.fileno()),
                )
            finally:
                timer.cancel()
                spec.unlink(missing_ok=True)
                pid_file.unlink(missing_ok=True)
            if timed_out.is_set():
                raise TimeoutError
            out.seek(0)
            return code, out.read(MAX_OUTPUT)

    return run
