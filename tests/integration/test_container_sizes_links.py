"""ps -s / inspect -s sizes, rename and links, run -a (root, through the CLI)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
from containers_env import Env, container_env, needs_runtime

pytestmark = needs_runtime


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with container_env(tmp_path_factory.mktemp("ctr-misc")) as e:
        yield e


def test_ps_and_inspect_sizes(env: Env) -> None:
    env.ch("run", "--name", "sz", "bb", "sh", "-c", "printf 123456789012 > /f")
    image_size = json.loads(env.out("image", "inspect", "bb"))[0]["Size"]
    assert image_size > 0
    data = json.loads(env.out("inspect", "-s", "sz"))[0]
    assert data["SizeRw"] >= 12
    assert data["SizeRootFs"] == data["SizeRw"] + image_size
    same = json.loads(env.out("container", "inspect", "-s", "sz"))[0]
    assert (same["SizeRw"], same["SizeRootFs"]) == (data["SizeRw"], data["SizeRootFs"])
    assert "SizeRw" not in json.loads(env.out("inspect", "sz"))[0]
    out = env.out("ps", "-a", "-s", "--filter", "name=sz")
    header, row = out.splitlines()
    assert header.rstrip().endswith("SIZE")
    m = re.search(r"(\S+) \(virtual (\S+)\)$", row)
    assert m, row
    from cargohold.cli.humanize import human_size

    assert m.groups() == (human_size(data["SizeRw"]), human_size(data["SizeRootFs"]))
    fmt = env.out("ps", "-a", "-s", "--filter", "name=sz", "--format", "{{.Size}}")
    assert fmt == m.group(0)
    env.ch("rm", "sz")
