"""Build progress: BuildKit's TTY block (frames, redraw sequences, tails, errors) against an
in-memory stream with a pinned clock and width, and the plain mode's bytes."""

from __future__ import annotations

import io
import itertools
import re
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from cargohold.builder.progress import Progress, pull_notes
from cargohold.builder.progress_tty import clean, columns, cut, row
from cargohold.errors import CargoholdError, NotFound
from cargohold.transport.registry.events import ErrorDetail, JSONMessage, status, update

Event = update  # a layer's progress message: (short id, status, current, total)

UP = re.compile(r"\x1b\[(\d+)A\r")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def tty(width: int | None = 60, height: int | None = None) -> tuple[Progress, io.StringIO, Clock]:
    out, clock = io.StringIO(), Clock()
    return Progress(out, "tty", clock=clock, width=width, height=height, refresh=0), out, clock


def frames(text: str) -> tuple[list[tuple[int, list[str]]], str]:
    """The frames written, each as (lines the cursor went up first, its lines), and what
    follows the last one."""
    *chunks, rest = text.split("\x1b[J")
    out = []
    for chunk in chunks:
        m = UP.match(chunk)
        up = int(m.group(1)) if m else 0
        body = chunk[m.end() :] if m else chunk
        assert body.endswith("\x1b[K\n"), repr(chunk)
        out.append((up, body.split("\x1b[K\n")[:-1]))
    return out, rest


def simple_build(p: Progress, clock: Clock, fail: bool = False) -> None:
    p.start("[internal] load build definition from Dockerfile")
    p.note("transferring dockerfile: 74B done")
    p.done()
    p.plan(5)
    p.start("[1/3] FROM busybox:latest")
    p.cached()
    p.start("[2/3] COPY . /src")
    clock.advance(0.4)
    p.done()
    p.start("[3/3] RUN make" if not fail else "[3/3] RUN false")
    for i in range(3):
        clock.advance(0.1)
        p.output(f"out {i}\n".encode())
    clock.advance(1.0)
    if fail:
        p.error("The command '/bin/sh -c false' returned a non-zero code: 1")
        return
    p.done()
    p.start("exporting to image")
    p.note("writing image sha256:abc done")
    p.done()


def test_frames_header_markers_and_right_aligned_times() -> None:
    p, out, clock = tty(width=60)
    simple_build(p, clock)
    shots, rest = frames(out.getvalue())
    assert rest == ""
    assert shots[0] == (
        0,
        [
            "[+] Building 0.0s (0/1)",
            " => [internal] load build definition from Dockerfile   0.0s",
        ],
    )
    final = shots[-1][1]
    assert final == [
        "[+] Building 1.7s (5/5) FINISHED",
        " => [internal] load build definition from Dockerfile   0.0s",
        " => => transferring dockerfile: 74B done",
        " => CACHED [1/3] FROM busybox:latest                   0.0s",
        " => [2/3] COPY . /src                                  0.4s",
        " => [3/3] RUN make                                     1.3s",
        " => exporting to image                                 0.0s",
        " => => writing image sha256:abc done",
    ]
    step_lines = [line for shot in shots for line in shot[1][1:] if not line.startswith(" => => ")]
    assert all(len(line) == 59 and line.endswith("s") for line in step_lines)
    # the RUN step, live: its timer runs, the header counts what is done of what is known
    live = [lines for _, lines in shots if lines[-1].startswith(" => [3/3] RUN make")]
    assert live[0][0] == "[+] Building 0.4s (3/5)"
    assert live[0][-1] == " => [3/3] RUN make                                     0.0s"
    tail = [lines for _, lines in shots if lines[-1].startswith(" => => # out")]
    assert tail[-1][0] == "[+] Building 0.7s (3/5)"
    assert tail[-1][-4:] == [
        " => [3/3] RUN make                                     0.3s",
        " => => # out 0",
        " => => # out 1",
        " => => # out 2",
    ]


def test_cursor_goes_up_by_the_lines_drawn_last_and_rests_after_the_block() -> None:
    p, out, clock = tty()
    simple_build(p, clock)
    shots, _ = frames(out.getvalue())
    assert len(shots) > 8
    assert shots[0][0] == 0
    for (_, before), (up, _) in itertools.pairwise(shots):
        assert up == len(before)
    # every frame ends with its last line's newline then clear-to-end-of-screen
    assert out.getvalue().endswith("\x1b[K\n\x1b[J")


