"""The shared event log (util/eventlog.py, util/eventlog_read.py): whole lines from concurrent
writers, rotation without loss for a follower, torn lines, following and waking."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path

import msgspec
import pytest

from cargohold.util import eventlog
from cargohold.util.eventlog import CURRENT, PREVIOUS, EventLog, emit, encode_line, event_object
from cargohold.util.eventlog_read import Follower, Message, decode_line


def _writer(runroot: str, worker: int, count: int, pause: float = 0.0) -> None:
    for i in range(count):
        emit(Path(runroot), "container", "start", f"w{worker}", {"seq": str(i), "pad": "x" * 300})
        if pause:
            time.sleep(pause)


def _lines(run: Path) -> list[bytes]:
    out = []
    for name in (PREVIOUS, CURRENT):
        path = run / "events" / name
        if path.exists():
            out += path.read_bytes().splitlines(keepends=True)
    return out


def _spawn(runroot: Path, workers: int, count: int, pause: float = 0.0) -> None:
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(str(runroot), w, count, pause))
             for w in range(workers)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0


def test_line_is_dockers_message(tmp_path: Path) -> None:
    attrs = {"name": "web", "image": "bb", "exitCode": "3", "com.x": "y"}
    obj = event_object("container", "die", "c" * 64, attrs, now_ns=1_700_000_000_123_456_789)
    line = encode_line(obj)
    assert line == (
        b'{"status":"die","id":"' + b"c" * 64 + b'","from":"bb","Type":"container",'
        b'"Action":"die","Actor":{"ID":"' + b"c" * 64 + b'","Attributes":{"com.x":"y",'
        b'"exitCode":"3","image":"bb","name":"web"}},"scope":"local","time":1700000000,'
        b'"timeNano":1700000000123456789}\n'
    )
    msg = decode_line(line)
    assert msg is not None and msg.Actor.Attributes["exitCode"] == "3" and msg.From == "bb"
    assert msgspec.json.encode(msg) + b"\n" == line  # the API can send a decoded event as is
    net = encode_line(event_object("network", "connect", "n1", {"name": "x"}, now_ns=5))
    assert b"status" not in net and b'"from"' not in net  # legacy fields: containers, images


def test_concurrent_writers_leave_only_whole_lines(tmp_path: Path) -> None:
    run = tmp_path / "run"
    _spawn(run, workers=6, count=150)
    lines = _lines(run)
    assert len(lines) == 900
    seen = set()
    for line in lines:
        assert line.endswith(b"\n")
        msg = decode_line(line)
        assert msg is not None, line
        seen.add((msg.Actor.ID, msg.Actor.Attributes["seq"]))
    assert len(seen) == 900
    mode = (run / "events" / CURRENT).stat().st_mode & 0o777
    assert mode == 0o600


def test_rotation_bounds_the_log_and_a_follower_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(eventlog, "SEGMENT_MAX", 40_000)
    run = tmp_path / "run"
    follower = Follower(EventLog(run), replay=False)
    got: list[Message] = []
    try:
        done = threading.Event()

        def follow() -> None:
            while not done.is_set():
                got.extend(follower.read())
                follower.wait(0.05)
            got.extend(follower.read())

        t = threading.Thread(target=follow)
        t.start()
        _spawn(run, workers=4, count=200, pause=0.0005)  # ~300 KiB: 7 rotations
        time.sleep(0.3)
        done.set()
        t.join(10)
    finally:
        follower.close()
    assert sorted((m.Actor.ID, int(m.Actor.Attributes["seq"])) for m in got) == sorted(
        (f"w{w}", i) for w in range(4) for i in range(200)
    )
    by_writer: dict[str, list[int]] = {}
    for m in got:
        by_writer.setdefault(m.Actor.ID, []).append(int(m.Actor.Attributes["seq"]))
    assert all(seqs == sorted(seqs) for seqs in by_writer.values())  # each writer in order
    kept = _lines(run)
    total = sum(len(x) for x in kept)
    assert total <= 2 * 40_000 + 1024
    assert sorted(os.listdir(run / "events")) == [CURRENT, PREVIOUS]
    replay = Follower(EventLog(run), replay=True)
    try:
        again = list(replay.read())
    finally:
        replay.close()
    assert len(again) == len(kept) and decode_line(kept[-1]) == again[-1]


def test_a_reader_keeps_up_across_rotations_between_two_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two rotations between reads lose nothing (the segment it held, the previous one);
    only sleeping through a whole third segment does."""
    monkeypatch.setattr(eventlog, "SEGMENT_MAX", 5_000)  # ~14 events per segment
    run = tmp_path / "run"
    follower = Follower(EventLog(run), replay=False)
    seq, got = 0, []
    try:
        for burst in (3, 30, 10, 25, 1, 15):
            for _ in range(burst):
                emit(run, "container", "x", "a", {"seq": str(seq), "pad": "y" * 200})
                seq += 1
            got += [int(m.Actor.Attributes["seq"]) for m in follower.read()]
    finally:
        follower.close()
    assert got == list(range(seq))


