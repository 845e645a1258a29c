"""Values written into a container's /etc/hosts, /etc/hostname and resolv.conf are checked
where they enter, with Docker's wording, so none can inject a line (security issue #10, item
16); ``--stop-signal`` is checked at create as Docker's daemon does."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from cargohold.cli.main import main
from cargohold.config import Settings
from cargohold.container.model import HostConfig
from cargohold.engine import Engine
from cargohold.engine.containers.requests import ContainerCreateRequest
from cargohold.errors import InvalidArgument
from cargohold.network.hosts import ResolvConf, build_resolv_conf, parse_add_host

INJECT = "\nnameserver 6.6.6.6"


class Cli:
    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root = root
        self.capsys = capsys
        self.c1 = ""

    def __call__(self, *args: str) -> tuple[int, str, str]:
        code = main(["--root", str(self.root), "--runroot", str(self.root / "run"),
                     "--storage-driver", "vfs", *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def assert_no_container(self) -> None:
        """Only the fixture's container ``c1`` exists, with its rw layer."""
        assert self("ps", "-aq", "--no-trunc")[1].split() == [self.c1]
        assert os.listdir(self.root / "containers-rw") == [self.c1]


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    c = Cli(tmp_path / "root", capsys)
    tar = tmp_path / "rootfs.tar"
    with tarfile.open(tar, "w") as tf:
        info = tarfile.TarInfo("bin/hello")
        info.size, info.mode = 3, 0o755
        tf.addfile(info, io.BytesIO(b"hi\n"))
    assert c("import", str(tar), "img:1")[0] == 0
    assert c("network", "create", "front")[0] == 0
    code, out, err = c("create", "--name", "c1", "img:1", "/bin/hello")
    assert code == 0, err
    c.c1 = out.strip()
    return c


FLAG_CASES = [
    pytest.param(["--dns-search", "a" + INJECT],
                 'invalid argument "a\\nnameserver 6.6.6.6" for "--dns-search" flag: '
                 "a\nnameserver 6.6.6.6 is not a valid domain", id="dns-search"),
    pytest.param(["--dns-search=-bad-.example"],
                 'for "--dns-search" flag: -bad-.example is not a valid domain',
                 id="dns-search-label"),
    pytest.param(["--dns", "1.1.1.1" + INJECT],
                 'invalid argument "1.1.1.1\\nnameserver 6.6.6.6" for "--dns" flag: IP address '
                 "is not correctly formatted: 1.1.1.1\nnameserver 6.6.6.6", id="dns"),
    pytest.param(["--dns", "fe80::1%eth0"],
                 "IP address is not correctly formatted: fe80::1%eth0", id="dns-zone"),
    pytest.param(["--add-host", "evil\n6.6.6.6 x:1.2.3.4"],
                 'for "--add-host" flag: bad format for add-host: '
                 '"evil\\n6.6.6.6 x:1.2.3.4"', id="add-host-name"),
    pytest.param(["--add-host", "x:1.2.3.4\n6.6.6.6 evil"],
                 'invalid IP address in add-host: "1.2.3.4\\n6.6.6.6 evil"',
                 id="add-host-ip"),
    pytest.param(["--add-host", "a b:host-gateway"], "bad format for add-host: \"a b:",
                 id="add-host-gateway-name"),
    pytest.param(["--dns-option", "ndots:1" + INJECT],
                 'invalid DNS option "ndots:1\\nnameserver 6.6.6.6"', id="dns-option"),
    pytest.param(["--hostname", "h\n6.6.6.6 evil"],
                 'invalid hostname "h\\n6.6.6.6 evil"', id="hostname"),
    pytest.param(["--hostname", "h" * 65],
                 f'hostname "{"h" * 65}" is too long (maximum 64 bytes)', id="hostname-long"),
    pytest.param(["--domainname", "d\tx"], 'invalid domainname "d\\tx"', id="domainname"),
    pytest.param(["--network", "front", "--network-alias", "a\nb"],
                 'invalid network alias "a\\nb"', id="alias"),
    pytest.param(["--link", "c1:a\nb"], "invalid link format", id="link-alias"),
    pytest.param(["--name", "web\n"], "Invalid container name (web\n)", id="name-newline"),
    pytest.param(["--stop-signal", "SIGFOO"], "Invalid signal: SIGFOO", id="stop-signal"),
]


