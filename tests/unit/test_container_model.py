from __future__ import annotations

import json

import pytest

from cargohold.container.model import (
    ContainerConfig,
    ContainerRecord,
    Health,
    HealthcheckConfig,
    HealthLogEntry,
    HealthStatus,
    HostConfig,
    PortBinding,
    RestartPolicy,
    State,
    Status,
    format_time,
    from_json,
    parse_time,
    to_json,
)
from cargohold.errors import InvalidArgument


def test_time_round_trip_and_go_format() -> None:
    ns = 1_700_000_000_123_456_789
    text = format_time(ns)
    assert text == "2023-11-14T22:13:20.123456789Z"
    assert parse_time(text) == ns
    assert format_time(1_700_000_000_100_000_000) == "2023-11-14T22:13:20.1Z"
    assert format_time(0) == "0001-01-01T00:00:00Z"
    assert parse_time("0001-01-01T00:00:00Z") == 0
    assert parse_time("2023-11-14T23:13:20+01:00") == 1_700_000_000 * 10**9


@pytest.mark.parametrize(
    ("status", "running", "paused", "restarting", "dead"),
    [
        (Status.CREATED, False, False, False, False),
        (Status.RUNNING, True, False, False, False),
        (Status.PAUSED, True, True, False, False),
        (Status.RESTARTING, True, False, True, False),
        (Status.EXITED, False, False, False, False),
        (Status.DEAD, False, False, False, True),
        (Status.REMOVING, False, False, False, False),
    ],
)
def test_booleans_derive_from_status(
    status: Status, running: bool, paused: bool, restarting: bool, dead: bool
) -> None:
    docker = State(status=status).to_docker()
    assert docker["Status"] == status.value
    assert (docker["Running"], docker["Paused"], docker["Restarting"], docker["Dead"]) == (
        running,
        paused,
        restarting,
        dead,
    )


def test_record_round_trip_through_json() -> None:
    record = ContainerRecord(
        id="a" * 64,
        name="web",
        created=1_700_000_000_000_000_001,
        config=ContainerConfig(
            cmd=("sh", "-c", "echo hi"),
            env=("A=1",),
            exposed_ports=frozenset({"80/tcp"}),
            volumes=frozenset({"/data"}),
            labels={"k": "v"},
            healthcheck=HealthcheckConfig(test=("CMD-SHELL", "true"), interval=10**9, retries=2),
            stop_timeout=5,
        ),
        host_config=HostConfig(
            restart_policy=RestartPolicy("on-failure", 2),
            port_bindings={"80/tcp": (PortBinding("", "8080"),)},
            pids_limit=100,
        ),
    )
    data = json.loads(json.dumps(to_json(record)))
    assert data["Config"]["ExposedPorts"] == {"80/tcp": {}}
    assert data["Config"]["Entrypoint"] is None
    assert data["HostConfig"]["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 2}
    assert data["HostConfig"]["PortBindings"] == {"80/tcp": [{"HostIp": "", "HostPort": "8080"}]}
    assert from_json(ContainerRecord, data) == record


def test_state_round_trip_with_health() -> None:
    state = State(
        status=Status.RUNNING,
        pid=42,
        started_at=10**18,
        health=Health(HealthStatus.UNHEALTHY, 3, (HealthLogEntry(10**18, 10**18 + 5, 1, "x"),)),
    )
    data = to_json(state)
    assert data["Health"]["Status"] == "unhealthy"
    assert data["Health"]["Log"][0]["ExitCode"] == 1
    assert from_json(State, json.loads(json.dumps(data))) == state
    assert state.to_docker()["Health"]["FailingStreak"] == 3


@pytest.mark.parametrize(
    ("text", "name", "count"),
    [("", "no", 0), ("no", "no", 0), ("always", "always", 0), ("on-failure:3", "on-failure", 3)],
)
def test_restart_policy_parse(text: str, name: str, count: int) -> None:
    assert RestartPolicy.parse(text) == RestartPolicy(name, count)


@pytest.mark.parametrize("text", ["sometimes", "always:3", "on-failure:x", "on-failure:-1"])
def test_restart_policy_rejects(text: str) -> None:
    with pytest.raises(InvalidArgument):
        RestartPolicy.parse(text).validate()