def test_torn_last_line_is_skipped_and_following_goes_on(tmp_path: Path) -> None:
    run = tmp_path / "run"
    emit(run, "container", "create", "a", {"name": "one"})
    follower = Follower(EventLog(run), replay=True)
    try:
        assert [m.Action for m in follower.read()] == ["create"]
        full = encode_line(event_object("container", "start", "a", {"name": "one"}))
        with open(run / "events" / CURRENT, "ab") as f:
            f.write(full[:37])  # a writer killed in the middle of its write
        assert list(follower.read()) == []  # a partial last line: not an event (yet)
        emit(run, "container", "die", "a", {"name": "one", "exitCode": "0"})
        assert [m.Action for m in follower.read()] == ["die"]
    finally:
        follower.close()
    assert decode_line(b"garbage\n") is None and decode_line(b"\n") is None


def test_a_rotator_that_died_is_finished_by_the_next_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = tmp_path / "run"
    emit(run, "container", "create", "a", {})
    current = run / "events" / CURRENT
    os.chmod(current, eventlog.ROTATED_MODE)  # marked, never renamed
    emit(run, "container", "start", "a", {})
    assert [decode_line(x).Action for x in current.read_bytes().splitlines()] == ["start"]  # type: ignore[union-attr]
    assert (run / "events" / PREVIOUS).exists()


def test_oversized_labels_are_dropped_not_the_event(tmp_path: Path) -> None:
    attrs = {"big": "x" * (eventlog.LINE_MAX + 10), "name": "web", "exitCode": "1"}
    keep = frozenset({"name", "exitCode"})
    line = encode_line(event_object("container", "die", "a", attrs), keep)
    msg = decode_line(line)
    assert msg is not None and msg.Actor.Attributes == {"exitCode": "1", "name": "web"}


def test_follower_sees_an_append_at_once_and_wake_ends_a_wait(tmp_path: Path) -> None:
    run = tmp_path / "run"
    follower = Follower(EventLog(run), replay=False)
    try:
        assert list(follower.read()) == []
        t0 = time.monotonic()
        threading.Timer(0.2, lambda: emit(run, "image", "pull", "bb:latest", {})).start()
        got: list[Message] = []
        while not got and time.monotonic() - t0 < 5:
            assert follower.wait(5)  # woken by the file's creation, then by the write
            got = list(follower.read())
        latency = time.monotonic() - t0 - 0.2
        assert [m.Action for m in got] == ["pull"]
        assert latency < 0.1  # inotify: no polling interval in between
        t0 = time.monotonic()
        threading.Timer(0.1, follower.wake).start()
        while follower.wait(None):  # a late inotify event of the append may wake it first
            assert time.monotonic() - t0 < 2
        assert follower.wait(None) is False  # and every later wait
    finally:
        follower.close()
        follower.close()  # idempotent


def test_an_unwritable_log_never_fails_the_mutation(tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "events").write_text("not a directory")
    emit(run, "container", "create", "a", {})  # no exception
