"""``cargohold events`` and the engine's event stream (engine/system_events.py) without root:
Docker's filters and time rules, the default line and ``--format``, and the events the
image, volume, network and container record verbs write (vfs store in a temp dir)."""

from __future__ import annotations

import io
import json
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cargohold.cli.main import main
from cargohold.engine.system.events import (
    EventFilter,
    EventsRequest,
    api_timestamp,
    client_timestamp,
    open_events,
    parse_filter_words,
)
from cargohold.errors import ClientError, InvalidArgument
from cargohold.util.eventlog import emit, encode_line, event_object
from cargohold.util.eventlog_read import Message, decode_line

CID = "4f9c2a1b" + "0" * 56
NID = "9e8d7c6b" + "1" * 56


def msg(kind: str, action: str, actor: str, **attrs: str) -> Message:
    event = decode_line(encode_line(event_object(kind, action, actor, attrs, now_ns=10**18)))
    assert event is not None
    return event


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# --------------------------------------------------------------------------- filters


def include(words: list[str], event: Message) -> bool:
    return EventFilter(parse_filter_words(words)).include(event)


def test_filter_keys_are_anded_and_values_of_one_key_ored() -> None:
    start = msg("container", "start", CID, name="web", image="busybox")
    die = msg("container", "die", CID, name="web", image="busybox", exitCode="0")
    net = msg("network", "create", NID, name="front", type="bridge")
    assert include(["type=container"], start) and not include(["type=container"], net)
    assert include(["type=container", "type=network"], net)
    assert include(["event=start", "event=die"], die)
    assert not include(["type=container", "event=start"], die)
    assert include(["Event = die "], die)  # the CLI lowercases the key and trims, as docker
    assert include(["type=network", "event=create"], net)


def test_object_filters_match_an_id_or_name_prefix() -> None:
    start = msg("container", "start", CID, name="web-1", image="busybox")
    assert include([f"container={CID[:6]}"], start) and include(["container=web"], start)
    assert not include(["container=db"], start)
    # moby applies the container key to every event: a network event names no container
    connect = msg("network", "connect", NID, name="front", type="bridge", container=CID)
    assert not include([f"container={CID}"], connect)
    assert include(["network=front"], connect) and include([f"network={NID[:4]}"], connect)
    vol = msg("volume", "mount", "data", driver="local", container=CID)
    assert include(["volume=data"], vol) and not include(["volume=other"], vol)


def test_image_filter_matches_exactly_with_or_without_the_tag() -> None:
    start = msg("container", "start", CID, name="web", image="busybox:1.36")
    assert include(["image=busybox"], start) and include(["image=busybox:1.36"], start)
    assert not include(["image=busy"], start)
    tag = msg("image", "tag", "sha256:" + "a" * 64, name="localhost:5000/app:v2")
    assert include(["image=localhost:5000/app"], tag)
    assert include(["image=sha256:" + "a" * 64], tag)


def test_label_filters_are_all_required() -> None:
    start = msg("container", "start", CID, name="web", image="bb",
                **{"com.docker.compose.project": "p", "tier": "front"})  # fmt: skip
    assert include(["label=com.docker.compose.project=p"], start)
    assert include(["label=com.docker.compose.project=p", "label=tier"], start)
    assert not include(["label=com.docker.compose.project=p", "label=tier=back"], start)
    assert not include(["label=other"], start)


def test_health_status_and_exec_events_match_without_their_suffix() -> None:
    healthy = msg("container", "health_status: healthy", CID, name="web")
    assert include(["event=health_status"], healthy)
    assert include(["event=health_status: healthy"], healthy)
    assert not include(["event=health"], healthy)  # only the three names Docker lists
    exec_start = msg("container", "exec_start: sh -c true", CID, name="web")
    assert include(["event=exec_start"], exec_start)


def test_filter_words_need_a_value() -> None:
    assert parse_filter_words(["type=container", "type=container", "label=a=b"]) == {
        "type": ["container"], "label": ["a=b"]}  # fmt: skip
    with pytest.raises(ClientError, match=r'invalid argument "type" for "-f, --filter" flag'):
        parse_filter_words(["type"])


# --------------------------------------------------------------------------- times


def test_client_timestamps_are_dockers() -> None:
    now = 1_700_000_000_500_000_000
    assert client_timestamp("10m", now) == "1699999400"  # whole seconds, as GetTimestamp
    assert client_timestamp("1h30m", now) == str(1_700_000_000 - 5400)
    assert client_timestamp("1700000000.25", now) == "1700000000.250000000"
    assert client_timestamp("2023-11-14T22:13:20Z", now) == "1700000000.000000000"
    assert client_timestamp("2023-11-14T22:13:20.5+01:00", now) == "1699996400.500000000"
    with pytest.raises(ClientError, match='failed to parse value as time or duration: "soon"'):
        client_timestamp("soon", now)