@pytest.mark.parametrize(("flags", "message"), FLAG_CASES)
def test_create_refuses_values_that_would_inject_lines(
    cli: Cli, flags: list[str], message: str
) -> None:
    code, _, err = cli("create", *flags, "img:1", "/bin/hello")
    assert code == 125
    assert message in err, err
    cli.assert_no_container()


def test_good_values_are_kept_as_docker_normalises_them(cli: Cli) -> None:
    code, out, err = cli("create", "--dns-search", "example.com.", "--dns", " 1.1.1.1 ",
                         "--dns-option", "ndots:2", "--add-host", "db:[::1]",
                         "--hostname", "box", "--domainname", "corp.example",
                         "--stop-signal", "SIGRTMIN+3", "img:1", "/bin/hello")
    assert code == 0, err
    cid = out.strip()
    _, out, _ = cli("inspect", "-f", "{{json .HostConfig.DnsSearch}} {{json .HostConfig.Dns}} "
                    "{{json .HostConfig.ExtraHosts}} {{.Config.StopSignal}}", cid)
    assert out.strip() == '["example.com"] ["1.1.1.1"] ["db:::1"] SIGRTMIN+3'


def test_the_engine_checks_requests_itself(tmp_path: Path) -> None:
    """A request that did not come through the CLI's flags is checked the same way."""
    engine = Engine(Settings(root=tmp_path / "root", runroot=tmp_path / "run",
                             storage_driver="vfs"))
    for host, config in [
        (HostConfig(dns_search=("a" + INJECT,)), {}),
        (HostConfig(dns=("1.1.1.1" + INJECT,)), {}),
        (HostConfig(extra_hosts=("x\n6.6.6.6 y:1.2.3.4",)), {}),
        (HostConfig(), {"hostname": "h\nx"}),
        (HostConfig(), {"stop_signal": "SIGFOO"}),
        (HostConfig(), {"env": ("=x",)}),
    ]:
        opts = ContainerCreateRequest(image="img:1", cmd=("/bin/hello",), host_config=host,
                                      **config)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgument):  # refused before the image is looked up
            engine.containers.create(opts, pull="never")
    assert engine.container_store.list() == []  # (a fresh store: no image needed to fail)


def test_resolv_conf_and_hosts_never_take_a_line_break() -> None:
    host = ResolvConf(("10.0.0.2",))
    with pytest.raises(InvalidArgument, match="is not a valid domain"):
        build_resolv_conf(host, dns_search=["a" + INJECT])
    with pytest.raises(InvalidArgument, match="invalid DNS option"):
        build_resolv_conf(host, dns_options=["rotate" + INJECT])
    with pytest.raises(InvalidArgument, match="IP address is not correctly formatted"):
        build_resolv_conf(host, dns=["1.1.1.1" + INJECT])
    with pytest.raises(InvalidArgument, match="bad format for add-host"):
        parse_add_host("x#y:1.2.3.4")
    assert build_resolv_conf(host, dns_search=["."]) == "nameserver 10.0.0.2\n"


def test_network_connect_alias_is_checked(cli: Cli) -> None:
    code, _, err = cli("network", "connect", "--alias", "api\n6.6.6.6 evil", "front", "c1")
    assert code == 1
    assert 'invalid network alias "api\\n6.6.6.6 evil"' in err
    _, out, _ = cli("inspect", "-f", "{{len .NetworkSettings.Networks}}", "c1")
    assert out.strip() == "1"


def test_volume_names_over_one_directory_entry_are_refused(cli: Cli) -> None:
    name = "v" * 300
    code, _, err = cli("volume", "create", name)
    assert code == 1
    assert f"create {name}: volume name is too long (maximum 255 bytes)" in err
    assert "Error: OSError" not in err
    code, _, err = cli("volume", "create", "ab\n")
    assert code == 1 and '"ab\\n" includes invalid characters' in err
    assert cli("volume", "ls", "-q")[1] == ""
    volumes = cli.root / "volumes"
    assert not volumes.exists() or [p for p in os.listdir(volumes) if p[0] != "."] == []
