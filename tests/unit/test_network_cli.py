"""``network create/ls/inspect/rm/prune/connect/disconnect`` on records (no root needed:
creating a network writes only its record; the bridge is made by the first attach)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from cargohold.cli.main import main
from cargohold.container.model import ContainerRecord, EndpointSettings, HostConfig
from cargohold.container.records import ContainerStore
from cargohold.network.store import NetworkStore
from cargohold.util.ids import random_id


class Cli:
    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root = root
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        code = main(["--root", str(self.root), "--runroot", str(self.root / "run"),
                     "--storage-driver", "vfs", *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    @property
    def containers(self) -> ContainerStore:
        return ContainerStore(self.root, self.root / "run")

    def container(self, name: str, mode: str = "", networks: tuple[str, ...] = ()) -> str:
        """A created (never started) container record on ``mode`` (+ extra networks)."""
        nets = {n: EndpointSettings() for n in (mode or "bridge", *networks)}
        record = ContainerRecord(id=random_id(), name=name, networks=nets,
                                 host_config=HostConfig(network_mode=mode or "default"))
        return self.containers.add(record).id

    def ls(self, *flags: str) -> list[str]:
        return self("network", "ls", "--format", "{{.Name}}", *flags)[1].split()


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(tmp_path / "root", capsys)


def test_predefined_networks_are_listed(cli: Cli) -> None:
    code, out, _ = cli("network", "ls")
    lines = out.splitlines()
    assert code == 0 and lines[0].split() == ["NETWORK", "ID", "NAME", "DRIVER", "SCOPE"]
    rows = [ln.split() for ln in lines[1:]]
    assert [r[1:] for r in rows] == [["bridge", "bridge", "local"], ["host", "host", "local"],
                                     ["none", "null", "local"]]
    assert all(re.fullmatch(r"[0-9a-f]{12}", r[0]) for r in rows)
    assert lines[0].index("NAME") == lines[1].index("bridge")


def test_create_prints_id_and_inspect_has_docker_shape(cli: Cli) -> None:
    code, out, err = cli("network", "create", "--subnet", "10.210.0.0/24", "--gateway",
                         "10.210.0.254", "--label", "team=a", "--internal", "appnet")
    assert code == 0, err
    net_id = out.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", net_id)
    code, out, _ = cli("network", "inspect", "appnet")
    (doc,) = json.loads(out)
    assert list(doc) == ["Name", "Id", "Created", "Scope", "Driver", "EnableIPv6", "IPAM",
                         "Internal", "Attachable", "Ingress", "ConfigFrom", "ConfigOnly",
                         "Containers", "Options", "Labels"]
    assert doc["Id"] == net_id and doc["Driver"] == "bridge" and doc["Scope"] == "local"
    assert doc["IPAM"] == {"Driver": "default", "Options": None,
                           "Config": [{"Subnet": "10.210.0.0/24", "Gateway": "10.210.0.254"}]}
    assert doc["Internal"] is True and doc["Labels"] == {"team": "a"} and doc["Containers"] == {}
    # by id prefix, and through the generic inspect
    assert cli("network", "inspect", "-f", "{{.Name}}", net_id[:12])[1] == "appnet\n"
    assert cli("inspect", "-f", "{{.Driver}}", "appnet")[1] == "bridge\n"
    # no kernel object exists before the first attach
    assert not Path("/sys/class/net", doc["Options"]["com.docker.network.bridge.name"]).exists()


def test_create_picks_free_subnets(cli: Cli) -> None:
    cli("network", "create", "one")
    cli("network", "create", "two")
    _, out, _ = cli("network", "inspect", "-f", "{{(index .IPAM.Config 0).Subnet}}", "one", "two")
    first, second = out.split()
    assert first != second
    assert not first.startswith("172.17.") and not second.startswith("172.17.")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--subnet", "10.220.0.0/33"], "invalid CIDR address: 10.220.0.0/33"),
        (["--subnet", "nonsense"], "invalid CIDR address"),
        (["--subnet", "10.220.0.0/24", "--gateway", "10.9.9.9"],
         "no matching subnet for gateway 10.9.9.9"),
        (["--gateway", "10.9.9.9"], "every ip-range or gateway must have a corresponding subnet"),
        (["-d", "overlay"], 'plugin "overlay" not found'),
        (["-d", "host"], 'only one instance of "host" network is allowed'),
        (["--subnet", "10.220.0.0/24", "--subnet", "10.221.0.0/24"], "only one --subnet"),
        (["-o", "novalue"], "invalid key/value pair format"),
    ],
)
def test_create_bad_input_creates_nothing(cli: Cli, args: list[str], message: str) -> None:
    code, out, err = cli("network", "create", *args, "bad")
    assert code == 1 and out == ""
    assert err.startswith("Error response from daemon: ") and message in err
    assert "bad" not in cli.ls()


def test_network_name_with_a_trailing_newline_is_refused(cli: Cli) -> None:
    code, _, err = cli("network", "create", "net\n")
    assert code == 1 and "invalid" in err.lower()
    assert cli.ls() == ["bridge", "host", "none"]


def test_create_refuses_duplicates_and_overlaps(cli: Cli) -> None:
    assert cli("network", "create", "--subnet", "10.230.0.0/16", "big")[0] == 0
    code, _, err = cli("network", "create", "big")
    assert (code, err) == (1, "Error response from daemon: network with name big already exists\n")
    code, _, err = cli("network", "create", "--subnet", "10.230.5.0/24", "small")
    assert code == 1
    assert err == "Error response from daemon: Pool overlaps with other one on this address space\n"
    assert cli.ls() == ["big", "bridge", "host", "none"]


def test_ls_quiet_no_trunc_filters_and_format(cli: Cli) -> None:
    cli("network", "create", "--label", "env=prod", "web")
    cli("network", "create", "--label", "env=dev", "--internal", "db")
    web_id = cli("network", "inspect", "-f", "{{.Id}}", "web")[1].strip()
    assert web_id[:12] in cli("network", "ls", "-q")[1].split()
    assert web_id in cli("network", "ls", "-q", "--no-trunc")[1].split()
    assert cli.ls("--filter", "type=custom") == ["db", "web"]
    assert cli.ls("--filter", "type=builtin") == ["bridge", "host", "none"]
    assert cli.ls("--filter", "label=env=prod") == ["web"]
    assert cli.ls("--filter", "label=env") == ["db", "web"]
    assert cli.ls("--filter", "name=we") == ["web"]
    assert cli.ls("--filter", "driver=null") == ["none"]
    assert cli.ls("--filter", f"id={web_id[:6]}") == ["web"]
    cli.container("c1", "db")
    assert cli.ls("--filter", "dangling=true", "--filter", "type=custom") == ["web"]
    code, _, err = cli("network", "ls", "--filter", "colour=red")
    assert code == 1 and "Invalid filter 'colour'" in err
    _, out, _ = cli("network", "ls", "--format", "{{.Name}} {{.Internal}} {{.Labels}}",
                    "-f", "name=db")
    assert out == "db true env=dev\n"
    _, out, _ = cli("network", "ls", "--format", "table {{.Name}}\t{{.CreatedAt}}", "-f", "name=db")
    header, row = out.splitlines()
    assert header.split() == ["NAME", "CREATED", "AT"] and row.endswith("+0000 UTC")


def test_inspect_missing(cli: Cli) -> None:
    code, out, err = cli("network", "inspect", "bridge", "nope")
    assert code == 1 and err == "Error: No such network: nope\n"
    assert [d["Name"] for d in json.loads(out)] == ["bridge"]


def test_rm_prints_names_and_refuses_predefined_missing_and_in_use(cli: Cli) -> None:
    for name in ("n1", "n2", "busy", "extra"):
        cli("network", "create", name)
    busy_id = cli("network", "inspect", "-f", "{{.Id}}", "busy")[1].strip()
    cli.container("web", "busy")
    cli.container("app", "", networks=("extra",))  # default bridge + connected extra
    code, out, err = cli("network", "rm", "n1", "bridge", "busy", "extra", "nope", "n2")
    assert code == 1 and out == "n1\nn2\n"
    assert err.splitlines() == [
        "Error response from daemon: bridge is a pre-defined network and cannot be removed",
        "Error response from daemon: error while removing network: network busy id "
        f"{busy_id} has active endpoints",
        "Error response from daemon: error while removing network: network extra id "
        f"{cli('network', 'inspect', '-f', '{{.Id}}', 'extra')[1].strip()} has active endpoints",
        "Error: No such network: nope",
    ]
    assert cli("network", "rm", "-f", "nope") == (0, "", "")
    cli.containers.remove("web")
    assert cli("network", "rm", "busy")[:2] == (0, "busy\n")


def test_network_mode_only_record_counts_as_in_use(cli: Cli) -> None:
    cli("network", "create", "legacy")
    record = ContainerRecord(id=random_id(), name="old",
                             host_config=HostConfig(network_mode="legacy"))
    cli.containers.add(record)
    code, _, err = cli("network", "rm", "legacy")
    assert code == 1 and "has active endpoints" in err


def test_prune_removes_unused_custom_networks(cli: Cli) -> None:
    for name in ("keep", "old1", "old2"):
        cli("network", "create", name)
    cli("network", "create", "--label", "tmp=1", "lab")
    cli.container("c1", "keep")
    code, out, _ = cli("network", "prune", "-f", "--filter", "label=tmp")
    assert (code, out) == (0, "Deleted Networks:\nlab\n\n")
    code, out, _ = cli("network", "prune", "-f")
    assert (code, out) == (0, "Deleted Networks:\nold1\nold2\n\n")
    assert cli.ls() == ["bridge", "host", "keep", "none"]
    assert cli("network", "prune", "-f") == (0, "", "")
    code, _, err = cli("network", "prune", "-f", "--filter", "driver=bridge")
    assert code == 1 and "Invalid filter 'driver'" in err


def test_prune_until(cli: Cli) -> None:
    cli("network", "create", "fresh")
    assert cli("network", "prune", "-f", "--filter", "until=1h")[1] == ""
    out = cli("network", "prune", "-f", "--filter", "until=0s")[1]
    assert out == "Deleted Networks:\nfresh\n\n"


def test_connect_and_disconnect_a_created_container_records_it(cli: Cli) -> None:
    cli("network", "create", "front")
    cid = cli.container("app", "")
    code, out, err = cli("network", "connect", "--alias", "api", "front", "app")
    assert (code, out, err) == (0, "", "")
    record = cli.containers.get(cid)
    assert list(record.networks) == ["bridge", "front"]
    assert record.networks["front"].aliases == ("api",)
    code, _, err = cli("network", "connect", "front", "app")
    assert code == 1
    assert err == ("Error response from daemon: endpoint with name app already exists in "
                   "network front\n")
    assert cli("network", "rm", "front")[0] == 1
    assert cli("network", "disconnect", "front", "app") == (0, "", "")
    assert list(cli.containers.get(cid).networks) == ["bridge"]
    code, _, err = cli("network", "disconnect", "front", "app")
    assert code == 1 and err == (
        f"Error response from daemon: container {cid} is not connected to network front\n")
    assert cli("network", "rm", "front")[:2] == (0, "front\n")


def test_connect_bad_input(cli: Cli) -> None:
    cli("network", "create", "front")
    cli.container("app", "")
    cli.container("hosty", "host")
    cli.container("lonely", "none")
    code, _, err = cli("network", "connect", "nope", "app")
    assert code == 1 and err == "Error response from daemon: network nope not found\n"
    code, _, err = cli("network", "connect", "front", "ghost")
    assert code == 1 and err == "Error response from daemon: No such container: ghost\n"
    code, _, err = cli("network", "connect", "front", "hosty")
    assert code == 1 and "connected to host network" in err
    code, _, err = cli("network", "connect", "front", "lonely")
    assert code == 1 and "private (none) mode" in err
    code, _, err = cli("network", "connect", "--alias", "x", "bridge", "lonely")
    assert code == 1
    code, _, err = cli("network", "connect", "--ip", "10.0.0.9", "bridge", "app")
    assert code == 1
    code, _, err = cli("network", "disconnect", "host", "hosty")
    assert code == 1 and "host network" in err


def test_disconnect_force_forgets_a_vanished_network(cli: Cli) -> None:
    cli("network", "create", "gone")
    cid = cli.container("app", "", networks=("gone",))
    store = NetworkStore(cli.root)
    (store.dir / f"{store.get('gone').id}.json").unlink()  # vanished behind our back
    assert cli("network", "disconnect", "gone", "app")[0] == 1
    assert cli("network", "disconnect", "-f", "gone", "app")[0] == 0
    assert list(cli.containers.get(cid).networks) == ["bridge"]