def test_output_tail_is_the_last_six_lines_and_gone_when_the_step_ends() -> None:
    p, out, clock = tty()
    p.start("[1/2] FROM busybox")
    p.done()
    p.start("[2/2] RUN seq 10")
    for i in range(10):
        clock.advance(0.1)
        p.output(f"line {i}\n".encode())
    last = frames(out.getvalue())[0][-1][1]
    assert last[-7].startswith(" => [2/2] RUN seq 10")
    assert last[-6:] == [f" => => # line {i}" for i in range(4, 10)]
    p.done()
    final = frames(out.getvalue())[0][-1][1]
    assert not any(line.startswith(" => => #") for line in final)


def test_partial_output_lines_wait_for_their_newline() -> None:
    p, out, clock = tty()
    p.start("[1/1] RUN x")
    clock.advance(0.1)
    p.output(b"hel")
    clock.advance(0.1)
    p.output(b"lo\nwor")
    clock.advance(0.1)
    p.flush_output()
    assert frames(out.getvalue())[0][-1][1][-2:] == [" => => # hello", " => => # wor"]


def test_long_text_is_cut_with_dots_and_never_wraps() -> None:
    p, out, clock = tty(width=40)
    name = "[2/2] RUN " + "x" * 100
    p.start(name)
    clock.advance(0.1)
    p.output(("y" * 100 + "\n").encode())
    p.output("日本語のテキスト".encode() * 10 + b"\n")
    p.note("z" * 100)
    lines = frames(out.getvalue())[0][-1][1]
    assert lines[1] == " => [2/2] RUN xxxxxxxxxxxxxxxxx... 0.1s"
    assert all(columns(line) <= 39 for line in lines)
    assert lines[2].endswith("...") and lines[2].startswith(" => => zzz")
    assert lines[3].startswith(" => => # yyy") and lines[3].endswith("...")
    assert columns(lines[4]) <= 39 and lines[4].endswith("...")


def test_narrow_terminal_drops_the_timer_and_still_fits() -> None:
    p, out, clock = tty(width=20)
    simple_build(p, clock)
    for _, lines in frames(out.getvalue())[0]:
        assert all(len(line) <= 19 for line in lines)
    p2, out2, clock2 = tty(width=1)
    simple_build(p2, clock2)
    assert all(len(line) <= 1 for _, lines in frames(out2.getvalue())[0] for line in lines)


def test_unknown_terminal_size_means_80_columns() -> None:
    p, out, _ = tty(width=None)
    p.start("[1/1] FROM busybox")
    line = frames(out.getvalue())[0][-1][1][1]
    assert len(line) == 79 and line.endswith(" 0.0s")


def test_live_block_fits_the_terminal_height_and_the_final_frame_has_everything() -> None:
    p, out, clock = tty(height=8)
    p.plan(12)
    for k in range(1, 11):
        p.start(f"[{k}/10] RUN step {k}")
        for text in (b"a\n", b"b\n", b"c\n"):
            clock.advance(0.1)
            p.output(text)
        if k < 10:
            p.done()
    shots = frames(out.getvalue())[0]
    assert all(len(lines) <= 6 for _, lines in shots)
    assert shots[-1][1][-4:] == [
        " => [10/10] RUN step 10                                0.3s",
        " => => # a",
        " => => # b",
        " => => # c",
    ]
    p.error("boom")
    shots, _ = frames(out.getvalue())
    assert shots[-1][0] == 6 and len(shots[-1][1]) == 11
    assert shots[-1][1][0] == "[+] Building 3.0s (10/12)"
    assert shots[-1][1][-1] == " => ERROR [10/10] RUN step 10                          0.3s"


def test_a_short_terminal_keeps_the_running_step_and_its_newest_output() -> None:
    p, out, clock = tty(height=6)
    p.start("[1/2] FROM busybox")
    p.done()
    p.start("[2/2] RUN seq 8")
    for i in range(8):
        clock.advance(0.1)
        p.output(f"{i}\n".encode())
    assert frames(out.getvalue())[0][-1][1] == [
        "[+] Building 0.8s (1/2)",
        " => [2/2] RUN seq 8                                    0.8s",
        " => => # 6",
        " => => # 7",
    ]


