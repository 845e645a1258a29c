from __future__ import annotations

import os
from pathlib import Path

import pytest

from cargohold.errors import InvalidArgument
from cargohold.network.hosts import (
    HostEntry,
    HostsRegistry,
    ResolvConf,
    build_hosts,
    build_resolv_conf,
    parse_add_host,
    parse_resolv_conf,
)


def test_build_hosts_like_docker() -> None:
    text = build_hosts("abc123", "10.77.0.2", extra=[parse_add_host("db:1.2.3.4")])
    assert text == (
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        "fe00::0\tip6-localnet\n"
        "ff00::0\tip6-mcastprefix\n"
        "ff02::1\tip6-allnodes\n"
        "ff02::2\tip6-allrouters\n"
        "1.2.3.4\tdb\n"
        "10.77.0.2\tabc123\n"
    )


def test_add_host_forms() -> None:
    assert parse_add_host("x=::1") == HostEntry("::1", ("x",))
    assert parse_add_host("x:[::1]") == HostEntry("::1", ("x",))
    assert parse_add_host("gw:host-gateway", "10.77.0.1") == HostEntry("10.77.0.1", ("gw",))
    with pytest.raises(InvalidArgument):
        parse_add_host("x:notanip")


def test_resolv_conf() -> None:
    host = parse_resolv_conf(
        "nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch a.b\noptions ndots:2\n"
    )
    assert build_resolv_conf(host) == "nameserver 10.0.0.2\nsearch a.b\noptions ndots:2\n"
    only_local = ResolvConf(("127.0.0.1", "::1"))
    assert build_resolv_conf(only_local) == "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
    got = build_resolv_conf(host, dns=["1.1.1.1"], dns_search=["x.y"], dns_options=["rotate"])
    assert got == "nameserver 1.1.1.1\nsearch x.y\noptions rotate\n"
    with pytest.raises(InvalidArgument):
        build_resolv_conf(host, dns=["nope"])


def test_registry_rewrites_members_in_place(tmp_path: Path) -> None:
    reg = HostsRegistry(tmp_path)
    files = {}
    for name, ip in (("web", "10.1.0.2"), ("db", "10.1.0.3")):
        p = tmp_path / f"{name}.hosts"
        p.write_text(build_hosts(name, ip))
        files[name] = p
    inode = os.stat(files["web"]).st_ino
    reg.join("n" * 64, "w" * 64, "/web", ["frontend"], "10.1.0.2", files["web"])
    reg.join("n" * 64, "d" * 64, "db", [], "10.1.0.3", files["db"])
    web = files["web"].read_text()
    assert "10.1.0.3\tdb dddddddddddd\n" in web
    assert "10.1.0.2\tweb frontend wwwwwwwwwwww\n" in files["db"].read_text()
    assert os.stat(files["web"]).st_ino == inode  # bind mounts keep working
    reg.leave("n" * 64, "d" * 64)
    assert "db" not in files["web"].read_text().split("begin")[-1]
    assert files["db"].read_text() == build_hosts("db", "10.1.0.3")
    # a member whose file vanished (container gone) is dropped
    files["web"].unlink()
    reg.join("n" * 64, "d" * 64, "db", [], "10.1.0.3", files["db"])
    assert [m.name for m in reg.members("n" * 64)] == ["db"]
    reg.leave("n" * 64, "d" * 64)
    assert not (tmp_path / "networks" / "hosts" / f"{'n' * 64}.json").exists()