def test_api_timestamps_are_seconds_with_a_fraction() -> None:
    assert api_timestamp("") is None
    assert api_timestamp("1700000000") == 1_700_000_000 * 10**9
    assert api_timestamp("1700000000.5") == 1_700_000_000_500_000_000
    assert api_timestamp("1700000000.000000001") == 1_700_000_000_000_000_001
    with pytest.raises(InvalidArgument):
        api_timestamp("yesterday")


# --------------------------------------------------------------------------- the stream


def test_window_replay_and_follow(tmp_path: Path) -> None:
    run = tmp_path / "run"
    emit(run, "container", "create", CID, {"name": "web"})
    t1 = time.time_ns()
    emit(run, "container", "start", CID, {"name": "web"})
    t2 = time.time_ns()
    emit(run, "container", "die", CID, {"name": "web"})
    since = f"{t1 // 10**9}.{t1 % 10**9:09d}"
    until = f"{t2 // 10**9}.{t2 % 10**9:09d}"
    past = list(open_events(run, EventsRequest(since=since, until=until)))
    assert [m.Action for m in past] == ["start"]
    everything = list(open_events(run, EventsRequest(until=until)))  # until alone: from 0
    assert [m.Action for m in everything] == ["create", "start"]
    with pytest.raises(InvalidArgument, match="cannot be after `until` time"):
        open_events(run, EventsRequest(since=until, until=since))
    # without since/until only new events come; until ahead ends the stream then
    soon = time.time_ns() + 600_000_000
    stream = open_events(run, EventsRequest(until=f"{soon // 10**9}.{soon % 10**9:09d}",
                                            filters={"event": ["kill"]}))  # fmt: skip
    threading.Timer(0.1, lambda: emit(run, "container", "kill", CID, {"signal": "9"})).start()
    t0 = time.monotonic()
    got = list(stream)
    assert [m.Action for m in got][-1] == "kill" and 0.3 < time.monotonic() - t0 < 3


def test_close_from_another_thread_ends_a_follow(tmp_path: Path) -> None:
    run = tmp_path / "run"
    emit(run, "container", "create", CID, {"name": "web"})
    stream = open_events(run, EventsRequest())
    got: list[Message] = []
    t = threading.Thread(target=lambda: got.extend(stream))
    t.start()
    time.sleep(0.2)
    emit(run, "container", "start", CID, {"name": "web"})
    time.sleep(0.2)
    stream.close()
    t.join(3)
    assert not t.is_alive()
    assert [m.Action for m in got] == ["start"]  # not the create from before it began
    open_events(run, EventsRequest()).close()  # never iterated: closed all the same


# --------------------------------------------------------------------------- the CLI


class Cli:
    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root = root
        self.run = root / "run"
        self.capsys = capsys

    def __call__(self, *args: str) -> tuple[int, str, str]:
        code = main(["--root", str(self.root), "--runroot", str(self.run),
                     "--storage-driver", "vfs", *args])  # fmt: skip
        out, err = self.capsys.readouterr()
        return code, out, err

    def events(self, *args: str) -> list[dict[str, object]]:
        """Every event so far (``--until 0s`` would be the current second: Docker's
        GetTimestamp truncates a duration to whole seconds)."""
        now = f"{time.time() + 0.001:.6f}"
        code, out, err = self("events", "--since", "0", "--until", now, "--format", "json",
                              *args)  # fmt: skip
        assert code == 0, err
        return [json.loads(line) for line in out.splitlines()]


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    return Cli(tmp_path / "root", capsys)


def test_default_line_is_docker_clis(cli: Cli, utc: None) -> None:
    t = 1_796_355_034_123_456_789
    line = encode_line(event_object("container", "start", CID,
                                    {"name": "web", "image": "busybox"}, now_ns=t))  # fmt: skip
    (cli.run / "events").mkdir(parents=True)
    (cli.run / "events" / "events.jsonl").write_bytes(line)
    code, out, _ = cli("events", "--since", "0", "--until", "0s")
    assert (code, out) == (0, f"2026-12-04T03:30:34.123456789Z container start {CID} "
                              "(image=busybox, name=web)\n")  # fmt: skip
    code, out, _ = cli("system", "events", "--since", "0", "--until", "0s", "--format",
                       "{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.Status}} {{.Time}}")
    assert out == "container start web start 1796355034\n"
    code, out, _ = cli("events", "--since", "0", "--until", "0s", "--format", "{{json .}}")
    assert json.loads(out) == {
        "status": "start", "id": CID, "from": "busybox", "Type": "container",
        "Action": "start", "Actor": {"ID": CID, "Attributes": {"image": "busybox",
                                                             "name": "web"}},
        "scope": "local", "time": 1796355034, "timeNano": t,
    }  # fmt: skip