def test_error_marks_the_step_and_prints_its_last_output_after_the_block() -> None:
    p, out, clock = tty()
    simple_build(p, clock, fail=True)
    shots, rest = frames(out.getvalue())
    final = shots[-1][1]
    assert final[0] == "[+] Building 1.7s (4/5)"  # no FINISHED: the export never ran
    assert final[-1] == " => ERROR [3/3] RUN false                              1.3s"
    assert rest == "------\n > [3/3] RUN false:\n0.100 out 0\n0.200 out 1\n0.300 out 2\n------\n"
    # the block is final: nothing more is drawn, the ticker is not started again
    p.start("[x] late")
    p.output(b"late\n")
    assert frames(out.getvalue())[1] == rest
    assert p.display is not None and p.display.thread is None


def test_error_block_keeps_the_last_ten_lines() -> None:
    p, out, clock = tty()
    p.start("[1/1] RUN loud")
    for i in range(15):
        clock.advance(0.5)
        p.output(f"l{i}\n".encode())
    clock.advance(100)
    p.output(b"late\n")
    p.error("exit 1")
    rest = frames(out.getvalue())[1].splitlines()
    assert rest[0] == "------" and rest[1] == " > [1/1] RUN loud:" and rest[-1] == "------"
    assert rest[2:-1] == [f"{0.5 * (i + 1):.3f} l{i}" for i in range(6, 15)] + ["107.5 late"]


def test_output_is_cleaned_of_escapes_and_carriage_returns() -> None:
    assert clean("\x1b[31mred\x1b[0m\tx") == "red     x"
    assert clean("10%\r50%\r100%\r") == "100%"
    assert clean("\x1b]0;title\x07bell\x07") == "bell"
    assert cut("abcdef", 6) == "abcdef" and cut("abcdefg", 6) == "abc..." and cut("abc", 2) == ".."
    assert columns("日本") == 4 and cut("日本語テキスト", 7) == "日本..."
    assert row("name", "1.0s", 20) == "name           1.0s"


def test_warnings_go_above_a_live_block_and_after_a_final_one() -> None:
    p, out, _ = tty()
    p.start("[1/1] RUN x")
    p.warn("early")
    # up over the 2 lines of the block, the warning in their place, the block again below
    assert out.getvalue().endswith(
        "\x1b[2A\rWARNING: early\x1b[K\n[+] Building 0.0s (0/1)\x1b[K\n"
        " => [1/1] RUN x                                        0.0s\x1b[K\n\x1b[J"
    )
    p.done()
    p.finish()
    p.warn("[Warning] One or more build-args [X] were not consumed")
    assert out.getvalue().endswith(
        "\x1b[J" + "WARNING: [Warning] One or more build-args [X] were not consumed\n"
    )


def test_ticker_is_a_daemon_stopped_on_finish() -> None:
    out = io.StringIO()
    p = Progress(out, "tty", width=60, refresh=0.01)
    p.start("[1/1] RUN sleep")
    assert p.display is not None
    thread = p.display.thread
    assert thread is not None and thread.daemon and thread.is_alive()
    p.done()
    p.start("exporting to image")
    p.done()  # the export's end is the build's
    assert not thread.is_alive() and p.display.finished
    assert frames(out.getvalue())[0][-1][1][0].endswith("(2/2) FINISHED")
    p.finish()  # idempotent
    assert out.getvalue().count("FINISHED") == 1


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_ticker_runs_on_a_terminal_only_by_default() -> None:
    log = Progress(io.StringIO(), "tty", width=60)
    log.start("[1/1] RUN x")
    assert log.display is not None and log.display.refresh == 0 and log.display.thread is None
    term = Progress(Terminal(), "tty", width=60)
    term.start("[1/1] RUN x")
    assert term.display is not None and term.display.refresh == 0.1
    assert term.display.thread is not None and term.display.thread.daemon
    term.finish()
    assert not term.display.thread.is_alive()


