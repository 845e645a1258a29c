"""The configuration file's [storage] and [network] reach the Settings the CLI builds;
command-line flags and CARGOHOLD_* variables win over it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from cargohold.cli.context import Context
from cargohold.errors import InvalidArgument
from cargohold.network.store import DEFAULT_BRIDGE_NAME, DEFAULT_SUBNET, NetworkStore

CONF = """\
insecure-registries = ["127.0.0.1:5000"]
[storage]
driver = "vfs"
[network]
subnet = "10.99.0.0/16"
bridge = "chtest0"
"""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("CARGOHOLD_CONFIG", "CARGOHOLD_STORAGE_DRIVER", "CARGOHOLD_NETWORK_SUBNET",
                "CARGOHOLD_NETWORK_BRIDGE", "CARGOHOLD_ROOT", "CARGOHOLD_RUNROOT"):
        monkeypatch.delenv(var, raising=False)


def context(tmp_path: Path, storage_driver: str | None = None) -> Context:
    opts = argparse.Namespace(root=str(tmp_path / "root"), runroot=str(tmp_path / "run"),
                              runtime=None, storage_driver=storage_driver, debug=False)
    return Context.from_options(opts)


def config(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch,
           name: str = "registries.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    monkeypatch.setenv("CARGOHOLD_CONFIG", str(path))
    return path


def test_file_sets_driver_subnet_and_bridge(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    path = config(tmp_path, CONF, monkeypatch)
    s = context(tmp_path).settings
    assert s.storage_driver == "vfs"
    assert s.extra["config_file"] == str(path)
    store = NetworkStore.from_settings(s)
    assert (store.default_subnet, store.default_bridge) == ("10.99.0.0/16", "chtest0")


def test_json_form_is_read_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config(tmp_path, json.dumps({"storage": {"driver": "vfs"},
                                 "network": {"subnet": "10.98.0.0/24"}}),
           monkeypatch, "registries.json")
    s = context(tmp_path).settings
    assert (s.storage_driver, s.extra["default_bridge_subnet"]) == ("vfs", "10.98.0.0/24")
    assert "default_bridge_name" not in s.extra


def test_flags_and_environment_win(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config(tmp_path, CONF, monkeypatch)
    assert context(tmp_path, storage_driver="overlay").settings.storage_driver == "overlay"
    monkeypatch.setenv("CARGOHOLD_STORAGE_DRIVER", "overlay")
    monkeypatch.setenv("CARGOHOLD_NETWORK_SUBNET", "10.97.0.0/16")
    monkeypatch.setenv("CARGOHOLD_NETWORK_BRIDGE", "envbr0")
    s = context(tmp_path).settings
    assert s.storage_driver == "overlay"
    store = NetworkStore.from_settings(s)
    assert (store.default_subnet, store.default_bridge) == ("10.97.0.0/16", "envbr0")


def test_driver_is_a_default_for_new_stores_only(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    config(tmp_path, '[storage]\ndriver = "overlay"\n', monkeypatch)
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "storage.json").write_text('{"driver": "vfs"}')
    assert context(tmp_path).settings.storage_driver == ""  # the store keeps vfs


def test_no_file_means_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARGOHOLD_CONFIG", str(tmp_path / "missing.toml"))
    s = context(tmp_path).settings
    assert s.storage_driver == ""
    store = NetworkStore.from_settings(s)
    assert (store.default_subnet, store.default_bridge) == (DEFAULT_SUBNET, DEFAULT_BRIDGE_NAME)


@pytest.mark.parametrize("text,words", [
    ('[storage]\ndriver = "btrfs"\n', "unknown storage driver 'btrfs'"),
    ('[network]\nsubnet = "10.1.2.3/16"\n', "network subnet '10.1.2.3/16'"),
    ('[network]\nsubnet = "fd00::/64"\n', "IPv4"),
    ('[network]\nbridge = "a-name-far-too-long"\n', "bridge name"),
    ("[storage\n", "invalid configuration file"),
])
def test_bad_values_name_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str,
                                  words: str) -> None:
    path = config(tmp_path, text, monkeypatch)
    with pytest.raises(InvalidArgument) as exc:
        context(tmp_path)
    assert words in str(exc.value) and str(path) in str(exc.value)
