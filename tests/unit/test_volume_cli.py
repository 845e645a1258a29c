"""``volume create/ls/inspect/rm/prune`` through the CLI on a temp root (no root needed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cargohold.cli.main import main
from cargohold.volume.store import VolumeStore


class Cli:
    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root = root
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        code = main(["--root", str(self.root), "--runroot", str(self.root / "run"),
                     "--storage-driver", "vfs", *args])
        out, err = self.capsys.readouterr()
        return code, out, err


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(tmp_path / "root", capsys)


def test_create_prints_name_and_ls_shows_docker_columns(cli: Cli) -> None:
    assert cli("volume", "create", "data")[:2] == (0, "data\n")
    code, out, _ = cli("volume", "create")
    anon = out.strip()
    assert code == 0 and len(anon) == 64
    code, out, _ = cli("volume", "ls")
    lines = out.splitlines()
    assert lines[0].split() == ["DRIVER", "VOLUME", "NAME"]
    assert all(ln.index(ln.split()[1]) == lines[0].index("VOLUME NAME") for ln in lines[1:])
    assert sorted(ln.split()[1] for ln in lines[1:]) == sorted([anon, "data"])
    assert all(ln.split()[0] == "local" for ln in lines[1:])
    code, out, _ = cli("volume", "ls", "-q")
    assert sorted(out.split()) == sorted([anon, "data"])


def test_create_existing_name_is_idempotent_and_flags(cli: Cli) -> None:
    assert cli("volume", "create", "--label", "a=1", "-o", "type=tmpfs", "vv")[0] == 0
    assert cli("volume", "create", "vv")[:2] == (0, "vv\n")
    assert cli("volume", "create", "--name", "ww")[:2] == (0, "ww\n")
    _, out, _ = cli("volume", "inspect", "vv")
    (doc,) = json.loads(out)
    assert list(doc) == ["CreatedAt", "Driver", "Labels", "Mountpoint", "Name", "Options", "Scope"]
    assert doc["Labels"] == {"a": "1"} and doc["Options"] == {"type": "tmpfs"}
    assert doc["Name"] == "vv" and doc["Driver"] == "local" and doc["Scope"] == "local"
    assert Path(doc["Mountpoint"]).is_dir()


def test_create_bad_input(cli: Cli) -> None:
    code, _, err = cli("volume", "create", "a/b")
    assert code == 1 and "includes invalid characters for a local volume name" in err
    code, _, err = cli("volume", "create", "-d", "nfs", "x")
    assert code == 1 and "plugin not found" in err
    code, _, err = cli("volume", "create", "-o", "bogus=1", "x")
    assert code == 1 and 'invalid option key: "bogus"' in err
    assert cli("volume", "ls", "-q")[1] == ""


def test_inspect_missing_and_format(cli: Cli) -> None:
    cli("volume", "create", "vv")
    code, out, err = cli("volume", "inspect", "vv", "nope")
    assert code == 1 and err.strip() == "Error: No such volume: nope"
    assert [d["Name"] for d in json.loads(out)] == ["vv"]
    code, out, _ = cli("volume", "inspect", "-f", "{{.Name}} {{.Driver}}", "vv")
    assert (code, out) == (0, "vv local\n")
    code, out, _ = cli("inspect", "--type", "volume", "-f", "{{.Name}}", "vv")
    assert (code, out) == (0, "vv\n")


def test_ls_filters_and_format(cli: Cli) -> None:
    cli("volume", "create", "--label", "env=prod", "web")
    cli("volume", "create", "--label", "env=dev", "db")
    cli("volume", "create", "other")
    VolumeStore(cli.root).add_ref("db", "c" * 64)
    q = lambda *f: cli("volume", "ls", "-q", *f)[1].split()  # noqa: E731
    assert q("--filter", "label=env") == ["db", "web"]
    assert q("--filter", "label=env=prod") == ["web"]
    assert q("--filter", "name=we") == ["web"]
    assert q("--filter", "dangling=true") == ["other", "web"]
    assert q("--filter", "dangling=false") == ["db"]
    assert q("--filter", "driver=local") == ["db", "other", "web"]
    code, _, err = cli("volume", "ls", "--filter", "colour=red")
    assert code == 1 and "Invalid filter 'colour'" in err
    code, out, _ = cli("volume", "ls", "--format", "{{.Name}}:{{.Labels}}", "-f", "name=web")
    assert out == "web:env=prod\n"
    code, out, _ = cli("volume", "ls", "--format", "table {{.Name}}\t{{.Scope}}", "-f", "name=db")
    assert out.splitlines()[0].split() == ["VOLUME", "NAME", "SCOPE"]


def test_rm_prints_names_refuses_in_use_and_missing(cli: Cli) -> None:
    for name in ("va", "vb", "busy"):
        cli("volume", "create", name)
    cid = "f" * 64
    VolumeStore(cli.root).add_ref("busy", cid)
    code, out, err = cli("volume", "rm", "va", "busy", "nope", "vb")
    assert code == 1
    assert out == "va\nvb\n"
    assert err.splitlines() == [
        f"Error response from daemon: remove busy: volume is in use - [{cid}]",
        "Error: No such volume: nope",
    ]
    assert cli("volume", "rm", "-f", "nope")[0] == 0
    code, _, err = cli("volume", "rm", "-f", "busy")  # force does not remove a volume in use
    assert code == 1 and "volume is in use" in err
    VolumeStore(cli.root).remove_ref("busy", cid)
    assert cli("volume", "rm", "busy")[:2] == (0, "busy\n")
    assert cli("volume", "ls", "-q")[1] == ""


def test_prune_removes_unused_only(cli: Cli) -> None:
    for name in ("keep", "old1", "old2"):
        cli("volume", "create", name)
    cli("volume", "create", "--label", "tier=x", "lab")
    VolumeStore(cli.root).add_ref("keep", "a" * 64)
    Path(VolumeStore(cli.root).get("old1").mountpoint, "f").write_bytes(b"x" * 10000)
    code, out, _ = cli("volume", "prune", "-f", "--filter", "label=tier")
    assert (code, out) == (0, "Deleted Volumes:\nlab\n\nTotal reclaimed space: 0B\n")
    code, out, _ = cli("volume", "prune", "-f")
    lines = out.splitlines()
    assert lines[:3] == ["Deleted Volumes:", "old1", "old2"]
    assert lines[3] == "" and lines[4].startswith("Total reclaimed space: ")
    assert lines[4] != "Total reclaimed space: 0B"
    assert cli("volume", "ls", "-q")[1] == "keep\n"
    code, out, _ = cli("volume", "prune", "-f")
    assert out == "Total reclaimed space: 0B\n"


def test_system_df_counts_volumes(cli: Cli) -> None:
    cli("volume", "create", "va")
    cli("volume", "create", "vb")
    VolumeStore(cli.root).add_ref("va", "a" * 64)
    Path(VolumeStore(cli.root).get("vb").mountpoint, "f").write_bytes(b"x" * 8192)
    _, out, _ = cli("system", "df", "--format", "{{.Type}}|{{.TotalCount}}|{{.Active}}")
    assert "Local Volumes|2|1" in out.splitlines()