def test_finish_after_an_unreported_failure_ends_the_block_and_stops_the_ticker() -> None:
    out = io.StringIO()
    clock = Clock()
    p = Progress(out, "tty", clock=clock, width=70, refresh=0.005)
    p.start("[internal] load build definition from Dockerfile")
    p.note("transferring dockerfile: 10B done")
    assert p.display is not None
    thread = p.display.thread
    assert thread is not None and thread.is_alive()
    clock.advance(0.3)
    time.sleep(0.05)  # the ticker redraws while the build runs
    assert out.getvalue().count("[+] Building") > 2
    # the parse error is raised, no step reports it: the build's caller finishes the block
    p.finish()
    assert not thread.is_alive() and p.display.finished
    shots, rest = frames(out.getvalue())
    assert rest == ""  # the cursor rests after the block, for the CLI's ERROR line
    assert shots[-1][1] == [
        "[+] Building 0.3s (1/1)",  # ended, not FINISHED
        " => ERROR [internal] load build definition from Dockerfile       0.3s",
        " => => transferring dockerfile: 10B done",
    ]
    drawn = out.getvalue()
    clock.advance(1)
    time.sleep(0.03)
    assert not p.display.tick()
    p.finish()  # idempotent
    p.start("[1/1] late")
    p.output(b"late\n")
    p.note("late", key="layer x")  # a pull's thread, late
    assert out.getvalue() == drawn  # nothing after the final frame: the ERROR line stays put


def test_finish_shows_the_output_of_a_step_that_failed_unreported() -> None:
    p, out, clock = tty()
    p.start("[1/2] FROM busybox")
    p.done()
    p.start("[2/2] RUN sleep 100")
    clock.advance(0.5)
    p.output(b"sleeping\n")
    clock.advance(1)
    p.finish()  # interrupted: the step ends as failed, its output follows the block
    shots, rest = frames(out.getvalue())
    assert shots[-1][1][-1] == " => ERROR [2/2] RUN sleep 100                          1.5s"
    assert rest == "------\n > [2/2] RUN sleep 100:\n0.500 sleeping\n------\n"


def test_finish_with_no_step_running_draws_the_frame_as_it_stands() -> None:
    p, out, clock = tty()
    p.start("[internal] load build definition from Dockerfile")
    p.done()
    p.plan(4)
    clock.advance(0.2)
    p.finish()  # say the target stage does not exist
    shots, rest = frames(out.getvalue())
    assert rest == ""
    assert shots[-1][1] == [
        "[+] Building 0.2s (1/4)",
        " => [internal] load build definition from Dockerfile   0.0s",
    ]


def test_keyed_notes_replace_each_other_and_redraw_at_most_every_output_gap() -> None:
    p, out, clock = tty()
    p.start("[1/2] FROM busybox")
    p.note("pulling busybox:latest")
    for n in range(1, 4):
        clock.advance(0.01)
        p.note(f"layer a {n}", key="a")
    p.note("layer b", key="b")
    drawn = out.getvalue().count("\x1b[J")
    p.note("layer a 4", key="a")  # within OUTPUT_GAP of the last frame: no redraw yet
    assert out.getvalue().count("\x1b[J") == drawn
    clock.advance(0.1)
    p.note("layer b done", key="b")
    assert frames(out.getvalue())[0][-1][1][2:] == [
        " => => pulling busybox:latest",
        " => => layer a 4",
        " => => layer b done",
    ]
    assert p.display is not None and len(p.display.steps[-1].notes) == 3


def assert_only_frames(text: str) -> list[list[str]]:
    """Every byte written belongs to a frame: each climbs over the last one, starts with the
    header and has nothing but step rows; the cursor rests after the last.  Its frames."""
    shots, rest = frames(text)
    assert rest == ""
    assert shots[0][0] == 0
    for (_, before), (up, _) in itertools.pairwise(shots):
        assert up == len(before)
    for _, lines in shots:
        assert lines[0].startswith("[+] Building ")
        assert all(line.startswith(" => ") for line in lines[1:]), lines
    return [lines for _, lines in shots]


