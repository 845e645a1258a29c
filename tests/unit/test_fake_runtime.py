"""The in-memory runtime's state machine, and runc error classification (no root)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from cargohold.errors import (
    CannotExecute,
    CommandNotFound,
    Conflict,
    Internal,
    InvalidArgument,
    NotFound,
    Unavailable,
)
from cargohold.runtime.base import OCIRuntime, signal_arg
from cargohold.runtime.fake import FakeRuntime, signal_number
from cargohold.runtime.runc import Runc, classify, parse_log


def test_fake_implements_the_protocol() -> None:
    assert isinstance(FakeRuntime(), OCIRuntime)
    assert isinstance(Runc("runc", Path("/nonexistent")), OCIRuntime)


def test_lifecycle_created_running_stopped(tmp_path: Path) -> None:
    rt = FakeRuntime()
    pid_file = tmp_path / "pid"
    rt.create("c1", tmp_path, pid_file=pid_file)
    state = rt.state("c1")
    assert state.status == "created" and state.pid == int(pid_file.read_text())
    rt.start("c1")
    assert rt.state("c1").status == "running"
    assert rt.ps("c1") == [state.pid]
    rt.exit("c1", 3)
    assert rt.state("c1").status == "stopped" and rt.state("c1").pid == 0
    assert rt.exit_code("c1") == 3
    assert rt.ps("c1") == []
    rt.delete("c1")
    with pytest.raises(NotFound, match="No such container: c1"):
        rt.state("c1")


def test_kill_sets_128_plus_signal() -> None:
    rt = FakeRuntime()
    rt.create("c", Path("/b"))
    rt.start("c")
    rt.kill("c", "SIGWINCH")
    assert rt.state("c").status == "running"
    rt.kill("c", "TERM")
    assert rt.exit_code("c") == 128 + signal.SIGTERM
    with pytest.raises(Conflict, match="is not running"):
        rt.kill("c", 9)


def test_pause_resume_and_pending_signal() -> None:
    rt = FakeRuntime()
    rt.create("c", Path("/b"))
    rt.start("c")
    rt.pause("c")
    assert rt.state("c").status == "paused"
    with pytest.raises(Conflict):
        rt.pause("c")
    with pytest.raises(Conflict, match="cannot start"):
        rt.start("c")
    rt.kill("c", "TERM")  # frozen: delivered on resume
    assert rt.state("c").status == "paused"
    rt.resume("c")
    assert rt.state("c").status == "stopped" and rt.exit_code("c") == 143
    with pytest.raises(Conflict):
        rt.resume("c")


def test_sigkill_stops_a_paused_container() -> None:
    rt = FakeRuntime()
    rt.create("c", Path("/b"))
    rt.start("c")
    rt.pause("c")
    rt.kill("c", 9)
    assert rt.state("c").status == "stopped" and rt.exit_code("c") == 137


def test_delete_rules_and_conflicts() -> None:
    rt = FakeRuntime()
    rt.create("c", Path("/b"))
    with pytest.raises(Conflict):
        rt.create("c", Path("/b"))
    rt.start("c")
    with pytest.raises(Conflict):
        rt.delete("c")
    rt.delete("c", force=True)
    rt.delete("c", force=True)  # absent + force: fine, as runc
    with pytest.raises(NotFound):
        rt.delete("c")
    with pytest.raises(InvalidArgument):
        rt.create("-bad", Path("/b"))


def test_exec_run_update_and_scripted_failures(tmp_path: Path) -> None:
    rt = FakeRuntime(exec_exit_code=5, run_exit_code=2)
    assert rt.run("r", tmp_path) == 2
    assert "r" not in rt.containers
    rt.create("c", tmp_path)
    with pytest.raises(Conflict):
        rt.exec("c", tmp_path / "p.json")
    rt.start("c")
    assert rt.exec("c", tmp_path / "p.json") == 5
    assert rt.exec("c", tmp_path / "p.json", detach=True) == 0
    rt.update("c", {"pids": {"limit": 5}})
    assert rt.containers["c"].resources == {"pids": {"limit": 5}}
    rt.fail_on["start"] = CommandNotFound("exec: nope")
    rt.create("d", tmp_path)
    with pytest.raises(CommandNotFound):
        rt.start("d")
    rt.start("d")  # a scripted failure fires once
    assert [s.id for s in rt.list_all()] == ["c", "d"]
    assert ("exec", "c") in rt.calls


def test_signal_names() -> None:
    assert signal_arg("SIGTERM") == "TERM" and signal_arg(9) == "9" and signal_arg("kill") == "KILL"
    assert signal_number("SIGKILL") == 9 and signal_number("hup") == 1 and signal_number("15") == 15
    with pytest.raises(InvalidArgument):
        signal_number("NOPE")


# -- runc error mapping ------------------------------------------------------------------------


def test_parse_log_takes_the_last_error() -> None:
    text = (
        '{"level":"warning","msg":"w","time":"t"}\n'
        '{"level":"error","msg":"first","time":"t"}\n'
        '{"level":"error","msg":"container does not exist","time":"t"}\n'
    )
    assert parse_log(text) == "container does not exist"
    assert parse_log("plain failure\n") == "plain failure"
    assert parse_log("") == ""


@pytest.mark.parametrize(
    ("verb", "msg", "kind"),
    [
        ("state", "container does not exist", NotFound),
        ("create", "runc create failed: container with given ID already exists", Conflict),
        ("kill", "container not running", Conflict),
        ("start", "cannot start a container in the paused state", Conflict),
        (
            "create",
            'runc create failed: unable to start container process: exec: "nope": '
            "executable file not found in $PATH",
            CommandNotFound,
        ),
        (
            "run",
            'runc run failed: unable to start container process: exec: "/nope/x": '
            "stat /nope/x: no such file or directory",
            CommandNotFound,
        ),
        (
            "create",
            'runc create failed: unable to start container process: exec: "/bin/f": '
            "permission denied",
            CannotExecute,
        ),
        ("create", "runc create failed: unable to apply cgroup configuration", Internal),
    ],
)
def test_classify(verb: str, msg: str, kind: type[Exception]) -> None:
    err = classify(verb, msg, "abc")
    assert isinstance(err, kind)
    if kind is NotFound:
        assert str(err) == "No such container: abc"


def test_exit_codes_of_start_errors() -> None:
    assert classify("create", 'exec: "x": executable file not found in $PATH').exit_code == 127
    assert classify("exec", 'exec: "/x": permission denied').exit_code == 126


def test_missing_binary_is_unavailable(tmp_path: Path) -> None:
    rt = Runc("definitely-not-a-runtime", tmp_path / "state")
    with pytest.raises(
        Unavailable, match='exec: "definitely-not-a-runtime": executable file not found'
    ):
        rt.state("x")
    rt = Runc(str(tmp_path / "missing" / "runc"), tmp_path / "state")
    with pytest.raises(Unavailable):
        rt.list_all()


def test_fake_runc_binary(tmp_path: Path) -> None:
    """Runc's argv and error path, using a shell script that plays runc."""
    script = tmp_path / "fakerunc"
    log = tmp_path / "argv"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$@" >> {log}\n'
        'case "$*" in\n'
        '  *" state "*) echo \'{"id":"c","pid":12,"status":"running","bundle":"/b",'
        '"created":"2024-01-01T00:00:00Z"}\' ;;\n'
        '  *" list "*) echo null ;;\n'
        '  *" ps "*) echo "[1,2]" ;;\n'
        '  *) echo \'{"level":"error","msg":"container does not exist"}\' >&2\n'
        "     exit 1 ;;\n"
        "esac\n"
    )
    script.chmod(0o755)
    rt = Runc(str(script), tmp_path / "state")
    st = rt.state("c")
    assert (st.id, st.status, st.pid, st.bundle) == ("c", "running", 12, Path("/b"))
    assert rt.list_all() == []
    assert rt.ps("c") == [1, 2]
    with pytest.raises(NotFound, match="No such container: gone"):
        rt.kill("gone", "SIGTERM", all_processes=True)
    first = log.read_text().splitlines()[0]
    assert first.startswith(f"--root {tmp_path / 'state'} --log-format json state c")
    assert log.read_text().splitlines()[-1].endswith("kill --all gone TERM")