def test_cli_errors_are_dockers(cli: Cli) -> None:
    code, _, err = cli("events", "--format", "{{.NoSuchField}}")
    assert code == 64 and err.startswith("Error parsing format: template: :1:")
    assert "can't evaluate field NoSuchField" in err
    code, _, err = cli("events", "-f", "type")
    assert code == 125 and "bad format of filter (expected name=value)" in err
    code, _, err = cli("events", "--since", "tomorrow")
    assert (code, err) == (1, 'failed to parse value as time or duration: "tomorrow"\n')
    code, _, err = cli("events", "--since", "0s", "--until", "1h")
    assert code == 1 and "Error response from daemon: `since` time (" in err


def test_volume_network_and_image_verbs_write_their_events(cli: Cli, tmp_path: Path) -> None:
    tar = tmp_path / "rootfs.tar"
    with tarfile.open(tar, "w") as tf:
        info = tarfile.TarInfo("bin/hello")
        info.size, info.mode = 3, 0o755
        tf.addfile(info, io.BytesIO(b"hi\n"))
    assert cli("volume", "create", "--label", "a=1", "data")[0] == 0
    assert cli("volume", "rm", "data")[0] == 0
    code, out, _ = cli("network", "create", "front")
    net_id = out.strip()
    assert cli("network", "rm", "front")[0] == 0
    code, out, err = cli("import", "-c", "LABEL tier=web", str(tar), "img:1")
    assert code == 0, err
    image_id = out.strip()
    assert cli("tag", "img:1", "img:2")[0] == 0
    assert cli("rmi", "img:2")[0] == 0
    assert cli("rmi", "img:1")[0] == 0
    assert cli("volume", "prune", "-f")[0] == 0
    got = [(e["Type"], e["Action"], e["Actor"]) for e in cli.events()]  # type: ignore[index]
    assert got == [
        ("volume", "create", {"ID": "data", "Attributes": {"driver": "local"}}),
        ("volume", "destroy", {"ID": "data", "Attributes": {"driver": "local"}}),
        ("network", "create", {"ID": net_id, "Attributes": {"name": "front", "type": "bridge"}}),
        ("network", "destroy", {"ID": net_id, "Attributes": {"name": "front", "type": "bridge"}}),
        ("image", "tag", {"ID": image_id, "Attributes": {"name": "img:1", "tier": "web"}}),
        ("image", "import", {"ID": image_id, "Attributes": {"name": image_id, "tier": "web"}}),
        ("image", "tag", {"ID": image_id, "Attributes": {"name": "img:2", "tier": "web"}}),
        ("image", "untag", {"ID": image_id, "Attributes": {"name": image_id, "tier": "web"}}),
        ("image", "untag", {"ID": image_id, "Attributes": {"name": image_id, "tier": "web"}}),
        ("image", "delete", {"ID": image_id, "Attributes": {"name": image_id}}),
        ("volume", "prune", {"ID": "", "Attributes": {"reclaimed": "0"}}),
    ]
    assert [e["Type"] for e in cli.events("-f", "type=image", "-f", "event=tag")] == [
        "image", "image"]  # fmt: skip


def test_container_record_verbs_write_their_events(cli: Cli, tmp_path: Path) -> None:
    tar = tmp_path / "rootfs.tar"
    with tarfile.open(tar, "w") as tf:
        info = tarfile.TarInfo("bin/hello")
        info.size, info.mode = 3, 0o755
        tf.addfile(info, io.BytesIO(b"hi\n"))
    assert cli("import", str(tar), "img:1")[0] == 0
    code, out, err = cli("create", "--name", "web", "--label", "tier=front", "img:1",
                         "/bin/hello")  # fmt: skip
    assert code == 0, err
    cid = out.strip()
    assert cli("rename", "web", "web2")[0] == 0
    assert cli("rm", "web2")[0] == 0
    assert cli("container", "prune", "-f")[0] == 0
    got = cli.events("-f", "type=container")
    assert [e["Action"] for e in got] == ["create", "rename", "destroy", "prune"]
    create, rename, destroy, _ = got
    assert create["Actor"] == {"ID": cid, "Attributes": {"image": "img:1", "name": "web",
                                                         "tier": "front"}}  # fmt: skip
    assert create["status"] == "create" and create["id"] == cid and create["from"] == "img:1"
    assert rename["Actor"]["Attributes"]["oldName"] == "/web"  # type: ignore[index]
    assert rename["Actor"]["Attributes"]["name"] == "web2"  # type: ignore[index]
    assert destroy["Actor"]["Attributes"]["name"] == "web2"  # type: ignore[index]
    only = cli.events("-f", "container=web2", "-f", "event=destroy", "-f", "event=rename")
    assert [e["Action"] for e in only] == ["rename", "destroy"]
