from __future__ import annotations

import pytest

from cargohold.errors import InvalidArgument
from cargohold.network.links import LinkTarget, link_env, link_hosts_entry, links_for, parse_link


def test_parse_link() -> None:
    assert parse_link("web1").alias == "web1"
    assert parse_link("/web1:db").alias == "db"
    with pytest.raises(InvalidArgument):
        parse_link(":x")


def test_env_like_docker() -> None:
    target = LinkTarget(
        "web1",
        "abc",
        "10.77.0.2",
        env=("PATH=/bin", "HOME=/root", "FOO=bar"),
        exposed=("80/tcp", "81/tcp", "53/udp"),
    )
    env = link_env("web2", "my-web", target)
    assert env == [
        "MY_WEB_PORT=tcp://10.77.0.2:80",
        "MY_WEB_PORT_80_TCP=tcp://10.77.0.2:80",
        "MY_WEB_PORT_80_TCP_ADDR=10.77.0.2",
        "MY_WEB_PORT_80_TCP_PORT=80",
        "MY_WEB_PORT_80_TCP_PROTO=tcp",
        "MY_WEB_PORT_81_TCP=tcp://10.77.0.2:81",
        "MY_WEB_PORT_81_TCP_ADDR=10.77.0.2",
        "MY_WEB_PORT_81_TCP_PORT=81",
        "MY_WEB_PORT_81_TCP_PROTO=tcp",
        # moby emits a range's START/END once it sees the next, non-consecutive port
        "MY_WEB_PORT_53_UDP=udp://10.77.0.2:53",
        "MY_WEB_PORT_53_UDP_ADDR=10.77.0.2",
        "MY_WEB_PORT_53_UDP_PORT=53",
        "MY_WEB_PORT_53_UDP_PROTO=udp",
        "MY_WEB_PORT_80_TCP_START=tcp://10.77.0.2:80",
        "MY_WEB_PORT_80_TCP_PORT_START=80",
        "MY_WEB_PORT_80_TCP_END=tcp://10.77.0.2:81",
        "MY_WEB_PORT_80_TCP_PORT_END=81",
        "MY_WEB_NAME=/web2/my-web",
        "MY_WEB_ENV_FOO=bar",
    ]


def test_hosts_entry() -> None:
    t = LinkTarget("web1", "abc123", "10.77.0.2")
    assert link_hosts_entry("web1", t).line() == "10.77.0.2\tweb1 abc123\n"
    assert link_hosts_entry("w", t).line() == "10.77.0.2\tw abc123 web1\n"
    entries, env = links_for("r", [(parse_link("web1:w"), t)])
    assert entries[0].names == ("w", "abc123", "web1") and env == ["W_NAME=/r/w"]