def test_pull_events_become_notes_of_the_running_step() -> None:
    p, out, clock = tty(width=80)
    p.start("[internal] load build definition from Dockerfile")
    p.done()
    p.plan(4)
    p.start("[1/2] FROM busybox:latest")
    report = pull_notes(p)
    a, b = "0123456789ab", "fedcba987654"
    events = [
        status("Pulling from library/busybox", "latest"),
        Event("aaaaaaaaaaaa", "Already exists"),
        Event(a, "Pulling fs layer"),
        Event(b, "Pulling fs layer"),
        *(Event(a, "Downloading", n, 4_100_000) for n in range(100_000, 4_100_001, 100_000)),
        Event(a, "Verifying Checksum"),
        Event(a, "Download complete"),
        Event(b, "Downloading", 512, 0),
        *(Event(a, "Extracting", n, 4_100_000) for n in range(1_000_000, 4_100_001, 1_000_000)),
        Event(a, "Pull complete"),
        status("Digest: sha256:" + "d" * 64),
        status("Status: Downloaded newer image for busybox:latest"),
    ]
    for event in events:
        clock.advance(0.02 if event.current else 0.06)  # status changes: past OUTPUT_GAP
        report(event)
    shots = assert_only_frames(out.getvalue())
    assert len(shots) < len(events)  # a layer's byte counts redraw at most every 0.05s
    notes = [line for lines in shots for line in lines if line.startswith(" => => ")]
    counts = re.compile(r" => => sha256:0123456789ab \d[.\d]*[kM]B / 4\.1MB")
    assert len({line for line in notes if counts.fullmatch(line)}) > 5
    assert " => => sha256:0123456789ab waiting" in notes
    assert " => => sha256:0123456789ab 4.1MB / 4.1MB done" in notes
    assert any(line.startswith(" => => extracting sha256:0123456789ab ") for line in notes)
    assert not any("aaaaaaaaaaaa" in line or "erifying" in line for line in notes)
    assert shots[-1][2] == " => [1/2] FROM busybox:latest" + " " * 46 + "1.5s"
    assert shots[-1][3:] == [
        " => => pulling busybox:latest",
        " => => extracting sha256:0123456789ab done",  # one line per layer, replaced
        " => => sha256:fedcba987654 512B",
        " => => Digest: sha256:" + "d" * 54 + "...",
        " => => Status: Downloaded newer image for busybox:latest",
    ]
    p.done()
    assert_only_frames(out.getvalue())
    report(Event(b, "Pull complete"))  # a late event from a pull thread: dropped
    report(status("Status: late"))
    p.finish()
    final = assert_only_frames(out.getvalue())[-1]
    assert final[3:] == [
        " => => pulling busybox:latest",
        " => => extracting sha256:0123456789ab done",
        " => => sha256:fedcba987654 512B",
        " => => Digest: sha256:" + "d" * 54 + "...",
        " => => Status: Downloaded newer image for busybox:latest",
    ]


def test_pull_notes_name_the_image_and_layers_like_buildkit() -> None:
    p, out, clock = tty(width=100)
    p.start("[1/1] FROM x")
    report = pull_notes(p)
    report(status("Unable to find image 'x:latest' locally"))  # the step's row says it
    report(status("Pulling from team/app", "1.0"))
    report(status("Pulling from library/alpine", "sha256:abc"))
    report(Event("123456789abc", "Download complete"))  # no byte count seen
    report(Event("cba987654321", "Downloading", 999_999, 1_000_000))
    assert frames(out.getvalue())[0][-1][1][-1] == " => => sha256:cba987654321 1MB / 1MB"
    clock.advance(0.1)
    report(Event("cba987654321", "Waiting"))
    assert frames(out.getvalue())[0][-1][1][2:] == [
        " => => pulling team/app:1.0",
        " => => pulling alpine@sha256:abc",
        " => => sha256:123456789abc done",
        " => => sha256:cba987654321 waiting",
    ]


