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


def test_rename_updates_links(env: Env) -> None:
    env.ch("run", "-d", "--name", "tgt", "-h", "tgthost", "bb", "sleep", "300")
    env.ch("run", "-d", "--name", "rcv", "--link", "tgt:alias", "bb", "sleep", "300")
    env.ch("run", "-d", "--name", "rcv2", "--link", "tgt", "bb", "sleep", "300")
    try:
        ip = env.inspect("tgt")["NetworkSettings"]["IPAddress"]  # type: ignore[index]
        env.ch("rename", "tgt", "tgt2")
        assert env.inspect("rcv")["HostConfig"]["Links"] == ["tgt2:alias"]  # type: ignore[index]
        assert env.inspect("rcv2")["HostConfig"]["Links"] == ["tgt2:tgt"]  # type: ignore[index]
        names = env.out("ps", "--filter", "name=tgt2", "--format", "{{.Names}}")
        assert sorted(names.split(",")) == ["rcv/alias", "rcv2/tgt", "tgt2"]
        hosts = env.out("exec", "rcv", "cat", "/etc/hosts")
        assert re.search(rf"^{re.escape(str(ip))}\talias tgthost tgt2$", hosts, re.M), hosts
        hosts2 = env.out("exec", "rcv2", "cat", "/etc/hosts")
        assert re.search(rf"^{re.escape(str(ip))}\ttgt tgthost tgt2$", hosts2, re.M), hosts2
        # the link still resolves after a restart of the receiver
        env.ch("restart", "-t", "0", "rcv")
        out = env.out("exec", "rcv", "ping", "-c", "1", "-W", "5", "alias")
        assert "1 packets received" in out
    finally:
        env.ch("rm", "-f", "tgt2", "tgt", "rcv", "rcv2", check=False)


ECHO_BOTH = "echo out; echo err >&2"


def test_run_attach_selected_streams(env: Env) -> None:
    r = env.ch("run", "--name", "a1", "-a", "stdout", "bb", "sh", "-c", ECHO_BOTH)
    assert (r.stdout, r.stderr) == ("out\n", "")
    assert env.inspect("a1")["Config"]["AttachStderr"] is False  # type: ignore[index]
    logs = env.ch("logs", "a1")
    assert (logs.stdout, logs.stderr) == ("out\n", "err\n")  # the log keeps both
    r = env.ch("run", "--rm", "-a", "STDERR", "bb", "sh", "-c", ECHO_BOTH)
    assert (r.stdout, r.stderr) == ("", "err\n")
    r = env.ch("run", "--rm", "-a", "stdout", "-a", "stderr", "bb", "sh", "-c", ECHO_BOTH)
    assert (r.stdout, r.stderr) == ("out\n", "err\n")
    # -i attaches stdin whatever -a says
    r = env.ch("run", "--rm", "-i", "-a", "stdout", "bb", "cat", stdin="piped\n")
    assert r.stdout == "piped\n"
    # neither stdout nor stderr: Docker prints the container's id, and still waits for it
    r = env.ch(
        "run", "--name", "a2", "-a", "stdin", "bb", "sh", "-c", "echo out; exit 3", check=False
    )
    assert r.returncode == 3
    assert re.fullmatch(r"[0-9a-f]{64}\n", r.stdout), r.stdout
    assert r.stdout.strip() == env.inspect("a2")["Id"]
    env.ch("rm", "a1", "a2")


def test_run_attach_bad_input(env: Env) -> None:
    r = env.ch("run", "-d", "-a", "stdout", "bb", "true", check=False)
    assert r.returncode == 125 and "Conflicting options: -a and -d" in r.stderr
    r = env.ch("run", "-a", "stdcat", "bb", "true", check=False)
    assert r.returncode == 125 and "invalid argument" in r.stderr
    assert env.out("ps", "-a", "-q") == ""
