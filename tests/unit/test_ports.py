from __future__ import annotations

import pytest

from cargohold.errors import InvalidArgument
from cargohold.network.ports import (
    PortBinding,
    PortSpec,
    format_port_command,
    format_ps_ports,
    host_config_port_bindings,
    inspect_ports,
    parse_expose,
    parse_publish,
    publish_exposed,
)


def test_simple_forms() -> None:
    assert parse_publish("6666:80") == [PortSpec(80, "tcp", "", 6666, 6666)]
    assert parse_publish("80") == [PortSpec(80, "tcp", "", 0, 0)]
    assert parse_publish("80/udp") == [PortSpec(80, "udp", "", 0, 0)]
    assert parse_publish("127.0.0.1:8080:80") == [PortSpec(80, "tcp", "127.0.0.1", 8080, 8080)]
    assert parse_publish("127.0.0.1::80") == [PortSpec(80, "tcp", "127.0.0.1", 0, 0)]
    assert parse_publish("[::1]:8080:80/tcp") == [PortSpec(80, "tcp", "::1", 8080, 8080)]


def test_ranges() -> None:
    assert parse_publish("8000-8001:80-81") == [
        PortSpec(80, "tcp", "", 8000, 8000),
        PortSpec(81, "tcp", "", 8001, 8001),
    ]
    # host range with one container port: any free port of the range
    assert parse_publish("8000-8010:80") == [PortSpec(80, "tcp", "", 8000, 8010)]
    assert [s.container_port for s in parse_publish("80-82")] == [80, 81, 82]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("x", "invalid containerPort: x"),
        ("6666:x", "invalid containerPort: x"),
        ("6666:70000", "invalid containerPort: 70000"),
        ("6666:0", "invalid containerPort: 0"),
        ("x:80", "Invalid hostPort: x"),
        ("80000:80", "Invalid hostPort: 80000"),
        (
            "8000-8002:80-81",
            "invalid ranges specified for container and host Ports: 80-81 and 8000-8002",
        ),
        ("80:80/icmp", "invalid proto: icmp"),
        ("1.2.3:80:80", "invalid IP address: 1.2.3"),
        ("82-80", "invalid containerPort: 82-80"),
    ],
)
def test_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as e:
        parse_publish(spec)
    assert str(e.value) == message


def test_publish_all_and_expose() -> None:
    assert parse_expose("80-81/udp") == ["80/udp", "81/udp"]
    explicit = parse_publish("6666:80")
    got = publish_exposed(["443/tcp", "80/tcp", "53/udp"], explicit)
    assert got == [PortSpec(53, "udp"), PortSpec(443, "tcp")]


def test_formats() -> None:
    b4 = PortBinding(80, "tcp", "0.0.0.0", 6666)
    b6 = PortBinding(80, "tcp", "::", 6666)
    assert format_ps_ports([b6, b4]) == "0.0.0.0:6666->80/tcp, :::6666->80/tcp"
    assert format_port_command([b4, b6]) == ["80/tcp -> 0.0.0.0:6666", "80/tcp -> [::]:6666"]
    rng = [PortBinding(80, "tcp", "0.0.0.0", 8000), PortBinding(81, "tcp", "0.0.0.0", 8001)]
    assert format_ps_ports(rng) == "0.0.0.0:8000-8001->80-81/tcp"
    assert format_ps_ports([b4], exposed=["80/tcp", "443/tcp"]) == "0.0.0.0:6666->80/tcp, 443/tcp"
    assert format_ps_ports([]) == ""
    assert inspect_ports([b4], ["80/tcp", "443/tcp"]) == {
        "80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "6666"}],
        "443/tcp": None,
    }
    assert host_config_port_bindings(parse_publish("80") + parse_publish("1.2.3.4:99:90")) == {
        "80/tcp": [{"HostIp": "", "HostPort": ""}],
        "90/tcp": [{"HostIp": "1.2.3.4", "HostPort": "99"}],
    }
    assert PortBinding.from_json(b4.to_json()) == b4