def test_build_sends_pulls_to_the_block_and_finishes_it_whatever_happens(tmp_path: Path) -> None:
    """``BuildService.build`` with the CLI's tty rendering: the FROM's pull reports to this
    build's own sink (no engine-wide callback) and becomes notes of the step; a failed pull,
    which no step reports, still gets the final frame from the CLI's ``finish`` before its
    ERROR line; the build's last event is the error."""
    from cargohold.engine.builds import BuildService
    from cargohold.engine.images.requests import BuildRequest

    def resolve(name: str) -> None:
        raise NotFound(f"No such image: {name}")

    def interrupted(name: str) -> None:
        raise KeyboardInterrupt

    def ensure(name: str, policy: str, events: object) -> None:
        assert callable(events)
        events(status("Pulling from library/busybox", "latest"))
        events(Event("0123456789ab", "Downloading", 1000, 2000))
        raise CargoholdError("pull access denied for busybox")

    root = tmp_path / "root"
    engine = SimpleNamespace(
        settings=SimpleNamespace(root=root, runroot=tmp_path / "run"),
        stores=SimpleNamespace(layers=SimpleNamespace(exists=lambda chain: False)),
        images=SimpleNamespace(resolve=resolve),
        registry=SimpleNamespace(ensure=ensure),
    )
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\n")
    service = BuildService(engine)  # type: ignore[arg-type]
    request = BuildRequest(remote=str(ctx))
    for failure in (CargoholdError, KeyboardInterrupt):
        out = Terminal()  # the ticker runs
        if failure is KeyboardInterrupt:
            engine.images.resolve = interrupted
        before = set(threading.enumerate())
        progress = Progress(out, "tty", width=60)
        with pytest.raises(failure):
            try:
                service.build(request, progress)
            finally:
                progress.finish()  # what cli/commands/build.py does
        assert set(threading.enumerate()) <= before  # the ticker is stopped and joined
        final = assert_only_frames(out.getvalue())[-1]
        assert final[0].startswith("[+] Building ") and "FINISHED" not in final[0]
        at = next(i for i, line in enumerate(final) if "FROM busybox" in line)
        assert final[at].startswith(" => ERROR [1/")
        if failure is CargoholdError:
            assert final[at + 1 :] == [
                " => => pulling busybox:latest",
                " => => sha256:0123456789ab 1kB / 2kB",
            ]
    # plain mode: the pull's messages go to the CLI's pull printer, given to this build
    printed: list[JSONMessage] = []
    events: list[object] = []

    def sink(event: object) -> None:
        events.append(event)
        plain(event)  # type: ignore[arg-type]

    plain = Progress(io.StringIO(), "plain", pulls=printed.append)
    engine.images.resolve = resolve
    with pytest.raises(CargoholdError, match="Dockerfile:1: pull access denied"):
        service.build(request, sink)
    assert [(e.id, e.status) for e in printed] == [
        ("latest", "Pulling from library/busybox"), ("0123456789ab", "Downloading")]
    message = "Dockerfile:1: pull access denied for busybox"
    assert events[-1] == JSONMessage(error_detail=ErrorDetail(0, message), error=message)


def test_quiet_tty_prints_nothing() -> None:
    out = io.StringIO()
    p = Progress(out, "tty", quiet=True)
    p.start("[1/1] FROM busybox")
    p.output(b"x\n")
    p.done()
    p.warn("w")
    assert out.getvalue() == "" and p.display is None


def test_plain_mode_bytes_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [10.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    out = io.StringIO()
    p = Progress(out)
    p.start("[internal] load build definition from Dockerfile")
    p.note("transferring dockerfile: 10B done")
    p.done()
    p.plan(4)
    p.start("[1/2] FROM busybox")
    p.cached()
    p.start("[2/2] RUN echo hi")
    now[0] += 0.123
    p.output(b"a\nb\r\nparti")
    now[0] += 1
    p.output(b"al")
    p.flush_output()
    p.output(b"x")
    p.done()
    p.start("[3/3] RUN false")
    p.output(b"oops\n")
    p.error("bad")
    p.finish()
    p.warn("careful")
    assert out.getvalue() == (
        "#1 [internal] load build definition from Dockerfile\n"
        "#1 transferring dockerfile: 10B done\n"
        "#1 DONE 0.0s\n\n"
        "#2 [1/2] FROM busybox\n"
        "#2 CACHED\n\n"
        "#3 [2/2] RUN echo hi\n"
        "#3 0.123 a\n"
        "#3 0.123 b\n"
        "#3 1.123 partial\n"
        "#3 1.123 x\n"
        "#3 DONE 1.1s\n\n"
        "#4 [3/3] RUN false\n"
        "#4 0.000 oops\n"
        "#4 ERROR: bad\n"
        "WARNING: careful\n"
    )
